"""One typed settings object; every field can be set with a `RELAIS_` environment variable."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RELAIS_", env_file=None, extra="ignore", env_nested_delimiter="__"
    )

    database_url: str = Field(
        default="sqlite:///./var/relais.db",
        description="SQLAlchemy URL: sqlite:///path (default) or postgresql+psycopg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(default=2 * 1024 * 1024, description="Largest accepted request body")
    max_json_depth: int = 64
    page_size_max: int = 200
    log_level: str = "INFO"
    log_file: Path | None = Field(default=None, description="Also write JSON logs to this file")
    sqlite_busy_timeout_ms: int = 5000
    connectors: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-system connector settings, e.g. RELAIS_CONNECTORS__EPARCOURS__BASE_URL "
        "(base_url, token_url, client_id, client_secret, ca_file, client_cert, client_key, timeout)",
    )
    worker_in_process: bool = Field(default=True, description="`relais serve` also runs a delivery worker")
    worker_batch: int = 10
    worker_lease_seconds: int = 60
    audit_origin: str = Field(
        default="relais.local/audit",
        description="Audit log identity: checkpoint origin and signing key name (no space, no '+')",
    )
    audit_key_dir: Path = Field(
        default=Path("./var/audit-keys"), description="Private audit signing keys (files, 0600)"
    )
    audit_checkpoint_entries: int = Field(default=256, description="Sign once this many new entries")
    audit_checkpoint_seconds: float = Field(default=1.0, description="…or this long after an append")
    audit_key_overlap_days: float = Field(
        default=30.0, description="After a key rotation, old and new keys both sign this long"
    )
    cda_schemas: Path | None = Field(
        default=None,
        description="TestContenuCDA directory (CDA_extended.xsd, CI-SIS schematrons, jeuxDeValeurs); "
        "default ../shared/reference/official/cda/TestContenuCDA-3-0 from the repository root",
    )
    conformance_cache: Path = Field(
        default=Path("./var/cache/conformance"),
        description="`relais conformance`: FHIR package index and compiled rule sets (reused between runs)",
    )
    activity_timezone: str = Field(
        default="Europe/Paris",
        description="Time zone of activity days and half-days (Indian/Reunion, America/Cayenne…)",
    )
    activity_reference_week: str = Field(
        default="10-08",
        description="SERAFIN-PH reference week: the Monday–Sunday week starting on the first Monday "
        "on or after this MM-DD of the year (default: the second full week of October)",
    )
    console_session_idle_minutes: float = Field(default=15.0, description="DPO console: idle session timeout")
    console_session_max_hours: float = Field(default=8.0, description="DPO console: absolute session lifetime")
    console_lockout_failures: int = Field(default=5, description="DPO console: failed log-ins before lock-out")
    console_lockout_minutes: float = Field(default=15.0, description="DPO console: lock-out duration")
    console_login_delay_seconds: float = Field(
        default=1.0, description="DPO console: wait after the 2nd failure, doubled at each further one"
    )
    console_scrypt_log2_n: int = Field(default=17, description="DPO console: scrypt cost (N = 2^n, r=8, p=1)")
    console_trusted_keys: list[str] = Field(
        default_factory=list,
        description="Audit log vkeys the console verifies against (default: the public halves of "
        "the key files in RELAIS_AUDIT_KEY_DIR)",
    )
    console_cookie_secure: bool | None = Field(
        default=None, description="Secure session cookie (default: when the request came over TLS)"
    )


@cache
def settings() -> Settings:
    return Settings()
