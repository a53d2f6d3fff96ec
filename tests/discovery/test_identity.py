"""A node keeps its service id across restarts."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from avocado.discovery import SERVICE_ID_FILE, load_service_id


def test_made_once_then_kept(tmp_path: Path) -> None:
    first = load_service_id(tmp_path / "home")
    assert uuid.UUID(first).version == 4
    assert load_service_id(tmp_path / "home") == first
    assert (tmp_path / "home" / SERVICE_ID_FILE).read_text().strip() == first
    assert [p.name for p in (tmp_path / "home").iterdir()] == [SERVICE_ID_FILE]  # no leftovers
    assert load_service_id(tmp_path / "other") != first


def test_an_id_written_by_hand_is_kept(tmp_path: Path) -> None:
    (tmp_path / SERVICE_ID_FILE).write_text("gpu-box-1\n")
    assert load_service_id(tmp_path) == "gpu-box-1"


def test_an_empty_file_gets_a_new_id(tmp_path: Path) -> None:
    (tmp_path / SERVICE_ID_FILE).write_text("")
    value = load_service_id(tmp_path)
    assert uuid.UUID(value)
    assert load_service_id(tmp_path) == value


def test_concurrent_first_calls_agree(tmp_path: Path) -> None:
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(load_service_id(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
