"""What every command shares: the store, printing, and storage errors turned into exit codes."""

from __future__ import annotations

import functools
import sys

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.storage import Store

# The storage layer (SQLAlchemy, settings) is imported when a command uses it, not when the
# `relais` parser is built: `relais conformance validate` on a laptop starts in well under 1 s.
OK, INVALID, USAGE, NOT_FOUND, CONFLICT, UNAVAILABLE = 0, 1, 2, 3, 4, 5


def add_database_option(parser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help="base de données (défaut : RELAIS_DATABASE_URL ou sqlite:///./var/relais.db)",
    )


def open_store(args) -> Store:
    from gateway.settings import settings
    from gateway.storage import Store

    try:
        store = Store(getattr(args, "database", None) or settings().database_url)
    except ValueError as exc:  # unreadable or unsupported URL (French reason, no password)
        raise DatabaseUrlError(str(exc)) from None
    store.migrate()
    return store


class DatabaseUrlError(Exception):
    """--database (or RELAIS_DATABASE_URL) names no database Relais can open."""


def read_input(path: str, limit: int) -> bytes:
    """An input file's bytes, at most `limit` + 1 of them: a larger file (10 GB, /dev/zero) is
    refused by the caller's size check without being read whole into memory."""
    with open(path, "rb") as file:
        return file.read(limit + 1)


def err(message: str) -> None:
    print(message, file=sys.stderr)


def handles_storage_errors(func):
    """Storage exceptions carry French messages without personal data: print and map."""

    @functools.wraps(func)
    def wrapper(args):
        from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

        from gateway.storage.store import Conflict, NotFound, PreconditionFailed, PreconditionRequired

        try:
            return func(args)
        except NotFound as exc:
            err(f"introuvable : {exc}")
            return NOT_FOUND
        except PreconditionRequired as exc:
            err(f"{exc} (version courante : {exc.current_etag}) ; relancer avec --if-match ou --force")
            return CONFLICT
        except (PreconditionFailed, Conflict) as exc:
            err(str(exc))
            return CONFLICT
        except OperationalError as exc:
            err(f"base de données indisponible : {type(exc.orig).__name__}")
            return UNAVAILABLE
        except DatabaseUrlError as exc:
            err(str(exc))
            return USAGE
        except DatabaseError as exc:  # e.g. a file that is not an SQLite database
            if isinstance(exc, IntegrityError):
                raise
            err(f"base de données illisible : {type(exc.orig).__name__}")
            return UNAVAILABLE

    return wrapper
