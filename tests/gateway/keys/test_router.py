"""The admin API on a bare FastAPI app: master key only, keys shown once, errors as {"error": ...}."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from avocado.gateway.keys.router import KEYS_PATH, keys_router
from avocado.gateway.keys.service import KeyService

MASTER = "master-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture
def service(sessions: sessionmaker[Session]) -> KeyService:
    return KeyService(sessions)


@pytest.fixture
def client(service: KeyService) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(keys_router(service, MASTER))
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


def test_the_master_key_is_required(client: TestClient, service: KeyService) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer ünï".encode("latin-1")},
    ):
        for method, path in (("GET", KEYS_PATH), ("POST", KEYS_PATH), ("GET", f"{KEYS_PATH}/x"),
                             ("DELETE", f"{KEYS_PATH}/x")):  # fmt: skip
            response = client.request(method, path, headers=headers, json={"name": "x"})
            assert response.status_code == 401, (method, path, headers)
            assert set(response.json()) == {"error"}
    assert client.get(KEYS_PATH, headers={"Authorization": "", "x-api-key": MASTER}).status_code == 200
    assert service.list() == []  # nothing was created by the refused POSTs
    closed = FastAPI()
    closed.include_router(keys_router(service, None))
    refused = TestClient(closed).get(KEYS_PATH, headers=AUTH)
    assert refused.status_code == 403 and "no master key" in refused.json()["error"]


def test_create_list_get_revoke(client: TestClient) -> None:
    created = client.post(KEYS_PATH, json={"name": "ci", "models": ["m1"], "rpm": 60, "expires_in": "30d"})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith(body["key_prefix"]) and body["status"] == "active" and body["models"] == ["m1"]
    assert (body["rpm"], body["tpm"], body["max_parallel"], body["requests"]) == (60, None, None, 0)
    assert "key_hash" not in body and body["expires_at"] is not None

    listing = client.get(KEYS_PATH)
    assert listing.status_code == 200
    digest = hashlib.sha256(key.encode()).hexdigest()
    for text in (listing.text, client.get(f"{KEYS_PATH}/{body['id']}").text):
        assert key not in text and digest not in text and "key_hash" not in text and '"key"' not in text
    [listed] = listing.json()["keys"]
    assert listed == {name: value for name, value in body.items() if name != "key"}

    assert client.delete(f"{KEYS_PATH}/{body['id']}").status_code == 204
    gone = client.get(f"{KEYS_PATH}/{body['id']}")  # revoked: gone as a resource, still listed
    assert gone.status_code == 404 and "was revoked at" in gone.json()["error"]
    assert [key["status"] for key in client.get(KEYS_PATH).json()["keys"]] == ["revoked"]
    assert client.delete(f"{KEYS_PATH}/{body['id']}").status_code == 204  # revoking again is fine


def test_unknown_ids_are_404(client: TestClient) -> None:
    for response in (client.get(f"{KEYS_PATH}/nope"), client.delete(f"{KEYS_PATH}/nope")):
        assert response.status_code == 404 and response.json() == {"error": "API key 'nope' not found"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name: Field required"),
        ({"name": ""}, "name: name must not be empty"),
        ({"name": "x", "rpm": 0}, "rpm: Input should be greater than or equal to 1"),
        ({"name": "x", "tpm": "lots"}, "tpm: Input should be a valid integer"),
        ({"name": "x", "models": []}, "models: models must not be empty; leave it out to allow every model"),
        (
            {"name": "x", "expires_in": "soon"},
            "expires_in: expires_in 'soon' is not a duration like 30d, 12h",
        ),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at: expires_at must be in the future"),
        ({"name": "x", "expires_in": "1d", "expires_at": "2999-01-01T00:00:00Z"}, "not both"),
        ({"name": "x", "key": "avk-mine"}, "key: Extra inputs are not permitted"),
        (["x"], "Input should be a valid dictionary"),
    ],
)
def test_bad_input_is_400_with_a_readable_message(
    client: TestClient, body: object, message: str, service: KeyService
) -> None:
    response = client.post(KEYS_PATH, json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error"} and message in response.json()["error"]
    assert service.list() == []


def test_unparsable_bodies_are_400(client: TestClient) -> None:
    broken = client.post(KEYS_PATH, content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json() == {"error": "invalid JSON in request body"}
    missing = client.post(KEYS_PATH)
    assert missing.status_code == 400 and missing.json() == {"error": "a JSON body is required"}


def test_usage_shows_in_the_list_once_flushed(client: TestClient, service: KeyService) -> None:
    created = client.post(KEYS_PATH, json={"name": "ci"}).json()
    service.record_usage(created["id"], 7, 9)
    service.record_usage(created["id"], 1, 1)
    assert client.get(KEYS_PATH).json()["keys"][0]["requests"] == 0
    service.flush()
    [listed] = client.get(KEYS_PATH).json()["keys"]
    assert (listed["requests"], listed["tokens_in"], listed["tokens_out"]) == (2, 8, 10)
    assert listed["last_used_at"] is not None
