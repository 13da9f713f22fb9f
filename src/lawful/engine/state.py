"""The engine's own records: runs (the journal), the suppression list, restrictions.

Kept in lawful's store ($LAWFUL_DATABASE_URL, else SQLite under the state directory). It
practises what lawful enforces: identities are stored as keyed hashes, and a run's plan, which
holds the personal values it will change, is encrypted and deleted once the run is done.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lawful.engine.identities import Identities
from lawful.keys import decrypt, encrypt, keyed_hash, keyed_hashes, state_dir
from lawful.manifest.model import Identity

metadata = sa.MetaData()

runs = sa.Table(
    "engine_run", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("request_digest", sa.String(64), nullable=False, index=True),
    sa.Column("manifest_digest", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # planned, done
    sa.Column("payload", sa.LargeBinary, nullable=True),  # encrypted; dropped when done
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
)
run_steps = sa.Table(
    "engine_run_step", metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("engine_run.id"), primary_key=True),
    sa.Column("system", sa.String(200), primary_key=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("done_at", sa.DateTime, nullable=False),
)
suppression = sa.Table(
    "engine_suppression", metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("added_at", sa.DateTime, nullable=False),
)
restrictions = sa.Table(
    "engine_restriction", metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("since", sa.DateTime, nullable=False),
)

_ENGINES: dict[str, sa.Engine] = {}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def store_url() -> str:
    url = os.environ.get("LAWFUL_DATABASE_URL")
    if url:
        return url
    path = state_dir() / "lawful.db"
    url = f"sqlite:///{path}"
    if url not in _ENGINES:  # made when its engine was
        path.parent.mkdir(parents=True, exist_ok=True)
    return url


def store() -> sa.Engine:
    url = store_url()
    if url not in _ENGINES:
        engine = sa.create_engine(url, **_pool(url))
        if engine.dialect.name == "sqlite":
            # WAL with NORMAL sync survives a killed process (what the journal is for) without
            # an fsync per small commit.
            sa.event.listen(engine, "connect", _sqlite_wal)
        metadata.create_all(engine)
        _ENGINES[url] = engine
    return _ENGINES[url]


def _pool(url: str) -> dict[str, int]:
    """A server store's pool, per process: LAWFUL_DB_POOL_SIZE connections kept open (10 by
    default), LAWFUL_DB_MAX_OVERFLOW more opened under a burst and closed after it (20). A
    pool smaller than the requests in flight opens and closes a connection per request."""
    if sa.engine.make_url(url).get_backend_name() == "sqlite":
        return {}
    return {"pool_size": int(os.environ.get("LAWFUL_DB_POOL_SIZE", "10")),
            "max_overflow": int(os.environ.get("LAWFUL_DB_MAX_OVERFLOW", "20"))}


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite(conn: sa.Connection) -> Any | None:
    """The driver's own connection when the store is SQLite: the engine writes to its store a
    few times per request, and a Core statement costs several times the SQLite work."""
    return conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None


def _stamp(conn: sa.Connection, value: dt.datetime) -> Any:
    """A datetime as SQLAlchemy stores it in this database (SQLite: its text form)."""
    process = runs.c.created_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process(value) if process else value


def identity_hashes(identities: Identities) -> list[tuple[str, str]]:
    kinds = [(kind.value, value) for kind, values in identities.values.items()
             for value in sorted(values)]
    digests = keyed_hashes([f"{kind}:{value}" for kind, value in kinds], "identity")
    return [(digest, kind) for digest, (kind, _) in zip(digests, kinds, strict=True)]


def request_digest(action: str, identities: Identities) -> str:
    text = json.dumps([action, identities.as_dict()], sort_keys=True)
    return keyed_hash(text, "request")


def open_run(run_id: str, action: str, digest: str, manifest_digest: str,
             payload: dict[str, Any]) -> None:
    blob = encrypt(json.dumps(payload, default=str).encode())
    with store().begin() as conn:
        raw = _sqlite(conn)
        if raw is not None:
            raw.execute("INSERT INTO engine_run (id, action, request_digest, manifest_digest, "
                        "status, payload, created_at) VALUES (?, ?, ?, ?, 'planned', ?, ?)",
                        (run_id, action, digest, manifest_digest, blob, _stamp(conn, now())))
            return
        conn.execute(runs.insert().values(
            id=run_id, action=action, request_digest=digest, manifest_digest=manifest_digest,
            status="planned", payload=blob, created_at=now()))


@dataclass(frozen=True)
class Unfinished:
    run_id: str
    manifest_digest: str
    payload: dict[str, Any]


def unfinished_run(action: str, digest: str) -> Unfinished | None:
    """The newest run of the same request that was planned but never closed (a crash)."""
    with store().connect() as conn:
        raw = _sqlite(conn)
        if raw is not None:
            cursor = raw.execute(
                "SELECT id, payload, manifest_digest FROM engine_run WHERE action = ? AND "
                "request_digest = ? AND status = 'planned' ORDER BY created_at DESC LIMIT 1",
                (action, digest))
            row = cursor.fetchone()
            cursor.close()
        else:
            row = conn.execute(sa.select(runs.c.id, runs.c.payload, runs.c.manifest_digest
                                         ).where(
                runs.c.action == action, runs.c.request_digest == digest,
                runs.c.status == "planned").order_by(runs.c.created_at.desc())).first()
    if row is None or row[1] is None:
        return None
    return Unfinished(row[0], row[2], json.loads(decrypt(row[1])))


def record_step(run_id: str, system: str, detail: dict[str, Any]) -> None:
    with store().begin() as conn:
        raw = _sqlite(conn)
        if raw is not None:  # the first record of a step stays, as below
            raw.execute("INSERT OR IGNORE INTO engine_run_step (run_id, system, detail, done_at) "
                        "VALUES (?, ?, ?, ?)", (run_id, system, json.dumps(detail, default=str),
                                                _stamp(conn, now())))
            return
        exists = conn.execute(sa.select(run_steps.c.system).where(
            run_steps.c.run_id == run_id, run_steps.c.system == system)).first()
        if exists is None:
            conn.execute(run_steps.insert().values(
                run_id=run_id, system=system, detail=json.dumps(detail, default=str),
                done_at=now()))


def close_run(run_id: str, summary: dict[str, Any]) -> None:
    """Mark done and drop the encrypted plan: the values it held are erased now."""
    with store().begin() as conn:
        _close(conn, run_id, summary)


def _close(conn: sa.Connection, run_id: str, summary: dict[str, Any]) -> None:
    raw = _sqlite(conn)
    if raw is not None:
        raw.execute("UPDATE engine_run SET status = 'done', payload = NULL, summary = ?, "
                    "finished_at = ? WHERE id = ?",
                    (json.dumps(summary, default=str), _stamp(conn, now()), run_id))
        return
    conn.execute(runs.update().where(runs.c.id == run_id).values(
        status="done", payload=None, summary=json.dumps(summary, default=str),
        finished_at=now()))


def suppress_and_close(identities: Identities, reason: str, run_id: str,
                       summary: dict[str, Any], hashes: list[tuple[str, str]] | None = None
                       ) -> int:
    """suppress() and close_run() in one transaction of the store: both or neither.
    `hashes`: identity_hashes(identities), when the caller computed them already."""
    with store().begin() as conn:
        added = _suppress(conn, identities, reason, hashes)
        _close(conn, run_id, summary)
    return added


def suppress(identities: Identities, reason: str) -> int:
    """Remember erased identities as keyed hashes, so a later import does not re-contact."""
    with store().begin() as conn:
        return _suppress(conn, identities, reason)


def _suppress(conn: sa.Connection, identities: Identities, reason: str,
              hashes: list[tuple[str, str]] | None = None) -> int:
    pairs = dict(identity_hashes(identities) if hashes is None else hashes)
    if conn.dialect.name == "sqlite" and pairs:
        # A batch adds tens of thousands: the driver's executemany, the duplicates ignored by
        # the primary key, the count of rows added from the connection's own change counter.
        added = _stamp(conn, now())
        raw: Any = conn.connection.dbapi_connection
        before = raw.total_changes
        cursor = raw.cursor()
        cursor.executemany("INSERT OR IGNORE INTO engine_suppression (hash, kind, reason, "
                           "added_at) VALUES (?, ?, ?, ?)",
                           # in key order: each B-tree page is filled once, not revisited
                           [(d, k, reason, added) for d, k in sorted(pairs.items())])
        cursor.close()
        return raw.total_changes - before
    digests = list(pairs)
    for start in range(0, len(digests), 1000):
        chunk = digests[start:start + 1000]
        for row in conn.execute(sa.select(suppression.c.hash).where(
                suppression.c.hash.in_(chunk))):
            pairs.pop(row.hash, None)
    if pairs:
        added_at = now()
        conn.execute(suppression.insert(), [
            {"hash": d, "kind": k, "reason": reason, "added_at": added_at}
            for d, k in pairs.items()])
    return len(pairs)


def is_suppressed(kind: Identity, normalised: str) -> bool:
    digest = keyed_hash(f"{kind.value}:{normalised}", "identity")
    with store().connect() as conn:
        return conn.execute(sa.select(suppression.c.hash).where(
            suppression.c.hash == digest)).first() is not None


def set_restricted(identities: Identities, restricted: bool) -> None:
    pairs = identity_hashes(identities)
    with store().begin() as conn:
        conn.execute(restrictions.delete().where(
            restrictions.c.hash.in_([d for d, _ in pairs])))
        if restricted:
            conn.execute(restrictions.insert(), [
                {"hash": d, "kind": k, "since": now()} for d, k in pairs])


def restricted_any(identities: Identities) -> bool:
    pairs = identity_hashes(identities)
    if not pairs:
        return False
    digests = [d for d, _ in pairs]
    engine = store()
    if engine.dialect.name == "sqlite":
        # Asked on every access: the driver directly, without a Core statement's overhead.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for start in range(0, len(digests), 500):
                chunk = digests[start:start + 500]
                cursor.execute("SELECT 1 FROM engine_restriction WHERE hash IN "
                               f"({', '.join('?' * len(chunk))}) LIMIT 1", chunk)
                if cursor.fetchone() is not None:
                    return True
            return False
        finally:
            raw.close()
    with engine.connect() as conn:
        return conn.execute(sa.select(restrictions.c.hash).where(
            restrictions.c.hash.in_(digests))).first() is not None
