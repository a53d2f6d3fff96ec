"""Alembic's environment: run the migrations on the connection :mod:`avocado.db.migrate` hands over.

Without one (the ``alembic`` command with ``-x url=...``), an engine is made from that URL. SQLite
gets batch mode, so later ``ALTER`` steps work there by copying the table.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from avocado.db.base import UtcDateTime
from avocado.db.engine import make_engine
from avocado.db.tables import include_object, load_metadata

metadata = load_metadata()


def _render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write :class:`UtcDateTime` columns as what they are in the database."""
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database: pass -x url=... or use avocado.db.migrate.upgrade(url)")
    return url


def _main() -> None:
    if context.is_offline_mode():
        context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as owned:
            _run(owned)
    finally:
        engine.dispose()


_main()
