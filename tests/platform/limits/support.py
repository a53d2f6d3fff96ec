"""Helpers for the limits tests: an administrator and an approved user, each signed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.platform.support import RunningPlatform, Session

__all__ = ["People", "chat", "people"]


@dataclass
class People:
    admin: Session
    admin_id: str
    user: Session
    user_id: str
    key: str  # the user's personal API key for /v1


def people(platform: RunningPlatform, user_email: str = "bob@example.com") -> People:
    """The first account (the administrator) and a second one they approved, with an API key."""
    admin_id = platform.register("ada@example.com")["id"]
    admin = platform.sign_in("ada@example.com")
    user_id = platform.register(user_email)["id"]
    approved = admin.patch(f"/api/v1/admin/users/{user_id}", json={"status": "active"})
    assert approved.status_code == 200, approved.text
    user = platform.sign_in(user_email)
    key = user.post("/api/v1/users/me/api-keys", json={"name": "script"}).json()["key"]
    return People(admin, admin_id, user, user_id, key)


def chat(platform: RunningPlatform, key: str, model: str, **fields: Any) -> Any:
    """``POST /v1/chat/completions`` with a personal API key (an httpx response)."""
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], **fields}
    with platform.client() as http:
        return http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
