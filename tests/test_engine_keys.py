"""Tables keyed by text and by UUID, not integers: a batch erasure on PostgreSQL writes each
row's own pseudonym and mask (the per-row values cannot go through bigint arrays), and leaves
every other person's rows as they were."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lawful.engine.erase import erase
from lawful.engine.identities import Identities
from lawful.engine.plan import build_plan
from lawful.keys import keyed_hash
from lawful.manifest import load_manifest_text
from lawful.manifest.model import Identity
from tests.kerfdb import backend_url

MANIFEST = """
lawful: 1
organisation:
  name: Keys
  controllers: [{id: keys, name: Keys B.V., address: Somewhere 1, country: NL}]
subjects: [{id: member, name: Members, fideslang: customer}]
activities:
  - id: club
    name: Club
    purpose: The club.
    subjects: member
    categories: [user.contact.email, user.device.device_id]
    legal_bases: [contract]
systems:
  - id: db
    url: ${KEYS_URL}
    tables:
      - name: member
        subject: member
        primary_key: [code]
        fields:
          - {name: email, category: user.contact.email, identity: email, erase: hash}
      - name: device
        subject: member
        fields:
          - {name: serial, category: user.device.device_id, erase: mask}
        references:
          - {field: member_code, to: member.code}
"""
MEMBERS = 120  # more than a statement's IN list takes before PostgreSQL binds arrays


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_text_and_uuid_keys_get_their_own_pseudonyms(backend: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url = backend_url(backend, "lawful_keys_test", tmp_path)
    engine = sa.create_engine(url)
    uuid_type = "uuid" if backend == "postgres" else "varchar(36)"
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE member (code varchar(12) PRIMARY KEY, email text)"))
        conn.execute(sa.text(f"CREATE TABLE device (id {uuid_type} PRIMARY KEY, member_code "
                             "varchar(12) REFERENCES member (code), serial text)"))
        conn.execute(sa.text("INSERT INTO member VALUES (:c, :e)"),
                     [{"c": f"M-{i:04d}", "e": f"m{i}@example.com"} for i in range(MEMBERS * 2)])
        conn.execute(sa.text("INSERT INTO device VALUES (:id, :m, :s)"),
                     [{"id": str(uuid.UUID(int=i + 1)), "m": f"M-{i % (MEMBERS * 2):04d}",
                       "s": f"SN{i:08d}"} for i in range(MEMBERS * 4)])
    monkeypatch.setenv("KEYS_URL", url)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "keys-test-secret-key")
    plan = build_plan(load_manifest_text(MANIFEST))
    gone = [f"m{i}@example.com" for i in range(MEMBERS)]

    result = erase(plan, Identities.of({Identity.email: gone}), persons=MEMBERS)

    assert result.verified, result.leftovers[:3]
    with engine.connect() as conn:
        members = dict(conn.execute(sa.text("SELECT code, email FROM member")).all())
        serials = conn.execute(sa.text("SELECT member_code, serial FROM device")).all()
    engine.dispose()
    for i in range(MEMBERS * 2):
        code = f"M-{i:04d}"
        if i < MEMBERS:  # each its own keyed pseudonym, computed as the engine documents it
            assert members[code] == keyed_hash(f"m{i}@example.com")
        else:
            assert members[code] == f"m{i}@example.com"
    assert len(set(members.values())) == MEMBERS * 2
    assert len(serials) == MEMBERS * 4  # no device deleted
    for member, serial in serials:
        if int(member[2:]) < MEMBERS:  # masked: each row keeps its own last 4 characters
            assert not serial.startswith("SN") and serial[-4:].isdigit()
        else:
            assert serial.startswith("SN")
    masked = [s for m, s in serials if int(m[2:]) < MEMBERS]
    assert len({s[-4:] for s in masked}) > len(masked) // 2  # per row, not one value for all
