"""KeyAdmission: who gets a ticket, with which limits, and which refusal the others get."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from avocado.gateway.hooks import Outcome, Refused, Ticket
from avocado.gateway.keys.admission import KeyAdmission, KeyTicket, ticket_limits
from avocado.gateway.keys.schemas import KeyCreate
from avocado.gateway.keys.service import KeyService
from avocado.gateway.limits import KeyLimits, MemoryLimiter
from tests.gateway.keys.support import Clock

MASTER = "master-key-0123456789abcdef"


def request(headers: dict[str, str] | None = None) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/api/chat", "headers": raw})


def bearer(key: str) -> Request:
    return request({"Authorization": f"Bearer {key}"})


def admit(admission: KeyAdmission, req: Request, model: str | None = "m1") -> Ticket:
    return asyncio.run(admission.admit(req, model))


def refusal(admission: KeyAdmission, req: Request, model: str | None = "m1") -> Refused:
    with pytest.raises(Refused) as refused:
        admit(admission, req, model)
    return refused.value


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(sessions: sessionmaker[Session], clock: Clock) -> KeyService:
    return KeyService(sessions, clock=clock.monotonic, now=clock.now)


@pytest.fixture
def admission(service: KeyService) -> KeyAdmission:
    return KeyAdmission(service, MASTER, require_key=True)


def test_a_key_gets_a_ticket_with_its_limits(service: KeyService, admission: KeyAdmission) -> None:
    record, key = service.create(KeyCreate(name="ci", models=["m1", "m2"], rpm=60, tpm=900, max_parallel=3))
    for req in (bearer(key), request({"x-api-key": key}), request({"authorization": f"bearer  {key} "})):
        ticket = admit(admission, req)
        assert isinstance(ticket, KeyTicket) and ticket.caller == "key"
        assert (ticket.key_id, ticket.key_name, ticket.allowed_models) == (record.id, "ci", ["m1", "m2"])
        assert ticket_limits(ticket) == KeyLimits(rpm=60, tpm=900, max_parallel=3)
        assert ticket.allows("m2") and not ticket.allows("m3")
    unlimited = admit(admission, bearer(service.create(KeyCreate(name="free"))[1]), "anything")
    assert ticket_limits(unlimited) == KeyLimits() and unlimited.allowed_models is None


def test_a_model_outside_the_list_is_forbidden(service: KeyService, admission: KeyAdmission) -> None:
    _, key = service.create(KeyCreate(name="ci", models=["m1"]))
    refused = refusal(admission, bearer(key), "m2")
    assert refused.status == 403 and refused.message == "API key 'ci' may not use model 'm2'"
    assert admit(admission, bearer(key), None).key_name == "ci"  # no model named: e.g. listing models


def test_bad_keys_are_refused_with_a_clear_message(
    service: KeyService, admission: KeyAdmission, clock: Clock
) -> None:
    for key in ("avk-" + "Z" * 40, "sk-something-else", MASTER + "x"):
        refused = refusal(admission, bearer(key))
        assert (refused.status, refused.message) == (401, "invalid API key")
    revoked, revoked_key = service.create(KeyCreate(name="old"))
    service.revoke(revoked.id)
    refused = refusal(admission, bearer(revoked_key))
    assert (refused.status, refused.message) == (401, "API key revoked")
    _, expiring = service.create(KeyCreate(name="temp", expires_in="12h"))
    assert admit(admission, bearer(expiring)).key_name == "temp"
    clock.advance(12 * 3600)
    refused = refusal(admission, bearer(expiring))
    assert (refused.status, refused.message) == (401, "API key expired")


def test_the_master_key_passes_without_limits(admission: KeyAdmission) -> None:
    ticket = admit(admission, bearer(MASTER), "any-model")
    assert isinstance(ticket, KeyTicket) and ticket.caller == "master" and ticket.key_id is None
    assert ticket_limits(ticket) is None and ticket.allows("whatever")


def test_without_a_key(service: KeyService, admission: KeyAdmission) -> None:
    for req in (request(), request({"Authorization": "Basic dXNlcjpwYXNz"}), bearer("")):
        refused = refusal(admission, req)
        assert refused.status == 401 and "missing API key" in refused.message
    open_door = KeyAdmission(service, None, require_key=False)
    ticket = admit(open_door, request())
    assert isinstance(ticket, KeyTicket) and ticket.caller == "anonymous" and ticket_limits(ticket) is None


def test_a_gateway_that_requires_no_key_lets_unknown_keys_in_as_anonymous(
    service: KeyService, clock: Clock
) -> None:
    """OpenAI's SDKs always send a key (the README's ``api_key="unused"``): such callers are anonymous."""
    open_door = KeyAdmission(service, MASTER, require_key=False)
    for key in ("unused", "sk-anything", "avk-" + "Z" * 40, MASTER + "x"):
        ticket = admit(open_door, bearer(key), "any-model")
        assert isinstance(ticket, KeyTicket) and ticket.caller == "anonymous" and ticket.key_id is None
        assert ticket_limits(ticket) is None and ticket.allows("whatever")
    master = admit(open_door, bearer(MASTER))
    assert isinstance(master, KeyTicket) and master.caller == "master"

    # A key it knows keeps its limits and models, and one whose access was ended stays refused.
    record, key = service.create(KeyCreate(name="ci", models=["m1"], rpm=5))
    ticket = admit(open_door, bearer(key))
    assert ticket.key_id == record.id and ticket_limits(ticket) == KeyLimits(rpm=5)
    assert refusal(open_door, bearer(key), "m2").status == 403
    service.revoke(record.id)
    assert (refusal(open_door, bearer(key)).status, refusal(open_door, bearer(key)).message) == (
        401,
        "API key revoked",
    )
    _, expiring = service.create(KeyCreate(name="temp", expires_in="1h"))
    clock.advance(3600)
    assert refusal(open_door, bearer(expiring)).message == "API key expired"


def test_allowed_models_compare_as_nodes_name_them(service: KeyService, admission: KeyAdmission) -> None:
    _, short = service.create(KeyCreate(name="short", models=["smollm2"]))
    _, full = service.create(KeyCreate(name="full", models=["library/SmolLM2:latest", "gemma3:270m"]))
    for key in (short, full):
        for name in ("smollm2", "smollm2:latest", "library/smollm2:latest"):
            assert admit(admission, bearer(key), name).allows(name)
        assert refusal(admission, bearer(key), "smollm2:135m").status == 403
    ticket = admit(admission, bearer(full), "gemma3:270m")
    assert ticket.allows("gemma3:270m") and not ticket.allows("gemma3")


def test_limits_of_plain_tickets_are_none() -> None:
    assert ticket_limits(Ticket()) is None


def test_finish_counts_usage_for_keys_only(service: KeyService, admission: KeyAdmission) -> None:
    record, key = service.create(KeyCreate(name="ci"))
    for req, tokens in ((bearer(key), (11, 22)), (bearer(key), (1, 2)), (bearer(MASTER), (100, 100))):
        ticket = admit(admission, req)
        outcome = Outcome("req", "m1", "node-a", 200, False, 0.1, tokens_in=tokens[0], tokens_out=tokens[1])
        asyncio.run(admission.finish(ticket, outcome))
    assert service.flush() == 1
    counted = service.get(record.id)
    assert counted is not None and (counted.requests, counted.tokens_in, counted.tokens_out) == (2, 12, 24)


def test_a_tickets_limits_feed_the_limiter(service: KeyService, admission: KeyAdmission) -> None:
    """How the integrator chains them: the limiter gets ``ticket.key_id`` and ``ticket_limits(ticket)``."""
    _, key = service.create(KeyCreate(name="ci", rpm=1))

    async def twice() -> Refused:
        limiter = MemoryLimiter()
        leases = []
        for _ in range(2):
            ticket = await admission.admit(bearer(key), "m1")
            limits = ticket_limits(ticket)
            assert ticket.key_id is not None and limits is not None
            try:
                leases.append(await limiter.acquire(ticket.key_id, limits))
            except Refused as refused:
                return refused
        raise AssertionError("the second request of a 1 rpm key was admitted")

    refused = asyncio.run(twice())
    assert refused.status == 429
