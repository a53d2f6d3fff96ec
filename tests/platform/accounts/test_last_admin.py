"""The last active admin stays one when two processes (two engines on one SQLite file) each demote
a different admin at the same moment."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from avocado.platform.accounts.errors import LastAdmin
from avocado.platform.accounts.service import CLI, AccountService
from avocado.platform.build import open_services
from tests.platform.support import PASSWORD, platform_settings


def _meet_after_counting(engine: Engine, meeting: threading.Barrier) -> None:
    """Once this engine has counted the admins, wait (a second at most) for the other to count too:
    before the fix both counted 2 there and both went on to demote."""

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "count(" in statement.lower() and "users" in statement:
            # Broken: the other one is waiting for the write lock (the fix at work).
            with contextlib.suppress(threading.BrokenBarrierError):
                meeting.wait(timeout=1.0)


def _demote(accounts: AccountService, user_id: str) -> str:
    try:
        accounts.update_user(user_id, role="user", status=None, actor_id=None, client=CLI)
    except LastAdmin:
        return "refused"
    return "demoted"


def test_two_processes_cannot_demote_the_last_two_admins_at_once(tmp_path: Path) -> None:
    settings = platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3")
    first, second = open_services(settings), open_services(settings)
    try:
        one, two = first.platform.accounts, second.platform.accounts
        ada = one.create_user(
            "ada@example.com", PASSWORD, "Ada", "admin", "active", actor_id=None, client=CLI
        )
        bob = one.create_user(
            "bob@example.com", PASSWORD, "Bob", "admin", "active", actor_id=None, client=CLI
        )
        meeting = threading.Barrier(2)
        _meet_after_counting(first.engine, meeting)
        _meet_after_counting(second.engine, meeting)
        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(_demote, (one, two), (ada.id, bob.id)))
        assert outcomes == ["demoted", "refused"]
        admins = [user for user in one.list_users("active", None, None, 10)[0] if user.role == "admin"]
        assert len(admins) == 1
    finally:
        first.engine.dispose()
        second.engine.dispose()
