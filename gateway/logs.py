"""JSON logs with structlog.

Nothing that identifies a person may reach a log line: callers log ids of rows, route
templates, counts and rule ids, never bodies. A last processor enforces it: any field whose
name suggests personal data is replaced, so a careless `log.info(..., name=...)` cannot leak.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

# Field names that never carry a value into a log line.
_REDACTED_FIELDS = frozenset(
    {
        "name", "family_name", "given_name", "given_names", "birth_family_name",
        "birth_given_names", "birth_date", "birthdate", "ins", "nir", "matricule",
        "address", "telecom", "email", "phone", "text", "body", "content", "plan",
        "person", "description", "note", "comment", "token", "secret", "password",
        "authorization", "api_key",
    }
)


def _redact(_, __, event_dict: dict) -> dict:
    for key in list(event_dict):
        if key.lower() in _REDACTED_FIELDS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure(level: str = "INFO", log_file: Path | None = None) -> None:
    """Configure structlog and the stdlib root logger (uvicorn, alembic) to emit JSON lines."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's access log prints raw paths (which hold person ids): Relais logs its own.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx/httpcore log every outbound request at INFO with its full URL (paths such as
    # /Task/{id} or a search on an identifier): the connectors audit their sends instead.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


def get_logger(name: str = "relais"):
    return structlog.get_logger(name)
