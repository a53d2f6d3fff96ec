"""What the admin API accepts: durations, limits, models, expiry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import jsonschema_rs
import pytest
from pydantic import ValidationError

from avocado.gateway.keys.schemas import KeyCreate, parse_expires_in


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("1d12h", 129600), ("90m", 5400), ("2w", 1209600),
     ("45s", 45), ("3600", 3600), (" 7D ", 7 * 86400)],
)  # fmt: skip
def test_durations(text: str, seconds: int) -> None:
    assert parse_expires_in(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "d", "0d", "-1d", "1.5h", "30 d", "1y", "99999999d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        parse_expires_in(text)


def test_a_key_spec_is_cleaned_up() -> None:
    spec = KeyCreate(name="  ci  ", models=[" a ", "b", "a"], rpm=60, expires_in="1h")
    assert spec.name == "ci" and spec.models == ["a", "b"] and spec.rpm == 60
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert spec.expiry(now) == now + timedelta(hours=1)
    assert KeyCreate(name="x").expiry(now) is None


def test_naive_expires_at_is_utc() -> None:
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
    spec = KeyCreate(name="x", expires_at=later)
    assert spec.expires_at == later.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name"),
        ({"name": " "}, "name must not be empty"),
        ({"name": "x", "models": []}, "leave it out to allow every model"),
        ({"name": "x", "models": ["a", " "]}, "model names must not be empty"),
        ({"name": "x", "rpm": 0}, "greater than or equal to 1"),
        ({"name": "x", "tpm": "60"}, "valid integer"),
        ({"name": "x", "max_parallel": True}, "valid integer"),
        ({"name": "x", "rpm": 2**31}, "less than or equal to"),
        ({"name": "x", "expires_in": "soon"}, "not a duration"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "must be in the future"),
        ({"name": "x", "expires_in": "1d", "expires_at": "2999-01-01T00:00:00Z"}, "not both"),
        ({"name": "x", "rpm_limit": 5}, "Extra inputs are not permitted"),
    ],
)
def test_bad_specs(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KeyCreate.model_validate(body)


@pytest.mark.parametrize("blank", [" ", "\x1f\x1f", "\x85\t", "\u3000"])
def test_the_document_refuses_the_blank_names_the_validators_refuse(blank: str) -> None:
    """Python's spaces (str.strip) include \\x1c-\\x1f and \\x85, JSON Schema's do not: the document's
    pattern names both (the fuzz sent "\\x1f\\x1f" as a model name the document allowed). Read as JSON
    Schema reads it (ECMA regular expressions: schemathesis' validator) and as Python does."""
    properties = KeyCreate.model_json_schema()["properties"]
    for pattern in (properties["name"]["pattern"], properties["models"]["anyOf"][0]["items"]["pattern"]):
        assert re.search(pattern, blank) is None
        assert not jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(blank)
    with pytest.raises(ValidationError):
        KeyCreate(name=blank)
    with pytest.raises(ValidationError):
        KeyCreate(name="x", models=[blank])
