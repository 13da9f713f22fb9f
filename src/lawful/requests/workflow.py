"""The request workflow: the service functions the API and the CLI both call.

received ─► awaiting_verification ─► verified ─► in_progress ─► completed
                     │                   │
                     └───────────────────┴─────► refused
An extension is an event on the request, not a state. Every change is in the audit journal,
in the same transaction as the change itself.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from lawful.addresses import NotAnAddress, checked_email
from lawful.engine import clock, state
from lawful.keys import decrypt, encrypt, keyed_hash
from lawful.manifest.duration import Duration
from lawful.manifest.model import Manifest
from lawful.requests import mail, words
from lawful.requests.kinds import (
    CLOSED,
    Conflict,
    Invalid,
    Kind,
    Locked,
    NotFound,
    ObjectionTo,
    RefusalGrounds,
    Status,
    Throttled,
)
from lawful.store import audit, db
from lawful.store.models import Notification, OutboxMessage, Package, Request, Verification

if TYPE_CHECKING:
    from lawful.engine.plan import Plan

CODE_DIGITS = 6
CODE_VALID = dt.timedelta(minutes=15)
MAX_FAILURES = 5  # wrong codes before the request is locked
MAX_CODES = 3  # codes sent per request: resending must not reset the brute-force budget
MAX_OPEN = 3  # unverified requests per address and day (each has its own five guesses)
REPEAT_WINDOW = dt.timedelta(days=365)
MAX_TEXT = 2000  # reasons, notes


def _unpaid(request: Request) -> bool:
    return request.fee is not None and request.fee_paid_at is None


def _months(duration: Duration | None) -> int:
    if duration is None:
        return 0
    return duration.count * (12 if duration.unit == "years" else 1) \
        if duration.unit in ("months", "years") else 0


@dataclass
class Service:
    """One manifest's request service. `now` is injectable so tests can move time."""

    manifest: Manifest
    base_url: str = "http://127.0.0.1:8000"
    now: Callable[[], dt.datetime] = state.now
    _plan: Plan | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        db.ensure_current()

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            from lawful.engine.plan import build_plan

            self._plan = build_plan(self.manifest)
        return self._plan

    @property
    def sender(self) -> str:
        contact = self.manifest.rights.contact
        if contact and "@" in contact:
            return contact
        return self.manifest.organisation.controllers[0].email or "privacy@localhost"

    @property
    def region(self) -> str | None:
        return self.manifest.organisation.controllers[0].country

    # --- intake -----------------------------------------------------------------------------

    def submit(self, kind: str, email: str, details: dict[str, Any] | None = None,
               actor: str = "requester") -> tuple[Request, str]:
        """Receive a request; returns it and the requester's follow token (shown once)."""
        try:
            chosen = Kind(kind)
        except ValueError:
            raise Invalid(f"unknown request type {kind!r}; one of "
                          f"{', '.join(k.value for k in Kind)}") from None
        if chosen.value not in self.manifest.rights.offered:
            raise Invalid(f"{self.manifest.organisation.name} does not offer {chosen.value} "
                          "requests (rights.offered in the manifest)")
        try:
            address = checked_email(email)
        except NotAnAddress as exc:
            raise Invalid(f"email: {exc}") from None
        clean = self._details(chosen, details or {})
        received = self.now()
        token = secrets.token_urlsafe(24)
        due = clock.add(received.date(), self.manifest.rights.response_time)
        digest = keyed_hash(json.dumps([chosen.value, clean], sort_keys=True), "request")
        identity_hash = keyed_hash(f"email:{address}", "identity")
        with db.transaction() as s:
            self._within_budget(s, identity_hash, received)
            repeat = s.execute(sa.select(Request.id).where(
                Request.identity_hash == identity_hash, Request.type == chosen.value,
                Request.details_digest == digest, Request.status != Status.refused.value,
                Request.received_at >= received - REPEAT_WINDOW)
                .order_by(Request.received_at.desc())).scalars().first()
            request = Request(
                id=secrets.token_hex(16), type=chosen.value, status=Status.received.value,
                identity_kind="email", identity_enc=encrypt(address.encode()),
                identity_hash=identity_hash,
                details_enc=encrypt(json.dumps(clean).encode()) if clean else None,
                details_digest=digest, token_hash=keyed_hash(token, "request-token"),
                received_at=received, due_on=due, first_due_on=due, repeat_of=repeat)
            s.add(request)
            s.flush()
            audit.append(s, actor, "request.received", request.id, type=chosen.value,
                         due_on=due, repeat_of=repeat)
            if self.manifest.rights.verify_identity:
                self._send_code(s, request, address)
            else:
                self._verified(s, request, "lawful", "the manifest does not ask for "
                               "identity verification")
        return self.after_commit(request), token

    def _within_budget(self, s: Session, identity_hash: str, now: dt.datetime) -> None:
        """At most MAX_OPEN unverified requests per address a day: each brings five guesses
        at a code and an e-mail to the address, so more would make guessing a code (or
        flooding someone's mailbox) a matter of submitting again."""
        open_ = s.execute(sa.select(sa.func.count()).select_from(Request).where(
            Request.identity_hash == identity_hash,
            Request.status == Status.awaiting_verification.value,
            Request.received_at >= now - dt.timedelta(days=1))).scalar_one()
        if open_ >= MAX_OPEN:
            raise Throttled(f"{open_} requests for this address are already waiting for their "
                            "code: use the code e-mailed to you, or try again tomorrow")

    def _details(self, kind: Kind, details: dict[str, Any]) -> dict[str, Any]:
        allowed = {Kind.rectification: {"set"}, Kind.objection: {"to", "grounds"},
                   Kind.consent_withdrawal: {"purpose"}}.get(kind, set())
        unknown = sorted(set(details) - allowed)
        if unknown:
            raise Invalid(f"{kind.value} takes no {', '.join(unknown)}"
                          + (f"; it takes {', '.join(sorted(allowed))}" if allowed else ""))
        if kind is Kind.rectification:
            return {"set": self._rectification(details.get("set"))}
        if kind is Kind.objection:
            try:
                to = ObjectionTo(details.get("to", ObjectionTo.direct_marketing.value))
            except ValueError:
                raise Invalid("objection: 'to' is direct_marketing or "
                              "legitimate_interests") from None
            grounds = _text(details.get("grounds"), "grounds", required=False)
            return {"to": to.value, **({"grounds": grounds} if grounds else {})}
        if kind is Kind.consent_withdrawal:
            purpose = details.get("purpose")
            ids = [p.id for p in self.manifest.consent_purposes]
            if purpose not in ids:
                raise Invalid(f"consent_withdrawal: 'purpose' must be one of {', '.join(ids)}"
                              if ids else "this manifest declares no consent purposes")
            return {"purpose": purpose}
        return {}

    def _rectification(self, values: Any) -> dict[str, str]:
        from lawful.engine.modify import InvalidValue, validate_value
        from lawful.engine.modify import _resolve as resolve

        if not isinstance(values, dict) or not values or len(values) > 20:
            raise Invalid("rectification: 'set' maps TABLE.FIELD to the correct value "
                          "(1 to 20 fields)")
        clean: dict[str, str] = {}
        for target, value in values.items():
            if not isinstance(target, str) or not isinstance(value, str) or len(value) > 1000:
                raise Invalid("rectification: each field and value is text (values up to "
                              "1000 characters)")
            try:
                _, fp = resolve(self.plan, target)
                clean[target] = validate_value(self.plan, fp, value)
            except InvalidValue as exc:
                raise Invalid(f"rectification: {exc}") from None
        return clean

    # --- verification -----------------------------------------------------------------------

    def _send_code(self, s: Session, request: Request, address: str) -> None:
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        now = self.now()
        existing = s.get(Verification, request.id)
        if existing is None:
            s.add(Verification(request_id=request.id, code_hash=_code_hash(request.id, code),
                               expires_at=now + CODE_VALID, failures=0, locked=False,
                               sent_at=now, codes_sent=1))
        else:
            existing.code_hash = _code_hash(request.id, code)
            existing.expires_at = now + CODE_VALID
            existing.sent_at = now
            existing.codes_sent += 1
        request.status = Status.awaiting_verification.value
        mail.queue(s, self.sender, address, words.code_subject(self.manifest),
                   words.code_body(self.manifest, request, code), request.id)
        audit.append(s, "lawful", "verification.code_sent", request.id)

    def resend_code(self, request_id: str, token: str) -> None:
        with db.transaction() as s:
            request = self._mine(s, request_id, token)
            check = s.get(Verification, request.id)
            if request.status != Status.awaiting_verification.value or check is None:
                raise Conflict(f"the request is {request.status}, not awaiting verification")
            if check.locked or check.codes_sent >= MAX_CODES:
                raise Locked("no more codes can be sent for this request; contact "
                             f"{self.sender} to verify your identity another way")
            self._send_code(s, request, decrypt(request.identity_enc).decode())
        self.after_commit(request)

    def verify(self, request_id: str, token: str, code: str) -> Request:
        """The requester proves control of the address with the code e-mailed to it."""
        with db.transaction() as s:
            request = self._mine(s, request_id, token)
            check = s.get(Verification, request.id, with_for_update=True)
            if request.status != Status.awaiting_verification.value or check is None:
                raise Conflict(f"the request is {request.status}, not awaiting verification")
            if check.locked:
                raise Locked("too many wrong codes: this request is locked; contact "
                             f"{self.sender} to verify your identity another way")
            if self.now() > check.expires_at:
                raise Invalid("the code has expired; ask for a new one")
            given = _code_hash(request.id, code.strip()) if _well_formed(code) else ""
            if not hmac.compare_digest(given.encode(), check.code_hash.encode()):
                check.failures += 1
                check.locked = check.failures >= MAX_FAILURES
                audit.append(s, "requester", "verification.failed", request.id,
                             failures=check.failures, locked=check.locked)
                failed = (check.failures, check.locked)
            else:
                failed = None
                s.delete(check)
                self._verified(s, request, "requester", "code sent by e-mail")
        if failed is not None:
            # Raised after the commit above so the failure count is kept.
            if failed[1]:
                raise Locked("too many wrong codes: this request is locked")
            raise Invalid(f"wrong code ({MAX_FAILURES - failed[0]} tries left)")
        return self.after_commit(request)

    def staff_verify(self, request_id: str, actor: str, note: str) -> Request:
        """Staff verified the requester by other means (a call back, a signed letter)."""
        note = _text(note, "note")
        with db.transaction() as s:
            request = self._get(s, request_id, lock=True)
            if request.status not in (Status.received.value,
                                      Status.awaiting_verification.value):
                raise Conflict(f"the request is {request.status}, not awaiting verification")
            check = s.get(Verification, request.id)
            if check is not None:
                s.delete(check)
            self._verified(s, request, actor, note)
        return self.after_commit(request)

    def _verified(self, s: Session, request: Request, actor: str, note: str) -> None:
        request.status = Status.verified.value
        request.verified_at = self.now()
        request.verified_by = actor
        request.verification_note = note
        audit.append(s, actor, "request.verified", request.id, how=note)
        # Only a proven identity runs at once: with `verify_identity: false` anyone could name
        # anyone's address, so such requests wait for a staff member to execute them.
        if request.type in self.manifest.rights.auto_execute and actor != "lawful" \
                and not _unpaid(request):
            self._start(s, request, "lawful")

    # --- staff decisions --------------------------------------------------------------------

    def extend(self, request_id: str, actor: str, months: int, reason: str) -> Request:
        """Art. 12(3): up to two more months, with reasons told to the requester in time."""
        reason = _text(reason, "reason")
        allowed = _months(self.manifest.rights.extension)
        with db.transaction() as s:
            request = self._get(s, request_id, lock=True)
            if request.status in CLOSED:
                raise Conflict(f"the request is already {request.status}")
            if not 1 <= months <= allowed:
                raise Invalid(f"an extension is 1 to {allowed} month(s) under this manifest"
                              if allowed else "this manifest allows no extension")
            if self.now().date() > request.first_due_on:
                raise Conflict(f"the first month ended on {request.first_due_on}: the "
                               "requester had to be told of an extension before then")
            # Counted from receipt, as the law counts "two further months" (31 January: due
            # 28 February, extended by two months to 30 April, not 28 April), unless the
            # manifest's response time is not in months.
            answer = _months(self.manifest.rights.response_time)
            if answer:
                due = clock.add(request.received_at.date(), Duration(answer + months, "months"))
            else:
                due = clock.add(request.first_due_on, Duration(months, "months"))
            if due <= request.due_on:
                raise Conflict(f"the request is already due on {request.due_on}")
            request.due_on = due
            request.extension_reason = reason
            address = decrypt(request.identity_enc).decode()
            mail.queue(s, self.sender, address, words.extension_subject(self.manifest),
                       words.extension_body(self.manifest, request, reason), request.id)
            audit.append(s, actor, "request.extended", request.id, due_on=due, reason=reason)
        return self.after_commit(request)

    def refuse(self, request_id: str, actor: str, grounds: str, reason: str) -> Request:
        reason = _text(reason, "reason")
        try:
            chosen = RefusalGrounds(grounds)
        except ValueError:
            raise Invalid(f"grounds: one of {', '.join(g.value for g in RefusalGrounds)}"
                          ) from None
        with db.transaction() as s:
            request = self._get(s, request_id, lock=True)
            self._refusable(s, request)
            request.status = Status.refused.value
            request.refusal_grounds = chosen.value
            request.refusal_reason = reason
            request.completed_at = self.now()
            address = decrypt(request.identity_enc).decode()
            mail.queue(s, self.sender, address, words.refusal_subject(self.manifest),
                       words.refusal_body(self.manifest, request), request.id)
            audit.append(s, actor, "request.refused", request.id, grounds=chosen.value,
                         reason=reason)
        return self.after_commit(request)

    def _refusable(self, s: Session, request: Request) -> None:
        if request.type == Kind.consent_withdrawal.value:
            raise Conflict("a consent withdrawal is always honoured: it cannot be refused or "
                           "charged for (Art. 7(3))")
        if request.type == Kind.objection.value and \
                self.details(request).get("to") == ObjectionTo.direct_marketing.value:
            raise Conflict("an objection to direct marketing is absolute (Art. 21(3))")
        if request.status in CLOSED or request.status == Status.in_progress.value:
            raise Conflict(f"the request is {request.status}")

    def charge_fee(self, request_id: str, actor: str, amount: str, reason: str) -> Request:
        """Art. 12(5)(a): a reasonable fee for a manifestly unfounded or excessive request."""
        reason = _text(reason, "reason")
        if not self.manifest.rights.fee_for_unfounded:
            raise Conflict("this manifest does not allow fees (rights.fee_for_unfounded)")
        value, _, currency = amount.strip().partition(" ")
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal(-1)
        if not (0 < number <= 1000) or not currency.isalpha() or len(currency) != 3:
            raise Invalid("amount: a number and a currency code, e.g. '25 EUR' (at most 1000)")
        with db.transaction() as s:
            request = self._get(s, request_id, lock=True)
            self._refusable(s, request)
            if request.fee_paid_at is not None:
                raise Conflict(f"a fee of {request.fee} was already paid")
            request.fee, request.fee_reason = f"{number} {currency.upper()}", reason
            address = decrypt(request.identity_enc).decode()
            mail.queue(s, self.sender, address, words.fee_subject(self.manifest),
                       words.fee_body(self.manifest, request), request.id)
            audit.append(s, actor, "request.fee", request.id, fee=request.fee, reason=reason)
        return self.after_commit(request)

    def fee_paid(self, request_id: str, actor: str, note: str) -> Request:
        """The fee was paid: the request may be executed (at once, if its kind runs by itself
        and the requester is verified)."""
        note = _text(note, "note")
        with db.transaction() as s:
            request = self._get(s, request_id, lock=True)
            if not _unpaid(request):
                raise Conflict("no fee is waiting to be paid on this request")
            if request.status in CLOSED:
                raise Conflict(f"the request is already {request.status}")
            request.fee_paid_at = self.now()
            audit.append(s, actor, "request.fee_paid", request.id, fee=request.fee, note=note)
            if request.status == Status.verified.value and \
                    request.type in self.manifest.rights.auto_execute and \
                    request.verified_by != "lawful":
                self._start(s, request, "lawful")
        return self.after_commit(request)

    def execute(self, request_id: str, actor: str) -> Request:
        """Start a verified request (or restart one whose execution failed)."""
        with db.transaction() as s:
            request = self._get(s, request_id, lock=True)
            restart = request.status == Status.in_progress.value and request.error
            if request.status != Status.verified.value and not restart:
                raise Conflict(f"the request is {request.status}; only a verified request "
                               "can be executed")
            if _unpaid(request):
                raise Conflict(f"a fee of {request.fee} is unpaid (Art. 12(5)(a)): record the "
                               "payment first")
            self._start(s, request, actor)
        return self.after_commit(request)

    def _start(self, s: Session, request: Request, actor: str) -> None:
        request.status = Status.in_progress.value
        request.started_at = self.now()
        request.error = None
        audit.append(s, actor, "request.started", request.id)

    def after_commit(self, request: Request) -> Request:
        """E-mails go out and tasks start only once the change that caused them is stored.
        Returns the request as it is now (an in-process task may have completed it)."""
        if request.status != Status.in_progress.value:
            mail.deliver()
            return request
        from lawful.tasks import enqueue

        enqueue(request.id, self)
        mail.deliver()
        with db.session() as s:
            return s.get(Request, request.id) or request

    # --- reading ----------------------------------------------------------------------------

    def _get(self, s: Session, request_id: str, lock: bool = False) -> Request:
        request = s.get(Request, request_id, with_for_update=lock) \
            if _well_formed_id(request_id) else None
        if request is None:
            raise NotFound()
        return request

    def _mine(self, s: Session, request_id: str, token: str, lock: bool = True) -> Request:
        """The request, if `token` is its requester's; otherwise it does not exist."""
        request = self._get(s, request_id, lock=lock)
        if not hmac.compare_digest(keyed_hash(token or "", "request-token").encode(),
                                   request.token_hash.encode()):
            raise NotFound()
        return request

    def for_requester(self, request_id: str, token: str) -> tuple[Request, list[Any]]:
        with db.session() as s:
            request = self._mine(s, request_id, token, lock=False)
            return request, audit.entries(s, request.id)

    def get(self, request_id: str, actor: str) -> Request:
        with db.transaction() as s:
            request = self._get(s, request_id)
            audit.append(s, actor, "request.viewed", request.id)
        return request

    def list(self, status: str | None = None, kind: str | None = None,
             due_before: dt.date | None = None, overdue: bool = False,
             limit: int = 200) -> list[Request]:
        query = sa.select(Request).order_by(Request.due_on, Request.received_at).limit(limit)
        if status:
            query = query.where(Request.status == Status(status).value)
        if kind:
            query = query.where(Request.type == Kind(kind).value)
        if due_before:
            query = query.where(Request.due_on <= due_before)
        if overdue:
            query = query.where(Request.due_on < self.now().date(),
                                Request.status.not_in([c.value for c in CLOSED]))
        with db.session() as s:
            return list(s.execute(query).scalars())

    @staticmethod
    def identity(request: Request) -> str:
        return decrypt(request.identity_enc).decode()

    @staticmethod
    def details(request: Request) -> dict[str, Any]:
        return json.loads(decrypt(request.details_enc)) if request.details_enc else {}

    @staticmethod
    def result(request: Request) -> dict[str, Any] | None:
        return json.loads(decrypt(request.result_enc)) if request.result_enc else None

    # --- the app practises the retention it enforces ---------------------------------------

    def purge(self) -> int:
        """Delete closed requests older than `rights.keep_request_records`, with their codes,
        packages, e-mails and notifications; the audit journal keeps ids, never identities."""
        keep = self.manifest.rights.keep_request_records
        today = self.now().date()
        with db.transaction() as s:
            closed = s.execute(sa.select(Request.id, Request.completed_at).where(
                Request.status.in_([c.value for c in CLOSED]))).all()
            old = [rid for rid, at in closed if at and clock.add(at.date(), keep) <= today]
            for start in range(0, len(old), 500):
                chunk = old[start:start + 500]
                for model in (Verification, Package, OutboxMessage, Notification):
                    s.execute(sa.delete(model).where(model.request_id.in_(chunk)))
                s.execute(sa.delete(Request).where(Request.id.in_(chunk)))
            if old:
                audit.append(s, "lawful", "requests.purged", None, count=len(old),
                             kept_for=str(keep))
        return len(old)


def _text(value: Any, name: str, required: bool = True) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Invalid(f"{name}: required")
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise Invalid(f"{name}: text of at most {MAX_TEXT} characters")
    return value.strip()


def _code_hash(request_id: str, code: str) -> str:
    return keyed_hash(f"{request_id}:{code}", "verification-code")


def _well_formed(code: str) -> bool:
    return isinstance(code, str) and code.strip().isdigit() and len(code.strip()) == CODE_DIGITS


def _well_formed_id(request_id: str) -> bool:
    return isinstance(request_id, str) and len(request_id) == 32 and all(
        c in "0123456789abcdef" for c in request_id)
