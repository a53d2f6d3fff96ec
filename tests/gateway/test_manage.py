"""Model management through the gateway: pull, create, blobs, copy, delete and push reach the right nodes.

Real nodes: ``node`` (the session's, with the bundled models) is the registry pulls come from; each
test starts its own nodes, since these requests change what a node holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from avocado.gateway.keys import master_guard
from avocado.gateway.nodes import NodePool
from tests.gateway.support import RunningGateway, start_gateway
from tests.support import GREEDY, SMOLLM, RunningNode, linked_home, start_node

MASTER = "m" * 40


def authority(node: RunningNode) -> str:
    return node.url.removeprefix("http://")


def names(client: ollama.Client) -> set[str]:
    return {m.model for m in client.list().models if m.model}


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[RunningNode]:
    running = start_node(tmp_path / "empty", register_bundled_models=False)
    yield running
    running.stop()


@pytest.fixture
def linked(home: Path, tmp_path: Path) -> Iterator[RunningNode]:
    running = start_node(linked_home(home, tmp_path / "linked"))
    yield running
    running.stop()


@pytest.fixture
def one_node(empty: RunningNode) -> Iterator[RunningGateway]:
    running = start_gateway(NodePool([empty.url], health_interval=3600))
    yield running
    running.stop()


@pytest.fixture
def two_nodes(empty: RunningNode, linked: RunningNode) -> Iterator[RunningGateway]:
    # Health checks an hour apart: what the listings show after a change comes from the check the
    # management request itself triggers.
    running = start_gateway(NodePool([empty.url, linked.url], health_interval=3600))
    yield running
    running.stop()


def test_pull_with_the_ollama_client_lands_on_the_only_node(
    node: RunningNode, empty: RunningNode, one_node: RunningGateway
) -> None:
    name = f"{authority(node)}/library/{SMOLLM}"
    client = ollama.Client(host=one_node.url)
    updates = list(client.pull(name, insecure=True, stream=True))
    assert updates[0].status == "pulling manifest" and updates[-1].status == "success"
    assert any(u.total and u.completed == u.total for u in updates)  # progress passed through
    assert name in names(ollama.Client(host=empty.url))
    assert name in names(client)  # listed at once, not at the next health check
    result = client.generate(name, "Hello, my name is", options={**GREEDY, "num_predict": 3})
    assert result.done and result.response


def test_pull_errors_come_back_as_the_node_gives_them(node: RunningNode, one_node: RunningGateway) -> None:
    client = ollama.Client(host=one_node.url)
    with pytest.raises(ollama.ResponseError) as err:
        list(client.pull(f"{authority(node)}/library/no-such-model:1b", insecure=True, stream=True))
    assert "not found" in err.value.error or "file does not exist" in err.value.error
    answer = httpx.post(f"{one_node.url}/api/pull", content=b"{", timeout=30)
    assert answer.status_code == 400 and "error" in answer.json()


def test_with_several_nodes_a_pull_must_name_one(
    node: RunningNode,
    empty: RunningNode,
    linked: RunningNode,
    two_nodes: RunningGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"model": f"{authority(node)}/library/{SMOLLM}", "insecure": True, "stream": False}
    unnamed = httpx.post(f"{two_nodes.url}/api/pull", json=body, timeout=60)
    assert unnamed.status_code == 400
    assert "X-Avocado-Node" in unnamed.json()["error"] and empty.url in unnamed.json()["error"]
    unknown = httpx.post(f"{two_nodes.url}/api/pull", json=body, headers={"X-Avocado-Node": "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]

    with caplog.at_level(logging.INFO, logger="avocado.request"):
        named = httpx.post(f"{two_nodes.url}/api/pull?node={empty.url}", json=body, timeout=120)
    assert named.status_code == 200 and named.json() == {"status": "success"}
    logged = [r.fields for r in caplog.records if r.name == "avocado.request" and "node" in r.fields]  # type: ignore[attr-defined]
    assert {"path": "/api/pull", "node": empty.url, "status": 200} in [
        {k: line[k] for k in ("path", "node", "status")} for line in logged
    ]
    assert body["model"] in names(ollama.Client(host=empty.url))
    assert body["model"] not in names(ollama.Client(host=linked.url))


def test_create_and_blobs_through_the_gateway(
    empty: RunningNode, linked: RunningNode, two_nodes: RunningGateway, tmp_path: Path
) -> None:
    client = ollama.Client(host=two_nodes.url, headers={"X-Avocado-Node": linked.url})
    updates = list(client.create("pirate", from_=SMOLLM, system="Talk like a pirate.", stream=True))
    assert updates[-1].status == "success"
    assert "pirate:latest" in names(client)
    assert "Talk like a pirate." in (client.show("pirate").modelfile or "")
    reply = client.chat("pirate", [{"role": "user", "content": "Hi"}], options={**GREEDY, "num_predict": 3})
    assert reply.message.content

    blob = tmp_path / "adapter.bin"
    blob.write_bytes(b"not really weights " * 50_000)
    digest = client.create_blob(blob)  # HEAD, then an upload streamed through the gateway
    assert digest == "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    assert linked.service.store.has_blob(digest) and not empty.service.store.has_blob(digest)
    head = httpx.head(f"{two_nodes.url}/api/blobs/{digest}", headers={"X-Avocado-Node": linked.url})
    assert head.status_code == 200
    missing = httpx.head(
        f"{two_nodes.url}/api/blobs/sha256:{'0' * 64}", headers={"X-Avocado-Node": linked.url}
    )
    assert missing.status_code == 404


def test_a_path_with_an_encoded_control_character_reaches_the_node_as_sent(
    empty: RunningNode, one_node: RunningGateway
) -> None:
    """Found by bench/fuzz.py: the decoded path held a control character, no URL to the node could be
    built from it, and the gateway answered 500. The node gets the path as the client sent it."""
    with httpx.Client(base_url=one_node.url) as http:
        assert http.head("/api/blobs/%18").status_code == 404  # the node's answer to a digest it lacks
        upload = http.post("/api/blobs/%18x", content=b"data")
        assert upload.status_code == 400 and "invalid digest" in upload.json()["error"]


def test_copy_and_delete_reach_every_node_that_has_the_model(
    node: RunningNode, empty: RunningNode, linked: RunningNode, two_nodes: RunningGateway
) -> None:
    client = ollama.Client(host=two_nodes.url)
    client.copy(SMOLLM, "only-linked:1")  # only ``linked`` has the source
    assert "only-linked:1" in names(ollama.Client(host=linked.url))
    assert "only-linked:1" not in names(ollama.Client(host=empty.url))
    assert "only-linked:1" in names(client)

    pulled = f"{authority(node)}/library/{SMOLLM}"
    for target in (empty, linked):
        ollama.Client(host=two_nodes.url, headers={"X-Avocado-Node": target.url}).pull(pulled, insecure=True)
    client.copy(pulled, "everywhere:1")  # both have it now: both get the copy
    assert all("everywhere:1" in names(ollama.Client(host=n.url)) for n in (empty, linked))

    client.delete("everywhere:1")
    assert all("everywhere:1" not in names(ollama.Client(host=n.url)) for n in (empty, linked))
    assert "everywhere:1" not in names(client)  # gone from the merged list at once
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("everywhere:1")
    assert err.value.status_code == 404 and "not found" in err.value.error
    bad = httpx.post(f"{two_nodes.url}/api/copy", json={"source": SMOLLM}, timeout=30)
    assert bad.status_code == 400 and bad.json() == {"error": "destination is required"}


def test_push_goes_from_the_node_that_has_the_model(
    empty: RunningNode, linked: RunningNode, two_nodes: RunningGateway
) -> None:
    name = f"{authority(empty)}/library/smollm2:pushed"
    client = ollama.Client(host=two_nodes.url)
    client.copy(SMOLLM, name)  # on ``linked`` only
    updates = list(client.push(name, insecure=True, stream=True))
    assert updates[-1].status == "success"
    assert "smollm2:pushed" in names(ollama.Client(host=empty.url))


def test_only_the_master_key_manages_models(empty: RunningNode) -> None:
    gateway = start_gateway(NodePool([empty.url]), manage_guard=master_guard(MASTER, keys_required=True))
    try:
        body = {"model": "anything", "stream": False}
        none = httpx.post(f"{gateway.url}/api/pull", json=body)
        assert none.status_code == 401 and "master key" in none.json()["error"]
        wrong = httpx.post(f"{gateway.url}/api/pull", json=body, headers={"Authorization": "Bearer sk-other"})
        assert wrong.status_code == 403
        deleting = httpx.request("DELETE", f"{gateway.url}/api/delete", json={"model": "x"})
        assert deleting.status_code == 401
        master = {"Authorization": f"Bearer {MASTER}"}
        allowed = httpx.request("DELETE", f"{gateway.url}/api/delete", json={"model": "x"}, headers=master)
        assert allowed.status_code == 404 and allowed.json() == {"error": "model 'x' not found"}
    finally:
        gateway.stop()
    closed = start_gateway(NodePool([empty.url]), manage_guard=master_guard(None, keys_required=True))
    try:
        refused = httpx.post(f"{closed.url}/api/pull", json={"model": "x"})
        assert refused.status_code == 403 and "no master key" in refused.json()["error"]
    finally:
        closed.stop()


def test_the_node_key_is_used_and_never_shown(tmp_path: Path, node: RunningNode) -> None:
    guarded = start_node(tmp_path / "guarded", register_bundled_models=False, api_key="node-secret-key")
    gateway = start_gateway(NodePool([f"{guarded.url},node-secret-key"], health_interval=3600))
    try:
        body = {"model": f"{authority(node)}/library/{SMOLLM}", "insecure": True}
        with httpx.stream("POST", f"{gateway.url}/api/pull", json=body, timeout=120) as response:
            text = "".join(response.iter_text())
        assert response.status_code == 200 and '"success"' in text
        assert "node-secret-key" not in text and "node-secret-key" not in json.dumps(dict(response.headers))
    finally:
        gateway.stop()
        guarded.stop()
