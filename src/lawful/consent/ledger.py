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
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache, partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from lawful.addresses import NotAnAddress, checked_email
from lawful.consent.models import ConsentEvent, ConsentState, DoNotContact
from lawful.engine import state
from lawful.keys import decrypt, encrypt, keyed_hash
from lawful.manifest.model import ConsentPurpose, Identity, Manifest
from lawful.requests.kinds import Conflict, Invalid, NotFound
from lawful.store import aio, db

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

    async def record_async(self, subject: Subject, purpose: str, action: str,
                           **context: Any) -> Recorded:
        """`record` for the event loop (the HTTP API): on PostgreSQL, the same single
        statement on an asyncio connection, with no thread hand-off; otherwise `record` in a
        worker thread."""
        pool = aio.pool()
        if pool is None:
            return await run_in_threadpool(partial(self.record, subject, purpose, action,
                                                   **context))
        prepared = self._prepare_event(subject, purpose, action, **context)
        values, note, dnc = self._pg_values(subject, prepared,
                                            encrypt(subject.value.encode()))
        async with pool.connection() as conn:
            event_id = (await (await conn.execute(
                _PG_RECORD_DNC if dnc else _PG_RECORD, values)).fetchone() or (None,))[0]
            if event_id is None:  # replayed: the stored event answers
                stored = await (await conn.execute(_PG_REPLAYED, values)).fetchone()
        if event_id is None:
            assert stored is not None
            return _replayed(stored, values)
        return Recorded(event_id, values["purpose"], values["action"], values["version"],
                        True, note)

    def _prepare_event(self, subject: Subject, purpose: str, action: str, *,
                       channel: str = Channel.api.value, version: int | None = None,
                       language: str | None = None, shown_hash: str | None = None,
                       site: str | None = None, audit_id: str | None = None,
                       ip: str | None = None, user_agent: str | None = None,
                       gpc: bool = False, client_event_id: str | None = None,
                       actor: str = "subject") -> dict[str, Any]:
        return self._prepare(subject, purpose, action, channel, version, language,
                             shown_hash, site, audit_id, ip, user_agent, gpc,
                             client_event_id, actor)

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
            client_event_id=_per_purpose(base_id, purpose) if base_id else None, **context)
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
            # 'nl-BE' is shown the 'nl' text when there is no 'nl-BE' one: record that one.
            shown_version, shown_lang, shown_text = self.shown_text(
                purpose, version, _base(language, purpose))
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
        if conn.dialect.name == "postgresql":
            return self._store_pg(conn, subject, row, sealed)
        note, marketing = row.pop("_note"), row.pop("_marketing")
        values = {**row, "subject_enc": sealed, "at": self.now()}
        insert = _insert(conn)(EVENTS).values(values)
        if row["client_event_id"] is not None:
            insert = insert.on_conflict_do_nothing(index_elements=["client_event_id"])
        event_id = conn.execute(insert.returning(EVENTS.c.id)).scalar()
        if event_id is None:  # replayed: the stored event answers
            stored = conn.execute(sa.select(
                EVENTS.c.id, EVENTS.c.purpose, EVENTS.c.action, EVENTS.c.version,
                EVENTS.c.subject_hash).where(
                EVENTS.c.client_event_id == row["client_event_id"])).one()
            return _replayed(stored, row)
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

    def _pg_values(self, subject: Subject, row: dict[str, Any], sealed: bytes
                   ) -> tuple[dict[str, Any], str | None, bool]:
        """The parameters of _PG_RECORD(_DNC), the note for the caller, and whether the event
        also puts the subject on the do-not-contact list."""
        note, marketing = row.pop("_note"), row.pop("_marketing")
        values = {**row, "subject_enc": sealed, "at": self.now()}
        dnc = values["action"] in (Action.withdrawn, Action.objected) and marketing
        if dnc:
            values["dnc_kind"] = subject.kind
            values["dnc_reason"] = f"{values['action']}:{values['channel']}"[:64]
        return values, note, dnc

    def _store_pg(self, conn: sa.Connection, subject: Subject, row: dict[str, Any],
                  sealed: bytes) -> Recorded:
        """The same writes as the generic path, as one statement (a data-modifying CTE): the
        state and the do-not-contact entry are written only if the event was."""
        values, note, dnc = self._pg_values(subject, row, sealed)
        event_id = conn.exec_driver_sql(_PG_RECORD_DNC if dnc else _PG_RECORD,
                                        values).scalar()
        if event_id is None:  # replayed: the stored event answers
            return _replayed(conn.exec_driver_sql(_PG_REPLAYED, values).one(), values)
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
            rows = conn.execute(sa.select(STATES.c.purpose, STATES.c.action,
                                          STATES.c.version, STATES.c.at).where(
                STATES.c.subject_hash == subject.hash)).all()
        return self._states(rows)

    async def state_async(self, subject: Subject) -> list[PurposeState]:
        """`state` for the event loop: an asyncio connection on PostgreSQL."""
        pool = aio.pool()
        if pool is None:
            return await run_in_threadpool(self.state, subject)
        async with pool.connection() as conn:
            rows = await (await conn.execute(_PG_STATE, {"hash": subject.hash})).fetchall()
        return self._states(rows)

    def _states(self, found: Iterable[Any]) -> list[PurposeState]:
        rows = {r[0]: r for r in found}  # purpose, action, version, at
        today = self.now().date()
        out = []
        for p in self.manifest.consent_purposes:
            current = p.current(today)
            r = rows.get(p.id)
            out.append(PurposeState(
                p.id, r[1] if r else "none", r[2] if r else None,
                current.version if current else None,
                bool(r and r[1] == Action.granted and current and r[2] != current.version),
                r[3] if r else None))
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
_PG_STATE = (f"SELECT purpose, action, version, at FROM {STATES.name} "
             "WHERE subject_hash = %(hash)s")
_PG_REPLAYED = (f"SELECT id, purpose, action, version, subject_hash FROM {EVENTS.name} "
                "WHERE client_event_id = %(client_event_id)s")


def _replayed(stored: Any, values: dict[str, Any]) -> Recorded:
    """The stored event answers a replay, if it is the same person's event for the same
    purpose; an id reused for anything else is the client's mistake, and nobody learns
    another person's event through it."""
    if stored[4] != values["subject_hash"] or stored[1] != values["purpose"]:
        raise Conflict("client_event_id is already used by another event: give each event "
                       "its own id")
    return Recorded(stored[0], stored[1], stored[2], stored[3], False)


def _per_purpose(base_id: str, purpose: str) -> str:
    """One client event id per purpose of a banner answer, unique even for long ids."""
    digest = hashlib.sha256(purpose.encode()).hexdigest()[:12]
    combined = f"{base_id}:{digest}"
    return combined if len(combined) <= 64 else \
        hashlib.sha256(f"{base_id}:{purpose}".encode()).hexdigest()


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
