"""Persistence: SQLAlchemy engine, tables, per-aggregate queries and Alembic migrations."""
