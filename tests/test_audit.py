"""The audit journal's hash chain: a normal history verifies; an edited, removed, cut or
re-hashed entry is found; concurrent appends on SQLite and PostgreSQL never fork the chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from lawful.keys import derived_key
from lawful.manifest import load_manifest
from lawful.store import audit, db
from lawful.store.models import AuditEntry, AuditHead
from tests.conftest import KERF
from tests.test_requests_workflow import HYPO, World, base_env, postgres_store, verified


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, base_env(monkeypatch, tmp_path), load_manifest(KERF))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty, current app store on SQLite or on a fresh PostgreSQL schema."""
    base_env(monkeypatch, tmp_path)
    if request.param == "postgres":
        with postgres_store(monkeypatch):
            db.ensure_current()
            yield "postgres"
    else:
        db.ensure_current()
        yield "sqlite"


def history(world: World) -> int:
    """A normal day: requests submitted, verified, executed, refused, extended."""
    svc = world.service()
    verified(svc, "access", world.person(0))
    erasure, _ = verified(svc, "erasure", world.person(1))
    svc.extend(erasure, "lead:ann", 1, "many archives")
    svc.execute(erasure, "agent:bo")
    refused, _ = verified(svc, "erasure", "nobody@example.org")
    svc.refuse(refused, "lead:ann", "identity_not_verified", "no answer")
    with db.session() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(AuditEntry)).scalar_one())


def verdict() -> audit.Verdict:
    with db.session() as s:
        return audit.verify(s)


def sql(statement: str, **params: Any) -> None:
    with db.engine().begin() as conn:
        conn.execute(sa.text(statement), params)


def entry(seq: int) -> AuditEntry:
    with db.session() as s:
        found = s.get(AuditEntry, seq)
        assert found is not None
        return found


def body(prev: str, e: AuditEntry, **changed: Any) -> str:
    """The text audit hashes, as an attacker who read the code would rebuild it."""
    values = {"prev": prev, "seq": e.seq, "at": e.at.isoformat(), "actor": e.actor,
              "action": e.action, "request_id": e.request_id, "detail": e.detail, **changed}
    return json.dumps([values["prev"], values["seq"], values["at"], values["actor"],
                       values["action"], values["request_id"], values["detail"]],
                      separators=(",", ":"))


def test_a_normal_history_verifies(world: World) -> None:
    n = history(world)
    assert n > 20
    result = verdict()
    assert result.ok and result.entries == n and result.problems == []
    with db.session() as s:
        head = s.get(AuditHead, 1)
        seqs = list(s.execute(sa.select(AuditEntry.seq).order_by(AuditEntry.seq)).scalars())
        actions = {e.action for e in audit.entries(s)}
    assert head is not None and head.seq == n and seqs == list(range(1, n + 1))
    assert {"request.received", "verification.code_sent", "email.queued", "request.verified",
            "request.started", "request.completed", "request.extended", "request.refused",
            "recipient.notified"} <= actions
    # Every entry names who acted.
    assert entry(1).actor == "requester"


@pytest.mark.parametrize(("column", "value"), [
    ("detail", '{"type": "erasure"}'),
    ("actor", "lead:mallory"),
    ("action", "request.viewed"),
    ("request_id", "0" * 32),
    ("at", "2001-01-01 00:00:00"),
])
def test_an_edited_entry_is_found(world: World, column: str, value: str) -> None:
    history(world)
    sql(f"UPDATE audit SET {column} = :v WHERE seq = 3", v=value)
    result = verdict()
    assert not result.ok and result.problems == ["entry 3 was altered"]


def test_a_removed_middle_entry_is_found(world: World) -> None:
    n = history(world)
    sql("DELETE FROM audit WHERE seq = 5")
    result = verdict()
    assert not result.ok and result.entries == n - 1
    assert "entries 5..5 are missing" in result.problems
    assert "entry 6 does not follow the entry before it" in result.problems


def test_removed_last_entries_are_found(world: World) -> None:
    n = history(world)
    sql("DELETE FROM audit WHERE seq = :n", n=n)
    result = verdict()
    assert not result.ok
    assert result.problems == [f"entries after {n - 1} were removed (the head is at {n})"]
    sql("DELETE FROM audit WHERE seq > :k", k=n - 4)
    assert verdict().problems == [f"entries after {n - 4} were removed (the head is at {n})"]


def test_a_removed_head_is_found(world: World) -> None:
    history(world)
    sql("DELETE FROM audit_head")
    assert verdict().problems == ["the chain's head record is missing"]


def test_rewriting_the_chain_without_the_key_is_found(world: World) -> None:
    """An attacker edits entry 4 and rebuilds every later link and the head with plain
    SHA-256 (or an HMAC under a key of their own): the chain looks consistent, yet each
    rewritten entry is reported."""
    n = history(world)
    prev = entry(3).hash
    for seq in range(4, n + 1):
        e = entry(seq)
        detail = '{"forged": true}' if seq == 4 else e.detail
        text = body(prev, e, detail=detail)
        new = hashlib.sha256(text.encode()).hexdigest() if seq % 2 else \
            hmac.new(b"attacker's own key", text.encode(), hashlib.sha256).hexdigest()
        sql("UPDATE audit SET detail = :d, prev_hash = :p, hash = :h WHERE seq = :s",
            d=detail, p=prev, h=new, s=seq)
        prev = new
    sql("UPDATE audit_head SET hash = :h", h=prev)
    result = verdict()
    assert not result.ok
    assert result.problems == [f"entry {seq} was altered" for seq in range(4, n + 1)]


def test_a_re_hashed_single_entry_is_found(world: World) -> None:
    history(world)
    e = entry(2)
    text = body(e.prev_hash, e, detail='{"x": 1}')
    sql("UPDATE audit SET detail = :d, hash = :h WHERE seq = 2", d='{"x": 1}',
        h=hashlib.sha256(text.encode()).hexdigest())
    result = verdict()
    assert "entry 2 was altered" in result.problems
    assert "entry 3 does not follow the entry before it" in result.problems


def test_the_keyed_hash_is_what_verify_checks(world: World) -> None:
    """Sanity of the tamper tests: with lawful's key, a rebuilt entry verifies again."""
    history(world)
    e = entry(2)
    sql("UPDATE audit SET detail = '{}' WHERE seq = 2")
    assert not verdict().ok
    sql("UPDATE audit SET detail = :d WHERE seq = 2", d=e.detail)
    assert verdict().ok
    text = body(e.prev_hash, e)
    assert e.hash == hmac.new(derived_key("audit"), text.encode(), hashlib.sha256).hexdigest()


def test_a_rolled_back_change_leaves_no_entry(store: str) -> None:
    with db.transaction() as s:
        audit.append(s, "lawful", "first")
    with pytest.raises(RuntimeError), db.transaction() as s:
        audit.append(s, "lawful", "never")
        raise RuntimeError("the change failed")
    with db.transaction() as s:
        audit.append(s, "lawful", "second")
    result = verdict()
    assert result.ok and result.entries == 2
    with db.session() as s:
        assert [e.action for e in audit.entries(s)] == ["second", "first"]


@HYPO
@given(detail=st.dictionaries(st.text(max_size=8),
                              st.one_of(st.text(max_size=30), st.integers(), st.none(),
                                        st.booleans()), max_size=4),
       actor=st.text(min_size=1, max_size=40).filter(lambda a: "\x00" not in a))
def test_any_detail_round_trips_and_any_change_is_found(world: World, detail: dict[str, Any],
                                                        actor: str) -> None:
    detail = {k.replace("\x00", ""): v.replace("\x00", "") if isinstance(v, str) else v
              for k, v in detail.items()}
    db.ensure_current()
    with db.transaction() as s:
        added = audit.append(s, actor, "test.any", None, **detail)
        seq = added.seq
    assert verdict().ok
    stored = entry(seq)
    assert stored.actor == actor and json.loads(stored.detail) == detail
    sql("UPDATE audit SET detail = :d WHERE seq = :s", d=stored.detail + " ", s=seq)
    assert f"entry {seq} was altered" in verdict().problems
    sql("UPDATE audit SET detail = :d WHERE seq = :s", d=stored.detail, s=seq)
    assert verdict().ok


@pytest.mark.parametrize("threads", [8])
def test_concurrent_appends_keep_one_chain(store: str, threads: int) -> None:
    per_thread = 12
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with db.transaction() as s:
                    audit.append(s, f"worker:{n}", "test.concurrent", None, i=i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    total = threads * per_thread
    result = verdict()
    assert result.ok, result.problems
    assert result.entries == total
    with db.session() as s:
        seqs = list(s.execute(sa.select(AuditEntry.seq).order_by(AuditEntry.seq)).scalars())
        per_actor = dict(s.execute(sa.select(AuditEntry.actor, sa.func.count())
                                   .group_by(AuditEntry.actor)).all())
        head = s.get(AuditHead, 1)
    assert seqs == list(range(1, total + 1))
    assert per_actor == {f"worker:{n}": per_thread for n in range(threads)}
    assert head is not None and head.seq == total
