"""Sessions on the app store, and its migrations (Alembic), run by `lawful db upgrade` and
automatically by `serve` and `worker`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from lawful.engine import state

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "lawful_store_version"


def engine() -> sa.Engine:
    # One store for everything lawful keeps: the engine's journal and the app's requests.
    return state.store()


@cache
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine(), expire_on_commit=False)


def session() -> Session:
    return _factory(state.store_url())()


@contextmanager
def transaction() -> Iterator[Session]:
    """A session committed at the end, rolled back on any error."""
    with session() as s, s.begin():
        if s.get_bind().dialect.name == "sqlite":
            # SQLite ignores SELECT ... FOR UPDATE, and its driver begins a transaction only at
            # the first write: a read-then-write (a code's failure count) could lose a
            # concurrent update and let guesses past the limit. Take the write lock first.
            s.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield s


def _config() -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade() -> str:
    """Bring the store to the newest schema; returns the revision it is at."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = _config()
    with engine().begin() as conn:
        if conn.dialect.name == "postgresql":
            # `serve` and several workers may start together: one migrates, the others wait
            # for it (the lock ends with this transaction) and then find nothing to do.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7243019)"))
        cfg.attributes["connection"] = conn  # type: ignore[attr-defined]
        command.upgrade(cfg, "head")  # type: ignore[arg-type]
    with engine().connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}) \
            .get_current_revision() or "base"


_upgraded: set[str] = set()


def ensure_current() -> None:
    """Upgrade once per process (service functions call this before touching the store)."""
    url = state.store_url()
    if url not in _upgraded:
        upgrade()
        _upgraded.add(url)
