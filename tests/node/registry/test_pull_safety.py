"""Pulls reach only where they may: no file on the node's disk, no link-local or metadata address (after
DNS, on every redirect and token realm), loopback and private networks only without a public URL or
when listed, and no more than max_pull_size.

Names under ``.avocado.test`` resolve through a stand-in resolver (set first in each test, so that no
request is sent before it is in place); forbidden addresses are refused before any connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import SMOLLM, RunningNode, serve, start_node

AVOCADO = [sys.executable, "-m", "avocado"]
KEY = "pull-safety-key-0123"
FORBIDDEN = "link-local, cloud metadata or reserved address"


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """``*.avocado.test`` names the node resolves (answers given by the test; a list is used up in order
    when it has more than one entry); other names go to the system resolver."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def resolve(host: str, port: int) -> list[str]:
        if host.endswith(".avocado.test"):
            answers = table[host]
            return [answers.pop(0) if len(answers) > 1 else answers[0]]
        return [str(info[4][0]) for info in real(host, port)]

    monkeypatch.setattr("avocado.node.registry.guard._resolve", resolve)
    return table


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningNode]:
    (tmp_path / "target").mkdir()
    running = start_node(tmp_path / "target", register_bundled_models=False)
    yield running
    running.stop()


def authority(url: str) -> str:
    return url.removeprefix("http://")


def weights_of(node: RunningNode) -> Path:
    return node.service.store.resolve(SMOLLM).model_path


def files_app(root: Path, hosts: list[str], routes: Sequence[Route] = ()) -> Starlette:
    """Serves ``root``'s files (recording each request's Host), plus ``routes``."""

    async def file(request: Request) -> Response:
        hosts.append(request.headers["host"])
        return FileResponse(root / request.path_params["name"])

    return Starlette(routes=[*routes, Route("/files/{name}", file)])


def pull(node: RunningNode, source: str, **body: Any) -> tuple[int, list[dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {KEY}"}
    payload = {"model": source, **body}
    with node.client(headers=headers) as http, http.stream("POST", "/api/pull", json=payload) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    return response.status_code, lines


def refused(node: RunningNode, source: str, reason: str, **body: Any) -> None:
    status, lines = pull(node, source, **body)
    assert status == 400 and reason in lines[-1]["error"], (source, status, lines)


def test_a_path_on_the_nodes_disk_is_refused(
    names: dict[str, list[str]], target: RunningNode, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.gguf"
    secret.write_bytes(b"GGUF and then the node's secrets")
    for source in (
        str(secret),
        "/etc/passwd",
        "./model.gguf",
        "~/model.gguf",
        "model.gguf",
        "file:///etc/hosts",
    ):
        refused(target, source, "is a path")
        refused(target, source, "POST /api/blobs/sha256:", stream=False)
    assert not target.service.store.list()


def test_the_cli_sends_a_local_file_as_a_blob(
    names: dict[str, list[str]], node: RunningNode, target: RunningNode, tmp_path: Path
) -> None:
    local = tmp_path / "Local-Copy.Q4_1.gguf"
    os.link(weights_of(node), local)
    env = {**os.environ, "AVOCADO_HOST": target.url, "AVOCADO_API_KEY": ""}
    pulled = subprocess.run([*AVOCADO, "pull", str(local)], env=env, capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    digest = "sha256:" + hashlib.sha256(local.read_bytes()).hexdigest()
    model = target.service.store.get("local-copy.q4_1:latest")
    assert digest in {layer.digest for layer in model.layers}

    (tmp_path / "build").mkdir()
    os.link(weights_of(node), tmp_path / "build" / "weights.gguf")
    (tmp_path / "build" / "Modelfile").write_text("FROM ./weights.gguf\nPARAMETER temperature 0\n")
    created = subprocess.run(
        [*AVOCADO, "create", "from-file:1", "-f", str(tmp_path / "build" / "Modelfile")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    assert target.service.store.resolve("from-file:1").parameters == {"temperature": 0}
    missing = subprocess.run([*AVOCADO, "pull", "./nowhere.gguf"], env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_redirects_and_names_that_lead_to_forbidden_addresses_are_refused(
    names: dict[str, list[str]], node: RunningNode, target: RunningNode, tmp_path: Path
) -> None:
    names |= {"metadata.avocado.test": ["169.254.169.254"], "imds6.avocado.test": ["fd00:ec2::254"]}
    leads = {
        "metadata": "http://169.254.169.254/latest/meta-data/model.gguf",
        "google": "http://metadata.google.internal/computeMetadata/v1/model.gguf",
        "resolved": "http://metadata.avocado.test/model.gguf",
        "imds6": "http://imds6.avocado.test/model.gguf",
        "link-local6": "http://[fe80::1]/model.gguf",
        "mapped": "http://[::ffff:169.254.169.254]/model.gguf",
    }
    routes = [Route(f"/to/{k}", lambda _r, url=v: RedirectResponse(url, 302)) for k, v in leads.items()]
    manifest = Route("/v2/library/meta/manifests/1", lambda _r: RedirectResponse(leads["metadata"], 307))
    hosts: list[str] = []
    server = serve(files_app(tmp_path, hosts, [*routes, manifest]))
    try:
        for name, url in leads.items():
            refused(target, url, "transfers never reach it")  # asked for directly
            refused(target, f"{server.url}/to/{name}", "transfers never reach it")  # one redirect away
        # A registry that sends its manifest (or its blobs) elsewhere is checked the same way.
        refused(target, f"{authority(server.url)}/library/meta:1", FORBIDDEN, insecure=True)
    finally:
        server.stop()
    assert not target.service.store.list()


def test_a_token_realm_at_a_forbidden_address_is_refused(
    names: dict[str, list[str]], target: RunningNode
) -> None:
    names["token.avocado.test"] = ["169.254.169.254"]
    realms = iter(["http://169.254.169.254/latest/api/token", "http://token.avocado.test/token"])

    async def challenge(request: Request) -> Response:
        realm = next(realms)
        header = f'Bearer realm="{realm}",service="registry",scope="repository:library/smollm2:pull"'
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return JSONResponse(body, 401, headers={"WWW-Authenticate": header})

    server = serve(Starlette(routes=[Route("/v2/{path:path}", challenge)]))
    try:
        for _ in range(2):
            refused(target, f"{authority(server.url)}/library/{SMOLLM}", FORBIDDEN, insecure=True)
    finally:
        server.stop()


def test_the_address_checked_is_the_address_connected_to(
    names: dict[str, list[str]], node: RunningNode, target: RunningNode, tmp_path: Path
) -> None:
    os.link(weights_of(node), tmp_path / "model.gguf")
    hosts: list[str] = []
    server = serve(files_app(tmp_path, hosts))
    port = server.url.rsplit(":", 1)[1]
    # Resolved once, to loopback (allowed: the node has no public URL); a second lookup would say
    # 169.254.169.254, as a rebinding DNS server would answer right after the check.
    names["rebinding.avocado.test"] = ["127.0.0.1", "169.254.169.254"]
    try:
        status, lines = pull(target, f"http://rebinding.avocado.test:{port}/files/model.gguf")
        assert status == 200 and lines[-1] == {"status": "success"}, lines
        assert hosts == [f"rebinding.avocado.test:{port}"]  # the name stays in Host
        refused(target, f"http://rebinding.avocado.test:{port}/files/model.gguf", FORBIDDEN)  # next time
    finally:
        server.stop()


def test_https_keeps_the_name_for_sni_and_the_certificate(
    names: dict[str, list[str]],
    node: RunningNode,
    target: RunningNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = certificate(tmp_path, "registry.avocado.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the node trusts this certificate alone
    os.link(weights_of(node), tmp_path / "model.gguf")
    hosts: list[str] = []
    server = serve(files_app(tmp_path, hosts), ssl_certfile=str(cert), ssl_keyfile=str(key))
    port = server.url.rsplit(":", 1)[1]
    names |= {"registry.avocado.test": ["127.0.0.1"], "impostor.avocado.test": ["127.0.0.1"]}
    try:
        status, lines = pull(target, f"https://registry.avocado.test:{port}/files/model.gguf")
        assert status == 200 and lines[-1] == {"status": "success"}, lines
        # Same address, another name: the certificate is checked against the name, not the address.
        refused(target, f"https://impostor.avocado.test:{port}/files/model.gguf", "cannot reach")
    finally:
        server.stop()
    assert hosts == [f"registry.avocado.test:{port}"]


def certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    command += ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


def public_node(home: Path, **settings: Any) -> RunningNode:
    home.mkdir(parents=True)
    return start_node(
        home, register_bundled_models=False, api_key=KEY, tunnel_url="https://node.example", **settings
    )


def test_a_node_with_a_public_url_reaches_loopback_only_where_allowed(
    names: dict[str, list[str]], node: RunningNode, tmp_path: Path
) -> None:
    source = f"{authority(node.url)}/library/{SMOLLM}"
    closed = public_node(tmp_path / "closed")
    try:
        refused(closed, source, "pull_allow_networks", insecure=True)
        refused(closed, f"{node.url}/v2/library/smollm2/blobs/sha256:{'0' * 64}", "pull_allow_networks")
        assert not closed.service.store.list()
    finally:
        closed.stop()
    allowed = public_node(tmp_path / "allowed", pull_allow_networks=["127.0.0.0/8"])
    try:
        status, lines = pull(allowed, source, insecure=True)
        assert status == 200 and lines[-1] == {"status": "success"}, lines
    finally:
        allowed.stop()


def test_downloads_stop_at_max_pull_size(
    names: dict[str, list[str]], node: RunningNode, tmp_path: Path
) -> None:
    (tmp_path / "small").mkdir()
    capped = start_node(tmp_path / "small", register_bundled_models=False, max_pull_size="1MB")

    async def endless(_request: Request) -> Response:
        async def chunks() -> Any:
            for _ in range(64):  # 16 MiB at most, with no Content-Length
                yield b"\0" * (256 << 10)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    os.link(weights_of(node), tmp_path / "model.gguf")
    server = serve(files_app(tmp_path, [], [Route("/endless.gguf", endless)]))
    try:
        refused(capped, f"{authority(node.url)}/library/{SMOLLM}", "max_pull_size", insecure=True)
        refused(capped, f"{server.url}/files/model.gguf", "max_pull_size")  # its Content-Length says
        refused(capped, f"{server.url}/endless.gguf", "max_pull_size")  # counted as it comes
    finally:
        server.stop()
        capped.stop()
    assert not list(capped.service.store.blobs_dir.iterdir())  # no partial download left behind


def push(node: RunningNode, destination: str) -> tuple[int, list[dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {KEY}"}
    payload = {"model": destination, "insecure": True}
    with node.client(headers=headers) as http, http.stream("POST", "/api/push", json=payload) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line] if response.is_success else []
        body = {} if response.is_success else json.loads(response.read())
    return response.status_code, lines or [body]


def test_pull_only_networks_keeps_every_transfer_in_the_networks_it_lists(
    names: dict[str, list[str]], node: RunningNode, tmp_path: Path
) -> None:
    """A node without a public URL would reach public and private addresses; with ``pull_only_networks``
    it reaches those networks alone, pushes included (public addresses are refused before any connection)."""
    names |= {"public.avocado.test": ["93.184.215.14"], "lan.avocado.test": ["10.1.2.3"]}
    (tmp_path / "sandbox").mkdir()
    sandbox = start_node(
        tmp_path / "sandbox", register_bundled_models=False, api_key=KEY, pull_only_networks=["127.0.0.0/8"]
    )
    try:
        for host in ("public.avocado.test", "lan.avocado.test", "93.184.215.14"):
            refused(sandbox, f"{host}/library/{SMOLLM}", "pull_only_networks", insecure=True)
            refused(sandbox, f"http://{host}/files/model.gguf", "pull_only_networks")
        pulled = f"{authority(node.url)}/library/{SMOLLM}"
        status, lines = pull(sandbox, pulled, insecure=True)
        assert status == 200 and lines[-1] == {"status": "success"}, lines
        copied = f"public.avocado.test/library/{SMOLLM}"
        with sandbox.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
            assert http.post("/api/copy", json={"source": pulled, "destination": copied}).status_code == 200
        status, lines = push(sandbox, copied)
        assert "pull_only_networks" in lines[-1]["error"], (status, lines)
    finally:
        sandbox.stop()
