"""The engine's fast paths keep its guarantees: the marker table made on demand, deleted rows
checked by key even where the second search cannot reach them, per-row values joined in one
statement, and PostgreSQL's planner costs set only where the administrator left the default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lawful.demo.generate import generate
from lawful.engine import connect
from lawful.engine.erase import Eraser, erase
from lawful.engine.identities import Identities, normalise
from lawful.engine.plan import Plan, build_plan
from lawful.keys import keyed_hash
from lawful.manifest import load_manifest
from lawful.manifest.model import Identity
from tests.conftest import KERF, service_url
from tests.kerfdb import backend_url, execute, scalar

BACKENDS = ["sqlite", "postgres", "mysql"]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(load_manifest(KERF))


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = backend_url(request.param, "lawful_fast_paths_test", tmp_path)
    generate(url, 60, seed=11)
    monkeypatch.setenv("KERF_DATABASE_URL", url)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "fast-paths-test-secret-key")
    yield url


def ids(*emails: str) -> Identities:
    return Identities.of({Identity.email: list(emails)}, "NL")


def customers(url: str, where: str = "1 = 1") -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = list(conn.execute(sa.text(
            f"SELECT email FROM customer c WHERE email LIKE '%@%' AND {where} ORDER BY id"
        )).scalars())
    engine.dispose()
    return out


def test_the_marker_table_is_made_again_when_it_is_gone(url: str, plan: Plan) -> None:
    first, second = customers(url)[:2]
    assert erase(plan, ids(first)).verified
    execute(url, "DROP TABLE lawful_journal")
    result = erase(plan, ids(second))
    assert result.verified
    assert scalar(url, "SELECT count(*) FROM lawful_journal WHERE run_id = :r",
                  r=result.run_id) == 1


def test_the_first_erasure_in_a_new_database_goes_through_at_once(
        url: str, plan: Plan, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The marker table is made before the first write of a process, not after the write
    transaction failed on it (which psycopg reported as an aborted pipeline)."""
    from lawful.engine import erase as erase_module

    monkeypatch.setattr(erase_module, "_MARKER_MADE", set())  # a process that never wrote here
    caplog.set_level(logging.WARNING)
    result = erase(plan, ids(customers(url)[0]))
    assert result.verified
    assert scalar(url, "SELECT count(*) FROM lawful_journal WHERE run_id = :r",
                  r=result.run_id) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_batch_gives_every_row_its_own_pseudonym(url: str, plan: Plan) -> None:
    """Per-row values go in one joined UPDATE (PostgreSQL unnest, SQLite json_each)."""
    emails = customers(url)[:5]
    rows = {email: scalar(url, "SELECT id FROM customer WHERE email = :e", e=email)
            for email in emails}
    result = erase(plan, ids(*emails), persons=len(emails))
    assert result.verified
    for email, pk in rows.items():
        stored = scalar(url, "SELECT email FROM customer WHERE id = :i", i=pk)
        assert stored == keyed_hash(normalise(Identity.email, email))


@pytest.mark.parametrize("url", ["sqlite", "postgres"], indirect=True)
def test_a_deleted_row_the_search_cannot_reach_is_still_checked(
        url: str, plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the customer's e-mail is a pseudonym and no invoice leads back to them, their web
    visits are out of the second search's reach: only the check by key can see one left."""
    email = customers(url, """
        EXISTS (SELECT 1 FROM web_visit w WHERE w.customer_id = c.id)
        AND NOT EXISTS (SELECT 1 FROM invoice i WHERE i.customer_id = c.id
                        OR lower(i.billing_email) = lower(c.email))""")[0]
    real = Eraser._writes

    def keep_visits(self: Eraser, conn: Any, system: str, todo: dict[str, Any]) -> Any:
        todo = {t: ({**a, "delete": []} if t == "web_visit" else a) for t, a in todo.items()}
        return real(self, conn, system, todo)

    monkeypatch.setattr(Eraser, "_writes", keep_visits)
    result = erase(plan, ids(email))
    assert result.verified is False
    assert any(p.startswith("shop.web_visit:") and "not deleted" in p
               for p in result.leftovers), result.leftovers


def test_postgres_key_lookups_are_costed_for_cached_data_unless_chosen() -> None:
    base = service_url("postgres")
    sep = "&" if "?" in base else "?"
    chosen = f"{base}{sep}options=-crandom_page_cost%3D2"
    for target, chosen_value in ((base, None), (chosen, "2")):
        engine = connect.engine_for(target)
        with engine.connect() as conn:
            # What the connection started with (server or URL), and what it uses now.
            start = conn.execute(sa.text("SELECT reset_val FROM pg_settings WHERE name = "
                                         "'random_page_cost'")).scalar()
            session = conn.execute(sa.text("SHOW random_page_cost")).scalar()
        if chosen_value is not None:
            assert start == session == chosen_value  # a value someone chose stays
        else:
            assert session == ("1.1" if start == "4" else start)  # the default is lowered


def test_a_pooled_connection_the_server_closed_is_replaced() -> None:
    """No round trip per checkout (pool_pre_ping) on PostgreSQL: a connection the server has
    closed since (a restart, a terminated backend) is still never handed out."""
    base = service_url("postgres")
    sep = "&" if "?" in base else "?"
    engine = connect.engine_for(f"{base}{sep}application_name=lawful_alive_test")
    with engine.connect() as conn:
        first = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    other = sa.create_engine(base)
    with other.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first})
    other.dispose()
    time.sleep(0.3)  # the server's goodbye reaches the pooled connection's socket
    with engine.connect() as conn:
        again = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    assert again != first
    engine.dispose()


def test_a_batch_search_finds_what_the_plain_statements_find(url: str, plan: Plan,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """On PostgreSQL a batch binds one array per condition (= ANY); the rows found, and which
    of them only weakly, are exactly those of the plain IN-list statements every backend
    runs."""
    from lawful.engine import search
    from lawful.engine.connect import Connections

    everyone = ids(*customers(url))

    def found() -> tuple[dict[Any, set[Any]], dict[Any, set[Any]], int]:
        conns = Connections(plan)
        with conns.session():
            result = search.Searcher(plan, conns).find(everyone)
        return ({k: set(v) for k, v in result.rows.items() if v},
                {k: set(v) for k, v in result.weak.items() if v}, result.statements)

    batch_rows, batch_weak, statements = found()
    monkeypatch.setattr(search, "ARRAY_FROM", 10**9)  # never the array statements
    plain_rows, plain_weak, _ = found()
    assert batch_rows == plain_rows and batch_weak == plain_weak
    assert sum(map(len, batch_rows.values())) > 300  # orders, invoices, visits of 60 customers
    assert any(batch_weak.values())  # anonymous visits reached through a shared cookie
    if url.startswith("postgresql"):
        assert statements < 30  # one statement per table and round, whatever the persons
