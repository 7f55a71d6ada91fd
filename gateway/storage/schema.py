"""Table definitions used at run time (SQLAlchemy Core).

The database itself is created by the alembic migrations in `gateway/storage/migrations`;
this module must describe the same tables (test_storage checks the two agree).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

# Keyset pagination orders by local_id / slug: compare bytes on every backend
# (SQLite's default BINARY collation; PostgreSQL "C" instead of the server locale).
def _ordered_string(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zone type, so the UTC wall time
    is stored and UTC is attached again when reading.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("date-heure sans fuseau horaire refusée (UTC attendu)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("slug", _ordered_string(40), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("finess", sa.String(9), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(12), primary_key=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("local_id", _ordered_string(64), nullable=False),
    sa.Column("current_version", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "local_id"),
    sa.UniqueConstraint("tenant_id", "id"),
    sa.CheckConstraint("current_version >= 0", name="current_version_positive"),
)

plan_versions = sa.Table(
    "plan_versions",
    metadata,
    sa.Column("person_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("content", sa.LargeBinary(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.ForeignKeyConstraint(
        ["tenant_id", "person_id"],
        ["persons.tenant_id", "persons.id"],
        name="fk_plan_versions_person",
    ),
    sa.CheckConstraint("version >= 1", name="version_positive"),
)

# The person's national identifier (INS) → their local id, per tenant: inbound messages
# (decisions, documents, notifications) name the person by INS. Two persons of a tenant with
# the same INS are an identity duplicate (identitovigilance): a lookup then finds no one
# rather than guessing, and the duplicate is reported.
person_identifiers = sa.Table(
    "person_identifiers",
    metadata,
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # "ins"
    sa.Column("value", sa.String(64), primary_key=True),
    sa.Column("person_local_id", _ordered_string(64), primary_key=True),
)
