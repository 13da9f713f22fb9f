"""Retention on real Kerf data: each rule fires on the day it is due and not a day earlier, on
SQLite, PostgreSQL and MariaDB; skipped rows (restricted, held, referenced) stay whole; a
second run does nothing; bad rules are refused before anything changes."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lawful.demo.generate import generate
from lawful.engine.clock import add, financial_year_end
from lawful.engine.erase import erase
from lawful.engine.identities import Identities
from lawful.engine.modify import restrict
from lawful.engine.plan import Plan, build_plan
from lawful.manifest import load_manifest
from lawful.manifest.duration import Duration
from lawful.manifest.model import Action, Identity
from lawful.retention import holds, journal
from lawful.retention.plan import retention_plan
from lawful.retention.rules import RetentionInputError
from lawful.retention.sweep import run
from tests.conftest import KERF
from tests.kerfdb import backend_url, execute, scalar, snapshot

BACKENDS = ["sqlite", "postgres", "mysql"]
PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
DAY = dt.timedelta(days=1)
Snapshot = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]


@dataclass
class Kerf:
    url: str
    plan: Plan
    backend: str

    def one(self, sql: str, **params: Any) -> Any:
        return scalar(self.url, sql, **params)


def kerf_plan(**changes: Any) -> Plan:
    manifest = load_manifest(KERF)
    for rule_id, values in changes.items():
        rule = next(r for r in manifest.retention if r.id == rule_id.replace("_", "-"))
        for k, v in values.items():
            setattr(rule, k, v)
    return build_plan(manifest)


@pytest.fixture(params=BACKENDS)
def kerf(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[Kerf]:
    url = backend_url(request.param, "ret_kerf_test", tmp_path)
    generate(url, 120, seed=5)
    monkeypatch.setenv("KERF_DATABASE_URL", url)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "retention-test-secret-key")
    yield Kerf(url, kerf_plan(), request.param)


@pytest.fixture
def sqlite_kerf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kerf:
    url = backend_url("sqlite", "ret_kerf", tmp_path)
    generate(url, 120, seed=5)
    monkeypatch.setenv("KERF_DATABASE_URL", url)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "retention-test-secret-key")
    return Kerf(url, kerf_plan(), "sqlite")


# --- an independent oracle: the promises, row by row, in plain Python ------------------------


def day(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def after(value: Any, keep: str) -> dt.date | None:
    """The first day a row whose clock started at `value` is due ("kept through the end of
    the period")."""
    start = day(value)
    return None if start is None else add(start, Duration.parse(keep)) + DAY


# column positions in the Kerf schema (tests/kerfdb.py snapshots whole rows)
COLS = {t.name: [c.name for c in t.columns]
        for t in __import__("lawful.demo.schema", fromlist=["TABLES"]).TABLES}


def col(table: str, row: tuple[Any, ...], name: str) -> Any:
    return row[COLS[table].index(name)]


def due_days(snap: Snapshot) -> dict[str, dict[tuple[Any, ...], dt.date | None]]:
    """For each row of the tables whose rules fire within a year of 2024-06: the first day it
    is due (None: never). Restricted customers and their visits are never due."""
    restricted = {k[0] for k, r in snap["customer"].items() if col("customer", r, "restricted")}
    out: dict[str, dict[tuple[Any, ...], dt.date | None]] = {}
    out["call_recording"] = {k: after(col("call_recording", r, "recorded_at"), "6 months")
                             for k, r in snap["call_recording"].items()}
    out["support_ticket"] = {k: after(col("support_ticket", r, "created_at"), "2 years")
                             for k, r in snap["support_ticket"].items()}
    last: dict[Any, dt.date] = {}
    for r in snap["web_visit"].values():
        v = col("web_visit", r, "visitor_id")
        seen = day(col("web_visit", r, "visited_at"))
        assert seen is not None
        if v is not None:
            last[v] = max(last.get(v, seen), seen)
    out["web_visit"] = {}
    for k, r in snap["web_visit"].items():
        v = col("web_visit", r, "visitor_id")
        latest = last[v] if v is not None else day(col("web_visit", r, "visited_at"))
        owner = col("web_visit", r, "customer_id")
        out["web_visit"][k] = None if owner in restricted else after(latest, "1 year")
    out["id_document"] = {k: None if col("id_document", r, "customer_id") in restricted
                          else day(col("id_document", r, "verified_at"))
                          for k, r in snap["id_document"].items()}
    out["job_applicant"] = {
        k: after(col("job_applicant", r, "decided_at"),
                 "1 year" if col("job_applicant", r, "talent_pool_consent") else "4 weeks")
        for k, r in snap["job_applicant"].items()}
    out["newsletter_subscriber"] = {k: day(col("newsletter_subscriber", r, "unsubscribed_at"))
                                    for k, r in snap["newsletter_subscriber"].items()}
    out["quote"] = {k: None if col("quote", r, "customer_id") in restricted
                    else after(col("quote", r, "created_at"), "3 years")
                    for k, r in snap["quote"].items()}
    out["customer"] = {k: None if k[0] in restricted
                       else after(col("customer", r, "contract_ended_at"), "3 years")
                       for k, r in snap["customer"].items()}
    out["partner"] = {k: after(col("partner", r, "contract_ended_at"), "3 years")
                      for k, r in snap["partner"].items()}
    return out


ANONYMISED = {  # table: {field: check of the new value}
    "quote": {"cad_file_name": lambda v: v == "erased.dxf"},
    "customer": {"email": lambda v: bool(PSEUDONYM.match(v)), "first_name":
                 lambda v: v == "(erased)", "phone": lambda v: v is None,
                 "password_hash": lambda v: v is None},
    "partner": {"contact_name": lambda v: v == "(erased)", "phone": lambda v: v is None,
                "email": lambda v: v is None or bool(PSEUDONYM.match(v)),
                "iban": lambda v: v is None or v.startswith("*")},
}


def assert_state(before: Snapshot, after_run: Snapshot, due: dict[str, dict[Any, Any]],
                 today: dt.date) -> int:
    """Rows due by `today` are gone (or anonymised), every other row is byte-identical."""
    changed = 0
    for table, rows in before.items():
        for key, row in rows.items():
            when = due.get(table, {}).get(key)
            is_due = when is not None and when <= today
            now = after_run[table].get(key)
            if not is_due:
                assert now == row, f"{table} {key} changed before its day ({when}, {today})"
            elif table in ANONYMISED:
                assert now is not None, f"{table} {key} deleted instead of anonymised"
                for name, ok in ANONYMISED[table].items():
                    assert ok(col(table, now, name)), f"{table} {key}.{name} = {now}"
                kept = [c for c in COLS[table] if c not in ANONYMISED[table]
                        and c not in ("email", "last_name", "company", "job_title")]
                assert all(col(table, now, c) == col(table, row, c) for c in kept), table
                changed += 1
            else:
                assert now is None, f"{table} {key} due {when} still there on {today}"
                changed += 1
    return changed


def test_each_rule_fires_on_its_day_and_not_a_day_earlier(kerf: Kerf) -> None:
    """A year of Kerf, 2024-06-01 to 2025-06-01: on each checkpoint (the day before a row falls
    due, and the day itself) a run leaves exactly the rows the promises say."""
    execute(kerf.url, "UPDATE newsletter_subscriber SET unsubscribed_at = subscribed_at "
                      "WHERE id % 3 = 0")
    execute(kerf.url, "UPDATE customer SET restricted = true WHERE id % 7 = 0")
    start = dt.date(2024, 6, 1)
    first = snapshot(kerf.url)
    due = due_days(first)
    # every rule fires at least once in the year, and the checkpoints hit each rule's days
    upcoming = sorted({(d, t) for t, rows in due.items() for d in rows.values()
                       if d is not None and start < d <= start + dt.timedelta(days=365)})
    per_table: dict[str, list[dt.date]] = {}
    for d, t in upcoming:
        per_table.setdefault(t, []).append(d)
    assert {"call_recording", "support_ticket", "web_visit", "quote"} <= set(per_table)
    days = {start}
    for dates in per_table.values():
        for d in (dates[0], dates[len(dates) // 2], dates[-1]):
            days |= {d - DAY, d}
    plan = kerf.plan
    for today in sorted(days):
        run(plan, today)
        assert_state(first, snapshot(kerf.url), due, today)
    # a second run on the last day does nothing
    again = run(plan, max(days))
    assert again.done == 0


def test_consent_extension_and_consent_withdrawal(sqlite_kerf: Kerf) -> None:
    """The CV: 4 weeks after the decision, or 1 year with talent-pool consent; the newsletter:
    until unsubscribed (the day of the withdrawal itself)."""
    k = sqlite_kerf
    execute(k.url, "UPDATE job_applicant SET decided_at = '2025-01-10 09:00:00', "
                   "talent_pool_consent = (id % 2)")
    execute(k.url, "UPDATE newsletter_subscriber SET unsubscribed_at = "
                   "CASE WHEN id % 2 = 0 THEN '2025-03-05 10:00:00' END")
    total = k.one("SELECT count(*) FROM job_applicant")
    consented = k.one("SELECT count(*) FROM job_applicant WHERE talent_pool_consent = 1")
    subs = k.one("SELECT count(*) FROM newsletter_subscriber")
    run(k.plan, dt.date(2025, 2, 7))  # 4 weeks after 10 January: still kept
    assert k.one("SELECT count(*) FROM job_applicant") == total
    run(k.plan, dt.date(2025, 2, 8))
    assert k.one("SELECT count(*) FROM job_applicant") == consented
    run(k.plan, dt.date(2025, 3, 4))
    assert k.one("SELECT count(*) FROM newsletter_subscriber") == subs
    run(k.plan, dt.date(2025, 3, 5))
    assert k.one("SELECT count(*) FROM newsletter_subscriber WHERE unsubscribed_at IS NOT NULL"
                 ) == 0
    run(k.plan, dt.date(2026, 1, 10))  # the talent pool's year ends on 10 January 2026
    assert k.one("SELECT count(*) FROM job_applicant") == consented
    run(k.plan, dt.date(2026, 1, 11))
    assert k.one("SELECT count(*) FROM job_applicant") == 0


def test_plan_touches_nothing_and_predicts_the_run(kerf: Kerf) -> None:
    before = snapshot(kerf.url)
    today = dt.date(2025, 1, 1)
    planned = retention_plan(kerf.plan, today, within=60)
    dry = run(kerf.plan, today, dry_run=True)
    assert snapshot(kerf.url) == before
    by = {(b.rule, b.table, b.field): b for b in planned.bindings}
    assert by[("web-visits", "web_visit", None)].due > 0
    assert by[("orders", "address", None)].unclocked
    soon = max(planned.bindings, key=lambda b: b.upcoming)
    assert soon.upcoming > 0 and soon.next_due is not None
    next_due = dt.date.fromisoformat(soon.next_due)

    def due_on(d: dt.date) -> int:
        found = retention_plan(kerf.plan, d).bindings
        return next(b.due for b in found if (b.rule, b.table, b.field) ==
                    (soon.rule, soon.table, soon.field))

    assert due_on(next_due - DAY) == soon.due < due_on(next_due)
    assert due_on(today + dt.timedelta(days=60)) == soon.due + soon.upcoming
    assert [b.due for b in dry.bindings] == [b.due for b in planned.bindings]
    done = run(kerf.plan, today)
    for b in done.bindings:
        assert b.done == by[(b.rule, b.table, b.field)].due, b


def test_batches_are_journaled_with_a_digest_of_the_keys(kerf: Kerf) -> None:
    gone = [r[0] for r in sa.create_engine(kerf.url).connect().execute(sa.text(
        "SELECT id FROM call_recording WHERE recorded_at < '2024-07-01' ORDER BY id"))]
    result = run(kerf.plan, dt.date(2025, 1, 1), batch_size=7)
    records = [r for r in journal.batches_of(result.run_id) if r.table.endswith(
        "call_recording")]
    assert sum(r.rows for r in records) == len(gone) and len(records) == -(-len(gone) // 7)
    keys = [str(k) for k in gone]
    for r in records:
        part = keys[keys.index(r.first_key):keys.index(r.last_key) + 1]
        assert r.rows == len(part)
        assert r.digest == hashlib.sha256(",".join(part).encode()).hexdigest()
    # the proof is also in the customer's database, written with each batch
    assert kerf.one(f"SELECT count(*) FROM {journal.BATCH_TABLE}") == sum(
        b.batches for b in result.bindings)


def test_a_batch_meeting_a_concurrent_change_is_picked_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: a batch's keys are picked and recorded, then its key range is deleted under
    the same snapshot. Another transaction making a picked visit recent in between fails the
    batch (serialization failure); it is picked again without that visitor's visits, and the
    end state and the proof are those of a run started after the change."""
    from lawful.retention import sweep

    monkeypatch.setenv("LAWFUL_SECRET_KEY", "retention-test-secret-key")
    today = dt.date(2025, 6, 1)
    urls = {name: backend_url("postgres", f"ret_concurrent_{name}", tmp_path)
            for name in ("during", "before")}
    for url in urls.values():
        generate(url, 120, seed=5)
    due_visit = """SELECT min(w.id) FROM web_visit w WHERE w.visited_at < '2024-06-01'
        AND NOT EXISTS (SELECT 1 FROM web_visit o WHERE o.visitor_id = w.visitor_id
                        AND o.visited_at >= '2024-06-01')"""
    visit = scalar(urls["during"], due_visit)
    assert visit is not None and visit == scalar(urls["before"], due_visit)
    recent = "UPDATE web_visit SET visited_at = '2025-05-30' WHERE id = :id"
    picks: list[str] = []

    def meanwhile(where: str) -> None:
        if where == "retention:web_visit:picked":
            picks.append(where)
            if len(picks) == 1:  # another transaction, committed between the two statements
                execute(urls["during"], recent, [{"id": visit}])

    execute(urls["before"], recent, [{"id": visit}])
    results = {}
    for name in ("before", "during"):
        monkeypatch.setenv("KERF_DATABASE_URL", urls[name])
        monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / f"state-{name}"))
        if name == "during":
            monkeypatch.setattr(sweep, "_fault_point", meanwhile)
        results[name] = run(kerf_plan(), today)
    assert len(picks) == 2  # the first attempt failed, the second went through
    assert snapshot(urls["during"]) == snapshot(urls["before"])
    assert scalar(urls["during"], "SELECT count(*) FROM web_visit WHERE id = :id", id=visit)
    done = {name: {(b.rule, b.table, b.field): b.done for b in r.bindings}
            for name, r in results.items()}
    assert done["during"] == done["before"]
    for name, url in urls.items():  # each deleted visit recorded once, in the database's proof
        recorded = scalar(url, f"SELECT sum(row_count) FROM {journal.BATCH_TABLE} "
                               "WHERE tbl = 'shop.web_visit'")
        assert recorded == next(b.done for b in results[name].bindings
                                if b.table == "web_visit") > 0


def test_overlapping_batches_do_what_one_at_a_time_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: with three batches in flight (each picking from where the previous one's
    range ends while that one is still changing rows), the end state and the proof, batch by
    batch, are those of batches run one after the other."""
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "retention-test-secret-key")
    today = dt.date(2025, 6, 1)
    urls = {w: backend_url("postgres", f"ret_workers_{w}", tmp_path) for w in (1, 3)}
    proofs, results = {}, {}
    for workers, url in urls.items():
        generate(url, 150, seed=9)
        monkeypatch.setenv("KERF_DATABASE_URL", url)
        monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / f"state-{workers}"))
        results[workers] = run(kerf_plan(), today, batch_size=7, workers=workers)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            proofs[workers] = [tuple(r) for r in conn.execute(sa.text(
                f"SELECT seq, rule, tbl, action, row_count, first_key, last_key, digest "
                f"FROM {journal.BATCH_TABLE} ORDER BY seq"))]
        engine.dispose()
    assert snapshot(urls[1]) == snapshot(urls[3])
    assert proofs[1] == proofs[3]
    visits = [p for p in proofs[1] if p[2] == "shop.web_visit"]
    assert len(visits) > 3 and all(p[4] == 7 for p in visits[:-1])  # many full batches
    assert [(b.rule, b.table, b.done, b.batches) for b in results[1].bindings] == \
        [(b.rule, b.table, b.done, b.batches) for b in results[3].bindings]


def test_restricted_and_held_persons_are_skipped_and_reported(kerf: Kerf) -> None:
    email = kerf.one("""SELECT c.email FROM customer c WHERE EXISTS (SELECT 1 FROM web_visit w
        WHERE w.customer_id = c.id AND w.visited_at < '2023-01-01') AND EXISTS (SELECT 1 FROM
        support_ticket s WHERE lower(s.customer_email) = c.email AND s.created_at < '2022-01-01')
        ORDER BY c.id""")
    other = kerf.one("""SELECT c.email FROM customer c WHERE c.email <> :e AND EXISTS (SELECT 1
        FROM support_ticket s WHERE lower(s.customer_email) = c.email
        AND s.created_at < '2022-01-01') ORDER BY c.id DESC""", e=email)
    ids = Identities.of({Identity.email: [email]}, "NL")
    restrict(kerf.plan, ids)
    holds.place(Identities.of({Identity.email: [other]}, "NL"), "claim 2025-17 (court)")
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    visits = kerf.one("SELECT count(*) FROM web_visit WHERE customer_id = :c", c=cid)
    tickets = kerf.one("SELECT count(*) FROM support_ticket WHERE lower(customer_email) "
                       "IN (:a, :b)", a=email, b=other)
    result = run(kerf.plan, dt.date(2025, 1, 1))
    assert kerf.one("SELECT count(*) FROM web_visit WHERE customer_id = :c", c=cid) == visits
    assert kerf.one("SELECT count(*) FROM support_ticket WHERE lower(customer_email) "
                    "IN (:a, :b)", a=email, b=other) == tickets
    by = {(b.rule, b.table): b for b in result.bindings}
    assert by[("web-visits", "web_visit")].restricted > 0
    assert by[("support-tickets", "support_ticket")].restricted > 0  # lawful's list
    assert by[("support-tickets", "support_ticket")].held > 0
    assert "claim 2025-17 (court)" in by[("support-tickets", "support_ticket")].held_reasons
    holds.release(Identities.of({Identity.email: [other]}, "NL"), "settled")
    run(kerf.plan, dt.date(2025, 1, 1))
    assert kerf.one("SELECT count(*) FROM support_ticket WHERE lower(customer_email) = :b "
                    "AND created_at < '2022-01-01'", b=other) == 0


def test_erasure_deferred_by_a_legal_hold_completes_the_day_the_hold_ends(kerf: Kerf) -> None:
    email = kerf.one("""SELECT c.email FROM customer c JOIN invoice i ON i.customer_id = c.id
        WHERE i.issued_at < '2019-01-01' ORDER BY c.id""")
    cid = kerf.one("SELECT id FROM customer WHERE email = :e", e=email)
    erased = erase(kerf.plan, Identities.of({Identity.email: [email]}, "NL"),
                   today=dt.date(2025, 6, 1))
    assert erased.verified
    held = next(t for t in erased.tables if t.table == "invoice")
    assert held.held > 0
    invoices = [(r[0], day(r[1])) for r in sa.create_engine(kerf.url).connect().execute(
        sa.text("SELECT id, issued_at FROM invoice WHERE customer_id = :c"), {"c": cid})]
    first = min(d for _, d in invoices if d)
    ends = add(financial_year_end(first), Duration.parse("7 years"))  # last day held
    year_after = (financial_year_end(first) + DAY).isoformat()
    paid_later = kerf.one("""SELECT count(DISTINCT i.id) FROM payment p JOIN invoice i ON
        p.invoice_id = i.id WHERE i.customer_id = :c AND i.issued_at < :d
        AND p.paid_at >= :d""", c=cid, d=year_after)
    run(kerf.plan, ends)
    assert kerf.one("SELECT count(*) FROM invoice WHERE customer_id = :c", c=cid) == len(invoices)
    run(kerf.plan, ends + DAY)
    left = kerf.one("SELECT count(*) FROM invoice WHERE customer_id = :c AND issued_at < :d",
                    c=cid, d=year_after)
    # the first year's invoices are gone, except those a payment of the next year still
    # references (kept until that payment's own period ends)
    assert left == paid_later


def test_missing_or_non_date_columns_are_refused_before_anything_changes(
        sqlite_kerf: Kerf) -> None:
    k = sqlite_kerf
    before = snapshot(k.url)
    missing = kerf_plan(support_tickets={"columns": ["support_ticket.opened_on"]})
    with pytest.raises(RetentionInputError, match=r"support-tickets.*support_ticket\.opened_on"):
        run(missing, dt.date(2030, 1, 1))
    wrong = kerf_plan(support_tickets={"columns": ["support_ticket.subject"]})
    with pytest.raises(RetentionInputError, match=r"support_ticket\.subject holds"):
        run(wrong, dt.date(2030, 1, 1))
    execute(k.url, "UPDATE call_recording SET recorded_at = '01/02/2020' WHERE id = 1")
    calls = k.one("SELECT count(*) FROM call_recording")
    with pytest.raises(RetentionInputError, match=r"call_recording\.recorded_at holds values"):
        run(k.plan, dt.date(2030, 1, 1))
    assert k.one("SELECT count(*) FROM call_recording") == calls == len(before["call_recording"])
    execute(k.url, "DELETE FROM call_recording WHERE id = 1")
    after_all = snapshot(k.url)
    assert {t: r for t, r in after_all.items() if t != "call_recording"} == {
        t: r for t, r in before.items() if t != "call_recording"}


def test_future_and_null_dates_are_never_due(sqlite_kerf: Kerf) -> None:
    k = sqlite_kerf
    execute(k.url, "UPDATE call_recording SET recorded_at = '2999-01-01 00:00:00' "
                   "WHERE id % 2 = 0")
    execute(k.url, "UPDATE id_document SET verified_at = NULL")
    future = k.one("SELECT count(*) FROM call_recording WHERE id % 2 = 0")
    docs = k.one("SELECT count(*) FROM id_document")
    run(k.plan, dt.date(2100, 1, 1))
    assert k.one("SELECT count(*) FROM call_recording") == future
    assert k.one("SELECT count(*) FROM id_document") == docs


def test_a_rule_deleting_referenced_rows_is_refused(sqlite_kerf: Kerf) -> None:
    before = snapshot(sqlite_kerf.url)
    bad = kerf_plan(quotes={"action": Action.delete})
    with pytest.raises(RetentionInputError, match=r"'quotes' deletes"):
        run(bad, dt.date(2030, 1, 1))
    assert snapshot(sqlite_kerf.url) == before
