"""The consent ledger: append-only events that prove each consent and withdrawal.

Each event answers what EDPB guidelines 05/2020 §108 ask a controller to prove: who (an
identity, kept encrypted and found by keyed hash, or a visitor id with its audit id), when,
what they were told (the text version and a SHA-256 of the exact text), how (channel, site,
user agent, the Global Privacy Control signal, a pseudonymised IP), and whether and when they
withdrew. The current state per person and purpose is kept beside the events, in the same
transaction, so it is one indexed read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from lawful.addresses import NotAnAddress, checked_email
from lawful.consent.models import ConsentEvent, ConsentState, DoNotContact
from lawful.engine import state
from lawful.keys import decrypt, encrypt, keyed_hash
from lawful.manifest.model import ConsentPurpose, Identity, Manifest
from lawful.requests.kinds import Conflict, Invalid, NotFound
from lawful.store import db

EVENTS = ConsentEvent.__table__
STATES = ConsentState.__table__
DNC = DoNotContact.__table__
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ALL_MARKETING = "*"


class Action(StrEnum):
    granted = "granted"
    denied = "denied"
    withdrawn = "withdrawn"
    objected = "objected"  # to direct marketing (Art. 21(2)): recorded like a withdrawal


class Channel(StrEnum):
    web_banner = "web_banner"
    form = "form"
    email_link = "email_link"
    staff = "staff"
    api = "api"
    request = "request"  # a consent-withdrawal request of the request service


@dataclass(frozen=True)
class Subject:
    kind: str  # email, visitor
    value: str

    @property
    def hash(self) -> str:
        return subject_hash(self.kind, self.value)

    @classmethod
    def of(cls, email: str | None = None, visitor_id: str | None = None) -> Subject:
        if bool(email) == bool(visitor_id):
            raise Invalid("give the person as exactly one of email or visitor_id")
        if email:
            try:
                return cls("email", checked_email(email))
            except NotAnAddress as exc:
                raise Invalid(f"email: {exc}") from None
        if not VISITOR_ID.match(visitor_id or ""):
            raise Invalid("visitor_id: 8 to 64 letters, digits, '-' or '_'")
        return cls("visitor", str(visitor_id))


def subject_hash(kind: str, value: str) -> str:
    # The same keyed hash the engine's suppression list uses for e-mails, so an erasure and
    # an unsubscribe meet on the same key.
    return keyed_hash(f"{'email' if kind == 'email' else 'cookie_id'}:{value}", "identity")


_V4_MASK = ~0xFF  # /24
_V6_MASK = ~((1 << 80) - 1)  # /48


def pseudonymous_ip(ip: str | None) -> str | None:
    """Truncate (IPv4 to /24, IPv6 to /48), then keyed-hash: the address is never stored."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    # The network address by masking the integer: what ip_network(...).network_address
    # gives, without building a network object per event.
    if address.version == 4:
        truncated: ipaddress.IPv4Address | ipaddress.IPv6Address = \
            ipaddress.IPv4Address(int(address) & _V4_MASK)
    else:
        truncated = ipaddress.IPv6Address(int(address) & _V6_MASK)
    return keyed_hash(str(truncated), "ip")


@lru_cache(maxsize=1024)
def text_hash(text: str) -> str:
    # The texts are the manifest's few: hashed once each, not once per event.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Recorded:
    event_id: int
    purpose: str
    action: str
    version: int | None
    created: bool  # False: a replay of an event already stored
    note: str | None = None


@dataclass
class PurposeState:
    purpose: str
    status: str  # granted, denied, withdrawn, objected, none
    version: int | None
    current_version: int | None
    stale: bool
    at: dt.datetime | None


@dataclass
class Decision:
    allowed: bool
    reason: str


class Ledger:
    def __init__(self, manifest: Manifest,
                 now: Callable[[], dt.datetime] = state.now) -> None:
        self.manifest = manifest
        self.now = now
        db.ensure_current()

    # --- purposes and texts ----------------------------------------------------------------

    def purpose(self, key: str) -> ConsentPurpose:
        found = self.manifest.consent_purpose(key)
        if found is None:
            known = ", ".join(p.id for p in self.manifest.consent_purposes) or "none"
            raise NotFound(f"consent purpose {key!r} (declared: {known})")
        return found

    def shown_text(self, purpose: ConsentPurpose, version: int | None,
                   language: str | None) -> tuple[int | None, str | None, str | None]:
        """(version, language, text) the person saw; the current version when not given."""
        current = purpose.current(self.now().date())
        chosen = current if version is None else next(
            (v for v in purpose.versions if v.version == version), None)
        if version is not None and chosen is None:
            raise Invalid(f"{purpose.id} has no text version {version}")
        if chosen is None:
            return None, None, None
        lang = language if language in chosen.text else next(iter(chosen.text), None)
        return chosen.version, lang, chosen.text.get(lang) if lang else None

    def purposes(self, language: str | None = None) -> list[dict[str, Any]]:
        """What the banner shows: each purpose's current text in the visitor's language."""
        shown = []
        for p in self.manifest.consent_purposes:
            version, lang, text = self.shown_text(p, None, _base(language, p))
            shown.append({"id": p.id, "name": p.name, "description": p.description,
                          "channel": p.channel, "marketing": p.marketing,
                          "gpc_opt_out": p.gpc_opt_out, "version": version,
                          "language": lang, "text": text,
                          "text_hash": text_hash(text) if text else None})
        return shown

    # --- recording -------------------------------------------------------------------------

    def record(self, subject: Subject, purpose: str, action: str, *,
               channel: str = Channel.api.value, version: int | None = None,
               language: str | None = None, shown_hash: str | None = None,
               site: str | None = None, audit_id: str | None = None, ip: str | None = None,
               user_agent: str | None = None, gpc: bool = False,
               client_event_id: str | None = None, actor: str = "subject") -> Recorded:
        prepared = self._prepare(subject, purpose, action, channel, version, language,
                                 shown_hash, site, audit_id, ip, user_agent, gpc,
                                 client_event_id, actor)
        engine = db.engine()
        sealed = encrypt(subject.value.encode())
        if engine.dialect.name == "postgresql":
            # One statement is its own transaction: the event, its state and any
            # do-not-contact entry are stored together or not at all, in one round trip.
            with engine.connect() as conn:
                return self._store(conn.execution_options(isolation_level="AUTOCOMMIT"),
                                   subject, prepared, sealed)
        with engine.begin() as conn:
            return self._store(conn, subject, prepared, sealed)

    def choices(self, subject: Subject, choices: dict[str, bool], **context: Any
                ) -> list[Recorded]:
        """A banner's answer for several purposes at once, stored in one transaction. With
        Global Privacy Control on, purposes marked `gpc_opt_out` are recorded as denied."""
        if not choices:
            raise Invalid("choices: give at least one purpose")
        base_id = context.pop("client_event_id", None)
        versions: dict[str, int] = context.pop("versions", None) or {}
        prepared = [self._prepare(
            subject, purpose, Action.granted.value if allowed else Action.denied.value,
            version=versions.get(purpose),
            client_event_id=f"{base_id}:{purpose}"[:64] if base_id else None, **context)
            for purpose, allowed in sorted(choices.items())]
        sealed = encrypt(subject.value.encode())
        with db.engine().begin() as conn:
            return [self._store(conn, subject, p, sealed) for p in prepared]

    def _prepare(self, subject: Subject, purpose_id: str, action: str, channel: str,
                 version: int | None, language: str | None, shown_hash: str | None,
                 site: str | None, audit_id: str | None, ip: str | None,
                 user_agent: str | None, gpc: bool, client_event_id: str | None,
                 actor: str) -> dict[str, Any]:
        purpose = self.purpose(purpose_id)
        try:
            chosen = Action(action)
            Channel(channel)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        note = None
        if chosen is Action.granted and gpc and purpose.gpc_opt_out:
            chosen, note = Action.denied, "Global Privacy Control: recorded as an opt-out"
        shown_version = shown_lang = shown_text = shown_digest = None
        if chosen in (Action.granted, Action.denied):
            current = purpose.current(self.now().date())
            shown_version, shown_lang, shown_text = self.shown_text(purpose, version,
                                                                    language)
            if chosen is Action.granted and current is not None and \
                    shown_version != current.version:
                raise Conflict(f"text version {shown_version} of {purpose.id} is stale: "
                               f"show version {current.version} and ask again")
            shown_digest = text_hash(shown_text) if shown_text else None
            if shown_hash and shown_digest and shown_hash != shown_digest:
                raise Invalid(f"text_hash does not match the {shown_lang} text of "
                              f"{purpose.id} version {shown_version}")
        if client_event_id is not None and not 1 <= len(client_event_id) <= 64:
            raise Invalid("client_event_id: 1 to 64 characters")
        return {"client_event_id": client_event_id, "subject_kind": subject.kind,
                "subject_hash": subject.hash, "audit_id": audit_id, "purpose": purpose.id,
                "action": chosen.value, "version": shown_version,
                "text_hash": shown_digest,
                "language": shown_lang, "channel": channel, "site": site,
                "ip_hash": pseudonymous_ip(ip),
                "user_agent": user_agent[:300] if user_agent else None, "gpc": gpc,
                "actor": actor[:200], "_note": note, "_marketing": purpose.marketing}

    def _store(self, conn: sa.Connection, subject: Subject, row: dict[str, Any],
               sealed: bytes) -> Recorded:
        note, marketing = row.pop("_note"), row.pop("_marketing")
        values = {**row, "subject_enc": sealed, "at": self.now()}
        if conn.dialect.name == "postgresql":
            return self._store_pg(conn, subject, values, note, marketing)
        insert = _insert(conn)(EVENTS).values(values)
        if row["client_event_id"] is not None:
            insert = insert.on_conflict_do_nothing(index_elements=["client_event_id"])
        event_id = conn.execute(insert.returning(EVENTS.c.id)).scalar()
        if event_id is None:  # replayed: the stored event answers
            stored = conn.execute(sa.select(EVENTS.c.id, EVENTS.c.action, EVENTS.c.version,
                                            EVENTS.c.purpose).where(
                EVENTS.c.client_event_id == row["client_event_id"])).one()
            return Recorded(stored.id, stored.purpose, stored.action, stored.version, False)
        upsert = _insert(conn)(STATES).values(
            subject_hash=row["subject_hash"], purpose=row["purpose"], action=row["action"],
            version=row["version"], at=values["at"], event_id=event_id)
        excluded = upsert.excluded
        conn.execute(upsert.on_conflict_do_update(
            index_elements=["subject_hash", "purpose"],
            set_={"action": excluded.action, "version": excluded.version,
                  "at": excluded.at, "event_id": excluded.event_id},
            where=STATES.c.event_id < excluded.event_id))
        if row["action"] in (Action.withdrawn, Action.objected) and marketing:
            _dnc(conn, row["subject_hash"], subject.kind, row["purpose"],
                 f"{row['action']}:{row['channel']}", values["at"])
        return Recorded(event_id, row["purpose"], row["action"], row["version"], True, note)

    def _store_pg(self, conn: sa.Connection, subject: Subject, values: dict[str, Any],
                  note: str | None, marketing: bool) -> Recorded:
        """The same writes as the generic path, as one statement (a data-modifying CTE): the
        state and the do-not-contact entry are written only if the event was."""
        dnc = values["action"] in (Action.withdrawn, Action.objected) and marketing
        if dnc:
            values["dnc_kind"] = subject.kind
            values["dnc_reason"] = f"{values['action']}:{values['channel']}"[:64]
        event_id = conn.exec_driver_sql(_PG_RECORD_DNC if dnc else _PG_RECORD,
                                        values).scalar()
        if event_id is None:  # replayed: the stored event answers
            stored = conn.exec_driver_sql(_PG_REPLAYED, values).one()
            return Recorded(stored.id, stored.purpose, stored.action, stored.version, False)
        return Recorded(event_id, values["purpose"], values["action"], values["version"],
                        True, note)

    def withdraw(self, subject: Subject, purpose: str, channel: str = Channel.api.value,
                 actor: str = "subject", **context: Any) -> Recorded:
        """Withdrawal in one step (Art. 7(3)): as easy as giving consent."""
        return self.record(subject, purpose, Action.withdrawn.value, channel=channel,
                           actor=actor, **context)

    def object_to_marketing(self, subject: Subject, channel: str, actor: str,
                            purpose: str | None = None) -> None:
        """Art. 21(3): no more direct marketing, on any purpose (or the one named)."""
        with db.engine().begin() as conn:
            _dnc(conn, subject.hash, subject.kind, purpose or ALL_MARKETING,
                 f"objection:{channel}", self.now())

    def add_do_not_contact(self, emails: Iterable[str], reason: str,
                           scope: str = ALL_MARKETING) -> int:
        subjects = {Subject.of(email=e).hash for e in emails}
        with db.engine().begin() as conn:
            before = conn.execute(sa.select(sa.func.count()).select_from(DNC)).scalar_one()
            for digest in subjects:
                _dnc(conn, digest, "email", scope, reason, self.now())
            after = conn.execute(sa.select(sa.func.count()).select_from(DNC)).scalar_one()
        return int(after - before)

    # --- reading ---------------------------------------------------------------------------

    def state(self, subject: Subject) -> list[PurposeState]:
        with db.engine().connect() as conn:
            rows = {r.purpose: r for r in conn.execute(sa.select(STATES).where(
                STATES.c.subject_hash == subject.hash))}
        today = self.now().date()
        out = []
        for p in self.manifest.consent_purposes:
            current = p.current(today)
            r = rows.get(p.id)
            out.append(PurposeState(
                p.id, r.action if r else "none", r.version if r else None,
                current.version if current else None,
                bool(r and r.action == Action.granted and current and
                     r.version != current.version),
                r.at if r else None))
        return out

    def history(self, subject: Subject) -> list[dict[str, Any]]:
        with db.engine().connect() as conn:
            rows = conn.execute(sa.select(EVENTS).where(
                EVENTS.c.subject_hash == subject.hash).order_by(EVENTS.c.id)).all()
        return [_event(r) for r in rows]

    def export_site(self, site: str) -> list[dict[str, Any]]:
        """Every event of one site: what a consent vendor's client asks for."""
        with db.engine().connect() as conn:
            rows = conn.execute(sa.select(EVENTS).where(EVENTS.c.site == site)
                                .order_by(EVENTS.c.id)).all()
        return [_event(r) for r in rows]

    def on_do_not_contact(self, subject: Subject, scope: str | None = None) -> str | None:
        """Why the subject must not be contacted, if it must not."""
        if subject.kind == "email" and state.is_suppressed(Identity.email, subject.value):
            return "the person's data was erased; the address is on the do-not-contact list"
        scopes = [ALL_MARKETING] + ([scope] if scope else [])
        with db.engine().connect() as conn:
            reason = conn.execute(sa.select(DNC.c.reason, DNC.c.scope).where(
                DNC.c.hash == subject.hash, DNC.c.scope.in_(scopes))).first()
        if reason is None:
            return None
        what = "any direct marketing" if reason.scope == ALL_MARKETING else reason.scope
        return f"on the do-not-contact list for {what} ({reason.reason})"


_EVENT_COLUMNS = ("client_event_id", "subject_kind", "subject_hash", "subject_enc", "audit_id",
                  "purpose", "action", "version", "text_hash", "language", "channel", "site",
                  "at", "ip_hash", "user_agent", "gpc", "actor")
# Written once, sent as text with the driver's parameters: no statement is built per event,
# and psycopg prepares it on the server after a few uses on a connection.
_PG_RECORD_BASE = f"""
WITH ev AS (
  INSERT INTO {EVENTS.name} ({", ".join(_EVENT_COLUMNS)})
  VALUES ({", ".join(f"%({c})s" for c in _EVENT_COLUMNS)})
  ON CONFLICT (client_event_id) DO NOTHING
  RETURNING id, subject_hash, purpose, action, version, at
), st AS (
  INSERT INTO {STATES.name} AS s (subject_hash, purpose, action, version, at, event_id)
  SELECT subject_hash, purpose, action, version, at, id FROM ev
  ON CONFLICT (subject_hash, purpose) DO UPDATE
    SET action = excluded.action, version = excluded.version, at = excluded.at,
        event_id = excluded.event_id
    WHERE s.event_id < excluded.event_id
){{dnc}}
SELECT id FROM ev"""
_PG_RECORD = _PG_RECORD_BASE.format(dnc="")
_PG_RECORD_DNC = _PG_RECORD_BASE.format(dnc=f""", dnc AS (
  INSERT INTO {DNC.name} (hash, scope, kind, reason, added_at)
  SELECT subject_hash, purpose, %(dnc_kind)s, %(dnc_reason)s, at FROM ev
  ON CONFLICT (hash, scope) DO NOTHING
)""")
_PG_REPLAYED = (f"SELECT id, purpose, action, version FROM {EVENTS.name} "
                "WHERE client_event_id = %(client_event_id)s")


def _insert(conn: sa.Connection) -> Callable[[sa.Table], Any]:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _dnc(conn: sa.Connection, digest: str, kind: str, scope: str, reason: str,
         at: dt.datetime) -> None:
    conn.execute(_insert(conn)(DNC).values(hash=digest, scope=scope, kind=kind,
                                           reason=reason[:64], added_at=at)
                 .on_conflict_do_nothing(index_elements=["hash", "scope"]))


def _event(r: Any) -> dict[str, Any]:
    return {"id": r.id, "client_event_id": r.client_event_id, "subject_kind": r.subject_kind,
            "subject": decrypt(r.subject_enc).decode(), "audit_id": r.audit_id,
            "purpose": r.purpose, "action": r.action, "version": r.version,
            "text_hash": r.text_hash, "language": r.language, "channel": r.channel,
            "site": r.site, "at": r.at.isoformat(), "ip_hash": r.ip_hash,
            "user_agent": r.user_agent, "gpc": r.gpc, "actor": r.actor}


def _base(language: str | None, purpose: ConsentPurpose) -> str | None:
    """'nl-BE' finds 'nl' when the manifest has no 'nl-BE' text."""
    if not language:
        return None
    texts = {lang for v in purpose.versions for lang in v.text}
    return language if language in texts else language.split("-")[0].lower()


def as_json(value: Any) -> str:
    return json.dumps(value, default=str)
