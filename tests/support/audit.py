"""The audit log's tables made to refuse every insert, as the database itself would (a trigger)."""

from __future__ import annotations

from sqlalchemy.engine import Engine


def refuse_audit_inserts(engine: Engine) -> None:
    """From now on the database refuses every insert into audit_entries (undo: accept_audit_inserts)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE TRIGGER test_refuse BEFORE INSERT ON audit_entries "
                                 "FOR EACH ROW EXECUTE FUNCTION relais_audit_append_only()")
        else:
            conn.exec_driver_sql("CREATE TRIGGER test_refuse BEFORE INSERT ON audit_entries "
                                 "BEGIN SELECT RAISE(ABORT, 'journal d''audit : ajout refusé'); END")


def accept_audit_inserts(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER test_refuse" + (" ON audit_entries" if engine.dialect.name
                                                           == "postgresql" else ""))
