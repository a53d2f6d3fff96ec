"""Migrations: they run on empty databases, they match the models, and they ship with the package."""

from __future__ import annotations

import ast
import threading

from sqlalchemy import inspect

from avocado.db.engine import make_engine
from avocado.db.migrate import MIGRATIONS_DIR, current, head, pending_changes, upgrade
from tests.db.support import empty_public_schema


def test_upgrade_on_an_empty_database_reaches_head(database_url: str) -> None:
    assert current(database_url) is None
    upgrade(database_url)
    assert current(database_url) == head() == "0013"
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {
        "alembic_version",
        "api_keys",
        "users",
        "auth_sessions",
        "refresh_tokens",
        "audit_events",
        "personal_api_keys",
        "api_key_user_usage",
        "mfa_factors",
        "mfa_recovery_codes",
        "user_preferences",
        "folders",
        "conversations",
        "messages",
        "conversation_tags",
    } <= tables


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert current(database_url) == head()


def test_migrations_match_the_models(database_url: str) -> None:
    kinds = {change[0] for change in pending_changes(database_url) if isinstance(change, tuple)}
    assert "add_table" in kinds  # the comparison sees a difference when there is one
    upgrade(database_url)
    assert pending_changes(database_url) == []


def test_replicas_starting_together_migrate_once(postgres_database: str) -> None:
    """PostgreSQL only: replicas share it, and its advisory lock is what keeps them in turn (a gateway
    on SQLite is alone with its home's database)."""
    database_url = postgres_database
    empty_public_schema(database_url)
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(database_url)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert current(database_url) == head()


def test_migration_scripts_are_packaged() -> None:
    # pyproject finds packages under src/ (setuptools packages.find): each directory needs __init__.py
    for directory in (MIGRATIONS_DIR.parent, MIGRATIONS_DIR, MIGRATIONS_DIR / "versions"):
        assert (directory / "__init__.py").is_file(), directory
    assert (MIGRATIONS_DIR / "env.py").is_file()
    revisions = {}
    for script in (MIGRATIONS_DIR / "versions").glob("v*.py"):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        for node in tree.body:
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == "revision"
                and isinstance(node.value, ast.Constant)
            ):
                revisions[script.name] = node.value.value
    assert revisions["v0001_api_keys.py"] == "0001"
    assert revisions["v0002_platform_accounts.py"] == "0002"
    assert head() in revisions.values()
