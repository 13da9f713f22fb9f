"""The consent ledger and its HTTP endpoints, on a real store and the real Kerf database.

Nothing of lawful is mocked: events go through the API (or the ledger) into SQLite (and, for
the core of recording, state, replay and export, PostgreSQL), and are read back from the
tables themselves. Time is injected (`Service(now=...)`), so a new text version can become
effective in the middle of a test.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import ipaddress
import json
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
import sqlalchemy as sa
import yaml
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lawful.addresses import NotAnAddress, checked_email
from lawful.api.app import create_app
from lawful.api.auth import Role, create
from lawful.api.limits import RateLimiter
from lawful.consent import unsubscribe
from lawful.consent.contact import may_contact
from lawful.consent.ledger import Ledger, Subject, pseudonymous_ip
from lawful.engine.erase import erase
from lawful.engine.identities import Identities
from lawful.engine.plan import build_plan
from lawful.keys import derived_key, keyed_hash
from lawful.manifest.load import located_from_text
from lawful.manifest.model import Identity, Manifest
from lawful.requests import mail
from lawful.requests.kinds import NotFound
from lawful.requests.workflow import Service
from lawful.store import db
from tests.kerfdb import store_schema

SECRET = "consent-test-secret-key-0123456789"
BEFORE_V2 = dt.datetime(2026, 6, 1, 12, 0)
V2_EFFECTIVE = dt.date(2026, 7, 1)
AFTER_V2 = dt.datetime(2026, 7, 2, 9, 30)
NEWSLETTER_V2 = {"en": "Send me the Kerf newsletter, now with offers from partners. I can "
                       "unsubscribe at any time.",
                 "nl": "Stuur mij de nieuwsbrief van Kerf, nu met aanbiedingen van partners."}
RELAXED = settings(max_examples=30, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])


# --- the world: Kerf, a store, a clock ---------------------------------------------------------


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def extended(data: dict[str, Any]) -> Manifest:
    """Kerf, plus: a version 2 of the newsletter text effective on V2_EFFECTIVE; a purpose
    that Global Privacy Control opts out of; two marketing purposes whose ids share a long
    prefix."""
    newsletter = next(p for p in data["consent_purposes"] if p["id"] == "newsletter")
    newsletter["versions"].append({"version": 2, "effective": V2_EFFECTIVE,
                                   "text": dict(NEWSLETTER_V2)})
    text = {"version": 1, "effective": dt.date(2024, 1, 1)}
    data["consent_purposes"] += [
        {"id": "ad-targeting", "name": "Targeted advertising", "channel": "cookie",
         "gpc_opt_out": True,
         "versions": [{**text, "text": {"en": "Share my visits with ad partners to show me "
                                              "targeted ads."}}]},
        {"id": "marketing-emails-weekly", "name": "Weekly offers", "channel": "email",
         "marketing": True, "versions": [{**text, "text": {"en": "Weekly offers."}}]},
        {"id": "marketing-emails-monthly", "name": "Monthly offers", "channel": "email",
         "marketing": True, "versions": [{**text, "text": {"en": "Monthly offers."}}]},
    ]
    return located_from_text(yaml.safe_dump(data, sort_keys=False), "kerf-extended.yaml"
                             ).manifest


@dataclass(repr=False)
class World:
    client: TestClient
    service: Service
    ledger: Ledger
    kerf_url: str
    clock: Clock
    keys: dict[Role, str] = field(default_factory=dict)

    def key(self, role: Role = Role.privacy_lead) -> dict[str, str]:
        if role not in self.keys:
            self.keys[role] = create(f"test-{role.value}", role)
        return {"X-API-Key": self.keys[role]}

    @cached_property
    def customers(self) -> list[str]:
        engine = sa.create_engine(self.kerf_url)
        with engine.connect() as conn:
            found = [str(e) for e in conn.execute(sa.text(
                "SELECT email FROM customer WHERE email IS NOT NULL ORDER BY id LIMIT 10"
            )).scalars()]
        engine.dispose()
        return found

    def client_at(self, ip: str) -> TestClient:
        return TestClient(self.client.app, client=(ip, 50000))

    def rows(self, table: str) -> list[Any]:
        with db.engine().connect() as conn:
            return list(conn.execute(sa.text(f"SELECT * FROM {table}")).mappings())

    def count(self, table: str) -> int:
        with db.engine().connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())

    def status(self, purpose: str, **who: str) -> dict[str, Any]:
        subject = Subject.of(**who)
        return next(s.__dict__ for s in self.ledger.state(subject) if s.purpose == purpose)


@pytest.fixture
def base_env(kerf_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KERF_DATABASE_URL", kerf_db)
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", SECRET + tmp_path.name)
    for var in ("LAWFUL_DATABASE_URL", "LAWFUL_SMTP_URL", "LAWFUL_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)
    return kerf_db


@contextmanager
def open_world(manifest: Manifest, kerf_url: str, at: dt.datetime = BEFORE_V2
               ) -> Iterator[World]:
    clock = Clock(at)
    service = Service(manifest, base_url="https://lawful.kerf.example", now=clock)
    app = create_app(service, RateLimiter(per_minute=100_000))
    with TestClient(app) as client:
        yield World(client, service, app.state.ledger, kerf_url, clock)


@pytest.fixture
def world(base_env: str, kerf_data: dict[str, Any]) -> Iterator[World]:
    """The extended Kerf manifest, the app store on SQLite under a fresh state directory."""
    with open_world(extended(kerf_data), base_env) as w:
        yield w


@contextmanager
def postgres_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the app store at a fresh PostgreSQL schema; dropped afterwards."""
    with store_schema("consent") as url:
        monkeypatch.setenv("LAWFUL_DATABASE_URL", url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_world(request: pytest.FixtureRequest, base_env: str, kerf_data: dict[str, Any],
              monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The same world with the app store on SQLite, then on PostgreSQL."""
    manifest = extended(kerf_data)
    if request.param == "postgres":
        with postgres_store(monkeypatch) as url, open_world(manifest, base_env) as w:
            assert db.engine().dialect.name == "postgresql" and url
            yield w
    else:
        with open_world(manifest, base_env) as w:
            assert db.engine().dialect.name == "sqlite"
            yield w


def store_text() -> str:
    """Every value of every table of the store, as text (bytes decoded leniently)."""
    engine = db.engine()
    parts: list[str] = []
    with engine.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{name}"')):
                for value in row:
                    if isinstance(value, memoryview):
                        value = value.tobytes()
                    parts.append(value.decode("latin-1") if isinstance(value, bytes)
                                 else str(value))
    return "\n".join(parts)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def kerf_text(kerf_data: dict[str, Any], purpose: str, lang: str, version: int = 1) -> str:
    found = next(p for p in kerf_data["consent_purposes"] if p["id"] == purpose)
    return str(next(v for v in found["versions"] if v["version"] == version)["text"][lang])


def visitor() -> str:
    return "v-" + secrets.token_hex(8)


def post_event(client: TestClient, headers: dict[str, str] | None = None,
               **body: Any) -> Any:
    return client.post("/v1/consent/events", json=body, headers=headers or {})


# --- events: every field, pseudonymised IP, never the address ----------------------------------


def test_an_event_stores_every_field(any_world: World, kerf_data: dict[str, Any]) -> None:
    w = any_world
    vid = visitor()
    shown = kerf_text(kerf_data, "analytics-cookies", "nl")
    made = post_event(w.client_at("198.51.100.23"), {"User-Agent": "Firefox/140.0 (test)"},
                      visitor_id=vid, purpose="analytics-cookies", action="granted",
                      version=1, language="nl", text_hash=sha256(shown),
                      channel="web_banner", site="shop.kerf.example",
                      audit_id="audit-0001", client_event_id="ce-0001")
    assert made.status_code == 201, made.text
    answer = made.json()
    assert answer == {"event_id": answer["event_id"], "purpose": "analytics-cookies",
                      "action": "granted", "version": 1, "replayed": False, "note": None}
    (row,) = w.rows("consent_event")
    assert row["id"] == answer["event_id"]
    assert row["client_event_id"] == "ce-0001"
    assert row["subject_kind"] == "visitor"
    assert row["subject_hash"] == keyed_hash(f"cookie_id:{vid}", "identity")
    assert vid.encode() not in bytes(row["subject_enc"])  # encrypted, not plain
    assert row["audit_id"] == "audit-0001"
    assert (row["purpose"], row["action"], row["version"]) == ("analytics-cookies",
                                                               "granted", 1)
    assert row["text_hash"] == sha256(shown) and row["language"] == "nl"
    assert (row["channel"], row["site"]) == ("web_banner", "shop.kerf.example")
    at = row["at"] if isinstance(row["at"], dt.datetime) else \
        dt.datetime.fromisoformat(str(row["at"]))
    assert at == BEFORE_V2
    assert row["ip_hash"] == pseudonymous_ip("198.51.100.200")  # the same /24
    assert row["user_agent"] == "Firefox/140.0 (test)"
    assert not row["gpc"]
    assert row["actor"] == "subject"
    # The history gives it back, the visitor id decrypted.
    (event,) = w.client.get("/v1/consent/history", params={"visitor_id": vid}).json()
    assert event["subject"] == vid and event["at"] == BEFORE_V2.isoformat()
    assert event["id"] == answer["event_id"] and event["text_hash"] == sha256(shown)


@given(a=st.integers(0, 2**32 - 1), b=st.integers(0, 255), c=st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ipv4_is_truncated_to_24_bits_then_hashed(base_env: str, a: int, b: int,
                                                  c: int) -> None:
    first = ipaddress.IPv4Address(a)
    same = ipaddress.IPv4Address((a & ~0xFF) | b)
    other = ipaddress.IPv4Address(c)
    digest = pseudonymous_ip(str(first))
    assert digest and re.fullmatch(r"[0-9a-f]{64}", digest)
    assert pseudonymous_ip(str(same)) == digest
    network = ipaddress.ip_network(f"{first}/24", strict=False)
    assert digest == keyed_hash(str(network.network_address), "ip")
    assert (pseudonymous_ip(str(other)) == digest) == (other in network)


@given(a=st.integers(0, 2**128 - 1), low=st.integers(0, 2**80 - 1),
       c=st.integers(0, 2**128 - 1))
@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ipv6_is_truncated_to_48_bits_then_hashed(base_env: str, a: int, low: int,
                                                  c: int) -> None:
    first = ipaddress.IPv6Address(a)
    same = ipaddress.IPv6Address((a >> 80 << 80) | low)
    other = ipaddress.IPv6Address(c)
    digest = pseudonymous_ip(str(first))
    assert pseudonymous_ip(str(same)) == digest
    assert pseudonymous_ip(same.exploded) == digest  # however it is written
    network = ipaddress.ip_network(f"{first}/48", strict=False)
    assert (pseudonymous_ip(str(other)) == digest) == (other in network)


def test_not_an_address_gives_no_ip_hash(base_env: str) -> None:
    for junk in (None, "", "testclient", "999.1.1.1", "1.2.3", "::g"):
        assert pseudonymous_ip(junk) is None


_EMAIL_CHARS = st.characters(
    categories=["L", "N"], include_characters="'\"%_+.-!#$&*=?^`{|}~",
    exclude_characters="@")


@st.composite
def addresses(draw: st.DrawFn) -> str:
    local = draw(st.text(_EMAIL_CHARS, min_size=1, max_size=20))
    domain = draw(st.text(st.characters(codec="ascii", categories=["Ll", "Nd"]), min_size=1,
                          max_size=12))
    return f"{local}@{domain}.example"


# IPv6 addresses start with a non-zero group: the text form then never begins with "::".
IPS = st.one_of(st.integers(0x0B000000, 0xDFFFFFFF).map(lambda i: str(ipaddress.IPv4Address(i))),
                st.integers(0x2001 << 112, 2**128 - 1).map(
                    lambda i: str(ipaddress.IPv6Address(i))))


@given(data=st.data())
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_table_holds_the_ip_or_the_address(world: World, data: st.DataObject) -> None:
    """Through the API (the address needs a key), then grep every table of the store."""
    email = data.draw(addresses())
    ip = data.draw(IPS)
    lang = data.draw(st.sampled_from(["en", "nl", "nl-BE", "de", None]))
    client = world.client_at(ip)
    before = world.count("consent_event")
    made = post_event(client, world.key(Role.agent), email=email, purpose="newsletter",
                      action="granted", language=lang, site="shop.kerf.example")
    try:
        checked_email(email)
    except NotAnAddress:  # e.g. an unquoted '"': refused whole, nothing stored
        assert made.status_code == 422 and "email" in made.json()["detail"], made.text
        assert world.count("consent_event") == before
        return
    assert made.status_code == 201, made.text
    withdrawn = client.post("/v1/consent/withdraw", json={"email": email,
                                                            "purpose": "newsletter"},
                              headers=world.key(Role.agent))
    assert withdrawn.status_code == 201, withdrawn.text
    network = ipaddress.ip_network(f"{ip}/{24 if ':' not in ip else 48}", strict=False)
    dump = store_text()
    for secret in (email, email.lower(), ip, str(network.network_address),
                   ipaddress.ip_address(ip).exploded):
        assert secret not in dump, secret
    # ...and yet the person is found again by the address, case-folded.
    asked = email.upper() if email.upper().lower() == email.lower() else email
    history = world.client.get("/v1/consent/history", params={"email": asked},
                               headers=world.key(Role.agent)).json()
    # (An address may come up again in a later example: these two are the last.)
    assert [e["action"] for e in history[-2:]] == ["granted", "withdrawn"]
    assert {e["subject"] for e in history} == {email.strip().lower()}
    assert {e["ip_hash"] for e in history[-2:]} == {pseudonymous_ip(ip)}


def test_the_store_files_never_hold_the_address_in_plain(world: World) -> None:
    email = "Ms.O'Brien+News%_Ünïcode@Kerf-Customer.example"
    for action in ("granted", "withdrawn", "granted"):
        assert post_event(world.client, world.key(), email=email, purpose="newsletter",
                          action=action).status_code == 201
    world.ledger.add_do_not_contact([email], "imported")
    db.engine().dispose()  # checkpoint: what is in the WAL reaches the file
    state_dir = Path(str(db.engine().url.database)).parent
    for path in state_dir.iterdir():
        if path.is_file():
            raw = path.read_bytes()
            for form in (email, email.lower()):
                for encoding in ("utf-8", "utf-16-le"):
                    assert form.encode(encoding) not in raw, path


# --- texts, versions, purposes ------------------------------------------------------------------


@given(lang=st.one_of(st.none(), st.sampled_from(["en", "nl", "NL", "nl-BE", "nl-NL", "en-GB",
                                                  "de", "fr-CA", "zz"]),
                      st.text(st.characters(categories=["Ll", "Lu"]), max_size=8)))
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_text_hash_is_of_the_exact_text_shown(world: World, kerf_data: dict[str, Any],
                                                  lang: str | None) -> None:
    vid = visitor()
    made = post_event(world.client, visitor_id=vid, purpose="testimonial",
                      action="granted", language=lang)
    assert made.status_code == 201, made.text
    (event,) = world.ledger.history(Subject.of(visitor_id=vid))
    expected_lang = event["language"]
    assert expected_lang in ("en", "nl")
    assert event["text_hash"] == sha256(kerf_text(kerf_data, "testimonial", expected_lang))
    if lang in ("en", "nl"):
        assert expected_lang == lang


def test_a_regional_language_records_the_text_the_banner_showed(
        world: World, kerf_data: dict[str, Any]) -> None:
    shown = {p["id"]: p for p in world.client.get("/v1/consent/purposes",
                                                  params={"lang": "nl-BE"}).json()}
    assert shown["testimonial"]["language"] == "nl"
    vid = visitor()
    made = post_event(world.client, visitor_id=vid, purpose="testimonial", action="granted",
                      language="nl-BE", text_hash=shown["testimonial"]["text_hash"])
    assert made.status_code == 201, made.text
    (event,) = world.ledger.history(Subject.of(visitor_id=vid))
    assert (event["language"], event["text_hash"]) == ("nl",
                                                       shown["testimonial"]["text_hash"])


def test_purposes_show_the_current_text_with_its_hash(world: World,
                                                      kerf_data: dict[str, Any]) -> None:
    shown = {p["id"]: p for p in world.client.get("/v1/consent/purposes",
                                                  params={"lang": "nl"}).json()}
    assert set(shown) >= {"newsletter", "analytics-cookies", "talent-pool", "testimonial"}
    news = shown["newsletter"]
    assert (news["version"], news["language"]) == (1, "nl")
    assert news["text_hash"] == sha256(kerf_text(kerf_data, "newsletter", "nl"))
    world.clock.at = AFTER_V2
    news = next(p for p in world.client.get("/v1/consent/purposes",
                                            params={"lang": "nl"}).json()
                if p["id"] == "newsletter")
    assert news["version"] == 2 and news["text"] == NEWSLETTER_V2["nl"]


def test_a_wrong_text_hash_is_refused(world: World, kerf_data: dict[str, Any]) -> None:
    vid = visitor()
    wrong = post_event(world.client, visitor_id=vid, purpose="analytics-cookies",
                       action="granted", language="en",
                       text_hash=sha256(kerf_text(kerf_data, "analytics-cookies", "nl")))
    assert wrong.status_code == 422
    assert "text_hash" in wrong.json()["detail"] and "analytics-cookies" in \
        wrong.json()["detail"]
    assert world.count("consent_event") == 0 and world.count("consent_state") == 0


def test_an_undeclared_purpose_is_refused_naming_the_declared(world: World) -> None:
    for path, body in (("/v1/consent/events", {"visitor_id": visitor(),
                                               "purpose": "horoscopes",
                                               "action": "granted"}),
                       ("/v1/consent/choices", {"visitor_id": visitor(),
                                                "choices": {"horoscopes": True,
                                                            "newsletter": True}}),
                       ("/v1/consent/withdraw", {"visitor_id": visitor(),
                                                 "purpose": "horoscopes"})):
        answer = world.client.post(path, json=body)
        assert 400 <= answer.status_code < 500, answer.text
        detail = answer.json()["detail"]
        assert "horoscopes" in detail, detail
        for declared in ("newsletter", "analytics-cookies", "talent-pool", "testimonial"):
            assert declared in detail, detail
    assert world.count("consent_event") == 0  # the choices were all refused, none half-kept


def test_bad_bodies_are_refused(world: World) -> None:
    vid = visitor()
    for body in ({"visitor_id": vid, "purpose": "newsletter", "action": "maybe"},
                 {"visitor_id": vid, "purpose": "newsletter", "action": "granted",
                  "channel": "pigeon"},
                 {"visitor_id": "short", "purpose": "newsletter", "action": "granted"},
                 {"visitor_id": "has spaces in it", "purpose": "newsletter",
                  "action": "granted"},
                 {"purpose": "newsletter", "action": "granted"},
                 {"visitor_id": vid, "purpose": "newsletter", "action": "granted",
                  "version": 9},
                 {"visitor_id": vid, "purpose": "newsletter", "action": "granted",
                  "extra": 1}):
        answer = post_event(world.client, **body)
        assert answer.status_code == 422, (body, answer.text)
    for channel in ("staff", "request", "email_link"):  # the proof's channel is not forged
        claimed = post_event(world.client, visitor_id=vid, purpose="newsletter",
                             action="granted", channel=channel)
        assert claimed.status_code == 401 and channel in claimed.json()["detail"]
    assert post_event(world.client, world.key(Role.agent), visitor_id=vid,
                      purpose="newsletter", action="denied", channel="staff"
                      ).status_code == 201
    both = post_event(world.client, world.key(), visitor_id=vid, email="a@b.example",
                      purpose="newsletter", action="granted")
    assert both.status_code == 422 and "exactly one" in both.json()["detail"]
    assert world.count("consent_event") == 1  # the staff's denial only


@given(vid=st.text(st.characters(codec="ascii"), min_size=0, max_size=70))
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_visitor_ids_are_letters_digits_dash_underscore(world: World, vid: str) -> None:
    answer = post_event(world.client, visitor_id=vid, purpose="analytics-cookies",
                        action="denied")
    valid = re.fullmatch(r"[A-Za-z0-9_-]{8,64}", vid) is not None
    assert answer.status_code == (201 if valid else 422), answer.text
    if valid:
        assert world.status("analytics-cookies", visitor_id=vid)["status"] == "denied"


def test_a_grant_to_a_stale_text_version_is_refused(world: World) -> None:
    vid = visitor()
    world.clock.at = AFTER_V2
    stale = post_event(world.client, visitor_id=vid, purpose="newsletter", action="granted",
                       version=1)
    assert stale.status_code == 409 and "version 2" in stale.json()["detail"]
    # A denial of an old text is still a denial: it is recorded.
    assert post_event(world.client, visitor_id=vid, purpose="newsletter", action="denied",
                      version=1).status_code == 201
    current = post_event(world.client, visitor_id=vid, purpose="newsletter",
                         action="granted", version=2, language="en",
                         text_hash=sha256(NEWSLETTER_V2["en"]))
    assert current.status_code == 201 and current.json()["version"] == 2
    assert world.status("newsletter", visitor_id=vid)["status"] == "granted"
    # Before version 2 is effective, version 2 cannot be granted either.
    world.clock.at = BEFORE_V2
    early = post_event(world.client, visitor_id=visitor(), purpose="newsletter",
                       action="granted", version=2)
    assert early.status_code == 409


# --- replays ----------------------------------------------------------------------------------


def test_a_replayed_event_is_stored_once(any_world: World) -> None:
    w = any_world
    vid = visitor()
    body = {"visitor_id": vid, "purpose": "analytics-cookies", "action": "granted",
            "site": "shop.kerf.example", "client_event_id": "evt-" + vid}
    first = post_event(w.client, **body)
    again = post_event(w.client, **body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert again.json()["event_id"] == first.json()["event_id"]
    assert w.count("consent_event") == 1
    # A replay that differs (a retry after a later change) still answers the stored event
    # and changes nothing.
    late = post_event(w.client, **{**body, "action": "denied"})
    assert late.status_code == 200 and late.json()["action"] == "granted"
    assert w.count("consent_event") == 1
    assert w.status("analytics-cookies", visitor_id=vid)["status"] == "granted"
    # Banner choices: each purpose once, whatever the number of retries.
    choice = {"visitor_id": vid, "choices": {"analytics-cookies": False, "testimonial": True},
              "client_event_id": "banner-" + vid}
    answers = [w.client.post("/v1/consent/choices", json=choice) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert [r["replayed"] for r in answers[0].json()] == [False, False]
    assert [r["replayed"] for r in answers[2].json()] == [True, True]
    assert w.count("consent_event") == 3
    assert w.status("analytics-cookies", visitor_id=vid)["status"] == "denied"
    # Another person reusing the id learns nothing of the stored event and stores nothing.
    stranger = post_event(w.client, **{**body, "visitor_id": visitor()})
    assert stranger.status_code == 409 and "already used" in stranger.json()["detail"]
    assert "granted" not in stranger.text and w.count("consent_event") == 3


def test_concurrent_replays_are_stored_once(any_world: World) -> None:
    w = any_world
    vid = visitor()
    body = {"visitor_id": vid, "purpose": "testimonial", "action": "granted",
            "client_event_id": "race-" + vid}
    codes: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        answer = post_event(w.client, **body)
        with lock:
            codes.append(answer.status_code)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 11 + [201], codes
    assert w.count("consent_event") == 1 and w.count("consent_state") == 1


def test_choices_with_a_long_client_id_store_every_purpose(world: World) -> None:
    vid = visitor()
    answer = world.client.post("/v1/consent/choices", json={
        "visitor_id": vid, "client_event_id": "x" * 48,
        "choices": {"marketing-emails-weekly": True, "marketing-emails-monthly": False}})
    assert answer.status_code == 201, answer.text
    assert {(r["purpose"], r["action"]) for r in answer.json()} == {
        ("marketing-emails-weekly", "granted"), ("marketing-emails-monthly", "denied")}
    assert world.count("consent_event") == 2


# --- state, history, export -------------------------------------------------------------------


def test_state_history_and_staleness(any_world: World) -> None:
    w = any_world
    email = "Stale.Reader@Example.org"
    key = w.key(Role.agent)
    for purpose, action in (("newsletter", "granted"), ("analytics-cookies", "denied"),
                            ("talent-pool", "granted"), ("talent-pool", "withdrawn")):
        assert post_event(w.client, key, email=email, purpose=purpose,
                          action=action).status_code == 201
    state_ = {s["purpose"]: s for s in w.client.get(
        "/v1/consent/state", params={"email": email}, headers=key).json()}
    assert {p: s["status"] for p, s in state_.items()} == {
        "newsletter": "granted", "analytics-cookies": "denied", "talent-pool": "withdrawn",
        "testimonial": "none", "ad-targeting": "none", "marketing-emails-weekly": "none",
        "marketing-emails-monthly": "none"}
    assert state_["newsletter"]["version"] == state_["newsletter"]["current_version"] == 1
    assert not any(s["stale"] for s in state_.values())
    # Version 2 of the newsletter text becomes effective: the consent is stale, not gone.
    w.clock.at = AFTER_V2
    news = next(s for s in w.client.get("/v1/consent/state", params={"email": email},
                                        headers=key).json() if s["purpose"] == "newsletter")
    assert (news["status"], news["version"], news["current_version"], news["stale"]) == \
        ("granted", 1, 2, True)
    # Asked again with the new text: current.
    assert post_event(w.client, key, email=email, purpose="newsletter",
                      action="granted").json()["version"] == 2
    assert not w.status("newsletter", email=email)["stale"]
    # A withdrawal is never stale.
    assert not w.status("talent-pool", email=email)["stale"]
    history = w.client.get("/v1/consent/history", params={"email": email},
                           headers=key).json()
    assert [(e["purpose"], e["action"], e["version"]) for e in history] == [
        ("newsletter", "granted", 1), ("analytics-cookies", "denied", 1),
        ("talent-pool", "granted", 1), ("talent-pool", "withdrawn", None),
        ("newsletter", "granted", 2)]
    assert [e["id"] for e in history] == sorted(e["id"] for e in history)
    assert {e["actor"] for e in history} == {"agent:test-agent"}
    assert history[-1]["at"] == AFTER_V2.isoformat()
    # Someone else's state is all "none".
    other = w.client.get("/v1/consent/state", params={"email": "other@example.org"},
                         headers=key).json()
    assert {s["status"] for s in other} == {"none"}


def test_reading_by_email_needs_a_key(world: World) -> None:
    for path in ("/v1/consent/state", "/v1/consent/history"):
        assert world.client.get(path, params={"email": "a@b.example"}).status_code == 401
        assert world.client.get(path, params={"email": "a@b.example"},
                                headers={"X-API-Key": "lk_000000000000_nope"}
                                ).status_code == 401
        assert world.client.get(path, params={"visitor_id": visitor()}).status_code == 200
        assert world.client.get(path).status_code == 422


def test_export_for_one_site_excludes_the_others(any_world: World) -> None:
    w = any_world
    mine = [visitor() for _ in range(3)]
    theirs = visitor()
    for vid in mine:
        assert w.client.post("/v1/consent/choices", json={
            "visitor_id": vid, "site": "shop.kerf.example", "audit_id": "a-" + vid,
            "choices": {"analytics-cookies": True, "testimonial": False}}).status_code == 201
    assert post_event(w.client, visitor_id=theirs, purpose="analytics-cookies",
                      action="granted", site="other.example").status_code == 201
    assert post_event(w.client, visitor_id=theirs, purpose="testimonial",
                      action="granted").status_code == 201  # no site at all
    lead = w.key(Role.privacy_lead)
    exported = w.client.get("/v1/staff/consent/export",
                            params={"site": "shop.kerf.example"}, headers=lead)
    assert exported.status_code == 200, exported.text
    events = exported.json()
    assert len(events) == 6 and {e["site"] for e in events} == {"shop.kerf.example"}
    assert {e["subject"] for e in events} == set(mine)
    assert {e["audit_id"] for e in events} == {"a-" + v for v in mine}
    assert {e["channel"] for e in events} == {"web_banner"}
    as_csv = w.client.get("/v1/staff/consent/export",
                          params={"site": "shop.kerf.example", "format": "csv"}, headers=lead)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(r["id"]) for r in rows] == [e["id"] for e in events]
    assert {r["subject"] for r in rows} == set(mine) and theirs not in as_csv.text
    empty = w.client.get("/v1/staff/consent/export", params={"site": "nobody.example",
                                                              "format": "csv"}, headers=lead)
    assert empty.status_code == 200 and empty.text.strip() == "id"
    assert w.client.get("/v1/staff/consent/export", params={"site": "shop.kerf.example"},
                        headers=w.key(Role.agent)).status_code == 403
    assert w.client.get("/v1/staff/consent/export",
                        params={"site": "shop.kerf.example"}).status_code == 401


# --- withdrawal -------------------------------------------------------------------------------


def test_withdrawal_in_one_step_by_visitor_id(world: World) -> None:
    vid = visitor()
    assert world.client.post("/v1/consent/choices", json={
        "visitor_id": vid, "choices": {"analytics-cookies": True}}).status_code == 201
    gone = world.client.post("/v1/consent/withdraw", json={"visitor_id": vid,
                                                           "purpose": "analytics-cookies"})
    assert gone.status_code == 201 and gone.json()["action"] == "withdrawn"
    assert world.status("analytics-cookies", visitor_id=vid)["status"] == "withdrawn"
    last = world.ledger.history(Subject.of(visitor_id=vid))[-1]
    assert (last["channel"], last["actor"]) == ("api", "subject")


def test_withdrawal_by_email_needs_a_key(world: World) -> None:
    email = "withdrawer@example.org"
    assert post_event(world.client, world.key(), email=email, purpose="newsletter",
                      action="granted").status_code == 201
    anonymous = world.client.post("/v1/consent/withdraw",
                                  json={"email": email, "purpose": "newsletter"})
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["detail"]
    assert world.status("newsletter", email=email)["status"] == "granted"
    assert post_event(world.client, email=email, purpose="newsletter",
                      action="denied").status_code == 401
    staff = world.client.post("/v1/consent/withdraw",
                              json={"email": email.upper(), "purpose": "newsletter"},
                              headers=world.key(Role.agent))
    assert staff.status_code == 201
    assert world.status("newsletter", email=email)["status"] == "withdrawn"
    last = world.ledger.history(Subject.of(email=email))[-1]
    assert (last["channel"], last["actor"]) == ("staff", "agent:test-agent")
    # The newsletter is marketing: the withdrawal is remembered on the do-not-contact list.
    assert world.ledger.on_do_not_contact(Subject.of(email=email), "newsletter")


def test_a_consent_withdrawal_request_withdraws_in_the_ledger(world: World) -> None:
    email = world.customers[0]
    assert post_event(world.client, world.key(), email=email, purpose="newsletter",
                      action="granted").status_code == 201
    request, token = world.service.submit("consent_withdrawal", email,
                                          {"purpose": "newsletter"})
    with db.session() as s:
        body = [m for m in mail.show(s, None) if m.to == email][-1].body
    code = re.search(r"code is (\d{6})", body)
    assert code
    done = world.service.verify(request.id, token, code.group(1))
    if done.status == "verified":
        done = world.service.execute(request.id, "test")
    assert world.service.get(request.id, "test").status == "completed"
    assert world.status("newsletter", email=email)["status"] == "withdrawn"
    last = world.ledger.history(Subject.of(email=email))[-1]
    assert (last["purpose"], last["action"], last["channel"]) == ("newsletter", "withdrawn",
                                                                  "request")
    decision = may_contact(world.ledger, world.service.plan, email, "newsletter")
    assert not decision.allowed


# --- unsubscribe ------------------------------------------------------------------------------


def _headers_for(world: World, email: str, purpose: str) -> dict[str, str]:
    made = world.client.post("/v1/staff/consent/unsubscribe-headers",
                             json={"email": email, "purpose": purpose},
                             headers=world.key(Role.agent))
    assert made.status_code == 200, made.text
    return dict(made.json())


def _link(headers: dict[str, str]) -> str:
    match = re.fullmatch(r"<(https://[^>]+)>", headers["List-Unsubscribe"])
    assert match, headers
    parts = urlsplit(match.group(1))
    return f"{parts.path}?{parts.query}"


def _nothing_changed(world: World, before: tuple[int, int, int]) -> bool:
    return (world.count("consent_event"), world.count("consent_state"),
            world.count("do_not_contact")) == before


def test_unsubscribe_headers_follow_rfc_8058(world: World) -> None:
    headers = _headers_for(world, "Reader@Example.org", "newsletter")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<([^>]+)>", headers["List-Unsubscribe"])
    assert url and url.group(1).startswith("https://lawful.kerf.example/v1/unsubscribe?token=")
    token = unquote(parse_qs(urlsplit(url.group(1)).query, keep_blank_values=True)["token"][0])
    assert "reader" not in token.lower()  # the token reveals nothing
    assert unsubscribe.read(token) == unsubscribe.Unsubscribe("reader@example.org",
                                                              "newsletter")
    assert world.client.post("/v1/staff/consent/unsubscribe-headers",
                             json={"email": "a@b.example", "purpose": "newsletter"}
                             ).status_code == 401


def test_get_confirms_and_post_withdraws(world: World) -> None:
    email = "reader@example.org"
    assert post_event(world.client, world.key(), email=email, purpose="newsletter",
                      action="granted").status_code == 201
    link = _link(_headers_for(world, email, "newsletter"))
    before = (world.count("consent_event"), world.count("consent_state"),
              world.count("do_not_contact"))
    for _ in range(2):  # mail scanners follow links: a GET changes nothing
        page = world.client.get(link)
        assert page.status_code == 200 and page.headers["content-type"].startswith(
            "text/html")
        assert "Newsletter" in page.text and email in page.text and 'method="post"' in \
            page.text and "List-Unsubscribe" in page.text
    assert _nothing_changed(world, before)
    assert world.status("newsletter", email=email)["status"] == "granted"
    # A POST without the RFC 8058 body is not a one-click unsubscribe.
    assert world.client.post(link, content=b"",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}
                             ).status_code == 422
    assert _nothing_changed(world, before)
    done = world.client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert world.status("newsletter", email=email)["status"] == "withdrawn"
    last = world.ledger.history(Subject.of(email=email))[-1]
    assert (last["action"], last["channel"], last["actor"]) == ("withdrawn", "email_link",
                                                                "subject")
    assert world.ledger.on_do_not_contact(Subject.of(email=email), "newsletter")
    assert not may_contact(world.ledger, None, email, "newsletter").allowed
    # The same link again: still fine, still withdrawn.
    assert world.client.post(link, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert world.status("newsletter", email=email)["status"] == "withdrawn"


def test_one_click_accepts_a_multipart_body(world: World) -> None:
    """RFC 8058 §3.2: the mail receiver's POST may be multipart/form-data."""
    email = "multi@example.org"
    link = _link(_headers_for(world, email, "newsletter"))
    done = world.client.post(link, files={"List-Unsubscribe": (None, "One-Click")})
    assert done.status_code == 200, done.text
    assert world.status("newsletter", email=email)["status"] == "withdrawn"


def test_unsubscribing_from_soft_opt_in_marketing_is_an_objection(world: World) -> None:
    email = world.customers[1]
    plan = world.service.plan
    assert may_contact(world.ledger, plan, email, "customer-marketing").allowed
    link = _link(_headers_for(world, email, "customer-marketing"))
    page = world.client.get(link)
    assert page.status_code == 200 and "Offers to existing customers" in page.text
    assert may_contact(world.ledger, plan, email, "customer-marketing").allowed
    done = world.client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200, done.text
    (row,) = world.rows("do_not_contact")
    assert row["hash"] == Subject.of(email=email).hash and row["scope"] == \
        "customer-marketing" and row["reason"].startswith("objection:email_link")
    decision = may_contact(world.ledger, plan, email, "customer-marketing")
    assert not decision.allowed and "do-not-contact" in decision.reason
    # Other customers are still allowed.
    assert may_contact(world.ledger, plan, world.customers[2], "customer-marketing").allowed


def _old_token(email: str, purpose: str, days: int) -> str:
    fernet = Fernet(base64.urlsafe_b64encode(derived_key("unsubscribe")))
    made = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    return fernet.encrypt_at_time(json.dumps({"e": email, "p": purpose}).encode(),
                                  int(made.timestamp())).decode()


def test_forged_altered_and_expired_tokens_change_nothing(world: World) -> None:
    email = "victim@example.org"
    assert post_event(world.client, world.key(), email=email, purpose="newsletter",
                      action="granted").status_code == 201
    good = unsubscribe.token(email, "newsletter")
    other_key = Fernet(Fernet.generate_key()).encrypt(json.dumps(
        {"e": email, "p": "newsletter"}).encode()).decode()
    flipped = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
    not_json = Fernet(base64.urlsafe_b64encode(derived_key("unsubscribe"))).encrypt(
        b"[1, 2]").decode()
    expired = _old_token(email, "newsletter", unsubscribe.TOKEN_DAYS + 1)
    before = (world.count("consent_event"), world.count("consent_state"),
              world.count("do_not_contact"))
    for bad in ("nonsense", "", other_key, flipped, good[:-4], not_json, expired,
                base64.urlsafe_b64encode(json.dumps({"e": email, "p": "newsletter"}).encode())
                .decode()):
        for method in ("GET", "POST"):
            answer = world.client.request(
                method, f"/v1/unsubscribe?token={quote(bad)}",
                data={"List-Unsubscribe": "One-Click"} if method == "POST" else None)
            assert answer.status_code in (404, 422), (bad, method, answer.status_code)
            assert email not in answer.text
    assert _nothing_changed(world, before)
    assert world.status("newsletter", email=email)["status"] == "granted"
    # A token made well within the limit still works; read() with no age allowed refuses it.
    recent = _old_token(email, "newsletter", 30)
    with pytest.raises(NotFound):
        unsubscribe.read(recent, max_age_days=0)
    assert unsubscribe.read(recent).email == email
    with pytest.raises(NotFound):
        unsubscribe.read(good, max_age_days=-1)


@given(email=addresses(), purpose=st.sampled_from(["newsletter", "customer-marketing"]))
@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_tokens_round_trip_any_address(base_env: str, email: str, purpose: str) -> None:
    made = unsubscribe.token(email, purpose)
    assert re.fullmatch(r"[A-Za-z0-9_=-]+", made)
    assert unsubscribe.read(made) == unsubscribe.Unsubscribe(email, purpose)
    header = unsubscribe.headers("https://x.example/", email, purpose)
    link = re.fullmatch(r"<https://x\.example/v1/unsubscribe\?token=([^>]+)>",
                        header["List-Unsubscribe"])
    assert link and unsubscribe.read(unquote(link.group(1))).email == email


# --- may I contact? ---------------------------------------------------------------------------


def test_may_contact_for_the_newsletter(world: World) -> None:
    email = "subscriber@example.org"
    agent = world.key(Role.agent)

    def ask(address: str = email, purpose: str = "newsletter") -> dict[str, Any]:
        answer = world.client.get("/v1/staff/consent/may-contact",
                                  params={"email": address, "purpose": purpose},
                                  headers=agent)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    assert ask() == {"allowed": False, "reason": "no consent recorded for newsletter"}
    assert post_event(world.client, agent, email=email, purpose="newsletter",
                      action="granted").status_code == 201
    yes = ask(email.upper())
    assert yes["allowed"] and "current text" in yes["reason"]
    world.clock.at = AFTER_V2  # stale: still the person's consent, to be asked again
    stale = ask()
    assert stale["allowed"] and "version 1" in stale["reason"] and "ask again" in \
        stale["reason"]
    world.clock.at = BEFORE_V2
    assert world.client.post("/v1/consent/withdraw", json={"email": email,
                                                           "purpose": "newsletter"},
                             headers=agent).status_code == 201
    no = ask()
    assert not no["allowed"]
    # Denied is a no as well.
    assert post_event(world.client, agent, email="denier@example.org", purpose="newsletter",
                      action="denied").status_code == 201
    assert ask("denier@example.org") == {
        "allowed": False, "reason": f"consent denied on {BEFORE_V2:%Y-%m-%d}"}
    # Not an address, not a purpose, no key.
    assert world.client.get("/v1/staff/consent/may-contact",
                            params={"email": "nobody", "purpose": "newsletter"},
                            headers=agent).status_code == 422
    unknown = world.client.get("/v1/staff/consent/may-contact",
                               params={"email": email, "purpose": "horoscopes"},
                               headers=agent)
    assert unknown.status_code == 404 and "horoscopes" in unknown.json()["detail"]
    assert world.client.get("/v1/staff/consent/may-contact",
                            params={"email": email, "purpose": "newsletter"}
                            ).status_code == 401


def test_resubscribing_after_an_unsubscribe_is_honoured(world: World) -> None:
    """A withdrawal puts the address on the list for that purpose; a fresh consent given
    afterwards, to the current text, is the person's newer choice."""
    email = "comes.back@example.org"
    agent = world.key(Role.agent)
    for action in ("granted", "withdrawn"):
        assert post_event(world.client, agent, email=email, purpose="newsletter",
                          action=action).status_code == 201
    assert not may_contact(world.ledger, None, email, "newsletter").allowed
    world.clock.at = BEFORE_V2 + dt.timedelta(days=3)
    assert post_event(world.client, agent, email=email, purpose="newsletter",
                      action="granted").status_code == 201
    assert may_contact(world.ledger, None, email, "newsletter").allowed
    # An imported list entry made after the consent, or an objection to all direct
    # marketing, still wins.
    world.clock.at = BEFORE_V2 + dt.timedelta(days=4)
    assert world.ledger.add_do_not_contact([email], "complaint") == 1
    assert not may_contact(world.ledger, None, email, "newsletter").allowed
    other = "objector@example.org"
    assert post_event(world.client, agent, email=other, purpose="newsletter",
                      action="granted").status_code == 201
    world.ledger.object_to_marketing(Subject.of(email=other), "staff", "test")
    assert not may_contact(world.ledger, None, other, "newsletter").allowed


def test_soft_opt_in_for_existing_customers_only(world: World) -> None:
    plan = world.service.plan
    customer, neighbour = world.customers[3], world.customers[4]
    yes = may_contact(world.ledger, plan, customer.upper(), "customer-marketing")
    assert yes.allowed and "soft opt-in" in yes.reason
    no = may_contact(world.ledger, plan, "stranger@example.org", "customer-marketing")
    assert not no.allowed and "not an existing customer" in no.reason
    # Until they object (a request, the staff, or the link).
    world.ledger.object_to_marketing(Subject.of(email=customer), "staff", "agent:test")
    objected = may_contact(world.ledger, plan, customer, "customer-marketing")
    assert not objected.allowed and "any direct marketing" in objected.reason
    assert not may_contact(world.ledger, plan, customer, "newsletter").allowed
    assert may_contact(world.ledger, plan, neighbour, "customer-marketing").allowed
    # Over HTTP, the same answer.
    answer = world.client.get("/v1/staff/consent/may-contact",
                              params={"email": neighbour, "purpose": "customer-marketing"},
                              headers=world.key(Role.agent)).json()
    assert answer["allowed"] and "Art. 13(2)" in answer["reason"]


def test_an_erased_person_is_never_contacted_again(base_env: str, tmp_path: Path,
                                                   kerf_data: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "kerf-erase.db"
    shutil.copy(base_env.removeprefix("sqlite:///"), own)
    kerf_url = f"sqlite:///{own}"
    monkeypatch.setenv("KERF_DATABASE_URL", kerf_url)
    manifest = extended(kerf_data)
    with open_world(manifest, kerf_url) as w:
        email, neighbour = w.customers[5], w.customers[6]
        agent = w.key(Role.agent)
        assert post_event(w.client, agent, email=email, purpose="newsletter",
                          action="granted").status_code == 201
        plan = build_plan(manifest)
        assert may_contact(w.ledger, plan, email, "customer-marketing").allowed
        assert may_contact(w.ledger, plan, email, "newsletter").allowed
        result = erase(plan, Identities.of({Identity.email: [email]}))
        assert result.verified and result.suppressed >= 1
        for purpose in ("newsletter", "customer-marketing", "marketing-emails-weekly"):
            decision = may_contact(w.ledger, plan, email, purpose)
            assert not decision.allowed and "erased" in decision.reason, purpose
        assert may_contact(w.ledger, plan, neighbour, "customer-marketing").allowed
        # An old backup of the shop brings the customer row back: still not contacted.
        engine = sa.create_engine(kerf_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE customer SET email = :e WHERE id = (SELECT min(id) "
                                 "FROM customer WHERE email IS NOT NULL)"), {"e": email})
        engine.dispose()
        assert not may_contact(w.ledger, plan, email, "customer-marketing").allowed
        # An imported mailing list with the address: filtered out.
        filtered = w.client.post("/v1/staff/consent/filter", json={
            "emails": [email.upper(), neighbour], "purpose": "customer-marketing"},
            headers=agent).json()
        assert filtered == {"allowed": [neighbour], "refused": 1}
    # A new process, a new app: the list is in the store, not in memory.
    with open_world(manifest, kerf_url) as again:
        assert not may_contact(again.ledger, build_plan(manifest), email,
                               "newsletter").allowed


def test_filter_keeps_only_who_may_be_contacted(world: World) -> None:
    agent, lead = world.key(Role.agent), world.key(Role.privacy_lead)
    consented, withdrew, listed = ("yes@example.org", "no-more@example.org",
                                   "blocked@example.org")
    for email in (consented, withdrew, listed):
        assert post_event(world.client, agent, email=email, purpose="newsletter",
                          action="granted").status_code == 201
    assert world.client.post("/v1/consent/withdraw", json={"email": withdrew,
                                                           "purpose": "newsletter"},
                             headers=agent).status_code == 201
    added = world.client.post("/v1/staff/consent/do-not-contact",
                              json={"emails": [listed.upper(), "other@x.example",
                                               "other@x.example"], "reason": "complaint"},
                              headers=lead)
    assert added.status_code == 200 and added.json() == {"added": 2}
    again = world.client.post("/v1/staff/consent/do-not-contact",
                              json={"emails": [listed]}, headers=lead)
    assert again.json() == {"added": 0}
    assert world.client.post("/v1/staff/consent/do-not-contact", json={"emails": [listed]},
                             headers=agent).status_code == 403
    bad = world.client.post("/v1/staff/consent/do-not-contact",
                            json={"emails": ["not-an-address"]}, headers=lead)
    assert bad.status_code == 422 and "email" in bad.json()["detail"]
    imported = [consented, consented.upper(), withdrew, listed, "never@example.org",
                "not-an-address"]
    filtered = world.client.post("/v1/staff/consent/filter",
                                 json={"emails": imported, "purpose": "newsletter"},
                                 headers=agent)
    assert filtered.status_code == 200, filtered.text
    assert filtered.json() == {"allowed": [consented, consented.upper()], "refused": 4}
    assert world.client.post("/v1/staff/consent/filter", json={"emails": imported},
                             headers=agent).status_code == 422
    reason = may_contact(world.ledger, None, listed, "newsletter").reason
    assert "any direct marketing" in reason and "complaint" in reason
    # The list holds keyed hashes only.
    assert listed not in store_text()


# --- Global Privacy Control and the banner ----------------------------------------------------


def test_gpc_is_recorded_and_opts_out_of_sale_and_sharing(world: World) -> None:
    vid = visitor()
    made = world.client.post("/v1/consent/choices", headers={"Sec-GPC": "1"}, json={
        "visitor_id": vid, "site": "shop.kerf.example",
        "choices": {"ad-targeting": True, "analytics-cookies": True, "testimonial": False}})
    assert made.status_code == 201, made.text
    by = {r["purpose"]: r for r in made.json()}
    assert by["ad-targeting"]["action"] == "denied"
    assert "Global Privacy Control" in (by["ad-targeting"]["note"] or "")
    assert by["analytics-cookies"]["action"] == "granted" and \
        by["analytics-cookies"]["note"] is None
    assert by["testimonial"]["action"] == "denied" and by["testimonial"]["note"] is None
    events = world.ledger.history(Subject.of(visitor_id=vid))
    assert {e["gpc"] for e in events} == {True}
    assert world.status("ad-targeting", visitor_id=vid)["status"] == "denied"
    # One event, the same rule.
    single = post_event(world.client, {"Sec-GPC": "1"}, visitor_id=vid,
                        purpose="ad-targeting", action="granted")
    assert single.status_code == 201 and single.json()["action"] == "denied"
    # Without the signal, the same grant is a grant, and gpc is recorded as false.
    other = visitor()
    plain = post_event(world.client, {"Sec-GPC": "0"}, visitor_id=other,
                       purpose="ad-targeting", action="granted")
    assert plain.json()["action"] == "granted"
    assert world.ledger.history(Subject.of(visitor_id=other))[0]["gpc"] is False
    # A withdrawal under GPC is recorded with the signal.
    post = world.client.post("/v1/consent/withdraw", headers={"Sec-GPC": "1"},
                             json={"visitor_id": other, "purpose": "ad-targeting"})
    assert post.status_code == 201
    assert world.ledger.history(Subject.of(visitor_id=other))[-1]["gpc"] is True


def test_gpc_json_is_served(world: World) -> None:
    answer = world.client.get("/.well-known/gpc.json")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "application/json")
    body = answer.json()
    assert body["gpc"] is True
    assert dt.date.fromisoformat(body["lastUpdate"]) == world.service.manifest.notice.effective


def test_the_banner_script_is_served_as_javascript(world: World) -> None:
    answer = world.client.get("/v1/consent/banner.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/javascript")
    assert "/v1/consent/choices" in answer.text and "/v1/consent/purposes" in answer.text
    assert "max-age" in answer.headers.get("cache-control", "")
    # The banner calls cross-origin from the company's site.
    pre = world.client.options("/v1/consent/choices", headers={
        "Origin": "https://shop.kerf.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 200 and pre.headers.get("access-control-allow-origin")


# --- the ledger without HTTP ------------------------------------------------------------------


def test_ledger_object_and_import_on_any_store(any_world: World) -> None:
    w = any_world
    subject = Subject.of(email="Ledger@Example.org")
    first = w.ledger.record(subject, "newsletter", "granted", client_event_id="led-1")
    assert first.created and first.version == 1
    again = w.ledger.record(subject, "newsletter", "granted", client_event_id="led-1")
    assert not again.created and again.event_id == first.event_id
    assert w.ledger.add_do_not_contact(["a@x.example", "A@X.example", "b@x.example"],
                                       "import") == 2
    assert w.ledger.on_do_not_contact(Subject.of(email="a@x.example"))
    assert w.ledger.on_do_not_contact(subject) is None
    w.ledger.withdraw(subject, "newsletter", "staff", "agent:x")
    assert w.ledger.on_do_not_contact(subject, "newsletter")
    assert w.ledger.on_do_not_contact(subject, "testimonial") is None
    assert [s.status for s in w.ledger.state(subject) if s.purpose == "newsletter"] == [
        "withdrawn"]


def test_choices_need_at_least_one_purpose(world: World) -> None:
    answer = world.client.post("/v1/consent/choices", json={"visitor_id": visitor(),
                                                            "choices": {}})
    assert answer.status_code == 422


def test_ledger_type_checks(base_env: str, kerf_data: dict[str, Any]) -> None:
    """The manifest's purposes decide everything: a purpose without any effective text is
    recorded without version, and may not be granted as stale."""
    data = kerf_data
    data["consent_purposes"].append({"id": "future", "name": "Future", "versions": [
        {"version": 1, "effective": dt.date(2099, 1, 1), "text": {"en": "Later."}}]})
    manifest = located_from_text(yaml.safe_dump(data, sort_keys=False)).manifest
    ledger = Ledger(manifest, now=Clock(BEFORE_V2))
    vid = Subject.of(visitor_id=visitor())
    recorded = ledger.record(vid, "future", "granted")
    assert recorded.version is None
    (row,) = [s for s in ledger.state(vid) if s.purpose == "future"]
    assert (row.status, row.current_version, row.stale) == ("granted", None, False)

