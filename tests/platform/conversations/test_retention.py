"""Retention: archived conversations go after N days, each user keeps at most the cap (pinned ones
first); the job's removals are audited; the settings are the admin's."""

from __future__ import annotations

from datetime import timedelta

from tests.platform.support import RunningPlatform


def test_retention_removes_old_archives_and_what_is_over_the_cap(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    service = platform.platform.conversations
    real_now = service.now
    service.now = lambda: real_now() - timedelta(days=100)
    try:
        old_archived = service.create(ada_id, "m", title="old archived")
        service.update(ada_id, old_archived.id, {"archived": True})
        service.create(ada_id, "m", title="old, not archived")
        old_pinned = service.create(ada_id, "m", title="old pinned")
        service.update(ada_id, old_pinned.id, {"pinned": True})
    finally:
        service.now = real_now
    for n in range(3):
        service.create(ada_id, "m", title=f"recent {n}")
    recent_archived = service.create(ada_id, "m", title="recently archived")
    service.update(ada_id, recent_archived.id, {"archived": True})

    assert ada.post("/api/v1/admin/retention/run").json() == {"archived": 0, "over_cap": 0}  # no rules yet
    settings = ada.patch(
        "/api/v1/admin/settings", json={"retention_archived_days": 30, "max_conversations_per_user": 4}
    )
    assert settings.status_code == 200 and settings.json()["max_conversations_per_user"] == 4
    removed = ada.post("/api/v1/admin/retention/run").json()
    assert removed == {"archived": 1, "over_cap": 2}  # the cap keeps the pinned and the newest
    left = {c.title for c in service.page(ada_id, limit=50).items} | {
        c.title for c in service.page(ada_id, archived=True, limit=50).items
    }
    assert left == {"old pinned", "recently archived", "recent 2", "recent 1"}
    events = ada.get("/api/v1/admin/audit", params={"action": "retention.applied"}).json()["items"]
    assert events[0]["detail"]["archived"] == 1 and events[0]["detail"]["over_cap"] == 2

    off = ada.patch("/api/v1/admin/settings", json={"retention_archived_days": None}).json()
    assert off["retention_archived_days"] is None and off["signup_policy"] == "approval"
    assert ada.patch("/api/v1/admin/settings", json={"max_conversations_per_user": 0}).status_code == 422
