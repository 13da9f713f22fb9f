"""The engine on real databases: the same tests on SQLite, PostgreSQL and MariaDB.

Every test builds a fresh Kerf database, acts through the engine, and then reads the database
itself to show what changed, and that nothing else did.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lawful.demo.generate import generate
from lawful.engine.access import access
from lawful.engine.clock import add, as_date, financial_year_end
from lawful.engine.connect import EngineError
from lawful.engine.erase import erase
from lawful.engine.identities import Identities
from lawful.engine.modify import InvalidValue, rectify, restrict
from lawful.engine.plan import Plan, build_plan
from lawful.manifest import load_manifest
from lawful.manifest.duration import Duration
from lawful.manifest.model import Identity
from tests.conftest import KERF
from tests.kerfdb import backend_url, execute, scalar, snapshot

BACKENDS = ["sqlite", "postgres", "mysql"]
PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Kerf:
    url: str
    plan: Plan
    backend: str

    def ids(self, email: str | None = None, **more: list[str]) -> Identities:
        given: dict[Identity, list[str]] = {Identity(k): v for k, v in more.items()}
        if email:
            given[Identity.email] = [email]
        return Identities.of(given, "NL")

    def one(self, sql: str, **params: Any) -> Any:
        return scalar(self.url, sql, **params)


@pytest.fixture(scope="module")
def kerf_plan() -> Plan:
    return build_plan(load_manifest(KERF))


@pytest.fixture(params=BACKENDS)
def kerf(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         kerf_plan: Plan) -> Iterator[Kerf]:
    url = backend_url(request.param, "lawful_engine_test", tmp_path)
    generate(url, 150, seed=7)
    monkeypatch.setenv("KERF_DATABASE_URL", url)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "engine-test-secret-key")
    yield Kerf(url, kerf_plan, request.param)


def well_known(k: Kerf) -> str:
    """A customer known under every identity: tickets, calls, visits, orders, invoices."""
    return k.one("""
        SELECT c.email FROM customer c
        WHERE EXISTS (SELECT 1 FROM support_ticket s WHERE lower(s.customer_email) = c.email)
          AND EXISTS (SELECT 1 FROM call_recording r WHERE r.phone = c.phone)
          AND EXISTS (SELECT 1 FROM web_visit w WHERE w.customer_id = c.id)
          AND EXISTS (SELECT 1 FROM invoice i WHERE i.customer_id = c.id)
        ORDER BY c.id""")


def test_access_finds_every_identity_and_table(kerf: Kerf) -> None:
    email = well_known(kerf)
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    phone = kerf.one("SELECT phone FROM customer WHERE id = :c", c=cid)
    report = access(kerf.plan, kerf.ids(email.upper()))
    rows = {t.table: len(t.rows) for t in report.tables}
    assert report.identities["phone"] == [phone]
    expected = {
        "customer": 1,
        "orders": kerf.one("SELECT count(*) FROM orders WHERE customer_id = :c", c=cid),
        "invoice": kerf.one("SELECT count(*) FROM invoice WHERE customer_id = :c", c=cid),
        "call_recording": kerf.one("SELECT count(*) FROM call_recording WHERE phone = :p",
                                   p=phone),
        "support_ticket": kerf.one(
            "SELECT count(*) FROM support_ticket WHERE lower(customer_email) = :e", e=email),
        # visits after login, and the same browser's anonymous visits before it
        "web_visit": kerf.one("""SELECT count(*) FROM web_visit WHERE customer_id = :c
            OR (customer_id IS NULL AND visitor_id IN
                (SELECT visitor_id FROM web_visit WHERE customer_id = :c))""", c=cid),
    }
    for table, count in expected.items():
        assert rows.get(table) == count, table
    about = next(t for t in report.tables if t.table == "invoice")
    assert about.held_by and "General Tax Act" in about.held_by
    assert "7 years" in " ".join(about.fields["billing_email"]["retention"])
    assert about.fields["billing_email"]["legal_bases"]


def test_shared_cookie_never_leads_to_another_customer(kerf: Kerf) -> None:
    a, b = (kerf.one("SELECT min(id) FROM customer"), kerf.one("SELECT max(id) FROM customer"))
    cookie = kerf.one("SELECT visitor_id FROM web_visit WHERE customer_id = :a", a=a)
    if cookie is None:
        pytest.skip("customer without visits in this seed")
    # B logs in on A's browser: the same cookie id on B's visit.
    execute(kerf.url, "INSERT INTO web_visit (id, visitor_id, customer_id, ip_address, "
            "user_agent, path, visited_at) VALUES (999999, :v, :b, '10.0.0.1', 'ua', '/', "
            ":t)", [{"v": cookie, "b": b, "t": dt.datetime(2026, 1, 1)}])
    email_a = kerf.one("SELECT email FROM customer WHERE id = :a", a=a)
    email_b = kerf.one("SELECT email FROM customer WHERE id = :b", b=b)
    report = access(kerf.plan, kerf.ids(email_a))
    emails = [r["email"] for t in report.tables if t.table == "customer" for r in t.rows]
    assert emails == [email_a] and email_b not in json.dumps(report.as_dict(), default=str)
    # erasing A leaves B's visit and B's account alone
    erase(kerf.plan, kerf.ids(email_a))
    assert kerf.one("SELECT count(*) FROM web_visit WHERE id = 999999") == 1
    assert kerf.one("SELECT email FROM customer WHERE id = :b", b=b) == email_b


def test_erasure_removes_the_person_and_nothing_else(kerf: Kerf) -> None:
    email = well_known(kerf)
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    before = snapshot(kerf.url)
    owned = _owned_keys(kerf, cid, email)
    report = access(kerf.plan, kerf.ids(email))
    found = {t.table for t in report.tables}
    result = erase(kerf.plan, kerf.ids(email))
    assert result.verified, result.leftovers
    after = snapshot(kerf.url)
    held = {"invoice", "payment"}
    for table, rows in before.items():
        for pk, row in rows.items():
            if pk in owned.get(table, set()):
                continue
            assert after[table].get(pk) == row, f"{table} {pk} of someone else changed"
    for table in held & found:
        for pk in owned[table]:
            assert after[table][pk] == before[table][pk], f"held {table} {pk} changed"
    customer = dict(zip(_columns(kerf, "customer"), after["customer"][(cid,)], strict=True))
    assert PSEUDONYM.match(customer["email"]) and customer["phone"] is None
    assert customer["first_name"] == "(erased)" and customer["company"] is None
    for table in ("support_ticket", "call_recording", "newsletter_subscriber", "web_visit"):
        for pk in owned.get(table, set()):
            assert pk not in after[table], f"{table} {pk} not deleted"
    flat = json.dumps({t: list(r.values()) for t, r in after.items() if t not in held},
                      default=str).lower()
    assert email not in flat


def _columns(k: Kerf, table: str) -> list[str]:
    engine = sa.create_engine(k.url)
    names = [c["name"] for c in sa.inspect(engine).get_columns(table)]
    engine.dispose()
    return names


def _owned_keys(k: Kerf, cid: int, email: str) -> dict[str, set[tuple[Any, ...]]]:
    """The person's rows by hand-written SQL: what the engine must find, no more."""
    phone = k.one("SELECT phone FROM customer WHERE id = :c", c=cid)
    queries = {
        "customer": "SELECT id FROM customer WHERE id = :c",
        "address": "SELECT id FROM address WHERE customer_id = :c",
        "quote": "SELECT id FROM quote WHERE customer_id = :c",
        "orders": "SELECT id FROM orders WHERE customer_id = :c",
        "invoice": "SELECT id FROM invoice WHERE customer_id = :c",
        "payment": "SELECT p.id FROM payment p JOIN invoice i ON i.id = p.invoice_id "
                   "WHERE i.customer_id = :c",
        "testimonial": "SELECT id FROM testimonial WHERE customer_id = :c",
        "id_document": "SELECT id FROM id_document WHERE customer_id = :c",
        "support_ticket": "SELECT id FROM support_ticket WHERE lower(customer_email) = :e",
        "newsletter_subscriber": "SELECT id FROM newsletter_subscriber WHERE lower(email) = :e",
        "call_recording": "SELECT id FROM call_recording WHERE phone = :p",
        "job_applicant": "SELECT id FROM job_applicant WHERE lower(email) = :e OR phone = :p",
        "web_visit": "SELECT id FROM web_visit WHERE customer_id = :c OR (customer_id IS NULL "
                     "AND visitor_id IN (SELECT visitor_id FROM web_visit WHERE customer_id = :c))",
    }
    engine = sa.create_engine(k.url)
    out: dict[str, set[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table, sql in queries.items():
            out[table] = {(r[0],) for r in conn.execute(sa.text(sql),
                                                        {"c": cid, "e": email, "p": phone})}
    engine.dispose()
    return out


def test_second_erasure_changes_nothing(kerf: Kerf) -> None:
    email = well_known(kerf)
    erase(kerf.plan, kerf.ids(email))
    once = snapshot(kerf.url)
    again = erase(kerf.plan, kerf.ids(email))
    assert again.verified and snapshot(kerf.url) == once
    assert all(t.deleted == 0 and t.anonymised == 0 for t in again.tables)


def test_dry_run_changes_nothing(kerf: Kerf) -> None:
    email = well_known(kerf)
    before = snapshot(kerf.url)
    result = erase(kerf.plan, kerf.ids(email), dry_run=True)
    assert result.dry_run and result.run_id is None
    assert any(t.deleted for t in result.tables) and snapshot(kerf.url) == before


def test_partner_is_not_erased_with_a_customer(kerf: Kerf) -> None:
    email = well_known(kerf)
    partners = snapshot(kerf.url)["partner"]
    erase(kerf.plan, kerf.ids(email))
    assert snapshot(kerf.url)["partner"] == partners


def test_legal_hold_reports_law_and_date(kerf: Kerf) -> None:
    email = well_known(kerf)
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    latest = kerf.one("SELECT max(issued_at) FROM invoice WHERE customer_id = :c", c=cid)
    latest = latest if isinstance(latest, dt.datetime) else dt.datetime.fromisoformat(latest)
    result = erase(kerf.plan, kerf.ids(email), dry_run=True)
    invoice = next(t for t in result.tables if t.table == "invoice")
    assert invoice.held == invoice.found > 0
    assert invoice.held_law and "General Tax Act" in invoice.held_law
    assert invoice.held_until == f"{latest.year + 7}-12-31"


def test_expired_hold_is_erased(kerf: Kerf) -> None:
    email = well_known(kerf)
    far = dt.date(2060, 1, 1)  # every invoice's 7 years have passed
    result = erase(kerf.plan, kerf.ids(email), today=far)
    invoice = next(t for t in result.tables if t.table == "invoice")
    assert invoice.held == 0 and invoice.anonymised == invoice.found
    assert result.verified


def test_batch_erasure_uses_the_same_statements_per_table(kerf: Kerf) -> None:
    emails = [r for r in _emails(kerf, 40)]
    few = erase(kerf.plan, Identities.of({Identity.email: emails[:4]}), dry_run=True)
    many = erase(kerf.plan, Identities.of({Identity.email: emails}), dry_run=True)
    assert many.statements <= few.statements + 6  # a round or two more, never one per person
    done = erase(kerf.plan, Identities.of({Identity.email: emails}), persons=len(emails))
    assert done.verified
    left = kerf.one(f"SELECT count(*) FROM customer WHERE email IN "
                    f"({', '.join(repr(e) for e in emails)})")
    assert left == 0


@pytest.mark.parametrize("kerf", ["sqlite"], indirect=True)
def test_a_run_says_what_it_is_doing(kerf: Kerf) -> None:
    """What the CLI shows beside a batch's spinner, in the order the run does it."""
    said: list[str] = []
    result = erase(kerf.plan, Identities.of({Identity.email: _emails(kerf, 5)}), persons=5,
                   phase=said.append)
    assert result.verified
    assert said[0] == "finding every row" and said[1].startswith("deciding for ")
    assert said[2:] == ["writing", "verifying: searching again",
                        "adding to the suppression list"]
    dry: list[str] = []
    erase(kerf.plan, Identities.of({Identity.email: _emails(kerf, 8)[5:]}), dry_run=True,
          phase=dry.append)
    assert "writing" not in dry  # a dry run writes nothing, and says nothing of it


def _emails(k: Kerf, n: int) -> list[str]:
    engine = sa.create_engine(k.url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT email FROM customer ORDER BY id")).scalars().all()
    engine.dispose()
    return list(rows[:n])


@pytest.mark.parametrize("weird", [
    "o'brien@example.com", 'quote"d@example.com', "per%cent@example.com",
    "under_score@example.com", "semi;colon@example.com", "zoë.ñandú@exämple.com",
    "Robert'); DROP TABLE customer;--@example.com",
])
def test_identities_with_sql_characters_are_found_exactly(kerf: Kerf, weird: str) -> None:
    execute(kerf.url, "INSERT INTO customer (id, email, created_at, restricted) VALUES "
            "(888888, :e, :t, :r)", [{"e": weird.lower(), "t": dt.datetime(2025, 1, 1),
                                      "r": False}])
    report = access(kerf.plan, kerf.ids(weird))
    assert [r["email"] for t in report.tables if t.table == "customer" for r in t.rows] == [
        weird.lower()]
    # a pattern character is a character, not a wildcard
    lookalike = weird.replace("%", "x").replace("_", "y")
    if lookalike != weird:
        assert access(kerf.plan, kerf.ids(lookalike)).tables == []
    erase(kerf.plan, kerf.ids(weird))
    assert kerf.one("SELECT count(*) FROM customer") > 100  # the table is still there


def test_unknown_person_is_an_empty_result(kerf: Kerf) -> None:
    report = access(kerf.plan, kerf.ids("nobody@nowhere.example"))
    assert report.tables == [] and not report.restricted
    result = erase(kerf.plan, kerf.ids("nobody@nowhere.example"))
    assert result.tables == [] and result.verified


def test_rectify_validates_and_changes_only_that_field(kerf: Kerf) -> None:
    email = well_known(kerf)
    with pytest.raises(InvalidValue, match="not an e-mail"):
        rectify(kerf.plan, kerf.ids(email), "customer.email", "not-an-address")
    with pytest.raises(InvalidValue, match="not a declared personal field"):
        rectify(kerf.plan, kerf.ids(email), "customer.created_at", "2020-01-01")
    before = snapshot(kerf.url)
    result = rectify(kerf.plan, kerf.ids(email), "customer.phone", "020 123 4567")
    assert result.tables == {"shop.customer": 1} and result.recipients
    after = snapshot(kerf.url)
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    assert kerf.one("SELECT phone FROM customer WHERE id = :c", c=cid) == "+31201234567"
    changed = [(t, pk) for t in before for pk in before[t] if before[t][pk] != after[t].get(pk)]
    assert changed == [("customer", (cid,))]


def test_restrict_and_unrestrict(kerf: Kerf) -> None:
    email = well_known(kerf)
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    restrict(kerf.plan, kerf.ids(email))
    assert kerf.one("SELECT restricted FROM customer WHERE id = :c", c=cid) in (1, True)
    assert access(kerf.plan, kerf.ids(email)).restricted
    restrict(kerf.plan, kerf.ids(email), restricted=False)
    assert kerf.one("SELECT restricted FROM customer WHERE id = :c", c=cid) in (0, False)
    assert not access(kerf.plan, kerf.ids(email)).restricted


def test_restriction_without_a_column_uses_lawfuls_list(kerf: Kerf) -> None:
    email = kerf.one("SELECT min(email) FROM newsletter_subscriber WHERE email NOT IN "
                     "(SELECT email FROM customer)")
    restrict(kerf.plan, kerf.ids(email))
    assert access(kerf.plan, kerf.ids(email)).restricted
    restrict(kerf.plan, kerf.ids(email), restricted=False)
    assert not access(kerf.plan, kerf.ids(email)).restricted


def test_missing_table_and_column_are_named(kerf: Kerf) -> None:
    data = load_manifest(KERF).model_copy(deep=True)
    table = next(t for t in data.systems[0].tables if t.name == "call_recording")
    table.fields[0].name = "phone_number"
    with pytest.raises(EngineError, match=r"call_recording.*phone_number"):
        access(build_plan(data), kerf.ids(well_known(kerf)))
    table.name = "call_recordings"
    with pytest.raises(EngineError, match=r"call_recordings.*no such table"):
        access(build_plan(data), kerf.ids(well_known(kerf)))


def test_a_database_that_is_down_changes_nothing(kerf: Kerf,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_manifest(KERF).model_copy(deep=True)
    second = data.systems[0].model_copy(deep=True)
    second.id, second.url = "crm", "postgresql+psycopg://nobody:secret@127.0.0.1:1/crm"
    second.tables = [t for t in second.tables if t.name == "newsletter_subscriber"]
    data.systems.append(second)
    before = snapshot(kerf.url)
    with pytest.raises(EngineError) as info:
        erase(build_plan(data), kerf.ids(well_known(kerf)))
    assert "crm" in str(info.value) and "cannot be reached" in str(info.value)
    assert "secret" not in str(info.value)
    assert snapshot(kerf.url) == before


@pytest.mark.parametrize("kerf", ["sqlite", "postgres"], indirect=True)
def test_a_person_with_100000_rows(kerf: Kerf) -> None:
    """On PostgreSQL, also one person whose reads are large enough for two connections."""
    cid = kerf.one("SELECT min(id) FROM customer")
    email = kerf.one("SELECT email FROM customer WHERE id = :c", c=cid)
    rows = [{"id": 2_000_000 + i, "v": f"bulk{i % 7}", "c": cid,
             "t": dt.datetime(2025, 1, 1) + dt.timedelta(minutes=i)} for i in range(100_000)]
    execute(kerf.url, "INSERT INTO web_visit (id, visitor_id, customer_id, ip_address, "
            "user_agent, path, visited_at) VALUES (:id, :v, :c, '10.1.1.1', 'ua', '/', :t)",
            rows)
    report = access(kerf.plan, kerf.ids(email))
    visits = next(t for t in report.tables if t.table == "web_visit")
    assert len(visits.rows) >= 100_000
    result = erase(kerf.plan, kerf.ids(email))
    assert result.verified
    assert kerf.one("SELECT count(*) FROM web_visit WHERE customer_id = :c", c=cid) == 0


@pytest.mark.parametrize("kerf", ["sqlite"], indirect=True)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(min_value=0, max_value=149), seed=st.integers(min_value=1, max_value=50))
def test_property_erasure_is_exact(kerf: Kerf, pick: int, seed: int) -> None:
    """Random Kerf data and a random person: after erasure none of their erasable values
    remains, held rows are intact and every other person's rows are byte-identical."""
    generate(kerf.url, 150, seed=seed)
    email = _emails(kerf, 150)[pick]
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    owned = _owned_keys(kerf, cid, email)
    personal = {t.table: set(t.rows[0]) for t in access(kerf.plan, kerf.ids(email)).tables
                if t.rows}
    before = snapshot(kerf.url)
    values = _erasable_values(kerf, before, owned)
    result = erase(kerf.plan, kerf.ids(email))
    assert result.verified, result.leftovers
    _assert_exact(kerf, before, owned, values)
    assert personal  # the person had data to erase


@pytest.mark.parametrize("kerf", ["sqlite", "postgres"], indirect=True)
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.sets(st.integers(min_value=0, max_value=149), min_size=2, max_size=25),
       seed=st.integers(min_value=1, max_value=50))
def test_property_batch_erasure_is_exact(kerf: Kerf, picks: set[int], seed: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for a batch of random persons, through a large run's paths whatever its
    size: reads spread over two connections on PostgreSQL, the journal and the suppression
    hashes written beside the writes."""
    from lawful.engine import erase as erase_module
    from lawful.engine import search

    monkeypatch.setattr(search, "SPREAD_FROM", 0)
    monkeypatch.setattr(erase_module, "SPREAD_FROM", 0)
    monkeypatch.setattr(erase_module, "ASIDE_FROM", 0)
    generate(kerf.url, 150, seed=seed)
    everyone = _emails(kerf, 150)
    emails = [everyone[i] for i in sorted(picks)]
    owned: dict[str, set[Any]] = {}
    for email in emails:
        cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
        for table, keys in _owned_keys(kerf, cid, email).items():
            owned.setdefault(table, set()).update(keys)
    before = snapshot(kerf.url)
    values = _erasable_values(kerf, before, owned)
    result = erase(kerf.plan, Identities.of({Identity.email: emails}), persons=len(emails))
    assert result.verified, result.leftovers
    _assert_exact(kerf, before, owned, values)
    assert result.suppressed >= len(emails)


def _assert_exact(k: Kerf, before: dict[str, Any], owned: dict[str, set[Any]],
                  values: set[Any]) -> None:
    """After an erasure: every row not owned is byte-identical, held rows are intact, and
    none of the erasable values remains in an owned row."""
    after = snapshot(k.url)
    for table, rows in before.items():
        for pk, row in rows.items():
            if pk not in owned.get(table, set()):
                assert after[table].get(pk) == row, (table, pk)
            elif table in {"invoice", "payment"} and _still_held(k, table, pk):
                assert after[table][pk] == row
    remaining = {v for t, rows in after.items() if t not in {"invoice", "payment"}
                 for pk, row in rows.items() if pk in owned.get(t, set()) for v in row}
    assert not (values & remaining), values & remaining


def _still_held(k: Kerf, table: str, pk: Any) -> bool:
    """Invoices and payments are kept 7 years after the end of their financial year; an
    older one (the demo data reaches back to 2018) is erased like the rest."""
    column = "issued_at" if table == "invoice" else "paid_at"
    key = pk[0] if isinstance(pk, tuple) else pk
    day = as_date(k.one(f"SELECT {column} FROM {table} WHERE id = :i", i=key))
    assert day is not None
    return add(financial_year_end(day), Duration(7, "years")) >= dt.date.today()


def _erasable_values(k: Kerf, snap: dict[str, Any], owned: dict[str, set[Any]]) -> set[Any]:
    """The person's values in erasable fields (not kept, not held), as stored."""
    out: set[Any] = set()
    for key, tp in k.plan.tables.items():
        if tp.hold is not None:
            continue
        columns = _columns(k, key.table)
        for pk in owned.get(key.table, set()):
            row = dict(zip(columns, snap[key.table][pk], strict=True))
            for f in tp.personal_fields:
                if f.strategy is not None and f.strategy.value != "keep" and f.hold is None \
                        and isinstance(row[f.name], str) and len(row[f.name]) > 4:
                    out.add(row[f.name])
    return out


@pytest.mark.parametrize("kerf", ["sqlite"], indirect=True)
def test_verification_catches_an_erasure_that_did_not_happen(
        kerf: Kerf, monkeypatch: pytest.MonkeyPatch) -> None:
    from lawful.engine.erase import Eraser

    real = Eraser._writes

    def skip_customer(self: Eraser, conn: Any, system: str, todo: dict[str, Any]) -> Any:
        todo = {t: a for t, a in todo.items() if t not in {"customer", "support_ticket"}}
        return real(self, conn, system, todo)

    monkeypatch.setattr(Eraser, "_writes", skip_customer)
    result = erase(kerf.plan, kerf.ids(well_known(kerf)))
    assert result.verified is False
    assert any("shop.customer" in p for p in result.leftovers)
    assert any("shop.support_ticket" in p for p in result.leftovers)


@pytest.mark.parametrize("kerf", ["sqlite"], indirect=True)
def test_an_interrupted_run_is_not_resumed_under_another_manifest(
        kerf: Kerf, monkeypatch: pytest.MonkeyPatch) -> None:
    from lawful.engine import erase as erase_module

    email = well_known(kerf)

    def crash(*_: Any, **__: Any) -> int:
        raise KeyboardInterrupt  # the process dies after planning, before any write

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(erase_module.Eraser, "apply", crash)
        erase(kerf.plan, kerf.ids(email))
    changed = load_manifest(KERF).model_copy(deep=True)
    changed.retention[0].keep = changed.retention[0].keep.__class__(5, "years")
    with pytest.raises(EngineError, match="another version of the manifest"):
        erase(build_plan(changed), kerf.ids(email))
    resumed = erase(kerf.plan, kerf.ids(email))  # the original manifest finishes it
    assert resumed.resumed and resumed.verified


def test_an_accent_or_a_trailing_space_is_another_person(kerf: Kerf) -> None:
    """MariaDB's default collation finds 'josé' and 'jose ' for 'jose': never erase them."""
    execute(kerf.url, "INSERT INTO newsletter_subscriber (id, email, subscribed_at, "
            "consent_version) VALUES (:i, :e, :t, 1)", [
                {"i": 900001, "e": "jose@example.com", "t": dt.datetime(2025, 1, 1)},
                {"i": 900002, "e": "josé@example.com", "t": dt.datetime(2025, 1, 1)},
                {"i": 900003, "e": "jose@example.com ", "t": dt.datetime(2025, 1, 1)}])
    report = access(kerf.plan, kerf.ids("jose@example.com"))
    assert [r["email"] for t in report.tables for r in t.rows] == ["jose@example.com"]
    erase(kerf.plan, kerf.ids("jose@example.com"))
    left = kerf.one("SELECT count(*) FROM newsletter_subscriber WHERE id IN (900002, 900003)")
    assert left == 2 and kerf.one(
        "SELECT count(*) FROM newsletter_subscriber WHERE id = 900001") == 0
