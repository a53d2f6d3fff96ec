"""The node's and the gateway's OpenAPI documents tell what their routes accept and answer.

Schemathesis generates a few requests per operation from each document (derandomized: the same ones
every run), sends them to a real node, and to a real gateway in front of it, and runs every check on
the answers: statuses the document lists, bodies and headers as it describes them, requests it allows
accepted and those it refuses refused, ``Allow`` on ``405``, no ``5xx``. A schema-valid request may
still be refused for its content when no schema can judge it (``avocado.api_docs.CONTENT_REFUSALS``);
any other refusal fails here. ``bench/fuzz.py`` runs the same for minutes, with generations on the
real model; this is the quick guard that keeps the documents true in ``make test``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.schemas import BaseSchema

from avocado.api_docs import content_refusal
from tests.gateway.support import Built, start_built
from tests.support import RunningNode, linked_home, start_node

MASTER = "master-0123456789abcdef-fuzzing"
LOOPBACK = ["127.0.0.0/8", "::1/128"]  # no pull or push a generated request asks for leaves the machine
EXAMPLES = settings(
    max_examples=4,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is shown as it came
    suppress_health_check=list(HealthCheck),
)


def _message(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", ""))
    return str(error or "")


def _keep(context: Any, failure: Any, case: Case[Any], response: Any) -> bool:
    """A schema-valid request refused for content no schema can judge is not the document's fault."""
    if isinstance(failure, RejectedPositiveData) and response.status_code == 400:
        return content_refusal(_message(response.content)) is None
    return True


def _loaded(url: str) -> BaseSchema:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    schema.hook("filter_failure")(_keep)
    return schema


@pytest.fixture(scope="module")
def fuzzed_node(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    node_home = linked_home(home, tmp_path_factory.mktemp("openapi-node"))
    running = start_node(node_home, pull_only_networks=LOOPBACK, max_predict=4, upload_expiry="5s")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway(fuzzed_node: RunningNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    home = tmp_path_factory.mktemp("openapi-gateway")
    running = start_built(home=home, nodes=[fuzzed_node.url], master_key=MASTER)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def node_schema(fuzzed_node: RunningNode) -> BaseSchema:
    return _loaded(fuzzed_node.url)


@pytest.fixture(scope="module")
def gateway_schema(gateway: Built) -> BaseSchema:
    return _loaded(gateway.url)


def _answers_as_documented(schema: BaseSchema, headers: dict[str, str] | None = None) -> list[str]:
    """Run each operation's examples (schema-valid ones, then schema-violating ones); what failed.

    Hypothesis drives schemathesis' strategies directly: its pytest plugin reads a node id pytest 9
    no longer has.
    """
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @EXAMPLES
            @given(case=operation.as_strategy(generation_mode=mode))
            def answers(case: Case[Any]) -> None:
                case.call_and_validate(headers=headers, timeout=60)

            try:
                answers()
            except Unsatisfiable:  # nothing to get wrong: no parameters, no body
                pass
            except Exception as exc:  # a failure group, with each failed check and how to reproduce it
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def test_the_node_answers_as_its_document_says(node_schema: BaseSchema) -> None:
    failures = _answers_as_documented(node_schema)
    assert not failures, "\n\n".join(failures)


def test_the_gateway_answers_as_its_document_says(gateway_schema: BaseSchema) -> None:
    failures = _answers_as_documented(gateway_schema, {"Authorization": f"Bearer {MASTER}"})
    assert not failures, "\n\n".join(failures)
