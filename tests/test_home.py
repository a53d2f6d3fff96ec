"""The home lock: one node per AVOCADO_HOME, released however the holder ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avocado.home import Holder, HomeInUse, HomeLock, read_holder


def holder(url: str = "http://127.0.0.1:1") -> Holder:
    return Holder(pid=os.getpid(), url=url, started_at="2026-11-22T00:00:00Z")


def test_second_lock_on_the_same_home_is_refused(tmp_path: Path) -> None:
    with HomeLock(tmp_path, holder("http://127.0.0.1:4242")):
        with pytest.raises(HomeInUse, match=r"pid \d+, http://127.0.0.1:4242"):
            HomeLock(tmp_path, holder())
        assert read_holder(tmp_path) == holder("http://127.0.0.1:4242")
    assert read_holder(tmp_path) is None
    with HomeLock(tmp_path, holder()):  # free again once released
        pass


def test_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    code = (
        "import os, sys, time; from pathlib import Path; from avocado.home import HomeLock, Holder\n"
        "lock = HomeLock(Path(sys.argv[1]), Holder(os.getpid(), 'http://x', 'now'))\n"
        "print('held', flush=True)\n"
        "time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        found = read_holder(tmp_path)
        assert found is not None and found.pid == child.pid
        with pytest.raises(HomeInUse):
            HomeLock(tmp_path, holder())
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while read_holder(tmp_path) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_holder(tmp_path) is None
    HomeLock(tmp_path, holder()).release()


def test_missing_home_has_no_holder(tmp_path: Path) -> None:
    assert read_holder(tmp_path / "nowhere") is None
