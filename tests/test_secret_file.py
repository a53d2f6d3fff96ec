from __future__ import annotations

import stat
from pathlib import Path

import pytest

from avocado.secret_file import SecretFileError, load_or_create_secret, replace_secret


def test_a_secret_is_made_once_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-key"
    first, created = load_or_create_secret(path, prefix="av-")
    assert created and first.startswith("av-") and len(first) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_secret(path, prefix="av-")
    assert (again, created_again) == (first, False)


def test_a_secret_others_may_read_or_an_empty_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    load_or_create_secret(path)
    path.chmod(0o644)
    with pytest.raises(SecretFileError, match="chmod 600"):
        load_or_create_secret(path)
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="empty"):
        load_or_create_secret(path)


def test_a_replaced_secret_is_read_back_and_stays_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-key"
    first, _ = load_or_create_secret(path)
    replace_secret(path, "the-rotated-key")
    assert first != "the-rotated-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == ("the-rotated-key", False)
    assert [p.name for p in path.parent.iterdir()] == ["api-key"]  # no temporary file left behind
