"""Legal holds on persons: a legal claim halts retention on every row of the person.

A hold records the person's identities (encrypted: they are needed to find the rows again at
every run, including rows added since) and the reason. Each retention run searches the held
persons' rows with the engine's search (every identity, every table) and leaves them alone,
reporting how many rows each hold kept. Releasing a hold keeps its record, with when and why.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lawful.engine import state
from lawful.engine.connect import Connections
from lawful.engine.identities import Identities
from lawful.engine.plan import Plan, TableKey
from lawful.engine.search import Searcher
from lawful.keys import decrypt, encrypt
from lawful.manifest.model import Identity
from lawful.retention import journal


@dataclass
class Hold:
    id: str
    reason: str
    placed_at: str
    released_at: str | None = None
    release_reason: str | None = None
    identities: dict[str, list[str]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _digest(identities: Identities) -> str:
    return state.request_digest("hold", identities)


def place(identities: Identities, reason: str) -> Hold:
    if not reason.strip():
        raise ValueError("a legal hold needs a reason (the claim it preserves data for)")
    digest = _digest(identities)
    with journal.store().begin() as conn:
        row = conn.execute(sa.select(journal.holds).where(
            journal.holds.c.digest == digest, journal.holds.c.released_at.is_(None))).first()
        if row is not None:
            return _hold(row, identities)
        hold_id = uuid.uuid4().hex
        conn.execute(journal.holds.insert().values(
            id=hold_id, identities=encrypt(json.dumps(identities.as_dict()).encode()),
            digest=digest, reason=reason.strip(), placed_at=state.now()))
    return Hold(hold_id, reason.strip(), state.now().isoformat(timespec="seconds"),
                identities=identities.as_dict())


def release(identities: Identities, reason: str | None = None) -> list[Hold]:
    digest = _digest(identities)
    with journal.store().begin() as conn:
        rows = conn.execute(sa.select(journal.holds).where(
            journal.holds.c.digest == digest, journal.holds.c.released_at.is_(None))).all()
        conn.execute(journal.holds.update().where(
            journal.holds.c.id.in_([r.id for r in rows])).values(
            released_at=state.now(), release_reason=reason))
    return [_hold(r, identities) for r in rows]


def _hold(row: Any, identities: Identities | None = None) -> Hold:
    ids = identities.as_dict() if identities else json.loads(decrypt(row.identities))
    return Hold(row.id, row.reason, row.placed_at.isoformat(timespec="seconds"),
                row.released_at.isoformat(timespec="seconds") if row.released_at else None,
                row.release_reason, ids)


def active() -> list[Hold]:
    with journal.store().connect() as conn:
        rows = conn.execute(sa.select(journal.holds).where(
            journal.holds.c.released_at.is_(None)).order_by(journal.holds.c.placed_at)).all()
    return [_hold(r) for r in rows]


def listing(include_released: bool = False) -> list[Hold]:
    with journal.store().connect() as conn:
        stmt = sa.select(journal.holds).order_by(journal.holds.c.placed_at)
        if not include_released:
            stmt = stmt.where(journal.holds.c.released_at.is_(None))
        return [_hold(r) for r in conn.execute(stmt)]


@dataclass
class HeldRows:
    """The rows the active holds keep, by table, and the reasons, by table."""

    rows: dict[TableKey, set[tuple[Any, ...]]]
    reasons: dict[TableKey, list[str]]


def held_rows(plan: Plan, conns: Connections) -> HeldRows:
    rows: dict[TableKey, set[tuple[Any, ...]]] = defaultdict(set)
    reasons: dict[TableKey, list[str]] = defaultdict(list)
    for hold in active():
        ids = Identities({Identity(k): set(v) for k, v in (hold.identities or {}).items()})
        found = Searcher(plan, conns).find(ids)
        for key, found_rows in found.rows.items():
            if found_rows:
                rows[key] |= set(found_rows)
                reasons[key].append(hold.reason)
    return HeldRows(dict(rows), dict(reasons))
