"""Regression tests for ways erasure could reach the wrong person or leave values behind.

Each builds a small SQLite database and a manifest for it, erases one person, then reads the
database itself.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from lawful.engine.access import access
from lawful.engine.connect import EngineError
from lawful.engine.erase import Eraser, erase
from lawful.engine.identities import Identities
from lawful.engine.plan import Plan, build_plan
from lawful.manifest import load_manifest_text
from lawful.manifest.model import Identity

HEAD = """
lawful: 1
organisation:
  name: Safe
  controllers: [{id: safe, name: Safe B.V., address: Somewhere 1, country: NL}]
subjects: [{id: customer, name: Customers, fideslang: customer}]
activities:
  - {id: service, name: Service, purpose: The service., subjects: customer,
     categories: [user], legal_bases: [contract]}
retention:
  - {id: short, name: Short, activities: [service], keep: 1 years, after: event, event: x,
     columns: [invoice.issued_at, ticket.created_at], basis: legal_obligation, law: Law A}
  - {id: long, name: Long, activities: [service], keep: 10 years, after: event, event: x,
     columns: [invoice.issued_at], basis: legal_obligation, law: Law B}
systems:
  - id: db
    url: ${SAFE_DB_URL}
    tables:
"""


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "safety-test-secret-key")


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: str, tables: str,
         name: str = "db") -> tuple[Path, Plan]:
    path = tmp_path / f"{name}.db"
    db = sqlite3.connect(path)
    db.executescript(sql)
    db.commit()
    db.close()
    monkeypatch.setenv("SAFE_DB_URL", f"sqlite:///{path}")
    return path, build_plan(load_manifest_text(HEAD + tables))


def rows(path: Path, table: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    out = db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    db.close()
    return out


def ids(*emails: str) -> Identities:
    return Identities.of({Identity.email: list(emails)}, "NL")


ACCOUNTS = """      - name: account
        fields:
          - {name: email, category: user.contact.email, identity: email, erase: hash}
          - {name: last_ip, category: user.device.ip_address, identity: ip_address,
             erase: "null"}
          - {name: name, category: user.name, erase: fixed, fixed_value: "(erased)"}
"""


def test_a_shared_ip_address_never_reaches_another_account(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, plan = make(tmp_path, monkeypatch, """
        CREATE TABLE account(id INTEGER PRIMARY KEY, email TEXT, last_ip TEXT, name TEXT);
        INSERT INTO account VALUES (1, 'ann@example.com', '10.0.0.1', 'Ann'),
                                   (2, 'bob@example.com', '10.0.0.1', 'Bob');""", ACCOUNTS)
    assert erase(plan, ids("ann@example.com")).verified
    assert rows(path, "account")[1] == (2, "bob@example.com", "10.0.0.1", "Bob")
    # An IP address the requester gives is theirs to ask about: rows holding it are found
    # (Ann's is erased now, so only Bob's remains).
    report = access(plan, Identities.of({Identity.ip_address: ["10.0.0.1"]}))
    assert [r["name"] for t in report.tables for r in t.rows] == ["Bob"]


TICKETS = """      - name: account
        fields:
          - {name: email, category: user.contact.email, identity: email, erase: hash}
      - name: ticket
        erase: delete_row
        fields:
          - {name: vat, category: user.financial, retention: short}
          - {name: body, category: user.content.private}
        references: [{field: account_id, to: account.id}]
      - name: invoice
        retention: [short, long]
        fields:
          - {name: billing_name, category: user.name, erase: "null"}
        references: [{field: account_id, to: account.id}]
      - name: card
        fields:
          - {name: iban, category: user.financial, erase: mask}
        references: [{field: account_id, to: account.id}]
"""


def _tickets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Plan]:
    today = dt.date.today().isoformat()
    old = (dt.date.today() - dt.timedelta(days=3 * 365)).isoformat()
    return make(tmp_path, monkeypatch, f"""
        CREATE TABLE account(id INTEGER PRIMARY KEY, email TEXT);
        CREATE TABLE ticket(id INTEGER PRIMARY KEY, account_id INT REFERENCES account(id),
                            vat TEXT, body TEXT, created_at TEXT);
        CREATE TABLE invoice(id INTEGER PRIMARY KEY, account_id INT REFERENCES account(id),
                             billing_name TEXT, issued_at TEXT);
        CREATE TABLE card(id INTEGER PRIMARY KEY, account_id INT REFERENCES account(id),
                          iban TEXT);
        INSERT INTO account VALUES (1, 'JÖRG@example.com'), (2, 'ann@example.com');
        INSERT INTO ticket VALUES (1, 2, 'NL123', 'hello', '{today}');
        INSERT INTO invoice VALUES (1, 2, 'Ann', '{old}');
        INSERT INTO card VALUES (1, 2, '123');""", TICKETS)


def test_field_hold_keeps_the_row_in_a_delete_row_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, plan = _tickets(tmp_path, monkeypatch)
    assert erase(plan, ids("ann@example.com")).verified
    (ticket,) = rows(path, "ticket")
    assert ticket[2] == "NL123" and ticket[3] is None  # held field kept, the rest erased


def test_the_latest_of_several_legal_holds_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, plan = _tickets(tmp_path, monkeypatch)
    result = erase(plan, ids("ann@example.com"))
    invoice = next(t for t in result.tables if t.table == "invoice")
    assert invoice.held == 1 and "Long" in (invoice.held_rule or "")
    assert rows(path, "invoice")[0][2] == "Ann"  # 3 years old: the 1-year rule alone is over


def test_short_values_are_masked_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, plan = _tickets(tmp_path, monkeypatch)
    assert erase(plan, ids("ann@example.com")).verified
    assert rows(path, "card")[0][2] == "***"


def test_verification_rereads_rows_the_search_cannot_reach_any_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, plan = _tickets(tmp_path, monkeypatch)
    real = Eraser._writes

    def skip_cards(self: Eraser, conn: object, system: str, todo: dict[str, object]) -> object:
        return real(self, conn, system, {t: a for t, a in todo.items() if t != "card"})

    monkeypatch.setattr(Eraser, "_writes", skip_cards)
    result = erase(plan, ids("ann@example.com"))
    # Once the account's e-mail is a pseudonym, no search reaches the card again: only the
    # re-read of the planned rows can see that its IBAN was never masked.
    assert result.verified is False and any("card" in p for p in result.leftovers)
    assert rows(path, "card")[0][2] == "123"


def test_upper_case_non_ascii_addresses_are_found_on_sqlite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, plan = _tickets(tmp_path, monkeypatch)
    for given in ("jörg@example.com", "JÖRG@example.com", "Jörg@Example.com"):
        report = access(plan, ids(given))
        assert [t.table for t in report.tables] == ["account"], given


def test_a_run_is_never_finished_on_another_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schema = """CREATE TABLE account(id INTEGER PRIMARY KEY, email TEXT, last_ip TEXT,
                                     name TEXT);"""
    staging, plan = make(tmp_path, monkeypatch, schema + """
        INSERT INTO account VALUES (1, 'ann@example.com', NULL, 'Ann');""", ACCOUNTS, "staging")

    def crash(*_: object, **__: object) -> int:
        raise KeyboardInterrupt  # dies after planning, before writing

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(Eraser, "apply", crash)
        erase(plan, ids("ann@example.com"))
    production, plan = make(tmp_path, monkeypatch, schema + """
        INSERT INTO account VALUES (1, 'carl@example.com', NULL, 'Carl'),
                                   (2, 'ann@example.com', NULL, 'Ann');""", ACCOUNTS, "prod")
    with pytest.raises(EngineError, match="other databases"):
        erase(plan, ids("ann@example.com"))
    assert rows(production, "account")[0] == (1, "carl@example.com", None, "Carl")
    assert rows(staging, "account")[0][3] == "Ann"


def test_erased_identities_are_suppressed_as_keyed_hashes_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lawful.engine import state

    _, plan = make(tmp_path, monkeypatch, """
        CREATE TABLE account(id INTEGER PRIMARY KEY, email TEXT, last_ip TEXT, name TEXT);
        INSERT INTO account VALUES (1, 'ann@example.com', '10.0.0.1', 'Ann');""", ACCOUNTS)
    assert not state.is_suppressed(Identity.email, "ann@example.com")
    result = erase(plan, ids("Ann@Example.com"))
    assert result.suppressed == 2  # the e-mail given and the IP found on her row
    assert state.is_suppressed(Identity.email, "ann@example.com")
    assert not state.is_suppressed(Identity.email, "bob@example.com")
    # every file of lawful's store, the write-ahead log included
    files = list((tmp_path / "state").glob("lawful.db*"))
    store = b"".join(f.read_bytes() for f in files)
    assert len(files) >= 1 and len(store) > 4096
    assert b"ann@example.com" not in store and b"10.0.0.1" not in store
