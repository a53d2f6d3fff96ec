"""Feedback and share links in Chromium, against a real platform process on PostgreSQL and a real node:
a thumbs down with a reason is stored (and withdrawn by pressing it again), a conversation is shared,
another user opens the link and reads it, the link is revoked and that user's reload says so. axe-core
checks the feedback form, the share dialog and the shared page (0 serious or critical)."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.web.conftest import NewContext
from tests.web.support import PlatformProcess
from tests.web.test_accounts_ui import assert_accessible, register
from tests.web.test_chat_ui import SHORT, answers, api_as, conversation, signed_in
from tests.web.test_settings_ui import approve


def answered(http: httpx.Client, question: str) -> tuple[str, dict[str, object]]:
    """A conversation with one finished exchange: its id and the answer."""
    cid = conversation(http, SHORT)
    with http.stream("POST", f"/api/v1/conversations/{cid}/messages", json={"content": question}) as r:
        assert r.status_code == 200
        for _ in r.iter_lines():
            pass
    answer = http.get(f"/api/v1/conversations/{cid}").json()["messages"][-1]
    assert answer["status"] == "done", answer
    return cid, answer


def feedback_of(http: httpx.Client, cid: str, mid: str) -> httpx.Response:
    return http.get(f"/api/v1/conversations/{cid}/messages/{mid}/feedback")


def open_share_dialog(page: Page) -> None:
    page.get_by_role("button", name="Share").click()
    expect(page.get_by_role("dialog", name="Share this conversation")).to_be_visible()


def test_feedback_and_a_revoked_share_link(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    register(platform, "bob@example.com", "Bob Babbage")
    approve(platform, "bob@example.com")
    with api_as(platform, "ada@example.com") as http:
        cid, answer = answered(http, "Name a colour.")
    mid = str(answer["id"])
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    page.goto(f"/c/{cid}")
    shown = answers(page).last
    expect(shown).to_have_attribute("data-status", "done")

    # Thumbs down, with a reason and a comment.
    shown.hover()
    down = shown.get_by_role("button", name="Bad answer")
    down.click()
    expect(down).to_have_attribute("aria-pressed", "true")
    why = shown.get_by_role("form", name="What was wrong with this answer?")
    expect(why).to_be_visible()
    why.get_by_label("Reason").select_option("Not correct")
    why.get_by_label("Comment").fill("The sky is not green.")
    assert_accessible(page)
    why.get_by_role("button", name="Send feedback").click()
    expect(why).to_have_count(0)
    with api_as(platform, "ada@example.com") as http:
        stored = feedback_of(http, cid, mid)
        assert stored.status_code == 200, stored.text
        given = stored.json()
        assert (given["rating"], given["reason"]) == ("down", "Not correct")
        assert given["comment"] == "The sky is not green." and given["preferred"] is False

    # The buttons show it after a reload; pressing "Bad answer" again withdraws it; "Good answer" gives one.
    page.reload()
    shown = answers(page).last
    shown.hover()
    expect(shown.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
    shown.get_by_role("button", name="Bad answer").click()
    expect(shown.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "false")
    with api_as(platform, "ada@example.com") as http:
        assert feedback_of(http, cid, mid).status_code == 404
    shown.get_by_role("button", name="Good answer").click()
    expect(shown.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "true")
    expect(shown.get_by_role("form")).to_have_count(0)  # no questions for a thumbs up
    with api_as(platform, "ada@example.com") as http:
        assert feedback_of(http, cid, mid).json()["rating"] == "up"

    # Share: the link is shown once, with a copy button.
    open_share_dialog(page)
    dialog = page.get_by_role("dialog", name="Share this conversation")
    expect(dialog.get_by_text("No links yet.")).to_be_visible()
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Link (shown only now)")
    expect(link).to_have_value(re.compile(r"/s/[A-Za-z0-9_-]+$"))
    expect(dialog.get_by_role("button", name="Copy link")).to_be_visible()
    expect(dialog.get_by_role("button", name="Revoke", exact=False)).to_have_count(1)
    assert_accessible(page)
    url = link.input_value()
    path = "/s/" + url.rsplit("/s/", 1)[1]
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    with api_as(platform, "ada@example.com") as http:
        title = http.get(f"/api/v1/conversations/{cid}/shares").json()["items"][0]["title"]

    # Bob opens the link and reads the conversation, read-only.
    reader = new_context().new_page()
    signed_in(reader, "bob@example.com")
    reader.goto(path)
    expect(reader.get_by_role("heading", name=title, exact=True)).to_be_visible()
    expect(reader.get_by_text(re.compile("Shared by Ada"))).to_be_visible()
    expect(reader.locator("article[aria-label='They said']")).to_have_text("Name a colour.")
    first_word = re.findall(r"[A-Za-z]{3,}", str(answer["content"]))[0]
    expect(reader.locator("article[aria-label^='Answer from'] .markdown")).to_contain_text(first_word)
    expect(reader.get_by_label("Message", exact=True)).to_have_count(0)  # nothing to write with
    assert_accessible(reader)

    # Ada revokes the link; Bob's reload says it is gone.
    open_share_dialog(page)
    dialog.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(dialog.get_by_text("No links yet.")).to_be_visible()
    reader.reload()
    expect(reader.get_by_text("This link was revoked or does not exist.")).to_be_visible()
    expect(reader.get_by_text("Name a colour.")).to_have_count(0)
    assert_accessible(reader)
    with api_as(platform, "bob@example.com") as http:
        assert http.get(f"/api/v1{path.replace('/s/', '/shared/')}").status_code == 404
