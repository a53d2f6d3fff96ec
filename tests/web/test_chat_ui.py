"""The chat page and the sidebar in Chromium, against a real platform process on PostgreSQL and a real
node running real models (smollm2:135m, gemma3:270m): tokens arrive as they are written, a reload in
the middle of an answer follows it to its end, stop (the button and Esc), regenerate and the branch
switcher, editing a message, answers from two models side by side, the options panel, the sidebar's
rename, pin, folders (drag and drop), archive and delete, and search as you type. axe-core checks the
chat page on the way (0 serious or critical)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support import GEMMA, SMOLLM
from tests.web.conftest import NewContext
from tests.web.support import PlatformProcess
from tests.web.test_accounts_ui import PASSWORD, assert_accessible, register, sign_in

LONG = {"temperature": 0.8, "seed": 7, "num_predict": 200}
SHORT = {"temperature": 0, "seed": 42, "num_predict": 12}
ANSWER_TIMEOUT = 120_000  # ms: two shared cores, a 400-token answer


def signed_in(page: Page, email: str) -> None:
    page.goto("/signin")
    sign_in(page, email)
    expect(page.get_by_role("heading", name=re.compile("^Hello"))).to_be_visible()


@contextmanager
def api_as(platform: PlatformProcess, email: str) -> Iterator[httpx.Client]:
    with platform.api() as http:
        login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield http


def conversation(http: httpx.Client, options: dict[str, Any], model: str = SMOLLM) -> str:
    made = http.post("/api/v1/conversations", json={"model": model, "options": options})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def answers(page: Page) -> Locator:
    return page.locator("article[aria-label^='Answer from']")


def text_length(answer: Locator) -> int:
    """Characters of the answer's rendered text so far (0 before its first token)."""
    return int(answer.evaluate("a => (a.querySelector('.markdown')?.innerText ?? '').trim().length"))


def wait_for_growth(answer: Locator, at_least: int, timeout: float = 60) -> int:
    """The answer's visible text once it has ``at_least`` characters (and is still being written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        length = text_length(answer)
        if length >= at_least:
            return length
        time.sleep(0.05)
    raise AssertionError(f"the answer stayed at {text_length(answer)} characters")


def finished(platform: PlatformProcess, cid: str, timeout: float = 240) -> dict[str, Any]:
    """The conversation's last answer once the platform has finished writing it."""
    deadline = time.monotonic() + timeout
    with api_as(platform, "ada@example.com") as http:
        while True:
            last: dict[str, Any] = http.get(f"/api/v1/conversations/{cid}").json()["messages"][-1]
            if last["status"] != "generating" or time.monotonic() > deadline:
                return last
            time.sleep(0.5)


def choose_model(page: Page, name: str, picker: str = "Model") -> None:
    page.get_by_role("button", name=re.compile(f"^{picker}:")).click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(name)}")).click()
    expect(page.get_by_role("button", name=re.compile(f"^{picker}:"))).to_contain_text(name)


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def test_tokens_arrive_and_a_reload_mid_answer_follows_it_to_the_end(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    choose_model(page, SMOLLM)

    # The options of a new chat, set before its first message.
    page.get_by_role("button", name="Options").click()
    page.get_by_label("Temperature").fill(str(LONG["temperature"]))
    page.get_by_label("Seed").fill(str(LONG["seed"]))
    page.get_by_label("Longest answer").fill(str(LONG["num_predict"]))
    page.get_by_label("System prompt").fill("You are a storyteller.")
    assert_accessible(page)
    page.get_by_role("button", name="Save options").click()
    expect(page.get_by_role("region", name="Chat options")).to_have_count(0)

    send(page, "Tell me a long story about a dragon.")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]+$"))
    cid = page.url.rsplit("/", 1)[1]
    mine = page.locator("article[aria-label='You said']")
    expect(mine).to_have_text(re.compile("long story about a dragon"))
    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "generating")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    # Tokens arrive one after another while the answer is being written.
    first = wait_for_growth(answer, 1)
    later = wait_for_growth(answer, first + 20)
    assert later > first
    expect(answer).to_have_attribute("data-status", "generating")
    with api_as(platform, "ada@example.com") as http:
        stored = http.get(f"/api/v1/conversations/{cid}").json()
    assert stored["options"] == LONG and stored["system"] == "You are a storyteller."
    assert stored["messages"][-1]["status"] == "generating"

    # A reload in the middle: the page comes back and follows the same answer to its end.
    before = answer.locator(".markdown").inner_text().strip()
    page.reload()
    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "generating")
    wait_for_growth(answer, len(before) + 1)  # it goes on after the reload
    stored_answer = finished(platform, cid)
    assert stored_answer["status"] == "done", stored_answer
    expect(answer).to_have_attribute("data-status", "done")
    after = answer.locator(".markdown").inner_text().strip()
    assert len(after) > len(before)
    assert after[:15] == before[:15]
    with api_as(platform, "ada@example.com") as http:
        stored = http.get(f"/api/v1/conversations/{cid}").json()
    assert stored["messages"][-1]["status"] == "done"
    assert len(stored["messages"][-1]["content"]) >= len(after) * 0.8
    expect(answer.get_by_text(re.compile(r"\d+ tokens · [\d.]+ tokens/s"))).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()

    # The conversation is in the sidebar, today, and is the page open.
    sidebar = page.get_by_role("navigation", name="Sidebar")
    expect(sidebar.get_by_role("region", name="Today").locator(f"a[href='/c/{cid}']")).to_have_attribute(
        "aria-current", "page"
    )
    assert_accessible(page)


def test_stop_regenerate_switch_branches_and_edit(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    with api_as(platform, "ada@example.com") as http:
        cid = conversation(http, LONG)
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    page.goto(f"/c/{cid}")
    expect(page.get_by_role("button", name="Model:")).to_contain_text(SMOLLM)

    send(page, "Write a very long poem.")
    answer = answers(page).last
    wait_for_growth(answer, 10)
    page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-status", "stopped")
    expect(answer.get_by_role("status").filter(has_text="Stopped.")).to_be_visible()
    stopped_text = answer.locator(".markdown").inner_text().strip()
    assert stopped_text
    assert_accessible(page)

    # Regenerate from the status line: a second branch, stopped with Esc this time.
    answer.get_by_role("button", name="Regenerate").first.click()
    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "generating")
    expect(answer.get_by_text("2/2")).to_be_visible()
    wait_for_growth(answer, 10)
    page.keyboard.press("Escape")
    expect(answer).to_have_attribute("data-status", "stopped")
    second_text = answer.locator(".markdown").inner_text().strip()

    # The switcher goes back to the first answer and forward again; the platform keeps the choice.
    answer.get_by_role("button", name="Previous branch").click()
    expect(answers(page).last.get_by_text("1/2")).to_be_visible()
    expect(answers(page).last.locator(".markdown")).to_have_text(stopped_text)
    page.reload()
    expect(answers(page).last.get_by_text("1/2")).to_be_visible()
    expect(answers(page).last.locator(".markdown")).to_have_text(stopped_text)
    answers(page).last.get_by_role("button", name="Next branch").click()
    expect(answers(page).last.get_by_text("2/2")).to_be_visible()
    expect(answers(page).last.locator(".markdown")).to_have_text(second_text)

    # Editing my message makes a branch beside it, with its own answer.
    with api_as(platform, "ada@example.com") as http:
        assert http.patch(f"/api/v1/conversations/{cid}", json={"options": SHORT}).status_code == 200
    mine = page.locator("article[aria-label='You said']").last
    mine.hover()
    mine.get_by_role("button", name="Edit").click()
    mine.get_by_label("Edit your message").fill("Write a haiku.")
    mine.get_by_role("button", name="Send").click()
    mine = page.locator("article[aria-label='You said']").last
    expect(mine).to_contain_text("Write a haiku.")
    expect(mine.get_by_text("2/2")).to_be_visible()
    expect(answers(page).last).to_have_attribute("data-status", "done", timeout=ANSWER_TIMEOUT)
    mine.get_by_role("button", name="Previous branch").click()
    expect(page.locator("article[aria-label='You said']").last).to_contain_text("Write a very long poem.")
    expect(answers(page).last.get_by_text("2/2")).to_be_visible()  # that branch's own answers are back
    assert_accessible(page)


def test_two_models_answer_side_by_side(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    choose_model(page, SMOLLM)
    page.get_by_role("button", name="Compare with another model").click()
    choose_model(page, GEMMA, picker="Model 2")
    page.get_by_role("button", name="Options").click()
    page.get_by_label("Longest answer").fill("8")
    page.get_by_role("button", name="Save options").click()

    send(page, "Say hi.")
    pair = page.get_by_role("group", name="Answers side by side")
    expect(pair).to_be_visible()
    both = pair.locator("article")
    expect(both).to_have_count(2)
    expect(both.nth(0)).to_have_attribute("aria-label", f"Answer from {SMOLLM}")
    expect(both.nth(1)).to_have_attribute("aria-label", f"Answer from {GEMMA}")
    for index in range(2):
        expect(both.nth(index)).to_have_attribute("data-status", "done", timeout=ANSWER_TIMEOUT)
        assert text_length(both.nth(index)) > 0
    assert_accessible(page)

    # The model titles the conversation in the background; the sidebar picks the title up.
    cid = page.url.rsplit("/", 1)[1]
    row = page.get_by_role("navigation", name="Sidebar").locator(f"a[href='/c/{cid}']")
    expect(row).not_to_have_text("New chat", timeout=60_000)
    expect(page).to_have_title(f"{row.inner_text()} · Avocado")

    # After a reload they are still side by side, in the order asked, until one is picked.
    page.reload()
    expect(pair).to_be_visible()
    expect(both).to_have_count(2)
    expect(both.nth(0)).to_have_attribute("aria-label", f"Answer from {SMOLLM}")
    expect(both.nth(1)).to_have_attribute("aria-label", f"Answer from {GEMMA}")
    expect(both.nth(1)).to_have_attribute("data-status", "done")

    # Continue with the second: it is the branch shown from now on.
    both.nth(1).get_by_role("button", name="Continue with this answer").click()
    expect(pair).to_have_count(0)
    expect(answers(page)).to_have_count(1)
    expect(answers(page).last).to_have_attribute("aria-label", f"Answer from {GEMMA}")
    expect(answers(page).last.get_by_text("2/2")).to_be_visible()
    # The pick is recorded as feedback: a preferred thumbs up on that answer.
    picked = answers(page).last.get_attribute("id")
    assert picked and picked.startswith("m-")
    thumbs_up = answers(page).last.get_by_role("button", name="Good answer")
    expect(thumbs_up).to_have_attribute("aria-pressed", "true")
    with api_as(platform, "ada@example.com") as http:
        given = http.get(f"/api/v1/conversations/{cid}/messages/{picked[2:]}/feedback").json()
    assert (given["rating"], given["preferred"]) == ("up", True)


def test_continue_a_stopped_answer(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    with api_as(platform, "ada@example.com") as http:
        cid = conversation(http, LONG)
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    page.goto(f"/c/{cid}")
    expect(page.get_by_role("button", name="Model:")).to_contain_text(SMOLLM)

    send(page, "Write a very long poem.")
    answer = answers(page).last
    wait_for_growth(answer, 10)
    page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-status", "stopped")
    stopped_text = answer.locator(".markdown").inner_text().strip()
    with api_as(platform, "ada@example.com") as http:
        stopped = http.get(f"/api/v1/conversations/{cid}").json()["messages"][-1]

    # Continue: the same answer goes on growing in place (no new branch), then stops again.
    answer.get_by_role("button", name="Continue", exact=True).click()
    expect(answer).to_have_attribute("data-status", "generating")
    wait_for_growth(answer, len(stopped_text) + 15)
    page.keyboard.press("Escape")
    expect(answer).to_have_attribute("data-status", "stopped")
    expect(answers(page)).to_have_count(1)
    expect(answer.get_by_role("group", name="Branches")).to_have_count(0)
    grown = answer.locator(".markdown").inner_text().strip()
    assert grown.startswith(stopped_text[:20]) and len(grown) > len(stopped_text)
    assert_accessible(page)
    with api_as(platform, "ada@example.com") as http:
        after = http.get(f"/api/v1/conversations/{cid}").json()["messages"][-1]
    assert (after["id"], after["status"], after["siblings"]) == (stopped["id"], "stopped", [stopped["id"]])
    assert after["content"].startswith(stopped["content"]) and len(after["content"]) > len(stopped["content"])


def test_a_temporary_chat_leaves_nothing_behind(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    choose_model(page, SMOLLM)
    switch = page.get_by_role("button", name="Temporary chat")
    switch.click()
    expect(switch).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("status").filter(has_text="Temporary chat.")).to_be_visible()
    page.get_by_role("button", name="Options").click()
    page.get_by_label("Longest answer").fill("12")
    page.get_by_role("button", name="Save options").click()

    send(page, "Name a colour.")
    answer = answers(page).last
    expect(answer).to_have_attribute("data-status", "done", timeout=ANSWER_TIMEOUT)
    assert text_length(answer) > 0
    first = answer.locator(".markdown").inner_text().strip()
    send(page, "And another one?")  # the turns so far go with it
    expect(answers(page)).to_have_count(2)
    expect(answers(page).last).to_have_attribute("data-status", "done", timeout=ANSWER_TIMEOUT)
    expect(page).to_have_url(f"{platform.url}/")
    sidebar = page.get_by_role("navigation", name="Sidebar")
    expect(sidebar.locator("a[href^='/c/']")).to_have_count(0)
    expect(sidebar.get_by_text("Your conversations will appear here.")).to_be_visible()
    assert_accessible(page)

    # Leaving it (a new chat) leaves nothing: not on the page, not stored, not searchable.
    sidebar.get_by_role("link", name="New chat").click()
    expect(page.get_by_role("heading", name=re.compile("^Hello"))).to_be_visible()
    expect(answers(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Temporary chat")).to_have_attribute("aria-pressed", "false")
    with api_as(platform, "ada@example.com") as http:
        assert http.get("/api/v1/conversations").json()["items"] == []
        words = re.findall(r"[A-Za-z]{4,}", first) or ["colour"]
        assert http.get("/api/v1/search", params={"q": words[0]}).json()["items"] == []


def test_the_sidebar_renames_pins_files_archives_and_deletes(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    with api_as(platform, "ada@example.com") as http:
        first = conversation(http, SHORT)
        second = conversation(http, SHORT)
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    sidebar = page.get_by_role("navigation", name="Sidebar")
    link = sidebar.locator(f"a[href='/c/{first}']")
    expect(link).to_have_text("New chat")

    def act(cid: str, title: str, action: str) -> None:
        row = sidebar.locator(".item", has=page.locator(f"a[href='/c/{cid}']"))
        row.hover()
        row.get_by_role("button", name=f"Actions for {title}").click()
        page.get_by_role("menuitem", name=action).click()

    act(first, "New chat", "Rename")
    sidebar.get_by_label("New title").fill("Nope")
    sidebar.get_by_label("New title").press("Escape")  # thrown away, not saved as the field goes
    expect(sidebar.get_by_label("New title")).to_have_count(0)
    expect(link).to_have_text("New chat")
    act(first, "New chat", "Rename")
    sidebar.get_by_label("New title").fill("Dragons")
    sidebar.get_by_label("New title").press("Enter")
    expect(link).to_have_text("Dragons")
    page.reload()
    expect(link).to_have_text("Dragons")
    act(first, "Dragons", "Pin")
    pinned = sidebar.get_by_role("region", name="Pinned")
    expect(pinned.locator(f"a[href='/c/{first}']")).to_be_visible()

    # A folder, a folder inside it, and a conversation dragged onto the first.
    sidebar.get_by_role("button", name="New folder").click()
    page.get_by_role("dialog").get_by_label("Folder name").fill("Stories")
    page.get_by_role("button", name="Create folder").click()
    folder = sidebar.locator("[data-folder='Stories']")
    expect(folder).to_be_visible()
    folder.hover()
    sidebar.get_by_role("button", name="Actions for folder Stories").click()
    page.get_by_role("menuitem", name="New folder inside").click()
    page.get_by_role("dialog").get_by_label("Folder name").fill("Long ones")
    page.get_by_role("button", name="Create folder").click()
    expect(sidebar.locator("[data-folder='Long ones']")).to_be_visible()
    sidebar.locator(f"a[href='/c/{second}']").drag_to(folder)
    inside = sidebar.get_by_role("list", name="In Stories")
    expect(inside.locator(f"a[href='/c/{second}']")).to_be_visible()
    assert_accessible(page)
    page.reload()
    sidebar.get_by_role("button", name="Stories", exact=True).click()
    expect(inside.locator(f"a[href='/c/{second}']")).to_be_visible()
    with api_as(platform, "ada@example.com") as http:
        stored = http.get(f"/api/v1/conversations/{second}").json()
        folders = http.get("/api/v1/folders").json()["items"]
    assert {f["name"]: f["id"] for f in folders}["Stories"] == stored["folder_id"]
    assert {f["name"]: f["parent_id"] for f in folders}["Long ones"] == stored["folder_id"]

    # Archive one, delete the other (the one open: the page goes to a new chat).
    act(second, "New chat", "Archive")
    expect(sidebar.locator(f"a[href='/c/{second}']")).to_have_count(0)
    sidebar.get_by_role("button", name="Archived conversations").click()
    expect(sidebar.locator(f"a[href='/c/{second}']")).to_be_visible()
    sidebar.get_by_role("button", name="Back").click()
    page.goto(f"/c/{first}")
    act(first, "Dragons", "Delete")
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{platform.url}/")
    expect(sidebar.locator(f"a[href='/c/{first}']")).to_have_count(0)
    with api_as(platform, "ada@example.com") as http:
        assert http.get(f"/api/v1/conversations/{first}").status_code == 404
        assert http.get(f"/api/v1/conversations/{second}").json()["archived"] is True


def test_search_as_you_type_finds_a_phrase_from_an_answer(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    with api_as(platform, "ada@example.com") as http:
        if http.get("/api/v1/search", params={"q": "x"}).status_code == 404:
            pytest.skip("this platform has no search route yet")
        cid = conversation(http, SHORT)
        question = {"content": "Name a colour."}
        with http.stream("POST", f"/api/v1/conversations/{cid}/messages", json=question) as r:
            assert r.status_code == 200
            for _ in r.iter_lines():
                pass
        answer = http.get(f"/api/v1/conversations/{cid}").json()["messages"][-1]
    words = [w for w in re.findall(r"[A-Za-z]{5,}", answer["content"])]
    assert words, answer
    phrase = " ".join(words[:2])
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    page.keyboard.press("Control+k")
    page.get_by_label("Search conversations").press_sequentially(phrase, delay=40)
    results = page.get_by_role("region", name="Search results")
    hit = results.locator(f"a[href^='/c/{cid}']").first
    expect(hit).to_be_visible()
    assert_accessible(page)
    hit.click()
    expect(page).to_have_url(re.compile(f"/c/{cid}"))
    expect(answers(page).last.locator(".markdown")).to_contain_text(words[0])
