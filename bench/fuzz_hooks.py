"""Schemathesis hooks for ``bench/fuzz.py`` (loaded through ``SCHEMATHESIS_HOOKS``; not a test).

- Half of the schema-valid requests that name a model name the real one (``FUZZ_MODEL``), so that
  generations run on the engine instead of all ending in ``404``.
- Every answer and every network error is counted into ``FUZZ_STATS`` (JSON, written at exit):
  statuses, answers ``>= 500`` (with samples), network errors (a crash or a hang shows there).
- A schema-valid request refused with ``400`` is a failure (ST202), except where the refusal is about
  content that no JSON Schema can judge, named one by one in ``avocado.api_docs.CONTENT_REFUSALS`` (a template
  that does not parse, a digest the uploaded bytes do not have, a registry the sandbox may not reach).
  Any other ``400`` to a schema-valid request stays a failure: the document or the route is wrong.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import threading
from collections import Counter
from typing import Any

import schemathesis

from avocado.api_docs import content_refusal

MODEL = os.environ.get("FUZZ_MODEL", "")
STATS_FILE = os.environ.get("FUZZ_STATS", "")
SAMPLES = 20  # answers >= 500 and network errors kept for the report

# Routes that run a model: half of their schema-valid requests name the real one.
MODEL_ROUTES = frozenset(
    {
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/api/show",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
    }
)

_lock = threading.Lock()
_rng = random.Random(int(os.environ.get("FUZZ_SEED", "0")))
_statuses: Counter[int] = Counter()
_server_errors: list[dict[str, Any]] = []
_network_errors: list[dict[str, Any]] = []
_excused: Counter[str] = Counter()


def _message(response: Any) -> str:
    """The error message in an Ollama, OpenAI or registry error body ('' when there is none)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message", ""))
    if isinstance(error, str):
        return error
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", ""))
    return ""


def _positive(case: Any) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if MODEL and case.path in MODEL_ROUTES and isinstance(case.body, dict) and _positive(case):
        with _lock:
            real = _rng.random() < 0.5
        if real:
            case.body["model"] = MODEL


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    with _lock:
        _statuses[response.status_code] += 1
        if response.status_code >= 500 and len(_server_errors) < SAMPLES:
            _server_errors.append(
                {
                    "request": f"{case.method} {case.formatted_path}",
                    "status": response.status_code,
                    "body": response.content[:300].decode("utf-8", "replace"),
                    "curl": case.as_curl_command(),
                }
            )


@schemathesis.hook
def after_network_error(context: Any, case: Any, request: Any) -> None:
    with _lock:
        _statuses[0] += 1
        if len(_network_errors) < SAMPLES:
            _network_errors.append({"request": f"{case.method} {case.formatted_path}"})


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but ST202 on a 400 that refuses content (see the module's words)."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 400:
        return True
    reason = content_refusal(_message(response))
    if reason is None:
        return True
    with _lock:
        _excused[reason] += 1
    return False


def _write() -> None:
    if not STATS_FILE:
        return
    with _lock:
        report = {
            "calls": sum(_statuses.values()),
            "statuses": {str(status): count for status, count in sorted(_statuses.items())},
            "server_errors": sum(count for status, count in _statuses.items() if status >= 500),
            "network_errors": _statuses[0],
            "server_error_samples": _server_errors,
            "network_error_samples": _network_errors,
            "content_refusals": dict(_excused),
        }
    with open(STATS_FILE, "w") as out:
        json.dump(report, out, indent=1)


atexit.register(_write)
