"""The DPO console (issue 3 §3): French, server-rendered pages mounted at /console.

    console_app(store, config) -> FastAPI     # mounted by gateway/api/app.py
    accounts.create_account / authenticate / unlock   # DPO accounts per tenant (scrypt)

Modules: tables · accounts (passwords, throttling, lock-out) · sessions (server-side) ·
csrf · views (consents, decisions: read within one tenant) · reasons (rule ids explained) ·
reports (GDPR art. 15 access report, CSV) · integrity (checkpoint, verify now, alarm) ·
routes (HTTP, templates/, static/).
"""

from __future__ import annotations


def console_app(store, config, **options):
    from gateway.console.routes import console_app as build

    return build(store, config, **options)


__all__ = ["console_app"]
