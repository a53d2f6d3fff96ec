"""Model distribution between real nodes: /v2 registry endpoints, /api/pull and /api/push.

The session ``node`` has the bundled models; every other node here starts on its own empty home.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from avocado.node.registry import WireManifest, parse_manifest
from avocado.node.store.store import MediaType, ModelStore
from tests.support import GREEDY, SMOLLM, RunningNode, start_node

FINAL = ["verifying sha256 digest", "writing manifest", "success"]


def empty_node(home: Path) -> RunningNode:
    home.mkdir(parents=True, exist_ok=True)
    return start_node(home, register_bundled_models=False)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningNode]:
    running = empty_node(tmp_path / "target")
    yield running
    running.stop()


def authority(node: RunningNode) -> str:
    return node.url.removeprefix("http://")


def manifest_of(store: ModelStore, name: str) -> WireManifest:
    return parse_manifest(store.manifest_path(store.get(name).name).read_bytes(), store)


def layer_of(manifest: WireManifest, media_type: str) -> Any:
    return next(layer for layer in manifest.layers if layer.media_type == media_type)


def seed(source: ModelStore, dest: ModelStore, name: str) -> WireManifest:
    """Put a model into another store: weights hard-linked (never written to), small blobs copied."""
    manifest = manifest_of(source, name)
    for layer in manifest.blobs:
        src, dst = source.blob_path(layer.digest), dest.blob_path(layer.digest)
        if layer.media_type == MediaType.MODEL:
            try:
                os.link(src, dst)
                continue
            except OSError:
                pass
        shutil.copyfile(src, dst)
    dest.write_manifest_bytes(source.get(name).name, manifest.raw)
    return manifest


def pull_lines(node: RunningNode, name: str) -> list[dict[str, Any]]:
    body = {"model": name, "insecure": True, "stream": True}
    with node.client() as http, http.stream("POST", "/api/pull", json=body) as response:
        assert response.status_code == 200
        return [json.loads(line) for line in response.iter_lines() if line]


def partial_files(store: ModelStore) -> list[Path]:
    return [p for p in store.blobs_dir.iterdir() if p.name.endswith("-partial") or p.name.startswith(".")]


def model_names(node: RunningNode) -> set[str]:
    return {m.model for m in ollama.Client(host=node.url).list().models if m.model}


def test_pull_with_ollama_client_then_generate(node: RunningNode, target: RunningNode) -> None:
    name = f"{authority(node)}/library/{SMOLLM}"
    client = ollama.Client(host=target.url)
    updates = list(client.pull(name, insecure=True, stream=True))
    statuses = [u.status for u in updates]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == FINAL
    layers = updates[1:-3]
    source = manifest_of(node.service.store, SMOLLM)
    assert {u.digest for u in layers} == {layer.digest for layer in source.blobs}
    for u in layers:
        assert u.status == f"pulling {u.digest.removeprefix('sha256:')[:12]}"
        assert u.total is not None and u.completed is not None and u.completed <= u.total
    weights = layer_of(source, MediaType.MODEL)
    weight_updates = [u for u in layers if u.digest == weights.digest]
    assert weight_updates[-1].completed == weights.size
    assert 2 <= len(weight_updates) < 100  # throttled: a few per second, not one per chunk

    store = target.service.store
    assert store.manifest_path(store.get(name).name).read_bytes() == source.raw  # keyed by its full name
    assert name in model_names(target)
    assert not partial_files(store)
    result = client.generate(name, "Hello, my name is", options={**GREEDY, "num_predict": 3})
    assert result.done and result.eval_count and result.response


def test_pull_again_downloads_nothing(node: RunningNode, target: RunningNode) -> None:
    name = f"{authority(node)}/library/{SMOLLM}"
    with target.client() as http:
        first = http.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
    assert first.status_code == 200 and first.json() == {"status": "success"}
    weights = layer_of(manifest_of(node.service.store, SMOLLM), MediaType.MODEL)
    path = target.service.store.blob_path(weights.digest)
    before = path.stat()
    lines = pull_lines(target, name)
    assert lines[-1] == {"status": "success"}
    for line in lines:
        if "digest" in line:
            assert line["completed"] == line["total"], line  # every blob reported complete at once
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_interrupted_pull_resumes_from_partial_file(node: RunningNode, target: RunningNode) -> None:
    """Proves the partial file's bytes are kept and only the rest is fetched (a Range request):
    with the true first half the pull succeeds and starts counting at half; with a wrong first half
    the sha256 check fails, which could not happen if the whole blob had been downloaded again."""
    name = f"{authority(node)}/library/{SMOLLM}"
    weights = layer_of(manifest_of(node.service.store, SMOLLM), MediaType.MODEL)
    data = node.service.store.blob_path(weights.digest).read_bytes()
    half = len(data) // 2
    store = target.service.store
    partial = store.blob_path(weights.digest).with_name(f"sha256-{weights.digest[7:]}-partial")

    partial.write_bytes(b"\0" * half)
    lines = pull_lines(target, name)
    assert "digest mismatch" in lines[-1]["error"] and weights.digest in lines[-1]["error"]
    assert not partial.exists() and not store.has_blob(weights.digest)
    assert name not in model_names(target)

    partial.write_bytes(data[:half])
    lines = pull_lines(target, name)
    assert lines[-1] == {"status": "success"}
    progress = [line for line in lines if line.get("digest") == weights.digest]
    assert progress[0]["completed"] == half
    assert not partial.exists()
    assert hashlib.sha256(store.blob_path(weights.digest).read_bytes()).hexdigest() == weights.digest[7:]


@pytest.fixture
def source(tmp_path: Path, node: RunningNode) -> Iterator[RunningNode]:
    running = empty_node(tmp_path / "source")
    seed(node.service.store, running.service.store, SMOLLM)
    yield running
    running.stop()


def _presend_weights(node: RunningNode, target: RunningNode) -> None:
    """Give the target the weights already, so the failure cases do not move 98 MB each."""
    weights = layer_of(manifest_of(node.service.store, SMOLLM), MediaType.MODEL)
    os.link(node.service.store.blob_path(weights.digest), target.service.store.blob_path(weights.digest))


def test_corrupted_blob_at_source_is_rejected(
    node: RunningNode, source: RunningNode, target: RunningNode
) -> None:
    template = layer_of(manifest_of(source.service.store, SMOLLM), MediaType.TEMPLATE)
    blob = source.service.store.blob_path(template.digest)  # a copy: tampering leaves the session alone
    blob.write_bytes(blob.read_bytes().swapcase())  # same size, other content: only the sha256 tells
    _presend_weights(node, target)
    name = f"{authority(source)}/library/{SMOLLM}"
    lines = pull_lines(target, name)
    assert lines[0] == {"status": "pulling manifest"}
    error = lines[-1]["error"]
    assert "digest mismatch" in error and template.digest in error
    assert all(line.get("status") not in ("writing manifest", "success") for line in lines)
    assert not target.service.store.list()
    assert not partial_files(target.service.store)
    assert not target.service.store.has_blob(template.digest)


def test_manifest_naming_a_missing_blob_fails(
    node: RunningNode, source: RunningNode, target: RunningNode
) -> None:
    params = layer_of(manifest_of(source.service.store, SMOLLM), MediaType.PARAMS)
    source.service.store.blob_path(params.digest).unlink()
    _presend_weights(node, target)
    lines = pull_lines(target, f"{authority(source)}/library/{SMOLLM}")
    error = lines[-1]["error"]
    assert "does not have this blob" in error and params.digest in error
    assert not target.service.store.list()
    assert not partial_files(target.service.store)


def test_disk_full_is_a_clear_error(node: RunningNode, target: RunningNode) -> None:
    """A real ENOSPC: the weights' partial file is a symlink to /dev/full."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    weights = layer_of(manifest_of(node.service.store, SMOLLM), MediaType.MODEL)
    store = target.service.store
    store.blob_path(weights.digest).with_name(f"sha256-{weights.digest[7:]}-partial").symlink_to("/dev/full")
    lines = pull_lines(target, f"{authority(node)}/library/{SMOLLM}")
    assert lines[-1] == {"error": f"no space left on device while pulling {weights.digest}"}
    assert not store.list() and not store.has_blob(weights.digest)


def test_pull_unknown_model_or_unreachable_registry(node: RunningNode, target: RunningNode) -> None:
    client = ollama.Client(host=target.url)
    with pytest.raises(ollama.ResponseError) as err:
        list(client.pull(f"{authority(node)}/library/no-such-model:1b", insecure=True, stream=True))
    assert err.value.status_code == 404 and "file does not exist" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("127.0.0.1:1/library/smollm2:135m", insecure=True)
    assert err.value.status_code == 400 and "pull model manifest" in err.value.error


def test_push_to_another_node(source: RunningNode, target: RunningNode) -> None:
    name = f"{authority(target)}/library/smollm2:copy"
    client = ollama.Client(host=source.url)
    client.copy(SMOLLM, name)
    updates = list(client.push(name, insecure=True, stream=True))
    statuses = [u.status for u in updates]
    assert statuses[0] == "retrieving manifest" and statuses[-2:] == ["pushing manifest", "success"]
    manifest = manifest_of(source.service.store, SMOLLM)
    pushed = {u.digest for u in updates[1:-2]}
    assert pushed == {layer.digest for layer in manifest.blobs}
    assert all(u.status.startswith("pushing ") for u in updates[1:-2])

    assert "smollm2:copy" in model_names(target)
    remote = ollama.Client(host=target.url)
    result = remote.generate("smollm2:copy", "Hello, my name is", options={**GREEDY, "num_predict": 3})
    assert result.done and result.eval_count
    assert not [p for p in target.service.store.blobs_dir.iterdir() if p.name.startswith(".upload-")]

    again = list(client.push(name, insecure=True, stream=True))  # everything is there: nothing is sent
    assert all(u.completed == u.total for u in again if u.status.startswith("pushing "))


def test_v2_endpoints(node: RunningNode) -> None:
    manifest = manifest_of(node.service.store, SMOLLM)
    template = layer_of(manifest, MediaType.TEMPLATE)
    weights = layer_of(manifest, MediaType.MODEL)
    text = node.service.store.blob_path(template.digest).read_bytes()
    with node.client() as http:
        assert http.get("/v2/").json() == {}
        found = http.get("/v2/library/smollm2/manifests/135m")
        assert found.status_code == 200 and found.content == manifest.raw
        assert found.headers["content-type"] == MediaType.MANIFEST
        assert found.headers["docker-content-digest"] == "sha256:" + hashlib.sha256(manifest.raw).hexdigest()
        assert http.head("/v2/library/smollm2/manifests/135m").headers["content-length"] == str(
            len(manifest.raw)
        )
        missing = http.get("/v2/library/smollm2/manifests/nope")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"

        part = http.get(f"/v2/library/smollm2/blobs/{template.digest}", headers={"Range": "bytes=5-"})
        assert part.status_code == 206 and part.content == text[5:]
        assert part.headers["content-range"] == f"bytes 5-{len(text) - 1}/{len(text)}"
        head = http.head(f"/v2/library/smollm2/blobs/{weights.digest}")
        assert head.status_code == 200 and head.headers["content-length"] == str(weights.size)
        assert head.headers["docker-content-digest"] == weights.digest
        unknown = http.get(f"/v2/library/smollm2/blobs/sha256:{'0' * 64}")
        assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_v2_upload_protocol(target: RunningNode) -> None:
    data = b"a blob sent in two pieces"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    store = target.service.store
    with target.client() as http:
        started = http.post("/v2/library/tiny/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["location"]
        assert http.patch(location, content=data[:10]).status_code == 202
        done = http.put(location, params={"digest": digest}, content=data[10:])
        assert done.status_code == 201 and store.has_blob(digest)

        bad = http.post("/v2/library/tiny/blobs/uploads/").headers["location"]
        wrong = http.put(bad, params={"digest": "sha256:" + "1" * 64}, content=data)
        assert wrong.status_code == 400 and wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert not [p for p in store.blobs_dir.iterdir() if p.name.startswith(".upload-")]

        config = {"mediaType": MediaType.CONFIG, "digest": digest, "size": len(data)}
        layer = {"mediaType": MediaType.TEMPLATE, "digest": "sha256:" + "2" * 64, "size": 1}
        body = json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode()
        refused = http.put("/v2/library/tiny/manifests/v1", content=body)
        assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert not store.exists("tiny:v1")
        body = json.dumps({"schemaVersion": 2, "config": config, "layers": []}).encode()
        assert http.put("/v2/library/tiny/manifests/v1", content=body).status_code == 201
        assert store.manifest_path(store.get("tiny:v1").name).read_bytes() == body
        assert http.get("/v2/library/tiny/manifests/v1").content == body


def test_v2_rejects_path_tricks(node: RunningNode) -> None:
    with httpx.Client(base_url=node.url) as http:
        for path in (
            "/v2/library/smollm2/blobs/sha256:..%2F..%2Fmanifests",
            "/v2/library/smollm2/blobs/..",
            "/v2/library/..%2F..%2F..%2Fblobs/manifests/135m",
            "/v2/../smollm2/manifests/135m",
        ):
            response = http.get(path)
            assert response.status_code in (400, 404), path
