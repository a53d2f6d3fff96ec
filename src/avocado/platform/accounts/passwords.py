"""Password hashing (argon2id through ``pwdlib``) and the password policy checked at the edge.

The policy follows NIST SP 800-63B: a length range and a refusal of the most common passwords, no
composition rules. The costs come from the settings: OWASP's by default (19 MiB, 2 passes); tests
may lower them, production refuses to. A hash made with older costs is replaced at the next sign-in.
"""

from __future__ import annotations

import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "Passwords", "password_problem"]

MIN_PASSWORD = 8
MAX_PASSWORD = 256  # long enough for any passphrase, short enough that hashing it costs nothing more
# The most used passwords of public breach lists that pass the length rule; a real deny list is a
# later improvement (k-anonymity lookups need the network, which a self-hosted platform may lack).
_COMMON = frozenset(
    {
        "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyuiop",
        "iloveyou", "sunshine", "princess", "football", "baseball", "welcome1", "admin123", "letmein1",
        "abc12345", "qwerty123", "11111111", "00000000", "passw0rd", "trustno1", "superman",
        "1q2w3e4r", "starwars", "dragon12", "monkey12", "changeme", "avocado1", "avocado123",
    }
)  # fmt: skip


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why ``password`` may not be used, or ``None`` when it may."""
    if len(password) < MIN_PASSWORD:
        return f"must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"must be at most {MAX_PASSWORD} characters"
    if password.lower() in _COMMON or len(set(password)) == 1:
        return "is too common: choose a less guessable one"
    if email is not None and password.lower() in (email.lower(), email.split("@")[0].lower()):
        return "must not be your e-mail address"
    return None


class Passwords:
    """Hash and verify passwords with argon2id at the given costs (memory in KiB)."""

    def __init__(self, *, memory: int, time: int, parallelism: int) -> None:
        hasher = Argon2Hasher(memory_cost=memory, time_cost=time, parallelism=parallelism)
        self._hash = PasswordHash((hasher,))
        # Verified against when the e-mail is unknown, so that an unknown address costs the same
        # time as a wrong password (no account enumeration by timing).
        self._dummy = self._hash.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self._hash.hash(password)

    def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """``(matches, new_hash)``: ``new_hash`` is set when ``stored`` used older costs."""
        if stored is None:
            self._hash.verify(password, self._dummy)
            return False, None
        return self._hash.verify_and_update(password, stored)

    def waste_time(self, password: str) -> None:
        """Spend what a verification costs, for an account that does not exist."""
        self._hash.verify(password, self._dummy)
