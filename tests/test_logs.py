"""Logs of child programs (tunnel, Ollama) rotate when reopened past their size limit."""

from __future__ import annotations

from pathlib import Path

from avocado.logs import rotate


def test_rotate_shifts_big_logs_and_keeps_a_bounded_number(tmp_path: Path) -> None:
    log = tmp_path / "tunnel.log"
    rotate(log)  # nothing there yet: nothing to do
    for generation in range(5):
        log.write_text(f"generation {generation}\n" * 100)
        rotate(log, max_bytes=1000, backups=3)
        assert not log.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tunnel.log.1", "tunnel.log.2", "tunnel.log.3"]
    assert (tmp_path / "tunnel.log.1").read_text().startswith("generation 4")
    assert (tmp_path / "tunnel.log.3").read_text().startswith("generation 2")
    log.write_text("small\n")
    rotate(log, max_bytes=1000)
    assert log.read_text() == "small\n"
