"""The announcement's wire format: what goes out, what is accepted, what is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from avocado.discovery import (
    EXCHANGE,
    ROUTING_KEY,
    Announcement,
    InvalidAnnouncement,
    ModelInfo,
    dump_announcement,
    parse_announcement,
)

STARTED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def wire(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 1,
        "service_id": "node-a",
        "url": "https://a.example",
        "previous_url": None,
        "status": "online",
        "models": [{"name": "smollm2:135m", "digest": "sha256:00", "size": 1}],
        "capabilities": ["chat"],
        "version": "0.1.0",
        "started_at": "2025-03-01T12:00:00Z",
        "timestamp": "2025-03-01T12:00:05.250Z",
        "sequence": 7,
        "ttl_seconds": 90,
    }
    data.update(changes)
    return data


def test_names_on_the_broker() -> None:
    assert (EXCHANGE, ROUTING_KEY) == ("service-discovery", "inference.url.changed")


def test_round_trip_keeps_every_field() -> None:
    announcement = Announcement(
        service_id="node-a",
        url="https://b.example",
        previous_url="https://a.example",
        status="draining",
        models=(ModelInfo(name="gemma3:270m", digest="sha256:ff", size=300),),
        capabilities=("chat", "embed"),
        version="0.1.0",
        started_at=STARTED,
        timestamp=STARTED + timedelta(seconds=1, microseconds=500_999),  # kept to the millisecond
        sequence=3,
        ttl_seconds=90,
    )
    body = dump_announcement(announcement)
    assert parse_announcement(body) == announcement
    data = json.loads(body)
    assert data["schema"] == 1 and "schema_version" not in data
    assert data["models"] == [{"name": "gemma3:270m", "digest": "sha256:ff", "size": 300}]
    assert data["capabilities"] == ["chat", "embed"]
    assert data["started_at"] == "2025-03-01T12:00:00.000Z"
    assert data["timestamp"] == "2025-03-01T12:00:01.500Z"


def test_times_are_kept_in_utc() -> None:
    announcement = parse_announcement(json.dumps(wire(timestamp="2025-03-01T14:00:00+02:00")))
    assert announcement.timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert announcement.timestamp.tzinfo == UTC
    assert json.loads(dump_announcement(announcement))["timestamp"] == "2025-03-01T12:00:00.000Z"
    local = datetime(2025, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert Announcement.model_validate(wire(started_at=local)).started_at == STARTED


def test_unknown_fields_are_ignored() -> None:
    announcement = parse_announcement(json.dumps(wire(region="eu", extra={"a": 1})))
    assert announcement.sequence == 7


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps(wire(schema=2)), "unsupported schema 2"),
        (json.dumps({k: v for k, v in wire().items() if k != "schema"}), "unsupported schema None"),
        (json.dumps(wire(status="sleeping")), "status"),
        (json.dumps(wire(sequence=0)), "sequence"),
        (json.dumps(wire(ttl_seconds=0)), "ttl_seconds"),
        (json.dumps(wire(url="")), "url"),
        (json.dumps(wire(timestamp="2025-03-01T12:00:00")), "timestamp"),  # no zone: ambiguous
        (json.dumps(wire(models=[{"name": "x"}])), "models.0.digest"),
        (json.dumps({k: v for k, v in wire().items() if k != "service_id"}), "service_id"),
    ],
)
def test_invalid_bodies_are_refused(body: bytes | str, problem: str) -> None:
    with pytest.raises(InvalidAnnouncement, match=problem):
        parse_announcement(body)
