"""Broker URLs and error texts with the password taken out, fit for logs and status pages."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["MASK", "redact_text", "redact_url"]

MASK = "***"


def _password(url: str) -> str | None:
    netloc = urlsplit(url).netloc
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None
    _, colon, password = userinfo.partition(":")
    return password if colon and password else None


def redact_url(url: str) -> str:
    """``url`` with the password, if any, replaced by ``***`` (``amqp://user:***@host/vhost``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, password = userinfo.partition(":")
    if not (colon and password):
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostport}"))


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message, say) with every spelling of ``url``'s password replaced by ``***``."""
    try:
        password = _password(url)
    except ValueError:
        return text
    if password is None:
        return text
    for secret in {password, unquote(password)}:
        text = text.replace(secret, MASK)
    return text
