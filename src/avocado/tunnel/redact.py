"""Keep secrets out of logs, errors and status: known secrets, URL passwords, ``token=`` values."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "redact"]

MASK = "***"

# ``scheme://user:password@host``: the password goes, the user stays.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*):[^\s/@]*@")
# ``authtoken=...``, ``password: ...`` and the like, as programs print them in errors.
_ASSIGNED = re.compile(
    r"(?P<head>\b(?:auth)?token|password|passwd|secret|api[_-]?key)(?P<sep>\s*[=:]\s*)(?P<value>[^\s&,;'\"]+)",
    re.IGNORECASE,
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret, URL password and ``token=value`` replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    return _ASSIGNED.sub(rf"\g<head>\g<sep>{MASK}", text)
