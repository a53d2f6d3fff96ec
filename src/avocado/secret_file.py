"""Secrets Avocado makes for itself (a node's API key, ``avocado up``'s master key), kept in the home.

A secret is generated once, written to a file only its owner may read (``0600``) and read back on
every later start, so clients configured with it keep working across restarts. The caller learns
whether the secret was just made, to print it once.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

__all__ = ["SecretFileError", "load_or_create_secret", "read_secret", "replace_secret"]

# 32 random bytes: 43 URL-safe characters, past every strength check a key meets.
SECRET_BYTES = 32


class SecretFileError(RuntimeError):
    """A stored secret that cannot be used: unreadable, empty, or readable by others."""


def load_or_create_secret(path: Path, prefix: str = "") -> tuple[str, bool]:
    """The secret stored at ``path``, made first if there is none; ``(secret, created)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(SECRET_BYTES)
    try:
        # O_EXCL: two processes starting together cannot both write; the loser reads the winner's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path), False
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    return value, True


def read_secret(path: Path) -> str | None:
    """The secret stored at ``path``, or ``None`` when none was made there."""
    if not path.exists():
        return None
    return _read(path)


def replace_secret(path: Path, value: str) -> None:
    """Store ``value`` at ``path`` in place of what is there (a rotated key), ``0600`` throughout.

    Written to a new file beside it, flushed to disk, then renamed over it: a reader sees the old
    secret or the new one, never half of either, and a crash leaves one of the two.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(value + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(f"{path} may be read by others: chmod 600 it, or delete it to make a new one")
    value = path.read_text().strip()
    if not value:
        raise SecretFileError(f"{path} is empty: delete it to make a new one")
    return value
