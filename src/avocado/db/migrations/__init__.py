"""Alembic migration scripts (``env.py`` and ``versions/``), packaged so they ship with avocado."""
