"""A batch's reads on two PostgreSQL connections, and its journal written beside its writes,
keep the engine's guarantees: results in the order of the statements, a failing statement
named and nothing left running, the journal durable before any database commits, and a
journal that cannot be written leaves the databases untouched."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lawful.demo.generate import generate
from lawful.engine import erase as erase_module
from lawful.engine import state
from lawful.engine.connect import Connections, EngineError
from lawful.engine.erase import erase
from lawful.engine.identities import Identities
from lawful.engine.plan import Plan, TableKey, build_plan
from lawful.engine.readahead import read_ahead
from lawful.manifest import load_manifest
from lawful.manifest.model import Identity
from tests.conftest import KERF
from tests.kerfdb import backend_url, execute, snapshot


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(load_manifest(KERF))


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = backend_url("postgres", "lawful_read_ahead_test", tmp_path)
    generate(url, 80, seed=5)
    monkeypatch.setenv("KERF_DATABASE_URL", url)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "read-ahead-test-secret-key")
    yield url


def everyone(url: str) -> Identities:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        emails = conn.execute(sa.text("SELECT email FROM customer ORDER BY id")).scalars().all()
    engine.dispose()
    return Identities.of({Identity.email: emails}, "NL")


def test_results_come_in_the_order_of_the_statements_from_two_backends(url: str) -> None:
    engine = sa.create_engine(url)
    conns = [engine.raw_connection() for _ in range(2)]
    for conn in conns:
        conn.driver_connection.autocommit = True
    # The first statement is the slowest: the second connection runs the next ones meanwhile.
    queries = [(None, "SELECT pg_backend_pid(), 0 FROM pg_sleep(0.3)", None)] + [
        (None, f"SELECT pg_backend_pid(), {i}", None) for i in range(1, 6)]
    try:
        out = list(read_ahead([c.driver_connection for c in conns], queries))
    finally:
        for conn in conns:
            conn.close()
        engine.dispose()
    assert [index for index, _ in out] == list(range(6))
    assert [rows[0][1] for _, rows in out] == list(range(6))
    pids = {rows[0][0] for _, rows in out}
    assert len(pids) == 2  # both backends worked


def test_a_caller_that_stops_early_leaves_no_worker_running(url: str) -> None:
    engine = sa.create_engine(url)
    conns = [engine.raw_connection() for _ in range(2)]
    for conn in conns:
        conn.driver_connection.autocommit = True
    before = threading.active_count()
    queries = [(None, "SELECT 1 FROM pg_sleep(0.05)", None) for _ in range(20)]
    started = time.perf_counter()
    reader = read_ahead([c.driver_connection for c in conns], queries)
    next(reader)
    reader.close()
    assert threading.active_count() == before
    assert time.perf_counter() - started < 20 * 0.05  # the rest was never run
    for conn in conns:  # and the connections are usable
        cursor = conn.driver_connection.cursor()
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
        conn.close()
    engine.dispose()


@pytest.fixture
def spread(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every read on two connections, whatever its size (80 persons bind some hundreds of
    values, under the threshold); the list counts the calls to read_ahead."""
    from lawful.engine import connect, search

    calls: list[int] = []
    real = connect.read_ahead

    def counted(connections: list[object], queries: list[object]) -> Iterator[object]:
        calls.append(len(queries))
        return real(connections, queries)

    monkeypatch.setattr(search, "SPREAD_FROM", 0)
    monkeypatch.setattr(erase_module, "SPREAD_FROM", 0)
    monkeypatch.setattr(connect, "read_ahead", counted)
    return calls


def test_a_batch_search_names_the_column_the_database_lacks(url: str, plan: Plan,
                                                             spread: list[int]) -> None:
    """The batch path (arrays, two readers) fails like the single-person one: the table and
    the column are named, and nothing is changed."""
    ids = everyone(url)
    execute(url, "ALTER TABLE support_ticket DROP COLUMN body")
    before = rows_of_all_but(url, "support_ticket")
    with pytest.raises(EngineError, match=r"support_ticket.*lacks the column\(s\) body"):
        erase(plan, ids, persons=80)
    assert rows_of_all_but(url, "support_ticket") == before
    assert spread  # the two connections were used
    assert not [t for t in threading.enumerate() if t.name == "lawful-read-ahead"]


def test_a_failure_while_rows_are_taken_leaves_no_read_running(
        url: str, plan: Plan, spread: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller fails between two results: the readers stop and are joined before the
    connections go back to the pool, which the next run then uses as usual."""
    from lawful.engine import connect, search

    counted = connect.read_ahead

    def slowly(connections: list[object], queries: list[tuple[object, str, object]]
               ) -> Iterator[object]:
        # Each statement takes 0.2 s: without being stopped, the readers would still be
        # running, on pooled connections, long after the caller failed.
        slow = [(tp, re.sub(r"\sWHERE\s(.*)$", r" WHERE (SELECT 1 FROM pg_sleep(0.2)) = 1 "
                            r"AND (\1)", sql, count=1, flags=re.S), params)
                for tp, sql, params in queries]
        assert all("pg_sleep" in sql for _, sql, _ in slow)
        return counted(connections, slow)

    monkeypatch.setattr(connect, "read_ahead", slowly)
    real = search.Searcher._take_all
    taken: list[int] = []

    def fail_on_second(self: search.Searcher, *args: object) -> None:
        taken.append(1)
        if len(taken) == 2:
            raise RuntimeError("the caller failed")
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(search.Searcher, "_take_all", fail_on_second)
    # What matters is the moment the connections go back to the pool: no reader may still
    # be using them then.
    at_close: list[list[str]] = []
    close = Connections.close

    def watched(self: Connections) -> None:
        at_close.append([t.name for t in threading.enumerate()
                         if t.name == "lawful-read-ahead"])
        close(self)

    monkeypatch.setattr(Connections, "close", watched)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="the caller failed"):
        erase(plan, everyone(url), persons=80)
    assert at_close and not any(at_close), at_close
    assert time.perf_counter() - started < 1.5  # stopped, not run to the end
    monkeypatch.setattr(search.Searcher, "_take_all", real)
    monkeypatch.setattr(connect, "read_ahead", counted)
    assert erase(plan, everyone(url), persons=80).verified


def rows_of_all_but(url: str, table: str) -> dict[str, list[tuple[object, ...]]]:
    engine = sa.create_engine(url)
    names = [t for t in sa.inspect(engine).get_table_names()
             if t not in (table, "lawful_journal")]
    out: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for name in names:
            out[name] = sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {name}"))),
                               key=repr)
    engine.dispose()
    assert "customer" in out
    return out


def test_the_search_reads_on_two_connections_and_finds_what_one_finds(
        url: str, plan: Plan, spread: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    from lawful.engine import connect, search

    ids = everyone(url)

    def found() -> dict[TableKey, set[object]]:
        conns = Connections(plan)
        with conns.session():
            result = search.Searcher(plan, conns).find(ids)
        return {k: set(v) for k, v in result.rows.items() if v}

    two = found()
    assert spread
    # The same search with the pipeline on one connection only.
    monkeypatch.setattr(connect, "read_ahead", None)
    original = connect.Connections.fetch_each

    def one_connection(self: Connections, conn: sa.Connection, queries: list,
                       stream: bool = True) -> Iterator[list[tuple[object, ...]]]:
        return original(self, conn, queries, stream=False)

    monkeypatch.setattr(connect.Connections, "fetch_each", one_connection)
    assert found() == two
    assert sum(map(len, two.values())) > 400


def test_the_journal_is_durable_before_the_database_commits(
        url: str, plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(erase_module, "ASIDE_FROM", 0)  # journal and hashes beside the writes
    seen: list[str | None] = []

    def at(where: str) -> None:
        if where == "shop:before-commit":
            engine = state.store()
            with engine.connect() as conn:
                seen.append(conn.execute(sa.select(state.runs.c.status)).scalar())

    monkeypatch.setattr(erase_module, "_fault_point", at)
    result = erase(plan, everyone(url), persons=80)
    assert result.verified
    assert seen == ["planned"]  # the run was in the journal when the database was about to commit
    assert result.suppressed > 80


def test_a_journal_that_cannot_be_written_leaves_the_database_untouched(
        url: str, plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(erase_module, "ASIDE_FROM", 0)
    before = snapshot(url)

    def broken(*_args: object) -> None:
        time.sleep(0.2)  # the writes are sent meanwhile; they must not commit
        raise OSError("the store's disk is full")

    monkeypatch.setattr(state, "open_run", broken)
    with pytest.raises(OSError, match="disk is full"):
        erase(plan, everyone(url), persons=80)
    assert snapshot(url) == before
