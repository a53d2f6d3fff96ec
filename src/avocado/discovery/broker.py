"""The broker connection's failures in words an operator can act on, and its TLS settings.

An ``amqps://`` URL is encrypted and verified: aiormq builds the TLS context with
``ssl.create_default_context``, so the broker's certificate must chain to a trusted CA and name the
host in the URL. A private CA is given in the URL the way aiormq reads it:
``amqps://user:password@broker.example/?cafile=/etc/avocado/broker-ca.pem`` (or ``capath``, ``cadata``;
``certfile`` and ``keyfile`` add a client certificate). Without them the system's CAs are trusted.
``no_verify_ssl=1`` turns verification off; that is logged as a warning at every start.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

from aiormq.exceptions import AMQPError, ProbableAuthenticationError

from avocado.redact import redact_text, redact_url

__all__ = ["BrokerError", "broker_error", "describe_broker_error", "warn_if_unverified"]

log = logging.getLogger(__name__)


class BrokerError(ConnectionError):
    """The broker could not be used; the message says why and holds no password.

    ``refused``: the broker (or its certificate) said no, so the URL is wrong, as against a broker
    that could not be reached.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def broker_error(exc: BaseException, url: str) -> BrokerError:
    """``exc``, met connecting to ``url``, as a :class:`BrokerError`."""
    refused = any(
        isinstance(cause, ProbableAuthenticationError | ssl.SSLCertVerificationError) for cause in _chain(exc)
    )
    return BrokerError(describe_broker_error(exc, url), refused=refused)


def describe_broker_error(exc: BaseException, url: str) -> str:
    """What went wrong connecting to or talking with the broker at ``url``, password masked."""
    return redact_text(_describe(exc), url)


def warn_if_unverified(url: str) -> None:
    """Log a warning when ``url`` turns off the broker's certificate verification."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.scheme == "amqps" and parse_qs(parts.query).get("no_verify_ssl", ["0"])[-1] != "0":
        log.warning(
            "the broker's TLS certificate is not verified (no_verify_ssl in %s): anyone on the path "
            "can read the broker credentials; give its CA with ?cafile= instead",
            redact_url(url),
        )


def _describe(exc: BaseException) -> str:
    causes = list(_chain(exc))
    for cause in causes:  # TLS first: aiormq wraps it in a ConnectionError of its own
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = str(cause.verify_message).rstrip(".")
            if "mismatch" in why:  # a certificate for another name
                return f"the broker's TLS certificate was refused ({why}): connect by a name it holds"
            return (
                f"the broker's TLS certificate was refused ({why}): "
                "trust its CA with ?cafile=/path/to/ca.pem in the amqps:// URL"
            )
        if isinstance(cause, ssl.SSLError):
            return f"TLS with the broker failed ({cause.reason or cause}); is that port amqps?"
    if isinstance(exc, ProbableAuthenticationError):
        return f"the broker refused the login: {exc}"
    for cause in causes:
        if isinstance(cause, TimeoutError):
            return "cannot reach the broker (no answer in time)"
        if isinstance(cause, OSError) and not isinstance(cause, AMQPError) and cause.strerror:
            return f"cannot reach the broker ({cause.strerror})"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (aiormq wraps the ``ssl`` error in its own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
