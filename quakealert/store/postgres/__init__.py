"""PostgreSQL backend: the shared store that lets several instances run on one database.

psycopg 3 with psycopg_pool: one driver that has both a sync API (the store functions keep the
SQLite modules' shape, called off the loop like the SQLite ones) and an async one (leadership,
LISTEN/NOTIFY), server-side binding, COPY and pipeline mode. See docs/deploy.md.
"""
