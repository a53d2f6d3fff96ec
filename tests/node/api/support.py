"""Helpers for the API tests: error checks, and renders held until the test lets them go."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from avocado.node.templates.gotemplate import Limits, template

__all__ = ["assert_error", "gate_renders", "wait_until"]


def assert_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text[:2000]
    body = response.json()
    assert isinstance(body["error"], str), body
    assert fragment.lower() in body["error"].lower(), body
    assert "Traceback" not in response.text


Select = Callable[[template.GoTemplate, Mapping[str, Any], Limits], bool]


def gate_renders(monkeypatch: pytest.MonkeyPatch, select: Select) -> tuple[threading.Event, threading.Event]:
    """Make the template renders ``select`` picks wait until the test lets them go: (started, go).

    A render that waits on the event loop stops every other request until it goes on, so a test
    that gets an answer from the node meanwhile knows the render runs elsewhere.
    """
    started, go = threading.Event(), threading.Event()
    real = template.GoTemplate.render

    def render(self: template.GoTemplate, data: Mapping[str, Any], limits: Limits = Limits()) -> str:
        if select(self, data, limits):
            started.set()
            go.wait(60)
        return real(self, data, limits)

    monkeypatch.setattr(template.GoTemplate, "render", render)
    return started, go


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` (the node's state, read across threads) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.02)
