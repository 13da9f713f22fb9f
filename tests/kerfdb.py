"""Kerf databases for engine tests on SQLite, PostgreSQL and MariaDB, and snapshots of them.

PostgreSQL and MariaDB are shared servers: each test module gets its own schema (PostgreSQL)
or database (MariaDB), so concurrent tests never see each other's tables.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from lawful.demo.schema import metadata
from tests.conftest import service_url

Snapshot = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]


def backend_url(backend: str, name: str, tmp: Path) -> str:
    """A URL for an empty place called `name` on the backend (created if needed)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'{name}.db'}"
    if backend == "postgres":
        base = service_url("postgres")
        engine = sa.create_engine(base)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        engine.dispose()
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}options={quote(f'-csearch_path={name}')}"
    if backend == "mysql":
        base = sa.engine.make_url(service_url("mysql"))
        engine = sa.create_engine(base)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        engine.dispose()
        return base.set(database=name).render_as_string(hide_password=False)
    raise ValueError(backend)


def snapshot(url: str) -> Snapshot:
    """Every row of every Kerf table, by primary key, as it is stored."""
    engine = sa.create_engine(url)
    out: Snapshot = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = {(row[0],): tuple(row) for row in rows}
    engine.dispose()
    return out


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql), params).scalar()
    engine.dispose()
    return value


def execute(url: str, sql: str, rows: list[dict[str, Any]] | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), rows or {})
    engine.dispose()


@contextmanager
def store_schema(prefix: str) -> Iterator[str]:
    """A URL for lawful's store in a fresh PostgreSQL schema `<prefix>_<random>`, dropped
    afterwards (with lawful's cached engine for it)."""
    from lawful.engine import state

    base = service_url("postgres")
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        cached = state._ENGINES.pop(url, None)
        if cached is not None:
            cached.dispose()
        with admin.begin() as conn:
            # Backends of killed processes end as their sockets close; don't wait on one.
            conn.execute(sa.text("SET LOCAL lock_timeout = '30s'"))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
