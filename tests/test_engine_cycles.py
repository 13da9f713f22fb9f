"""A reference cycle: the plan builds, the search ends, and erasure breaks no foreign key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lawful.engine.access import access
from lawful.engine.erase import erase
from lawful.engine.identities import Identities
from lawful.engine.plan import build_plan
from lawful.manifest import load_manifest_text
from lawful.manifest.model import Identity

MANIFEST = """
lawful: 1
organisation:
  name: Loop
  controllers: [{id: loop, name: Loop B.V., address: Somewhere 1, country: NL}]
subjects: [{id: customer, name: Customers, fideslang: customer}]
activities:
  - id: service
    name: Service
    purpose: The service.
    subjects: customer
    categories: [user.contact.email, user.content.private]
    legal_bases: [contract]
systems:
  - id: db
    url: sqlite:///{path}
    tables:
      - name: account
        subject: customer
        fields:
          - {name: email, category: user.contact.email, identity: email, erase: hash}
        references:
          - {field: favourite_note_id, to: note.id}
      - name: note
        subject: customer
        erase: delete_row
        fields:
          - {name: body, category: user.content.private}
        references:
          - {field: account_id, to: account.id}
          - {field: reply_to, to: note.id, other_person: true}  # a reply may be to anyone
"""


@pytest.fixture
def looped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "cycle-test-secret-key")
    path = tmp_path / "loop.db"
    db = sqlite3.connect(path)
    db.executescript("""
        PRAGMA foreign_keys = ON;
        CREATE TABLE account (id INTEGER PRIMARY KEY, email TEXT,
                              favourite_note_id INTEGER REFERENCES note(id));
        CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT,
                           account_id INTEGER REFERENCES account(id),
                           reply_to INTEGER REFERENCES note(id));
        INSERT INTO account VALUES (1, 'ann@example.com', NULL), (2, 'bob@example.com', NULL);
        INSERT INTO note VALUES (10, 'ann first', 1, NULL), (11, 'ann reply', 1, 10),
                                (12, 'bob on ann', 2, 11), (13, 'ann spare', 1, NULL);
        UPDATE account SET favourite_note_id = 10 WHERE id = 1;
    """)
    db.commit()
    db.close()
    return path


def test_cycle_is_searched_and_erased_safely(looped: Path) -> None:
    plan = build_plan(load_manifest_text(MANIFEST.replace("{path}", str(looped))))
    ids = Identities.of({Identity.email: ["ann@example.com"]})
    report = access(plan, ids)
    notes = next(t for t in report.tables if t.table == "note")
    assert sorted(r["body"] for r in notes.rows) == ["ann first", "ann reply", "ann spare"]
    result = erase(plan, ids)
    assert result.verified, result.leftovers
    db = sqlite3.connect(looped)
    rows = dict(db.execute("SELECT id, body FROM note").fetchall())
    # Ann's spare note goes; her notes that rows staying still point at are blanked instead;
    # Bob's note is untouched.
    assert 13 not in rows and rows[12] == "bob on ann"
    assert rows[10] is None and rows[11] is None
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("SELECT email FROM account WHERE id = 2").fetchone()[0] == \
        "bob@example.com"
