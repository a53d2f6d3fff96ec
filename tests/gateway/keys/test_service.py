"""KeyService on both databases: keys stored as hashes, revocation, expiry, the cache, usage counts."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from avocado.gateway.keys.models import ApiKey
from avocado.gateway.keys.schemas import KeyCreate
from avocado.gateway.keys.service import KeyService
from avocado.gateway.limits import KeyLimits
from tests.gateway.keys.support import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(sessions: sessionmaker[Session], clock: Clock) -> KeyService:
    return KeyService(sessions, cache_ttl=5.0, clock=clock.monotonic, now=clock.now)


def test_create_returns_the_key_once_and_stores_only_its_hash(service: KeyService, engine: Engine) -> None:
    record, key = service.create(KeyCreate(name="ci", models=["m1"], rpm=60, tpm=1000, max_parallel=2))
    assert key.startswith("avk-") and len(key) == 44 and key[4:].isalnum()
    assert record.key_prefix == key[:8] and record.name == "ci" and record.allowed_models == ("m1",)
    assert record.limits == KeyLimits(rpm=60, tpm=1000, max_parallel=2)
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(text("SELECT * FROM api_keys"))]
    assert len(rows) == 1
    assert rows[0]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert not any(key in str(value) for value in rows[0].values())
    assert service.verify(key) == record


def test_list_and_get(service: KeyService, clock: Clock) -> None:
    first, _ = service.create(KeyCreate(name="a"))
    clock.advance(1)
    second, _ = service.create(KeyCreate(name="b", models=["x", "y"]))
    assert [record.id for record in service.list()] == [first.id, second.id]
    assert service.get(second.id) == second
    assert service.get("no-such-id") is None
    assert "key_hash" not in first.__slots__ and not hasattr(first, "key_hash")


def test_revoked_keys_fail_verification(service: KeyService, clock: Clock) -> None:
    record, key = service.create(KeyCreate(name="a"))
    assert service.verify(key) is not None
    revoked = service.revoke(record.id)
    assert revoked is not None and revoked.revoked_at == clock.now()
    assert service.verify(key) is None  # dropped from this service's cache at once
    looked_up = service.lookup(key)
    assert looked_up is not None and looked_up.state(clock.now()) == "revoked"
    clock.advance(60)
    again = service.revoke(record.id)
    assert again is not None and again.revoked_at == revoked.revoked_at  # revoking again changes nothing
    assert service.revoke("no-such-id") is None


def test_expired_keys_fail_verification(service: KeyService, clock: Clock) -> None:
    record, key = service.create(KeyCreate(name="a", expires_in="1h"))
    assert record.expires_at == clock.now() + timedelta(hours=1)
    assert service.verify(key) is not None
    clock.advance(3600)
    assert service.verify(key) is None
    looked_up = service.lookup(key)
    assert looked_up is not None and looked_up.state(clock.now()) == "expired"


def test_unknown_and_malformed_keys(service: KeyService) -> None:
    assert service.verify("avk-" + "x" * 40) is None
    assert service.verify("sk-not-ours") is None
    assert service.verify("") is None
    assert service.verify("avk-" + "x" * 10_000) is None


def test_a_revocation_elsewhere_shows_after_the_cache_ttl(
    sessions: sessionmaker[Session], service: KeyService, clock: Clock
) -> None:
    record, key = service.create(KeyCreate(name="a"))
    assert service.verify(key) is not None  # cached now
    admin = KeyService(sessions, now=clock.now)  # another replica, or the admin API elsewhere
    admin.revoke(record.id)
    clock.advance(4.9)
    assert service.verify(key) is not None  # still trusted within the TTL
    clock.advance(0.2)
    assert service.verify(key) is None


def test_without_a_cache_a_revocation_elsewhere_shows_at_once(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    uncached = KeyService(sessions, cache_ttl=0, clock=clock.monotonic, now=clock.now)
    record, key = uncached.create(KeyCreate(name="a"))
    assert uncached.verify(key) is not None
    KeyService(sessions, now=clock.now).revoke(record.id)
    assert uncached.verify(key) is None


def test_an_unknown_key_is_cached_too_but_a_new_key_is_found(service: KeyService) -> None:
    assert service.lookup("avk-" + "0" * 40) is None
    _, key = service.create(KeyCreate(name="a"))
    assert service.lookup(key) is not None


def test_usage_is_counted_in_memory_and_flushed(service: KeyService, clock: Clock) -> None:
    record, _ = service.create(KeyCreate(name="a"))
    other, _ = service.create(KeyCreate(name="b"))
    service.record_usage(record.id, 10, 20)
    clock.advance(1)
    service.record_usage(record.id, 5, 7)
    service.record_usage(other.id, 1, 1)
    unflushed = service.get(record.id)
    assert unflushed is not None and unflushed.requests == 0
    assert service.flush() == 2
    assert service.flush() == 0
    counted = {r.id: r for r in service.list()}
    assert (counted[record.id].requests, counted[record.id].tokens_in, counted[record.id].tokens_out) == (
        2, 15, 27
    )  # fmt: skip
    assert counted[record.id].last_used_at == clock.now()
    assert counted[other.id].requests == 1
    service.record_usage(record.id, 1, 1)
    service.flush()
    again = service.get(record.id)
    assert again is not None and (again.requests, again.tokens_in) == (3, 16)  # added, not overwritten


def test_usage_that_cannot_be_written_is_kept_for_the_next_flush(
    service: KeyService, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    record, _ = service.create(KeyCreate(name="a"))
    service.record_usage(record.id, 3, 4)
    broken = create_engine("sqlite:////nonexistent-dir/avocado/nothing.sqlite3")
    monkeypatch.setattr(service, "_sessions", sessionmaker(broken))
    with pytest.raises(SQLAlchemyError):
        service.flush()
    service.record_usage(record.id, 1, 1)
    monkeypatch.setattr(service, "_sessions", sessions)
    assert service.flush() == 1
    counted = service.get(record.id)
    assert counted is not None and (counted.requests, counted.tokens_in, counted.tokens_out) == (2, 4, 5)


def test_usage_is_flushed_in_the_background_and_on_close(sessions: sessionmaker[Session]) -> None:
    service = KeyService(sessions, flush_interval=0.05)
    record, _ = service.create(KeyCreate(name="a"))
    service.start()
    try:
        service.record_usage(record.id, 2, 3)
        deadline = time.monotonic() + 10
        while (found := service.get(record.id)) is not None and found.requests == 0:
            assert time.monotonic() < deadline, "usage was not flushed in the background"
            time.sleep(0.02)
    finally:
        service.close()
    closing = KeyService(sessions, flush_interval=3600)
    closing.start()
    closing.record_usage(record.id, 1, 1)
    closing.close()  # does not wait the hour: stops the thread and writes what is left
    with sessions() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.id == record.id)).one()
        assert (row.requests, row.tokens_in, row.tokens_out) == (2, 3, 4)


def test_usage_is_counted_per_user_a_key_names(service: KeyService, sessions: sessionmaker[Session]) -> None:
    record, _ = service.create(KeyCreate(name="platform"))
    other, _ = service.create(KeyCreate(name="another platform"))
    service.record_usage(record.id, 10, 20, user="ada")
    service.record_usage(record.id, 1, 2, user="ada")
    service.record_usage(record.id, 3, 4, user="bob")
    service.record_usage(other.id, 5, 5, user="ada")  # another key's "ada": not the same person
    service.record_usage(None, 7, 8, user="ada")  # the master key
    service.record_usage(record.id, 1, 1)  # no user named
    assert service.user_usage() == []  # nothing written before a flush
    assert service.flush() == 6  # two keys' own counters, four (key, user) counters

    rows = {(row.key_id, row.user_id): row for row in service.user_usage()}
    assert set(rows) == {(record.id, "ada"), (record.id, "bob"), (other.id, "ada"), ("master", "ada")}
    ada = rows[(record.id, "ada")]
    assert (ada.requests, ada.tokens_in, ada.tokens_out) == (2, 11, 22)
    assert (rows[("master", "ada")].requests, rows[("master", "ada")].tokens_out) == (1, 8)
    counted = service.get(record.id)
    assert counted is not None and (counted.requests, counted.tokens_in) == (4, 15)  # the key's own: all

    # a second replica's counts add to the same rows (an upsert, not an overwrite)
    replica = KeyService(sessions)
    replica.record_usage(record.id, 100, 100, user="ada")
    replica.record_usage(record.id, 1, 1, user="carol")
    replica.flush()
    ada_now = service.user_usage(user="ada", key_id=record.id)
    assert [(row.requests, row.tokens_in, row.tokens_out) for row in ada_now] == [(3, 111, 122)]
    assert [row.user_id for row in service.user_usage(key_id=record.id)] == ["ada", "bob", "carol"]
    assert {row.key_id for row in service.user_usage(user="ada")} == {record.id, other.id, "master"}
