"""Logging: one line per event, as text or JSON, with request fields carried in a context.

Nothing here logs headers or bodies, so keys and passwords cannot reach the log. As a last line of
defence every line is also passed through :func:`avocado.redact.redact` on its way out: URL passwords,
``token=``-style values, bearer credentials and the secrets given to :func:`configure_logging` are
masked whichever logger (ours or a library's) wrote them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from avocado.redact import redact

__all__ = ["configure_logging", "note", "request_fields", "rotate"]

# A per-request dict that code deep in a handler can add fields to (the model name, say);
# the request logger prints them when the response ends.
request_fields: ContextVar[dict[str, Any] | None] = ContextVar("request_fields", default=None)


def note(key: str, value: Any) -> None:
    """Attach ``key=value`` to the current request's log line, if there is one."""
    fields = request_fields.get()
    if fields is not None:
        fields[key] = value


class _RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(secret for secret in secrets if secret)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.line(record), self.secrets)

    def line(self, record: logging.LogRecord) -> str:
        raise NotImplementedError


class _TextFormatter(_RedactingFormatter):
    def line(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<5} {record.name}: {record.getMessage()}"
        extra = getattr(record, "fields", None)
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(_RedactingFormatter):
    def line(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(
    level: str = "info", fmt: str = "text", logs_dir: Path | None = None, secrets: Iterable[str] = ()
) -> None:
    """Log to stderr and, given ``logs_dir``, to a rotating ``avocado.log`` there (10 MB x 5); ``secrets``
    (an API key, a broker password) are masked in every line."""
    formatter = _JsonFormatter(secrets) if fmt == "json" else _TextFormatter(secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(RotatingFileHandler(logs_dir / "avocado.log", maxBytes=10_000_000, backupCount=5))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # While a broker is down these log an ERROR per connection attempt; the announcer and the watcher
    # report outages themselves (once, with the password masked) and in GET /api/avocado/status.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


def rotate(path: Path, max_bytes: int = 10_000_000, backups: int = 3) -> None:
    """Before a child program's log is opened again: past ``max_bytes``, shift it to ``.1`` .. ``.N``."""
    try:
        if path.stat().st_size < max_bytes:
            return
    except FileNotFoundError:
        return
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))
