"""Keep secrets out of logs, errors and status pages: the one place that knows what a secret looks like.

- :func:`redact`: free text (an error message, a program's output, a log line) with known secrets,
  URL passwords (``scheme://user:***@host``), ``token=...``-style assignments and bearer credentials
  replaced by ``***``.
- :func:`redact_url`: one URL fit to show: its password and secret-looking query values masked.
- :func:`redact_text`: text that may hold a URL's password in any spelling (raw or percent-decoded),
  as a broker's error messages do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["MASK", "redact", "redact_text", "redact_url", "url_secrets"]

MASK = "***"

# ``scheme://user:password@host``: the password goes, the user stays.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*):[^\s/@]*@")
# ``authtoken=...``, ``password: ...``, ``?api_key=...``, ``X-Amz-Signature=...`` and the like, as
# programs print them in errors and as URLs carry them in their query.
_ASSIGNED = re.compile(
    r"(?P<head>\b(?:(?:auth|access[_-]?|refresh[_-]?)?token|password|passwd|secret|api[_-]?key|key"
    r"|sig|signature|credential))(?P<sep>\s*[=:]\s*)(?P<value>[^\s&,;'\"]+)",
    re.IGNORECASE,
)
# ``Authorization: Bearer <credential>`` as an HTTP library may print it.
_BEARER = re.compile(r"(?P<head>\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret, URL password, ``token=value`` and bearer credential masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    text = _BEARER.sub(rf"\g<head>{MASK}", text)
    return _ASSIGNED.sub(rf"\g<head>\g<sep>{MASK}", text)


def redact_url(url: str) -> str:
    """``url`` with its password (``amqp://user:***@host/vhost``) and secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.query:
        parts = parts._replace(query=_ASSIGNED.sub(rf"\g<head>\g<sep>{MASK}", parts.query))
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and password:
        parts = parts._replace(netloc=f"{user}:{MASK}@{hostport}")
    return urlunsplit(parts)


def url_secrets(url: str) -> set[str]:
    """Every spelling of ``url``'s password: as written (percent-encoded) and decoded; empty for none."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return set()
    userinfo, at, _ = netloc.rpartition("@")
    _, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return set()
    return {password, unquote(password)}


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message, say) with ``url``'s password masked in any spelling, and with what
    :func:`redact` masks anyway."""
    return redact(text, url_secrets(url))
