"""Two ``avocado gateway`` processes behind one address share keys (PostgreSQL), limits (Redis) and
nodes (RabbitMQ): neither holds state the other needs."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.db.support import postgres_database  # noqa: F401  (a fixture)
from tests.discovery.support import require_broker
from tests.support import SMOLLM, RunningNode, free_port, linked_home, start_node

MASTER = "m-" + secrets.token_hex(20)
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def announced_node(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    """A real node that the gateways only know from its announcements."""
    running = start_node(
        linked_home(home, tmp_path_factory.mktemp("node") / "home"),
        amqp_url=require_broker(),
        announce_interval=5,
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def replicas(
    announced_node: RunningNode,
    postgres_database: str,  # noqa: F811  (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[str]]:
    urls, processes = [], []
    for index in range(2):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AVOCADO_")}
        env |= {
            "AVOCADO_HOME": str(tmp_path_factory.mktemp(f"gateway{index}")),
            "AVOCADO_DATABASE_URL": postgres_database,
            "AVOCADO_MASTER_KEY": MASTER,
            "AVOCADO_REQUIRE_KEY": "true",
            "AVOCADO_KEY_CACHE_SECONDS": "0.5",
        }
        command = [sys.executable, "-m", "avocado", "gateway", "--port", str(port)]
        command += ["--discover", require_broker(), "--redis-url", REDIS]
        processes.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait_for_model(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            _, err = process.communicate(timeout=30)
            assert MASTER not in err and "guest:guest" not in err


def _wait_for_model(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    headers = {"Authorization": f"Bearer {MASTER}"}
    while time.monotonic() < deadline:
        assert process.poll() is None, "a gateway replica exited"
        try:
            tags = httpx.get(f"{url}/api/tags", headers=headers, timeout=2).json()
            if SMOLLM in {m["name"] for m in tags.get("models", [])}:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never listed {SMOLLM} (discovery)")


def _create_key(url: str, **fields: object) -> dict[str, object]:
    response = httpx.post(
        f"{url}/api/avocado/keys",
        json={"name": "replica-test", **fields},
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _chat(url: str, key: str) -> httpx.Response:
    body = {"model": SMOLLM, "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    body["options"] = {"num_predict": 1}
    return httpx.post(f"{url}/api/chat", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_both_replicas_see_the_node_they_only_know_from_discovery(
    replicas: list[str], announced_node: RunningNode
) -> None:
    for url in replicas:
        listing = httpx.get(f"{url}/api/avocado/nodes", headers={"Authorization": f"Bearer {MASTER}"}).json()
        urls = {n["url"] for n in listing["nodes"]}
        assert announced_node.url in urls


def test_a_key_made_on_one_replica_works_on_the_other_and_its_limit_is_shared(replicas: list[str]) -> None:
    created = _create_key(replicas[0], rpm=4)
    key = str(created["key"])
    statuses = [_chat(replicas[i % 2], key).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 200]
    for url in replicas:  # the fifth request in the minute is refused wherever it lands
        refused = _chat(url, key)
        assert refused.status_code == 429
        assert "4 requests per minute" in refused.json()["error"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_revoked_and_expired_keys_are_refused_by_both(replicas: list[str]) -> None:
    created = _create_key(replicas[0])
    key = str(created["key"])
    assert all(_chat(url, key).status_code == 200 for url in replicas)
    revoked = httpx.delete(
        f"{replicas[1]}/api/avocado/keys/{created['id']}", headers={"Authorization": f"Bearer {MASTER}"}
    )
    assert revoked.status_code == 204
    time.sleep(0.7)  # past the verified-key cache (AVOCADO_KEY_CACHE_SECONDS=0.5)
    for url in replicas:
        response = _chat(url, key)
        assert response.status_code == 401 and "revoked" in response.json()["error"]

    short = _create_key(replicas[1], expires_in="1s")
    time.sleep(1.6)
    for url in replicas:
        response = _chat(url, str(short["key"]))
        assert response.status_code == 401 and "expired" in response.json()["error"]
    assert _chat(replicas[0], "avk-not-a-real-key").status_code == 401
    assert httpx.post(f"{replicas[0]}/api/chat", json={"model": SMOLLM}).status_code == 401


def test_official_clients_through_a_replica_with_a_key(replicas: list[str]) -> None:
    key = str(_create_key(replicas[1], models=[SMOLLM])["key"])
    client = ollama.Client(host=replicas[1], headers={"Authorization": f"Bearer {key}"})
    answer = client.chat(
        model=SMOLLM, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4}
    )
    assert answer.message.content
    streamed = list(client.generate(model=SMOLLM, prompt="Hi", stream=True, options={"num_predict": 4}))
    assert streamed[-1].done
    with pytest.raises(ollama.ResponseError) as denied:
        client.chat(model="gemma3:270m", messages=[{"role": "user", "content": "Hi"}])
    assert denied.value.status_code == 403

    oa = openai.OpenAI(base_url=f"{replicas[0]}/v1", api_key=key)
    completion = oa.chat.completions.create(
        model=SMOLLM, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert completion.choices[0].message.content
    assert SMOLLM in {m.id for m in oa.models.list()}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{replicas[0]}/v1", api_key="avk-wrong").models.list()


def test_metrics_count_requests_by_key_and_node(replicas: list[str], announced_node: RunningNode) -> None:
    assert httpx.get(f"{replicas[0]}/metrics").status_code == 401  # keys are required: so is a token
    text = httpx.get(f"{replicas[0]}/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
    assert "avocado_gateway_requests_total" in text
    assert f'node="{announced_node.url}"' in text or "node=" in text
    assert 'key="replica-test"' in text
