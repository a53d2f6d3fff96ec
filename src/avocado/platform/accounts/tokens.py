"""Access tokens (JWT, HS256, with a key id) and the opaque tokens kept only as hashes.

An access token names the user (``sub``), the session (``sid``) and the role at issue time; it
lives ``access_ttl`` (15 minutes by default). Each signing key has an id (``kid``, from its hash),
so a key can be rotated: the new one signs, the ones given in ``previous_signing_keys`` still
verify until the tokens they signed have expired. Refresh and reset tokens are 256 random bits,
stored as SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

__all__ = ["AccessClaims", "InvalidToken", "TokenSigner", "digest", "key_id", "new_token"]

ISSUER = "avocado-platform"
MFA_TTL = 300.0  # seconds to type the code after the password
VERIFIED = 10_000  # access tokens kept verified (a client sends the same one until it refreshes)
# Only a token as this signer writes it is kept: base64 decoding forgives other spellings (padding),
# so one valid token could otherwise be sent in many spellings, each kept
_CANONICAL = re.compile(r"[A-Za-z0-9_-]{1,200}\.[A-Za-z0-9_-]{1,600}\.[A-Za-z0-9_-]{43}")
_ALGORITHM = "HS256"


class InvalidToken(Exception):
    """An access token that is malformed, forged, signed by an unknown key, or expired."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    role: str
    expires_at: float  # epoch seconds


def new_token(prefix: str) -> str:
    """``prefix`` and 43 URL-safe characters (256 bits)."""
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id(key: str) -> str:
    """A key's public name: the first 16 hex digits of its SHA-256 (the key itself stays secret)."""
    return hashlib.sha256(b"avocado-kid:" + key.encode()).hexdigest()[:16]


class TokenSigner:
    """Signs access tokens with the first of ``keys``; verifies with any of them."""

    def __init__(self, keys: Sequence[str], ttl: float, clock: Callable[[], float] = time.time) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = {key_id(key): key.encode() for key in keys}
        self._kid = key_id(keys[0])
        self.ttl = ttl
        self.clock = clock
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, user_id: str, session_id: str, role: str) -> tuple[str, int]:
        """A new access token and its lifetime in seconds."""
        now = int(self.clock())
        claims = {"iss": ISSUER, "sub": user_id, "sid": session_id, "role": role, "iat": now}
        claims["exp"] = now + int(self.ttl)
        token = jwt.encode(claims, self._keys[self._kid], algorithm=_ALGORITHM, headers={"kid": self._kid})
        return token, int(self.ttl)

    def issue_mfa(self, user_id: str, cookie: bool, ttl: float = MFA_TTL) -> str:
        """A token for the second step of a sign-in: it names the user whose password was right
        and opens nothing but ``POST /auth/mfa`` (no ``sid``: as an access token it is refused)."""
        now = int(self.clock())
        claims = {
            "iss": ISSUER,
            "sub": user_id,
            "typ": "mfa",
            "cookie": cookie,
            "iat": now,
            "exp": now + int(ttl),
        }
        return jwt.encode(claims, self._keys[self._kid], algorithm=_ALGORITHM, headers={"kid": self._kid})

    def verify_mfa(self, token: str) -> tuple[str, bool]:
        """``(user id, cookie)`` of a second-step token, or :class:`InvalidToken`."""
        claims = self._decode(token, ["exp", "iat", "sub", "typ"], "sign-in")
        if claims.get("typ") != "mfa":
            raise InvalidToken("invalid sign-in token: sign in again")
        return str(claims["sub"]), bool(claims.get("cookie"))

    def issue_state(self, typ: str, data: dict[str, Any], ttl: float) -> str:
        """A short-lived signed token of type ``typ`` carrying ``data`` (a sign-in in progress with
        another party, e.g. OpenID Connect's state, nonce and PKCE verifier). Without ``sid`` it is
        refused as an access token; ``verify_state`` refuses one of another type."""
        now = int(self.clock())
        claims = {**data, "iss": ISSUER, "typ": typ, "iat": now, "exp": now + int(ttl)}
        return jwt.encode(claims, self._keys[self._kid], algorithm=_ALGORITHM, headers={"kid": self._kid})

    def verify_state(self, typ: str, token: str) -> dict[str, Any]:
        """The claims of a token ``issue_state`` made with ``typ``, or :class:`InvalidToken`."""
        claims = self._decode(token, ["exp", "iat", "typ"], "sign-in")
        if claims.get("typ") != typ:
            raise InvalidToken("invalid sign-in token")
        return claims

    def _decode(self, token: str, required: list[str], what: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise InvalidToken(f"malformed {what} token") from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken(f"{what} token signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                options={"require": required, "verify_iat": False},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken(f"{what} token expired") from None
        except jwt.InvalidTokenError:
            raise InvalidToken(f"invalid {what} token") from None
        if self.clock() > claims["exp"] + 5:
            raise InvalidToken(f"{what} token expired")
        return claims

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token, or :class:`InvalidToken`. A token once verified is
        kept with its claims: checking the signature again costs a hundred microseconds or more on
        every request, and a token's claims cannot change (its expiry is still checked each time;
        a revoked session is the caller's check)."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if _CANONICAL.fullmatch(token):
                if len(self._verified) >= VERIFIED:
                    self._verified.clear()
                self._verified[token] = claims
        if self.clock() > claims.expires_at + 5:  # the clock given, not the machine's (tests move it)
            raise InvalidToken("access token expired: refresh it")
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed access token") from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("access token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid"], "verify_iat": False},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("access token expired: refresh it") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("invalid access token") from None
        if self.clock() > claims["exp"] + 5:  # the clock given, not the machine's (tests move it)
            raise InvalidToken("access token expired: refresh it")
        return AccessClaims(str(claims["sub"]), str(claims["sid"]), str(claims.get("role")), claims["exp"])
