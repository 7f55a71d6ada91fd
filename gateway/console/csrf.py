"""CSRF protection of the console's forms (OWASP CSRF cheat sheet).

- Signed-in forms carry the session's own token (hidden field `csrf`); every POST must send
  it back (compared in constant time), else 403 and nothing happens.
- The log-in form, before any session, uses a double-submit token: a random value in a
  short-lived HttpOnly, SameSite=Strict cookie and the same value in the form.
- Defence in depth: a POST whose Origin (or, failing that, Referer) names another site is
  refused; the session cookie is SameSite=Strict anyway.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

FIELD = "csrf"
LOGIN_COOKIE = "relais_console_connexion"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def matches(expected: str | None, submitted: str | None) -> bool:
    if not expected or not submitted or len(submitted) > 100:
        return False
    return hmac.compare_digest(expected.encode("ascii", "replace"), submitted.encode("ascii", "replace"))


def same_origin(headers, scheme: str, host: str | None) -> bool:
    """False when the request says it comes from another origin than this server."""
    source = headers.get("origin") or headers.get("referer")
    if not source:
        return True  # no header (privacy settings, old clients): the token decides
    if source == "null":
        return False
    parts = urlsplit(source)
    return bool(host) and parts.scheme == scheme and parts.netloc.lower() == host.lower()
