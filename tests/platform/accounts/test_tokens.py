"""The access-token signer keeps tokens it verified, and still refuses each once it has expired; a
token that fails verification is never kept."""

from __future__ import annotations

import pytest

from avocado.platform.accounts.tokens import InvalidToken, TokenSigner


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_kept_and_still_expires() -> None:
    clock = Clock()
    signer = TokenSigner(["a signing key of forty characters, at least"], ttl=900, clock=clock)
    token, _ = signer.issue("user-1", "session-1", "user")
    first = signer.verify(token)
    assert (first.user_id, first.session_id, first.role) == ("user-1", "session-1", "user")
    assert signer.verify(token) is first  # kept: not decoded again
    clock.now += 900 + 6  # past its expiry and the five seconds of leeway
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token)


def test_a_token_that_fails_is_not_kept() -> None:
    signer = TokenSigner(["a signing key of forty characters, at least"], ttl=900)
    other = TokenSigner(["another key, which this platform does not know"], ttl=900)
    forged, _ = other.issue("user-1", "session-1", "admin")
    head, _, signature = signer.issue("user-1", "session-1", "user")[0].split(".")
    tampered = f"{head}.{forged.split('.')[1]}.{signature}"
    for token in (forged, tampered, "not a token"):
        for _ in range(2):  # refused the second time too: nothing was kept
            with pytest.raises(InvalidToken):
                signer.verify(token)
    assert not signer._verified


def test_only_a_token_spelled_as_issued_is_kept() -> None:
    """Base64 decoding forgives padding: ``token=`` verifies as ``token`` does. Kept, each spelling
    would be an entry of its own; only the spelling the signer wrote is."""
    signer = TokenSigner(["a signing key of forty characters, at least"], ttl=900)
    token, _ = signer.issue("user-1", "session-1", "user")
    for _ in range(2):
        assert signer.verify(f"{token}=").user_id == "user-1"
    assert not signer._verified
    signer.verify(token)
    assert list(signer._verified) == [token]
