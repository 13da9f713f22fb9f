"""Proof of retention: one record per batch (rule, table, count, SHA-256 of the keys, time).

Each batch writes its record in the customer's database, in the same transaction as the
deletion or anonymisation (table `lawful_retention_batch`): a batch is either done and
recorded or not done at all, whatever kills the process. The records are then copied into
lawful's own store (`retention_batch`), where `lawful retention` reads them; records of a run
killed before the copy are copied by the next run. They hold no personal data: keys of rows
that no longer hold any, and a digest.

The digest is SHA-256 over the primary keys of the batch as text, in the order the database
sorts them, joined by ","; composite keys join their parts with "|".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from lawful.engine import state

BATCH_TABLE = "lawful_retention_batch"

_remote_meta = sa.MetaData()
remote_batches = sa.Table(
    BATCH_TABLE, _remote_meta,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("tbl", sa.String(200), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("first_key", sa.String(200), nullable=True),
    sa.Column("last_key", sa.String(200), nullable=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("done_at", sa.DateTime, nullable=False),
)

_meta = sa.MetaData()
runs = sa.Table(
    "retention_run", _meta,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("today", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running, done, interrupted
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
)
batches = sa.Table(
    "retention_batch", _meta,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("system", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("tbl", sa.String(200), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("first_key", sa.String(200), nullable=True),
    sa.Column("last_key", sa.String(200), nullable=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("done_at", sa.DateTime, nullable=False),
)
holds = sa.Table(
    "retention_hold", _meta,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("identities", sa.LargeBinary, nullable=False),  # encrypted
    sa.Column("digest", sa.String(64), nullable=False, index=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("placed_at", sa.DateTime, nullable=False),
    sa.Column("released_at", sa.DateTime, nullable=True),
    sa.Column("release_reason", sa.Text, nullable=True),
)

_READY: set[str] = set()


def store() -> sa.Engine:
    engine = state.store()
    url = str(engine.url)
    if url not in _READY:
        _meta.create_all(engine)
        _READY.add(url)
    return engine


def ensure_remote(engine: sa.Engine) -> None:
    """The batch table in a customer database (DDL on its own: MySQL would commit it)."""
    with engine.begin() as conn:
        conn.execute(CreateTable(remote_batches, if_not_exists=True))


def key_text(key: tuple[Any, ...]) -> str:
    return "|".join(str(part) for part in key)


def digest(keys: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(",".join(key_text(k) for k in keys).encode()).hexdigest()


@dataclass
class Batch:
    run_id: str
    system: str
    seq: int
    rule: str
    table: str
    action: str
    rows: int
    first_key: str | None
    last_key: str | None
    digest: str
    done_at: dt.datetime


def open_run(run_id: str, today: dt.date) -> list[str]:
    """Start a run; runs left 'running' (killed) are marked interrupted. Returns their ids."""
    with store().begin() as conn:
        left = [r.id for r in conn.execute(sa.select(runs.c.id).where(
            runs.c.status == "running"))]
        if left:
            conn.execute(runs.update().where(runs.c.id.in_(left)).values(status="interrupted"))
        conn.execute(runs.insert().values(id=run_id, today=today, status="running",
                                          started_at=state.now()))
    return left


def close_run(run_id: str, summary: dict[str, Any]) -> None:
    with store().begin() as conn:
        conn.execute(runs.update().where(runs.c.id == run_id).values(
            status="done", finished_at=state.now(), summary=json.dumps(summary, default=str)))


def sync(system: str, engine: sa.Engine, run_ids: list[str]) -> int:
    """Copy the batch records of these runs from a customer database into lawful's store."""
    if not run_ids:
        return 0
    with engine.connect() as conn:
        remote = [dict(r._mapping) for r in conn.execute(
            sa.select(remote_batches).where(remote_batches.c.run_id.in_(run_ids)))]
    if not remote:
        return 0
    with store().begin() as conn:
        have = {(r.run_id, r.seq) for r in conn.execute(
            sa.select(batches.c.run_id, batches.c.seq).where(
                batches.c.run_id.in_(run_ids), batches.c.system == system))}
        new = [{**r, "system": system} for r in remote if (r["run_id"], r["seq"]) not in have]
        if new:
            conn.execute(batches.insert(), new)
    return len(new)


def batches_of(run_id: str | None = None) -> list[Batch]:
    with store().connect() as conn:
        stmt = sa.select(batches).order_by(batches.c.done_at, batches.c.seq)
        if run_id:
            stmt = stmt.where(batches.c.run_id == run_id)
        return [Batch(r.run_id, r.system, r.seq, r.rule, r.tbl, r.action, r.row_count, r.first_key,
                      r.last_key, r.digest, r.done_at) for r in conn.execute(stmt)]
