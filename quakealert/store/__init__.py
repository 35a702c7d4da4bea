"""Persistence: SQLite (WAL) with numbered schema migrations."""
