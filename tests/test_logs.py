"""Logs of child programs (tunnel, Ollama) rotate when reopened past their size limit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from avocado.logs import configure_logging, rotate


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


def test_every_line_is_redacted_on_its_way_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("info", "text", tmp_path, secrets=["the-node-key-1234"])
        log = logging.getLogger("some.library")
        log.info("connecting to amqp://node:brokerpw@mq.example/ with the-node-key-1234")
        log.warning("sent Authorization: Bearer sk-live-123 and got 401", extra={"fields": {"token": "t0k"}})
        configure_logging("info", "json", None, secrets=["the-node-key-1234"])
        log.info("again the-node-key-1234 at https://u:brokerpw@h.example")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    shown = capsys.readouterr().err + (tmp_path / "avocado.log").read_text()
    assert "amqp://node:***@mq.example/ with ***" in shown and "Bearer ***" in shown
    assert '"msg": "again *** at https://u:***@h.example"' in shown
    for secret in ("the-node-key-1234", "brokerpw", "sk-live-123", "t0k"):
        assert secret not in shown
