"""Every route of the platform, walked as an anonymous caller, as a user and with another user's ids.

The routes come from the application's OpenAPI document, so a route a later domain adds is walked
too: only the routes named in ``PUBLIC`` may answer an anonymous caller; an admin route answers a user
``403``; a route with an id in its path answers another user's id ``404`` (never ``403``: whether it
exists is not theirs to know).
"""

from __future__ import annotations

import re

from tests.platform.support import RunningPlatform

PUBLIC = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/mfa"),  # its own proof: the mfa_token login gave
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/password-reset/request"),
    ("POST", "/api/v1/auth/password-reset"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/auth/config"),  # the sign-up policy and optional features, for the sign-in page
    ("GET", "/api/v1/auth/oidc"),  # whether single sign-on is on (the sign-in page's button)
    ("GET", "/api/v1/auth/oidc/login"),  # the way to sign in with it (404 here: not configured)
    ("GET", "/api/v1/auth/oidc/callback"),  # its own proof: the state cookie, the provider's code
}
# Bodies that pass validation, so the route itself decides (an empty one would be a 422 first)
BODIES = {
    ("POST", "/api/v1/conversations/{conversation_id}/messages"): {"content": "hi"},
    ("POST", "/api/v1/conversations/{conversation_id}/fork"): {"message_id": "x"},
    ("PUT", "/api/v1/conversations/{conversation_id}/leaf"): {"message_id": "x"},
    ("PUT", "/api/v1/conversations/{conversation_id}/messages/{message_id}/feedback"): {"rating": "up"},
}


def _routes(platform: RunningPlatform) -> list[tuple[str, str]]:
    """Every documented route (the OpenAPI document is made from the app's routes)."""
    with platform.client() as http:
        paths = http.get("/api/v1/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


def test_every_route_refuses_anonymous_callers_unless_public(sqlite_platform: RunningPlatform) -> None:
    routes = _routes(sqlite_platform)
    assert len(routes) >= 20
    with sqlite_platform.client() as anonymous:
        for method, path in routes:
            if (method, path) in PUBLIC:
                continue
            concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
            answer = anonymous.request(method, concrete, json={})
            assert answer.status_code == 401, (method, path, answer.status_code)


def test_users_reach_none_of_another_users_things(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    bob_id = sqlite_platform.register("bob@example.com")["id"]
    ada = sqlite_platform.sign_in("ada@example.com")
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = sqlite_platform.sign_in("bob@example.com")
    ada_session = next(s["id"] for s in ada.get("/api/v1/users/me/sessions").json()["items"])
    ada_key = ada.post("/api/v1/users/me/api-keys", json={"name": "ada's"}).json()["id"]
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    conversations = sqlite_platform.platform.conversations  # no model server here: straight in
    chat = conversations.create(ada_id, "some-model")
    sent = conversations.send(ada_id, chat.id, "hello")
    ids = {
        "session_id": ada_session,
        "user_id": ada_id,
        "key_id": ada_key,
        "conversation_id": chat.id,
        "message_id": sent.answers[0].id,
        "folder_id": sqlite_platform.platform.folders.create(ada_id, "ada's", None).id,
        "note_id": sqlite_platform.platform.notes.create(ada_id, "ada's", "", chat.id).id,
        "share_id": sqlite_platform.platform.shares.share(ada_id, chat.id, sqlite_platform.url).id,
    }
    for method, path in _routes(sqlite_platform):
        # /v1/models/{model}: a model is no one's resource (test_openai covers who sees which);
        # /api/v1/shared/{token}: a link anyone signed in may open (test_sharing covers it)
        if (method, path) in PUBLIC or "{" not in path or path.startswith(("/v1/models/", "/api/v1/shared/")):
            continue
        concrete = re.sub(r"\{([^}]+)\}", lambda m: ids[m.group(1)], path)
        answer = bob.http.request(method, concrete, headers=bob.auth, json=BODIES.get((method, path), {}))
        expected = 403 if path.startswith("/api/v1/admin/") else 404
        assert answer.status_code == expected, (method, path, answer.status_code)
    assert ada.get("/api/v1/users/me").status_code == 200  # nothing of ada's was touched
    assert len(ada.get("/api/v1/users/me/sessions").json()["items"]) == 1
    assert [key["id"] for key in ada.get("/api/v1/users/me/api-keys").json()["items"]] == [ada_key]
    assert conversations.detail(ada_id, chat.id).message_count == 2
