"""Catalogue sources: pure parse_* functions plus thin async fetches."""
