from tests.db.support import database_url, engine, migrated_url, postgres_database, sessions

__all__ = ["database_url", "engine", "migrated_url", "postgres_database", "sessions"]
