"""Notes and import/export in Chromium, against a real platform process on PostgreSQL: a note written
in a conversation's notes panel (Markdown rendered, edited in place) is found by search and opens on
its own page; standalone notes on /notes; a conversation exported from its menu and from settings, and
the export imported again in settings. axe-core checks the notes panel, /notes and the settings page
(0 serious or critical). No model writes anything here: the conversation comes from an import."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import NewContext
from tests.web.support import PlatformProcess
from tests.web.test_accounts_ui import assert_accessible, register
from tests.web.test_chat_ui import api_as, signed_in


def imported(platform: PlatformProcess, title: str) -> str:
    """A conversation of Ada's with one exchange, made by importing our JSON (no model needed)."""
    export: dict[str, Any] = {
        "format": "avocado.conversations",
        "version": 1,
        "conversations": [
            {
                "title": title,
                "model": "smollm2:135m",
                "leaf_id": "a",
                "messages": [
                    {"id": "u", "parent_id": None, "role": "user", "content": "Tell me about dragons."},
                    {"id": "a", "parent_id": "u", "role": "assistant", "content": "Dragons breathe fire."},
                ],
            }
        ],
    }
    with api_as(platform, "ada@example.com") as http:
        made = http.post("/api/v1/conversations/import", json=export)
        assert made.status_code == 201, made.text
    return str(made.json()["items"][0]["id"])


def test_a_note_beside_a_chat_is_found_by_search_and_standalone_notes(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    cid = imported(platform, "Dragons")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    page.goto(f"/c/{cid}")
    expect(page.locator("article[aria-label='You said']")).to_contain_text("dragons")

    # The notes panel: a new note in Markdown, shown rendered, then edited in place.
    page.get_by_role("button", name="Notes").click()
    panel = page.get_by_role("complementary", name="Notes")
    expect(panel.get_by_text("No notes yet.")).to_be_visible()
    panel.get_by_role("button", name="New note").click()
    panel.get_by_label("Title").fill("Dragon facts")
    panel.get_by_label("Text").fill("Dragons **hoard** gold.\n\n- fire\n- wings")
    panel.get_by_role("button", name="Save note").click()
    note = panel.get_by_role("article", name="Note: Dragon facts")
    expect(note.locator("strong")).to_have_text("hoard")
    expect(note.get_by_role("listitem")).to_have_count(2)
    assert_accessible(page)
    note.get_by_role("button", name="Edit note Dragon facts").click()
    note.get_by_label("Text").fill("Dragons **hoard** gold and sapphires.")
    note.get_by_role("button", name="Save note").click()
    expect(note).to_contain_text("gold and sapphires")
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0)
    with api_as(platform, "ada@example.com") as http:
        notes = http.get("/api/v1/notes", params={"conversation_id": cid}).json()["items"]
    assert [(n["title"], n["content"]) for n in notes] == [
        ("Dragon facts", "Dragons **hoard** gold and sapphires.")
    ]

    # Search finds it, and the hit opens the note on its own page.
    page.keyboard.press("Control+k")
    page.get_by_label("Search conversations").press_sequentially("sapphires", delay=30)
    hit = page.get_by_role("region", name="Search results").locator(f"a[href='/notes/{notes[0]['id']}']")
    expect(hit).to_contain_text("Dragon facts")
    hit.click()
    expect(page).to_have_url(re.compile(f"/notes/{notes[0]['id']}$"))
    expect(page.get_by_role("heading", name="Dragon facts")).to_be_visible()
    expect(page.get_by_role("link", name="Open its conversation")).to_have_attribute("href", f"/c/{cid}")

    # Standalone notes on /notes, reached from the sidebar: written, listed with the others, deleted.
    page.get_by_label("Search conversations").fill("")
    page.get_by_role("navigation", name="Sidebar").get_by_role("link", name="Notes").click()
    expect(page).to_have_url(re.compile("/notes$"))
    page.get_by_role("button", name="New note").click()
    page.get_by_label("Text").fill("# Packing list\nA map of the caves.")
    page.get_by_role("button", name="Save note").click()
    packing = page.get_by_role("article", name="Note: Packing list")
    expect(packing.get_by_role("heading", name="Packing list", level=1)).to_be_visible()
    expect(page.get_by_role("article", name="Note: Dragon facts")).to_be_visible()
    assert_accessible(page)
    packing.get_by_role("button", name="Delete note Packing list").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(packing).to_have_count(0)
    with api_as(platform, "ada@example.com") as http:
        assert [n["title"] for n in http.get("/api/v1/notes").json()["items"]] == ["Dragon facts"]


def test_export_a_conversation_and_import_it_again_in_settings(
    platform: PlatformProcess, new_context: NewContext, tmp_path: Path
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    cid = imported(platform, "Dragons")
    page = new_context(accept_downloads=True).new_page()
    signed_in(page, "ada@example.com")

    # One conversation as Markdown, from the chat page's menu.
    page.goto(f"/c/{cid}")
    page.get_by_role("button", name="More actions for this conversation").click()
    with page.expect_download() as markdown_download:
        page.get_by_role("menuitem", name="Export as Markdown").click()
    assert markdown_download.value.suggested_filename == "dragons.md"
    markdown = Path(markdown_download.value.path()).read_text()
    assert markdown.startswith("# Dragons") and "Dragons breathe fire." in markdown

    # All of them as JSON, from settings; then that file imported again.
    page.goto("/settings/data")
    expect(page.get_by_role("heading", name="Export")).to_be_visible()
    assert_accessible(page)
    with page.expect_download() as json_download:
        page.get_by_role("button", name="Export as JSON").click()
    exported = tmp_path / json_download.value.suggested_filename
    json_download.value.save_as(exported)
    body = json.loads(exported.read_text())
    assert [c["title"] for c in body["conversations"]] == ["Dragons"]

    page.get_by_label("File to import").set_input_files(exported)
    page.get_by_role("button", name="Import", exact=True).click()
    done = page.get_by_role("status").filter(has_text="Imported:")
    copy = done.get_by_role("link", name="Dragons")
    expect(copy).to_be_visible()
    href = copy.get_attribute("href")
    assert href and href != f"/c/{cid}"
    sidebar = page.get_by_role("navigation", name="Sidebar")
    expect(sidebar.locator(f"a[href='{href}']")).to_be_visible()
    assert_accessible(page)
    copy.click()
    expect(page.locator("article[aria-label^='Answer from']")).to_contain_text("Dragons breathe fire.")

    # A file that is not an export is refused where it was chosen, in words.
    page.goto("/settings/data")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('[{"title": "not a chat"}]')
    page.get_by_label("File to import").set_input_files(wrong)
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("not an export Avocado reads")
    with api_as(platform, "ada@example.com") as http:
        assert len(http.get("/api/v1/conversations").json()["items"]) == 2
