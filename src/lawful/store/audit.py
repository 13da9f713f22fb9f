"""The audit journal: every state change, staff action, e-mail and execution, hash-chained.

Each entry carries an HMAC (lawful's derived `audit` key) over the previous entry's hash and
its own content, so an edited, inserted or removed entry breaks the chain from that point, and
nobody without the key can forge a consistent replacement. The head row records the newest
link, so entries cut from the end are found too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from lawful.engine.state import now
from lawful.keys import derived_key
from lawful.store.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def _digest(prev: str, seq: int, at: dt.datetime, actor: str, action: str,
            request_id: str | None, detail: str) -> str:
    body = json.dumps([prev, seq, at.isoformat(), actor, action, request_id, detail],
                      separators=(",", ":"))
    return hmac.new(derived_key("audit"), body.encode(), hashlib.sha256).hexdigest()


def append(s: Session, actor: str, action: str, request_id: str | None = None,
           **detail: Any) -> AuditEntry:
    """Add one entry in the caller's transaction (it commits or rolls back with the change)."""
    # Updating the head first takes its row lock (PostgreSQL) or the write lock (SQLite):
    # concurrent appends queue here instead of forking the chain.
    s.execute(sa.update(AuditHead).where(AuditHead.id == 1)
              .values(seq=AuditHead.seq + 1))
    seq, prev = s.execute(sa.select(AuditHead.seq, AuditHead.hash)
                          .where(AuditHead.id == 1)).one()
    at = now()
    text = json.dumps(detail, sort_keys=True, default=str)
    entry = AuditEntry(seq=seq, at=at, actor=actor, action=action, request_id=request_id,
                       detail=text, prev_hash=prev,
                       hash=_digest(prev, seq, at, actor, action, request_id, text))
    s.add(entry)
    s.execute(sa.update(AuditHead).where(AuditHead.id == 1).values(hash=entry.hash))
    return entry


@dataclass
class Verdict:
    ok: bool
    entries: int
    problems: list[str]


def verify(s: Session) -> Verdict:
    """Walk the chain from the genesis link; report every break, by sequence number."""
    problems: list[str] = []
    prev, expected, count = GENESIS, 1, 0
    rows = s.execute(sa.select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    for e in rows:
        count += 1
        if e.seq != expected:
            problems.append(f"entries {expected}..{e.seq - 1} are missing")
        if e.prev_hash != prev:
            problems.append(f"entry {e.seq} does not follow the entry before it")
        if e.hash != _digest(e.prev_hash, e.seq, e.at, e.actor, e.action, e.request_id,
                             e.detail):
            problems.append(f"entry {e.seq} was altered")
        prev, expected = e.hash, e.seq + 1
    head = s.get(AuditHead, 1)
    if head is None:
        problems.append("the chain's head record is missing")
    elif head.seq != expected - 1 or head.hash != prev:
        problems.append(f"entries after {expected - 1} were removed (the head is at {head.seq})")
    return Verdict(not problems, count, problems)


def entries(s: Session, request_id: str | None = None, limit: int = 1000) -> list[AuditEntry]:
    query = sa.select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if request_id is not None:
        query = query.where(AuditEntry.request_id == request_id)
    return list(s.execute(query).scalars())
