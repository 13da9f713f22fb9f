"""The request service on real databases: deadlines, verification, staff decisions, execution
on the Kerf demo, idempotence, purge, and identities encrypted at rest.

Every test gets a fresh Kerf SQLite database and a fresh app store (SQLite under a temporary
state directory, or a fresh PostgreSQL schema), acts through `Service`, and then reads the
databases themselves to show what happened.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import json
import re
import secrets
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lawful.addresses import NotAnAddress, checked_email
from lawful.demo.generate import generate
from lawful.demo.schema import customer as customer_table
from lawful.demo.schema import metadata as kerf_metadata
from lawful.engine import state
from lawful.engine.identities import Identities
from lawful.keys import decrypt
from lawful.manifest import load_manifest
from lawful.manifest.model import Identity, Manifest
from lawful.requests import execute, mail, packages
from lawful.requests.kinds import Conflict, Invalid, Locked, NotFound, Status
from lawful.requests.workflow import Service
from lawful.store import audit, db
from lawful.store.models import (
    AuditEntry,
    Notification,
    OutboxMessage,
    Package,
    Request,
    Verification,
)
from tests.conftest import KERF, free_port
from tests.kerfdb import scalar, snapshot, store_schema

SECRET = "requests-test-secret-key-0123456789"
START = dt.datetime(2026, 3, 2, 9, 30)
CODE = re.compile(r"code is (\d{6})")
HYPO = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


# --- the world every test runs in ----------------------------------------------------------

class Clock:
    """The service's `now`, moved by the test."""

    def __init__(self, at: dt.datetime = START) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)


@dataclass
class World:
    tmp: Path
    kerf_url: str
    manifest: Manifest
    clock: Clock = field(default_factory=Clock)
    _services: dict[int, Service] = field(default_factory=dict)

    def service(self, manifest: Manifest | None = None) -> Service:
        return Service(manifest or self.manifest, now=self.clock)

    def manifest_with(self, change: Callable[[dict[str, Any]], None]) -> Manifest:
        """A modified copy of the Kerf manifest, written to the test's directory."""
        data = yaml.safe_load(KERF.read_text())
        change(data)
        path = self.tmp / f"lawful-{secrets.token_hex(4)}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_manifest(path)

    def kerf(self, sql: str, **params: Any) -> Any:
        return scalar(self.kerf_url, sql, **params)

    def kerf_rows(self, sql: str, **params: Any) -> list[Any]:
        engine = sa.create_engine(self.kerf_url)
        with engine.connect() as conn:
            rows = list(conn.execute(sa.text(sql), params).all())
        engine.dispose()
        return rows

    def person(self, offset: int = 0) -> str:
        """A customer known under every identity: tickets, calls, visits, orders, invoices."""
        email = self.kerf("""
            SELECT c.email FROM customer c
            WHERE EXISTS (SELECT 1 FROM support_ticket s WHERE lower(s.customer_email) = c.email)
              AND EXISTS (SELECT 1 FROM web_visit w WHERE w.customer_id = c.id)
              AND EXISTS (SELECT 1 FROM invoice i WHERE i.customer_id = c.id)
            ORDER BY c.id LIMIT 1 OFFSET :o""", o=offset)
        assert isinstance(email, str)
        return email


def base_env(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> str:
    """A fresh Kerf demo database and app state for one test; returns the Kerf URL."""
    kerf_url = f"sqlite:///{tmp / 'kerf.db'}"
    generate(kerf_url, 120, seed=11)
    monkeypatch.setenv("KERF_DATABASE_URL", kerf_url)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", SECRET)
    for var in ("LAWFUL_DATABASE_URL", "LAWFUL_SMTP_URL", "LAWFUL_BROKER_URL",
                "LAWFUL_WEBHOOK_SECRET"):
        monkeypatch.delenv(var, raising=False)
    return kerf_url


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """Kerf on SQLite, the app store on SQLite under a temporary state directory."""
    url = base_env(monkeypatch, tmp_path)
    return World(tmp_path, url, load_manifest(KERF))


@contextmanager
def postgres_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the app store at a fresh PostgreSQL schema; dropped afterwards."""
    with store_schema("req") as url:
        monkeypatch.setenv("LAWFUL_DATABASE_URL", url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_world(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Kerf on SQLite; the app store on SQLite, then on PostgreSQL."""
    url = base_env(monkeypatch, tmp_path)
    w = World(tmp_path, url, load_manifest(KERF))
    if request.param == "postgres":
        with postgres_store(monkeypatch):
            yield w
    else:
        yield w


# --- helpers ---------------------------------------------------------------------------------

def outbox(request_id: str | None = None, status: str | None = None) -> list[mail.Shown]:
    with db.session() as s:
        return [m for m in mail.show(s, status)
                if request_id is None or m.request_id == request_id]


def latest_code(request_id: str) -> str:
    codes = [CODE.search(m.body) for m in outbox(request_id)]
    found = [c.group(1) for c in codes if c]
    assert found, "no code e-mail for the request"
    return found[-1]


def submitted(svc: Service, kind: str, email: str,
              details: dict[str, Any] | None = None) -> tuple[str, str]:
    request, token = svc.submit(kind, email, details)
    return request.id, token


def verified(svc: Service, kind: str, email: str,
             details: dict[str, Any] | None = None) -> tuple[str, str]:
    rid, token = submitted(svc, kind, email, details)
    svc.verify(rid, token, latest_code(rid))
    return rid, token


def row(request_id: str) -> Request:
    with db.session() as s:
        found = s.get(Request, request_id)
        assert found is not None
        return found


def actions(request_id: str | None = None) -> list[str]:
    with db.session() as s:
        return [e.action for e in reversed(audit.entries(s, request_id))]


def count(model: Any, request_id: str | None = None) -> int:
    with db.session() as s:
        query = sa.select(sa.func.count()).select_from(model)
        if request_id is not None:
            query = query.where(model.request_id == request_id)
        return int(s.execute(query).scalar_one())


def one_month_after(day: dt.date) -> dt.date:
    """Art. 12(3), written independently of lawful's calendar code."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))



def dump_store() -> dict[str, str]:
    """Every app-store table's rows as text (bytes decoded loosely)."""
    engine = db.engine()
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).all()
            parts = []
            for r in rows:
                for value in r:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value).decode("utf-8", "replace"))
                    else:
                        parts.append(str(value))
            out[name] = "\n".join(parts)
    return out


# --- 1. the deadline: one month from receipt (Art. 12(3)) ----------------------------------

@pytest.mark.parametrize(("received", "due"), [
    (dt.datetime(2025, 1, 31, 23, 59), dt.date(2025, 2, 28)),
    (dt.datetime(2024, 1, 31, 0, 0), dt.date(2024, 2, 29)),  # leap year
    (dt.datetime(2025, 1, 29, 12, 0), dt.date(2025, 2, 28)),
    (dt.datetime(2025, 3, 31, 8, 0), dt.date(2025, 4, 30)),
    (dt.datetime(2025, 12, 31, 17, 0), dt.date(2026, 1, 31)),
    (dt.datetime(2025, 5, 15, 10, 0), dt.date(2025, 6, 15)),
    (dt.datetime(2025, 2, 28, 10, 0), dt.date(2025, 3, 28)),
])
def test_deadline_is_one_month_from_receipt(world: World, received: dt.datetime,
                                            due: dt.date) -> None:
    world.clock.at = received
    svc = world.service()
    rid, _ = submitted(svc, "access", "someone@example.org")
    stored = row(rid)
    assert stored.received_at == received
    assert stored.due_on == due and stored.first_due_on == due
    # The requester is told the same date in the code e-mail.
    assert f"{due:%d %B %Y}" in outbox(rid)[-1].body


@HYPO
@given(received=st.datetimes(min_value=dt.datetime(2000, 1, 1),
                             max_value=dt.datetime(2099, 12, 31, 23, 59)))
def test_deadline_property(world: World, received: dt.datetime) -> None:
    world.clock.at = received
    rid, _ = submitted(world.service(), "erasure", f"p{secrets.token_hex(4)}@example.org")
    stored = row(rid)
    assert stored.due_on == one_month_after(received.date())
    # Never more than a calendar month, never less than 28 days.
    assert 28 <= (stored.due_on - received.date()).days <= 31


def test_overdue_listing_follows_the_clock(world: World) -> None:
    svc = world.service()
    rid, _ = submitted(svc, "erasure", "late@example.org")
    assert [r.id for r in svc.list(overdue=True)] == []
    world.clock.at = dt.datetime.combine(row(rid).due_on, dt.time(12))
    assert [r.id for r in svc.list(overdue=True)] == []  # due today is not overdue
    world.clock.advance(days=1)
    assert [r.id for r in svc.list(overdue=True)] == [rid]
    assert [r.id for r in svc.list(due_before=row(rid).due_on)] == [rid]


# --- 2. verification -------------------------------------------------------------------------

def test_code_goes_to_the_outbox_and_verifies(world: World) -> None:
    svc = world.service()
    email = world.person()
    rid, token = submitted(svc, "erasure", email.upper())
    assert row(rid).status == Status.awaiting_verification
    [message] = outbox(rid)
    assert message.to == email  # normalised
    assert message.subject == "Kerf: your verification code"
    code = latest_code(rid)
    assert len(code) == 6 and code.isdigit()
    # the code itself is never stored: only its keyed hash
    with db.session() as s:
        check = s.get(Verification, rid)
        assert check is not None and code not in check.code_hash
        assert check.expires_at == START + dt.timedelta(minutes=15)
    done = svc.verify(rid, token, f" {code} ")
    assert done.status == Status.verified  # erasure waits for staff
    stored = row(rid)
    assert stored.verified_by == "requester" and stored.verified_at == START
    assert count(Verification, rid) == 0
    assert actions(rid)[:4] == ["request.received", "email.queued", "verification.code_sent",
                                "request.verified"]
    with pytest.raises(Conflict):
        svc.verify(rid, token, code)  # used once


def test_code_is_valid_for_fifteen_minutes(world: World) -> None:
    svc = world.service()
    rid, token = submitted(svc, "erasure", "fifteen@example.org")
    code = latest_code(rid)
    world.clock.advance(minutes=15, seconds=1)
    with pytest.raises(Invalid, match="expired"):
        svc.verify(rid, token, code)
    assert row(rid).status == Status.awaiting_verification
    svc.resend_code(rid, token)
    fresh = latest_code(rid)
    if fresh != code:
        with pytest.raises(Invalid, match="wrong code"):
            svc.verify(rid, token, code)  # the old code no longer counts
    world.clock.advance(minutes=14, seconds=59)
    assert svc.verify(rid, token, fresh).status == Status.verified


def test_five_wrong_codes_lock_the_request(world: World) -> None:
    svc = world.service()
    rid, token = submitted(svc, "erasure", "locked@example.org")
    code = latest_code(rid)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        with pytest.raises(Invalid, match=f"{left} tries left"):
            svc.verify(rid, token, wrong)
    with pytest.raises(Locked):
        svc.verify(rid, token, "abc")  # malformed counts too
    with pytest.raises(Locked):
        svc.verify(rid, token, code)  # the right code is refused now
    with pytest.raises(Locked):
        svc.resend_code(rid, token)
    assert row(rid).status == Status.awaiting_verification
    with db.session() as s:
        check = s.get(Verification, rid)
        assert check is not None and check.locked and check.failures == 5
    assert actions(rid).count("verification.failed") == 5
    # Staff can still verify by other means, with a note.
    assert svc.staff_verify(rid, "agent:bo", "called back on the number we hold").status \
        == Status.verified


@HYPO
@given(wrong=st.lists(st.text(max_size=12), max_size=4))
def test_fewer_than_five_wrong_codes_leave_the_right_one_working(world: World,
                                                                 wrong: list[str]) -> None:
    svc = world.service()
    rid, token = submitted(svc, "erasure", f"h{secrets.token_hex(4)}@example.org")
    code = latest_code(rid)
    assume(all(w.strip() != code for w in wrong))
    for attempt in wrong:
        with pytest.raises(Invalid):
            svc.verify(rid, token, attempt)
        assert row(rid).status == Status.awaiting_verification
    assert svc.verify(rid, token, code).status == Status.verified


def test_resending_never_resets_the_budget(world: World) -> None:
    svc = world.service()
    rid, token = submitted(svc, "erasure", "resend@example.org")
    for _ in range(3):
        with pytest.raises(Invalid):
            svc.verify(rid, token, "000000" if latest_code(rid) != "000000" else "111111")
    svc.resend_code(rid, token)
    assert len([m for m in outbox(rid) if CODE.search(m.body)]) == 2
    with pytest.raises(Invalid, match="1 tries left"):
        svc.verify(rid, token, "x")
    with pytest.raises(Locked):
        svc.verify(rid, token, "y")
    with pytest.raises(Locked):
        svc.verify(rid, token, latest_code(rid))


def test_codes_sent_are_limited(world: World) -> None:
    svc = world.service()
    rid, token = submitted(svc, "erasure", "limit@example.org")
    svc.resend_code(rid, token)
    svc.resend_code(rid, token)
    with pytest.raises(Locked):
        svc.resend_code(rid, token)
    assert len(outbox(rid)) == 3
    assert svc.verify(rid, token, latest_code(rid)).status == Status.verified
    with pytest.raises(Conflict):
        svc.resend_code(rid, token)


def test_wrong_token_looks_like_an_unknown_request(world: World) -> None:
    svc = world.service()
    mine, my_token = submitted(svc, "erasure", "mine@example.org")
    theirs, their_token = submitted(svc, "erasure", "theirs@example.org")
    code = latest_code(mine)
    unknown = secrets.token_hex(16)
    errors = []
    for rid, token in [(mine, their_token), (mine, ""), (unknown, my_token),
                       ("../../etc", my_token), (theirs, my_token)]:
        for call in (lambda r=rid, t=token: svc.for_requester(r, t),
                     lambda r=rid, t=token: svc.verify(r, t, code),
                     lambda r=rid, t=token: svc.resend_code(r, t)):
            with pytest.raises(NotFound) as caught:
                call()
            errors.append((type(caught.value), str(caught.value), caught.value.status))
    assert set(errors) == {(NotFound, "no such request", 404)}
    # nothing was counted against the real request
    with db.session() as s:
        check = s.get(Verification, mine)
        assert check is not None and check.failures == 0
    request, journal = svc.for_requester(mine, my_token)
    assert request.id == mine and {e.request_id for e in journal} == {mine}


@pytest.mark.parametrize("note", ["", "   ", None, "x" * 2001])
def test_staff_verify_needs_a_note(world: World, note: Any) -> None:
    svc = world.service()
    rid, _ = submitted(svc, "erasure", "staff@example.org")
    with pytest.raises(Invalid):
        svc.staff_verify(rid, "agent:bo", note)
    assert row(rid).status == Status.awaiting_verification
    svc.staff_verify(rid, "agent:bo", "signed letter with a copy of the passport, checked")
    stored = row(rid)
    assert stored.verified_by == "agent:bo"
    assert stored.verification_note == "signed letter with a copy of the passport, checked"
    with db.session() as s:
        entry = next(e for e in audit.entries(s, rid) if e.action == "request.verified")
        assert entry.actor == "agent:bo" and "signed letter" in entry.detail
    with pytest.raises(Conflict):
        svc.staff_verify(rid, "agent:bo", "again")
    with pytest.raises(NotFound):
        svc.staff_verify(secrets.token_hex(16), "agent:bo", "a note")


# --- 3. extension, refusal, fees, repeats ----------------------------------------------------

def test_extension_needs_a_reason_and_a_notice(world: World) -> None:
    svc = world.service()
    email = "extend@example.org"
    rid, _ = verified(svc, "erasure", email)
    first = row(rid).first_due_on
    assert first == dt.date(2026, 4, 2)
    for reason in ("", "  ", None):
        with pytest.raises(Invalid, match="reason"):
            svc.extend(rid, "lead:ann", 2, reason)  # type: ignore[arg-type]
    for months in (0, 3, -1):
        with pytest.raises(Invalid, match="1 to 2 month"):
            svc.extend(rid, "lead:ann", months, "complex request")
    assert row(rid).due_on == first and len(outbox(rid)) == 1  # nothing changed, no e-mail
    svc.extend(rid, "lead:ann", 1, "Your data is spread over twelve archived systems.")
    assert row(rid).due_on == dt.date(2026, 5, 2)
    svc.extend(rid, "lead:ann", 2, "Still more archives.")
    stored = row(rid)
    assert stored.due_on == dt.date(2026, 6, 2) and stored.first_due_on == first
    assert stored.extension_reason == "Still more archives."
    with pytest.raises(Conflict, match="already due"):
        svc.extend(rid, "lead:ann", 1, "shorter")
    notices = [m for m in outbox(rid) if "more time" in m.subject]
    assert len(notices) == 2 and {m.to for m in notices} == {email}
    assert "twelve archived systems" in notices[0].body and "02 May 2026" in notices[0].body
    assert "02 June 2026" in notices[1].body and "Autoriteit Persoonsgegevens" in notices[1].body
    with db.session() as s:
        extended = [e for e in audit.entries(s, rid) if e.action == "request.extended"]
    assert [e.actor for e in extended] == ["lead:ann", "lead:ann"]
    assert json.loads(extended[0].detail) == {"due_on": "2026-06-02",
                                              "reason": "Still more archives."}


def test_an_extension_counts_its_months_from_receipt(world: World) -> None:
    """Received 31 January: due 28 February; two further months end on 30 April, the date
    three months from receipt, not two months after 28 February."""
    svc = world.service()
    world.clock.at = dt.datetime(2026, 1, 31, 10, 0)
    rid, _ = verified(svc, "erasure", "january@example.org")
    assert row(rid).first_due_on == dt.date(2026, 2, 28)
    svc.extend(rid, "lead:ann", 2, "Your data is spread over twelve archived systems.")
    assert row(rid).due_on == dt.date(2026, 4, 30)


def test_extension_is_refused_once_the_first_month_has_ended(world: World) -> None:
    svc = world.service()
    late, _ = verified(svc, "erasure", "late@example.org")
    on_time, _ = verified(svc, "erasure", "ontime@example.org")
    world.clock.at = dt.datetime.combine(row(on_time).first_due_on, dt.time(23, 59))
    svc.extend(on_time, "lead:ann", 2, "complex")  # the last day still counts
    world.clock.advance(minutes=1)
    with pytest.raises(Conflict, match="first month ended"):
        svc.extend(late, "lead:ann", 1, "complex")
    assert row(late).due_on == row(late).first_due_on
    assert not [m for m in outbox(late) if "more time" in m.subject]


def test_no_extension_when_the_manifest_allows_none(world: World) -> None:
    def strict(data: dict[str, Any]) -> None:
        data["rights"]["extension"] = None
    svc = world.service(world.manifest_with(strict))
    rid, _ = verified(svc, "erasure", "noext@example.org")
    with pytest.raises(Invalid, match="no extension"):
        svc.extend(rid, "lead:ann", 1, "complex")


def test_extension_and_refusal_of_a_closed_request_conflict(world: World) -> None:
    svc = world.service()
    rid, _ = verified(svc, "access", world.person())
    assert row(rid).status == Status.completed
    with pytest.raises(Conflict):
        svc.extend(rid, "lead:ann", 1, "complex")
    with pytest.raises(Conflict):
        svc.refuse(rid, "lead:ann", "excessive", "why")


def test_refusal_carries_grounds_and_names_the_authority(world: World) -> None:
    svc = world.service()
    email = "refused@example.org"
    rid, _ = verified(svc, "erasure", email)
    with pytest.raises(Invalid, match="grounds"):
        svc.refuse(rid, "lead:ann", "because", "no")
    with pytest.raises(Invalid, match="reason"):
        svc.refuse(rid, "lead:ann", "excessive", " ")
    svc.refuse(rid, "lead:ann", "manifestly_unfounded",
               "The same request was answered in full last week.")
    stored = row(rid)
    assert stored.status == Status.refused and stored.completed_at == START
    assert stored.refusal_grounds == "manifestly_unfounded"
    [letter] = [m for m in outbox(rid) if "cannot act" in m.subject]
    assert letter.to == email
    assert "answered in full last week" in letter.body
    assert "Autoriteit Persoonsgegevens" in letter.body
    assert "https://autoriteitpersoonsgegevens.nl/en/contact-the-dutch-dpa" in letter.body
    assert "judicial remedy" in letter.body
    assert "request.refused" in actions(rid)
    with pytest.raises(Conflict):
        svc.execute(rid, "lead:ann")


@pytest.mark.parametrize(("kind", "details"), [
    ("consent_withdrawal", {"purpose": "newsletter"}),
    ("objection", {"to": "direct_marketing"}),
    ("objection", {}),  # direct marketing is the default
])
def test_absolute_rights_are_never_refused_or_charged(world: World, kind: str,
                                                      details: dict[str, Any]) -> None:
    svc = world.service()
    rid, _ = submitted(svc, kind, "absolute@example.org", details)
    for grounds in ("manifestly_unfounded", "excessive", "identity_not_verified",
                    "legal_exemption", "other"):
        with pytest.raises(Conflict):
            svc.refuse(rid, "lead:ann", grounds, "we would rather not")
    with pytest.raises(Conflict):
        svc.charge_fee(rid, "lead:ann", "25 EUR", "excessive")
    stored = row(rid)
    assert stored.status == Status.awaiting_verification and stored.fee is None
    assert "request.refused" not in actions(rid) and "request.fee" not in actions(rid)


def test_objection_to_legitimate_interests_can_be_refused(world: World) -> None:
    svc = world.service()
    rid, _ = submitted(svc, "objection", "li@example.org",
                       {"to": "legitimate_interests", "grounds": "I am not a customer"})
    svc.refuse(rid, "lead:ann", "legal_exemption", "compelling legitimate grounds (Art. 21(1))")
    assert row(rid).status == Status.refused


def test_fee_only_when_the_manifest_allows(world: World) -> None:
    svc = world.service()
    rid, _ = submitted(svc, "erasure", "fee@example.org")
    for amount in ("25", "-5 EUR", "0 EUR", "abc EUR", "2000 EUR", "25 EURO", "25 E1R"):
        with pytest.raises(Invalid):
            svc.charge_fee(rid, "lead:ann", amount, "excessive")
    with pytest.raises(Invalid):
        svc.charge_fee(rid, "lead:ann", "25 EUR", "")
    svc.charge_fee(rid, "lead:ann", "25.50 eur", "the fourth identical request this month")
    stored = row(rid)
    assert stored.fee == "25.50 EUR" and stored.fee_reason.startswith("the fourth")
    assert "request.fee" in actions(rid)

    def no_fees(data: dict[str, Any]) -> None:
        data["rights"]["fee_for_unfounded"] = False
    free = world.service(world.manifest_with(no_fees))
    other, _ = submitted(free, "erasure", "free@example.org")
    with pytest.raises(Conflict, match="fee"):
        free.charge_fee(other, "lead:ann", "25 EUR", "excessive")
    assert row(other).fee is None


def test_a_charged_fee_holds_the_request_until_it_is_paid(world: World) -> None:
    """Art. 12(5)(a): the requester is told the fee and why; the request is not executed,
    by staff or by itself, until the payment is recorded."""
    svc = world.service()
    # An erasure waits for staff: executing it is refused while the fee is unpaid.
    rid, _ = verified(svc, "erasure", "payer@example.org")
    svc.charge_fee(rid, "lead:ann", "25 EUR", "the fourth identical request this month")
    [notice] = [m for m in outbox(rid) if "fee" in m.subject]
    assert notice.to == "payer@example.org" and "25 EUR" in notice.body
    assert "the fourth identical request" in notice.body and "Art. 12(5)(a)" in notice.body
    with pytest.raises(Conflict, match="unpaid"):
        svc.execute(rid, "lead:ann")
    assert row(rid).status == Status.verified
    with pytest.raises(Invalid, match="note"):
        svc.fee_paid(rid, "lead:ann", " ")
    svc.fee_paid(rid, "lead:ann", "bank transfer of 14 May")
    assert row(rid).fee_paid_at is not None and row(rid).status == Status.verified
    with pytest.raises(Conflict, match="no fee"):
        svc.fee_paid(rid, "lead:ann", "twice")
    with pytest.raises(Conflict, match="already paid"):
        svc.charge_fee(rid, "lead:ann", "50 EUR", "more")
    assert svc.execute(rid, "lead:ann").status == Status.completed
    # An access request runs by itself once verified, but not with a fee unpaid: it starts
    # when the payment is recorded.
    access, token = submitted(svc, "access", "reader@example.org")
    svc.charge_fee(access, "lead:ann", "10 EUR", "excessive: weekly copies of the same data")
    svc.verify(access, token, latest_code(access))
    assert row(access).status == Status.verified
    assert svc.fee_paid(access, "lead:ann", "paid at the desk").status == Status.completed
    assert actions(access).index("request.fee_paid") < actions(access).index("request.started")
    # Requests without a fee are not held.
    free, _ = verified(svc, "access", "free-reader@example.org")
    assert row(free).status == Status.completed


def test_repeated_identical_requests_are_flagged(world: World) -> None:
    svc = world.service()
    first, _ = submitted(svc, "erasure", "again@example.org")
    assert row(first).repeat_of is None
    world.clock.advance(days=3)
    second, _ = submitted(svc, "erasure", "Again@Example.org")
    assert row(second).repeat_of == first
    other_kind, _ = submitted(svc, "access", "again@example.org")
    other_person, _ = submitted(svc, "erasure", "else@example.org")
    assert row(other_kind).repeat_of is None and row(other_person).repeat_of is None
    # A day apart each: an address gets at most three unverified requests a day.
    world.clock.advance(days=1)
    fix_a, _ = submitted(svc, "rectification", "again@example.org",
                         {"set": {"customer.first_name": "Ann"}})
    world.clock.advance(days=1)
    fix_b, _ = submitted(svc, "rectification", "again@example.org",
                         {"set": {"customer.first_name": "Anna"}})
    world.clock.advance(days=1)
    fix_c, _ = submitted(svc, "rectification", "again@example.org",
                         {"set": {"customer.first_name": "Anna"}})
    assert row(fix_a).repeat_of is None and row(fix_b).repeat_of is None
    assert row(fix_c).repeat_of == fix_b
    world.clock.advance(days=400)
    later, _ = submitted(svc, "erasure", "again@example.org")
    assert row(later).repeat_of is None
    with db.session() as s:
        entry = next(e for e in audit.entries(s, second) if e.action == "request.received")
        assert json.loads(entry.detail)["repeat_of"] == first


def test_a_refused_request_is_not_a_repeat(world: World) -> None:
    svc = world.service()
    first, _ = submitted(svc, "erasure", "r@example.org")
    svc.refuse(first, "lead:ann", "identity_not_verified", "no answer to our call")
    second, _ = submitted(svc, "erasure", "r@example.org")
    assert row(second).repeat_of is None


@pytest.mark.parametrize(("kind", "details", "message"), [
    ("gossip", None, "unknown request type"),
    ("access", {"set": {}}, "takes no set"),
    ("rectification", {"set": {"customer.email": "not an address"}}, "e-mail"),
    ("rectification", {"set": {"customer.phone": "12"}}, "phone"),
    ("rectification", {"set": {"customer.favourite": "x"}}, "not a declared personal field"),
    ("rectification", {"set": {}}, "1 to 20 fields"),
    ("objection", {"to": "everything"}, "direct_marketing or"),
    ("consent_withdrawal", {"purpose": "nope"}, "purpose"),
    ("consent_withdrawal", None, "purpose"),
])
def test_bad_requests_are_refused_at_submit(world: World, kind: str,
                                            details: dict[str, Any] | None,
                                            message: str) -> None:
    svc = world.service()
    with pytest.raises(Invalid, match=message):
        svc.submit(kind, "bad@example.org", details)
    assert count(Request) == 0 and count(OutboxMessage) == 0 and actions() == []


@pytest.mark.parametrize("email", ["", "   ", "no-at-sign", "x" * 1001 + "@example.org"])
def test_an_identity_that_is_not_an_address_is_refused(world: World, email: str) -> None:
    with pytest.raises(Invalid, match="email"):
        world.service().submit("access", email)
    assert count(Request) == 0


@pytest.mark.parametrize("email", ["@", "a@", "@example.org", "a b@example.org",
                                   "a@example.org\nBcc: victim@example.org"])
def test_submit_refuses_what_is_not_an_e_mail_address(world: World, email: str) -> None:
    with pytest.raises(Invalid):
        world.service().submit("access", email)


# --- 4. execution on the Kerf demo -----------------------------------------------------------

def link_of(request_id: str) -> tuple[str, int, str]:
    done = [m for m in outbox(request_id) if "is done" in m.subject]
    assert len(done) == 1
    url = next(line for line in done[0].body.splitlines() if "/v1/packages/" in line)
    parts = urlsplit(url.strip())
    query = parse_qs(parts.query)
    return parts.path.rsplit("/", 1)[-1], int(query["expires"][0]), query["signature"][0]


def fetch(request_id: str, expires: int, signature: str, now: dt.datetime) -> bytes:
    with db.transaction() as s:
        return packages.fetch(s, request_id, expires, signature, now)


def test_access_end_to_end(any_world: World) -> None:
    world = any_world
    svc = world.service()
    email, neighbour = world.person(0), world.person(1)
    rid, token = verified(svc, "access", email)
    request, journal = svc.for_requester(rid, token)
    assert request.status == Status.completed and request.error is None
    assert {"request.started", "request.completed"} <= {e.action for e in journal}
    result = Service.result(request)
    assert result is not None and result["tables"]["shop.customer"] == 1
    with db.session() as s:
        package = s.get(Package, rid)
        assert package is not None
        blob = bytes(package.blob)
    # Encrypted at rest: not a zip, and the address is nowhere in it.
    assert not zipfile.is_zipfile(io.BytesIO(blob)) and b"PK\x03\x04" not in blob
    assert email.encode() not in blob
    plain = decrypt(blob)
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:
        names = set(archive.namelist())
        data = archive.read("data.json").decode()
        page = archive.read("index.html").decode()
        customer_csv = archive.read("csv/shop.customer.csv").decode()
    assert {"data.json", "index.html", "csv/shop.customer.csv",
            "csv/shop.invoice.csv"} <= names
    assert json.loads(data)["identities"]["email"] == [email]
    for text in (data, page, customer_csv):
        assert email in text and neighbour not in text
    # The requester's link works, and only as signed.
    link_id, expires, signature = link_of(rid)
    assert link_id == rid
    assert fetch(rid, expires, signature, START) == plain
    with db.session() as s:
        assert s.get(Package, rid).downloads == 1  # type: ignore[union-attr]
    assert fetch(rid, expires, signature, START) == plain  # each download counted
    with db.session() as s:
        assert s.get(Package, rid).downloads == 2  # type: ignore[union-attr]
    other, _ = verified(svc, "access", neighbour)
    forged = [(rid, expires, signature[:-1] + ("0" if signature[-1] != "0" else "1")),
              (rid, expires + 86400, signature),  # a longer life, same signature
              (other, expires, signature),  # someone else's package with my signature
              (rid, expires, ""),
              (secrets.token_hex(16), expires, signature)]
    for args in forged:
        with pytest.raises(NotFound, match="no such package"):
            fetch(*args, START)
    # Seven days, then gone.
    assert expires == int((START + dt.timedelta(days=7)).replace(tzinfo=dt.UTC).timestamp())
    fetch(rid, expires, signature, START + dt.timedelta(days=7))
    with pytest.raises(NotFound):
        fetch(rid, expires, signature, START + dt.timedelta(days=7, seconds=1))
    with db.session() as s:
        assert audit.verify(s).ok


def test_portability_package_has_json_and_csv(world: World) -> None:
    svc = world.service()
    email = world.person()
    rid, _ = verified(svc, "portability", email)
    assert row(rid).status == Status.completed
    with db.session() as s:
        plain = decrypt(s.get(Package, rid).blob)  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:
        data = json.loads(archive.read("data.json"))
        names = set(archive.namelist())
    assert data["kind"] == "portability" and "csv/shop.customer.csv" in names
    customer = next(t for t in data["tables"] if t["table"] == "customer")
    assert customer["rows"][0]["email"] == email
    assert "password_hash" not in customer["rows"][0]


def person_rows(world: World, email: str) -> dict[str, int]:
    cid = world.kerf("SELECT id FROM customer WHERE email = :e", e=email)
    return {
        "cid": cid,
        "invoices": world.kerf("SELECT count(*) FROM invoice WHERE customer_id = :c", c=cid),
        "payments": world.kerf("SELECT count(*) FROM payment p JOIN invoice i ON "
                               "i.id = p.invoice_id WHERE i.customer_id = :c", c=cid),
        "tickets": world.kerf("SELECT count(*) FROM support_ticket WHERE "
                              "lower(customer_email) = :e", e=email),
        "visits": world.kerf("SELECT count(*) FROM web_visit WHERE customer_id = :c", c=cid),
    }


def text_columns_holding(world: World, needle: str) -> set[str]:
    """table.column of every Kerf text column that holds `needle` (any case)."""
    engine = sa.create_engine(world.kerf_url)
    found: set[str] = set()
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for column in sa.inspect(conn).get_columns(table):
                if isinstance(column["type"], sa.String | sa.Text):
                    hit = conn.execute(sa.text(
                        f'SELECT count(*) FROM "{table}" WHERE lower("{column["name"]}") '
                        "LIKE :n"), {"n": f"%{needle.lower()}%"}).scalar()
                    if hit:
                        found.add(f"{table}.{column['name']}")
    engine.dispose()
    return found


def test_erasure_end_to_end(world: World) -> None:
    svc = world.service()
    email, neighbour = world.person(0), world.person(1)
    before = person_rows(world, email)
    assert before["invoices"] and before["tickets"] and before["visits"]
    phone = world.kerf("SELECT phone FROM customer WHERE id = :c", c=before["cid"])
    neighbour_before = person_rows(world, neighbour)
    kerf_before = snapshot(world.kerf_url)
    rid, token = verified(svc, "erasure", email)
    assert row(rid).status == Status.verified  # erasure waits for a staff member
    assert snapshot(world.kerf_url) == kerf_before
    svc.execute(rid, "agent:bo")
    request, _ = svc.for_requester(rid, token)
    assert request.status == Status.completed and request.error is None
    # The person's values are gone, except on the invoices the law keeps whole.
    assert text_columns_holding(world, email) == {"invoice.billing_email"}
    assert not text_columns_holding(world, phone)
    after = person_rows(world, email)
    assert after["cid"] is None and after["tickets"] == 0
    assert world.kerf("SELECT count(*) FROM web_visit WHERE customer_id = :c",
                      c=before["cid"]) == 0
    assert world.kerf("SELECT count(*) FROM invoice WHERE customer_id = :c",
                      c=before["cid"]) == before["invoices"]
    assert world.kerf("SELECT first_name FROM customer WHERE id = :c",
                      c=before["cid"]) == "(erased)"
    # Neighbours are untouched: every other customer's rows are as they were.
    kerf_after = snapshot(world.kerf_url)
    assert person_rows(world, neighbour) == neighbour_before
    for table in ("customer", "address", "quote", "orders", "invoice", "testimonial",
                  "id_document"):
        untouched = {k: v for k, v in kerf_before[table].items()
                     if (v[0] if table == "customer" else
                         _customer_of(table, k[0], kerf_before)) != before["cid"]}
        assert all(kerf_after[table].get(k) == v for k, v in untouched.items()), table
    # The certificate: what was erased, what was kept, on which law, until when.
    result = Service.result(request)
    assert result is not None and result["verified"] is True
    kept = {k["table"]: k for k in result["kept"]}
    invoice = kept["shop.invoice"]
    assert invoice["rows"] == before["invoices"]
    assert "General Tax Act" in invoice["law"]
    until = dt.date.fromisoformat(invoice["until"])
    assert until > START.date() and until.month == 12 and until.day == 31
    assert kept["shop.payment"]["rows"] == before["payments"]
    for entry in result["kept"]:  # every kept thing names its law
        assert entry["law"], entry
    done = next(m for m in outbox(rid) if "is done" in m.subject)
    assert "shop.invoice" in done.body and "General Tax Act" in done.body
    assert f"until {invoice['until']}" in done.body
    orders = kept["shop.orders"]  # a field kept in a row otherwise erased
    assert orders["fields"] == ["delivered_at"] and "General Tax Act" in orders["law"]
    assert orders["period"].startswith("7 years after")
    assert "shop.support_ticket: " in done.body


def _customer_of(table: str, pk: Any, snap: dict[str, Any]) -> Any:
    """The customer a row of `table` belongs to, from the snapshot taken before."""
    columns = [c.name for c in kerf_metadata.tables[table].columns]
    return snap[table][(pk,)][columns.index("customer_id")]


def test_rectification_changes_only_the_person(world: World) -> None:
    svc = world.service()
    email, neighbour = world.person(0), world.person(1)
    rid, _ = verified(svc, "rectification", email,
                      {"set": {"customer.first_name": " Wilhelmina ",
                               "customer.phone": "+31 6 12345678"}})
    assert row(rid).status == Status.verified
    assert Service.details(row(rid)) == {"set": {"customer.first_name": "Wilhelmina",
                                                 "customer.phone": "+31612345678"}}
    neighbour_name = world.kerf("SELECT first_name FROM customer WHERE email = :e", e=neighbour)
    svc.execute(rid, "agent:bo")
    assert row(rid).status == Status.completed
    assert world.kerf("SELECT first_name FROM customer WHERE email = :e",
                      e=email) == "Wilhelmina"
    assert world.kerf("SELECT phone FROM customer WHERE email = :e", e=email) == "+31612345678"
    assert world.kerf("SELECT first_name FROM customer WHERE email = :e",
                      e=neighbour) == neighbour_name
    assert world.kerf("SELECT count(*) FROM customer WHERE first_name = 'Wilhelmina'") == 1


def test_restriction_marks_the_person_only(world: World) -> None:
    svc = world.service()
    email, neighbour = world.person(0), world.person(1)
    rid, _ = verified(svc, "restriction", email)
    svc.execute(rid, "agent:bo")
    assert row(rid).status == Status.completed
    assert world.kerf("SELECT restricted FROM customer WHERE email = :e", e=email) in (1, True)
    assert world.kerf("SELECT restricted FROM customer WHERE email = :e",
                      e=neighbour) in (0, False)
    assert world.kerf("SELECT count(*) FROM customer WHERE restricted") == 1
    assert state.restricted_any(Identities.of({Identity.email: [email]}, "NL"))
    assert not state.restricted_any(Identities.of({Identity.email: [neighbour]}, "NL"))


def do_not_contact(world: World, email: str, scope: str | None = None) -> str | None:
    """Why the consent ledger says `email` must not get marketing, if it says so."""
    from lawful.consent.ledger import Ledger, Subject

    return Ledger(world.manifest, now=world.clock).on_do_not_contact(Subject.of(email=email),
                                                                     scope)


def consent_state(world: World, email: str, purpose: str) -> str:
    from lawful.consent.ledger import Ledger, Subject

    states = Ledger(world.manifest, now=world.clock).state(Subject.of(email=email))
    return next(s.status for s in states if s.purpose == purpose)


def test_objection_to_direct_marketing_suppresses_at_once(world: World) -> None:
    from lawful.consent.contact import may_contact
    from lawful.consent.ledger import Ledger

    svc = world.service()
    email, neighbour = world.person(0), world.person(1)
    ledger = Ledger(world.manifest, now=world.clock)
    # An existing customer may get offers for similar products (soft opt-in)...
    assert may_contact(ledger, svc.plan, email, "customer-marketing").allowed
    before = snapshot(world.kerf_url)
    rid, _ = verified(svc, "objection", email.upper(), {"to": "direct_marketing"})
    assert row(rid).status == Status.completed  # no staff member needed
    # ...until they object: then never, on any marketing purpose (Art. 21(3)).
    assert do_not_contact(world, email) is not None
    assert do_not_contact(world, neighbour) is None
    assert not may_contact(ledger, svc.plan, email, "customer-marketing").allowed
    assert not may_contact(ledger, svc.plan, email, "newsletter").allowed
    assert may_contact(ledger, svc.plan, neighbour, "customer-marketing").allowed
    assert snapshot(world.kerf_url) == before
    summary = Service.result(row(rid))["summary"]  # type: ignore[index]
    assert any("no more direct marketing" in line for line in summary)


def test_objection_to_legitimate_interests_restricts(world: World) -> None:
    svc = world.service()
    email = world.person(0)
    rid, _ = verified(svc, "objection", email, {"to": "legitimate_interests",
                                                "grounds": "my situation"})
    assert row(rid).status == Status.completed
    assert world.kerf("SELECT restricted FROM customer WHERE email = :e", e=email) in (1, True)
    assert do_not_contact(world, email) is None


def test_consent_withdrawal(world: World) -> None:
    svc = world.service()
    email = world.kerf("SELECT email FROM newsletter_subscriber ORDER BY id")
    rid, _ = verified(svc, "consent_withdrawal", email, {"purpose": "newsletter"})
    stored = row(rid)
    assert stored.status == Status.completed
    assert Service.result(stored)["purpose"] == "newsletter"  # type: ignore[index]
    assert consent_state(world, email, "newsletter") == "withdrawn"
    assert consent_state(world, email, "analytics-cookies") == "none"
    # Executing the task again records no second withdrawal.
    from lawful.consent.ledger import Ledger, Subject

    history = Ledger(world.manifest).history(Subject.of(email=email))
    assert execute.run(svc, rid) == Status.completed
    assert Ledger(world.manifest).history(Subject.of(email=email)) == history
    assert [e for e in history if e.get("purpose") == "newsletter"]
    other = world.person(2)
    rid2, _ = verified(svc, "consent_withdrawal", other, {"purpose": "analytics-cookies"})
    assert row(rid2).status == Status.completed
    assert consent_state(world, other, "analytics-cookies") == "withdrawn"
    assert consent_state(world, other, "newsletter") == "none"


LOCAL = st.text(alphabet=st.sampled_from([*"abcXYZ09.'%_;!#$&*+=?^`{|}~-", "é", "ü", "ß",
                                          "ø", "中", "Ж", "ı"]),
                min_size=1, max_size=16)


@HYPO
@given(local=LOCAL)
def test_odd_identities_find_exactly_their_person(world: World, local: str) -> None:
    """Quotes, %, _ and ; in an address are data, never SQL or wildcards; Unicode works."""
    svc = world.service()
    suffix = secrets.token_hex(3)
    email = f"{local}{suffix}@kërf.example".lower()
    # The service e-mails the requester, so it takes only addresses mail can reach (a bare
    # ';' or a leading dot is refused at submission); the engine's own tests search any text.
    try:
        checked_email(email)
    except NotAnAddress:
        assume(False)
    # Decoys that a LIKE pattern or a broken escape would also find.
    decoys = {email.replace("%", "x").replace("_", "y"), f"x{email}",
              email.replace("'", "")} - {email}
    engine = sa.create_engine(world.kerf_url)
    base = int(world.kerf("SELECT max(id) FROM customer")) + 1
    with engine.begin() as conn:
        for offset, address in enumerate([email, *sorted(decoys)]):
            conn.execute(customer_table.insert().values(
                id=base + offset, email=address, first_name="Odd", last_name=str(offset),
                created_at=dt.datetime(2025, 1, 1), restricted=False))
    engine.dispose()
    rid, _ = verified(svc, "access", email)
    assert row(rid).status == Status.completed, row(rid).error
    with db.session() as s:
        plain = decrypt(s.get(Package, rid).blob)  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:
        data = json.loads(archive.read("data.json"))
    customers = next(t for t in data["tables"] if t["table"] == "customer")["rows"]
    assert [c["email"] for c in customers] == [email]
    assert Service.identity(row(rid)) == email


# --- 5. execution is idempotent, and a failed run can be run again --------------------------

def store_counts() -> dict[str, int]:
    return {m.__tablename__: count(m) for m in (Request, Verification, Package, OutboxMessage,
                                                 Notification, AuditEntry)}


def test_running_twice_does_nothing_the_second_time(world: World) -> None:
    svc = world.service()
    access_id, _ = verified(svc, "access", world.person(0))
    erase_id, _ = verified(svc, "erasure", world.person(1))
    svc.execute(erase_id, "agent:bo")
    with db.session() as s:
        package = s.get(Package, access_id)
        assert package is not None
        sha, created = package.sha256, package.created_at
    counts, kerf = store_counts(), snapshot(world.kerf_url)
    results = (row(access_id).result_enc, row(erase_id).result_enc)
    for rid in (access_id, erase_id):
        assert execute.run(svc, rid) == Status.completed
    assert execute.run(svc, secrets.token_hex(16)) == "missing"
    assert store_counts() == counts and snapshot(world.kerf_url) == kerf
    assert (row(access_id).result_enc, row(erase_id).result_enc) == results
    with db.session() as s:
        package = s.get(Package, access_id)
        assert package is not None and (package.sha256, package.created_at) == (sha, created)
    with pytest.raises(Conflict):
        svc.execute(access_id, "agent:bo")


@pytest.mark.parametrize("down", ["missing-file", "closed-port", "not-a-database"])
def test_a_failed_run_records_the_error_and_runs_again(world: World, down: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    svc = world.service()
    email = world.person(0)
    kerf = snapshot(world.kerf_url)
    garbage = world.tmp / "garbage.db"
    garbage.write_bytes(bytes(range(256)) * 20)
    broken = {"missing-file": f"sqlite:///{world.tmp / 'no' / 'such' / 'dir' / 'kerf.db'}",
              "closed-port": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/kerf",
              "not-a-database": f"sqlite:///{garbage}"}[down]
    monkeypatch.setenv("KERF_DATABASE_URL", broken)
    access_id, token = verified(svc, "access", email)
    erase_id, _ = verified(svc, "erasure", email)
    svc.execute(erase_id, "agent:bo")
    for rid in (access_id, erase_id):
        stored = row(rid)
        assert stored.status == Status.in_progress
        assert stored.error
        if down == "not-a-database":  # not an error lawful expects: still recorded
            assert "file is not a database" in stored.error
        else:
            assert "shop" in stored.error and "cannot be reached" in stored.error
        assert "request.failed" in actions(rid)
        assert count(Package, rid) == 0
        assert not [m for m in outbox(rid) if "is done" in m.subject]
    assert snapshot(world.kerf_url) == kerf
    # The requester sees it is still in progress; nothing else failed.
    request, _ = svc.for_requester(access_id, token)
    assert request.status == Status.in_progress
    monkeypatch.setenv("KERF_DATABASE_URL", world.kerf_url)
    for rid in (access_id, erase_id):
        svc.execute(rid, "agent:bo")
        stored = row(rid)
        assert stored.status == Status.completed and stored.error is None
    assert count(Package, access_id) == 1
    assert world.kerf("SELECT count(*) FROM customer WHERE email = :e", e=email) == 0
    with db.session() as s:
        assert audit.verify(s).ok


# --- 6. purge: the app practises the retention it enforces ---------------------------------

def test_purge_removes_old_closed_requests_only(world: World) -> None:
    svc = world.service()
    email = world.person(0)
    world.clock.at = dt.datetime(2020, 1, 10, 9, 0)
    old_done, _ = verified(svc, "access", email)
    old_refused, _ = verified(svc, "erasure", "refused-long-ago@example.org")
    svc.refuse(old_refused, "lead:ann", "excessive", "the tenth this month")
    old_open, _ = submitted(svc, "erasure", "never-verified@example.org")
    old_notified, _ = verified(svc, "restriction", world.person(1))
    svc.execute(old_notified, "agent:bo")
    world.clock.at = dt.datetime(2022, 6, 1, 9, 0)
    recent, _ = verified(svc, "access", email)
    assert {row(r).status for r in (old_done, old_refused, old_notified, recent)} == \
        {Status.completed, Status.refused}
    gone = (old_done, old_refused, old_notified)
    assert count(Package, old_done) == 1 and count(Notification, old_notified) > 0
    assert all(count(OutboxMessage, r) for r in gone)
    # The day before three years have passed: nothing goes.
    world.clock.at = dt.datetime(2023, 1, 9, 23, 0)
    assert svc.purge() == 0
    world.clock.at = dt.datetime(2023, 1, 10, 0, 1)
    assert svc.purge() == 3
    for rid in gone:
        for model in (Verification, Package, OutboxMessage, Notification):
            assert count(model, rid) == 0, (model, rid)
        with db.session() as s:
            assert s.get(Request, rid) is None
    assert {r.id for r in svc.list()} == {old_open, recent}
    assert count(Package, recent) == 1
    assert svc.purge() == 0
    with db.session() as s:
        purged = [e for e in audit.entries(s) if e.action == "requests.purged"]
        assert len(purged) == 1
        assert json.loads(purged[0].detail) == {"count": 3, "kept_for": "3 years"}
        assert audit.verify(s).ok
    # The journal keeps ids and actions, never who asked.
    journal = dump_store()["audit"]
    assert email not in journal and email.split("@")[0] not in journal
    assert "refused-long-ago" not in journal


def test_purge_follows_the_manifest(world: World) -> None:
    def brief(data: dict[str, Any]) -> None:
        data["rights"]["keep_request_records"] = "6 months"
    svc = world.service(world.manifest_with(brief))
    verified(svc, "access", world.person())
    world.clock.at = START + dt.timedelta(days=183)
    assert svc.purge() == 0
    world.clock.at = dt.datetime(2026, 9, 2, 0, 0)
    assert svc.purge() == 1 and count(Request) == 0 and count(Package) == 0


# --- 7. identities are encrypted at rest ------------------------------------------------------

def test_no_identity_in_plain_in_any_store_table(any_world: World) -> None:
    world = any_world
    svc = world.service()
    email = world.person(0)
    phone = world.kerf("SELECT phone FROM customer WHERE email = :e", e=email)
    shown = email.replace(email[0], email[0].upper(), 1)
    rids = [
        verified(svc, "access", shown)[0],
        verified(svc, "portability", email)[0],
        verified(svc, "objection", email, {"to": "direct_marketing"})[0],
        verified(svc, "consent_withdrawal", email, {"purpose": "newsletter"})[0],
        verified(svc, "rectification", email,
                 {"set": {"customer.job_title": "Head of Quality"}})[0],
        verified(svc, "restriction", email)[0],
        submitted(svc, "erasure", email)[0],  # a code waiting in the outbox
    ]
    svc.execute(rids[4], "agent:bo")
    svc.execute(rids[5], "agent:bo")
    refused, _ = verified(svc, "erasure", email)
    svc.refuse(refused, "lead:ann", "other", "a test refusal")
    erased, _ = verified(svc, "erasure", email)
    svc.extend(erased, "lead:ann", 1, "complex")
    svc.execute(erased, "agent:bo")
    assert {row(r).status for r in rids[:6]} == {Status.completed}
    tables = dump_store()
    assert {"request", "outbox", "package", "notification", "audit", "verification",
            "engine_run", "engine_suppression"} <= set(tables)
    for name, text in tables.items():
        low = text.lower()
        for needle in (email, shown, phone, "head of quality"):
            assert needle.lower() not in low, (name, needle)
    # ...and lawful itself can still read them back.
    assert Service.identity(row(rids[0])) == email
    assert outbox(rids[6])[-1].to == email


# --- brute force under concurrency, staff reads ---------------------------------------------

def test_concurrent_guesses_cannot_exceed_the_budget(any_world: World) -> None:
    import threading

    from lawful.requests.kinds import ServiceError

    svc = any_world.service()
    rid, token = submitted(svc, "erasure", "guess@example.org")
    code = latest_code(rid)
    guesses = [f"{n:06d}" for n in range(40) if f"{n:06d}" != code][:32]
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def guess(mine: list[str]) -> None:
        start.wait()
        for g in mine:
            try:
                svc.verify(rid, token, g)
                outcomes.append("verified")
            except ServiceError as exc:
                outcomes.append(type(exc).__name__)
            except Exception as exc:  # a crash would be a 500 from the API
                outcomes.append(f"crash: {exc}")

    pool = [threading.Thread(target=guess, args=(guesses[i::8],)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert "verified" not in outcomes
    assert [o for o in outcomes if o.startswith("crash")] == []
    assert outcomes.count("Invalid") == 4 and outcomes.count("Locked") == len(guesses) - 4
    with db.session() as s:
        check = s.get(Verification, rid)
        assert check is not None and check.failures == 5 and check.locked
    assert actions(rid).count("verification.failed") == 5
    with pytest.raises(Locked):
        svc.verify(rid, token, code)


def test_staff_reads_are_audited(world: World) -> None:
    svc = world.service()
    rid, _ = submitted(svc, "erasure", "read@example.org")
    assert svc.get(rid, "agent:bo").id == rid
    with db.session() as s:
        viewed = [e for e in audit.entries(s, rid) if e.action == "request.viewed"]
    assert [e.actor for e in viewed] == ["agent:bo"]
    with pytest.raises(NotFound):
        svc.get(secrets.token_hex(16), "agent:bo")
    assert [r.id for r in svc.list(status="awaiting_verification", kind="erasure")] == [rid]
    assert svc.list(status="completed") == []


def test_verify_returns_the_request_as_stored(world: World) -> None:
    svc = world.service()
    rid, token = submitted(svc, "access", world.person())
    returned = svc.verify(rid, token, latest_code(rid))
    assert returned.status == row(rid).status == Status.completed
