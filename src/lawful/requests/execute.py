"""Executing a verified request on the real databases: the body of the `execute` task.

Safe to run twice (a worker killed mid-request, the message delivered again): a request that
is no longer in progress is left alone, the engine's erasure resumes from its own journal,
a package is replaced, and recipients already recorded are not notified twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lawful.engine.connect import EngineError, statement_error
from lawful.engine.identities import Identities
from lawful.keys import SecretKeyError, decrypt, encrypt
from lawful.manifest.model import Identity
from lawful.requests import mail, packages, recipients, words
from lawful.requests.kinds import TELL_RECIPIENTS, Kind, ObjectionTo, Status
from lawful.requests.workflow import Service
from lawful.store import audit, db
from lawful.store.models import Request

if TYPE_CHECKING:
    from lawful.engine.plan import Plan


def run(service: Service, request_id: str) -> str:
    """Execute one request; returns its status afterwards."""
    with db.session() as s:
        request = s.get(Request, request_id)
        if request is None or request.status != Status.in_progress.value:
            return request.status if request else "missing"
        address = decrypt(request.identity_enc).decode()
    identities = Identities.of({Identity.email: [address]}, service.region)
    try:
        outcome = _perform(service, request, identities)
    except Exception as exc:
        # Whatever went wrong, the request records it and can be executed again; otherwise
        # it would stay in progress with no error, which `Service.execute` cannot restart.
        record_failure(request_id, exc)
        return Status.in_progress.value
    link = None
    with db.transaction() as s:
        row = s.get(Request, request_id, with_for_update=True)
        assert row is not None
        if row.status != Status.in_progress.value:  # another worker finished it first
            return row.status
        if outcome.package is not None:
            package = packages.keep(s, row.id, outcome.package, service.now())
            link = packages.link(service.base_url, package)
        if outcome.failed:
            row.error = outcome.failed
            audit.append(s, "lawful", "request.failed", row.id, error=outcome.failed)
        else:
            row.status = Status.completed.value
            row.completed_at = service.now()
            row.result_enc = encrypt(json.dumps(outcome.result, default=str).encode())
            recipients.record(s, row.id, recipients.affected(service.manifest,
                                                             outcome.recipients))
            mail.queue(s, service.sender, address, words.done_subject(service.manifest, row),
                       words.done_body(service.manifest, row, outcome.result, link), row.id)
            audit.append(s, "lawful", "request.completed", row.id,
                         summary=outcome.result.get("summary"))
        status = row.status
    if status == Status.completed.value and row.type in TELL_RECIPIENTS:
        recipients.deliver(row.id, service.sender, {
            "event": row.type, "identities": identities.as_dict(),
            "tables": outcome.result.get("tables", {})})
    mail.deliver()
    return status


def record_failure(request_id: str, exc: Exception) -> None:
    """The request records why it could not be executed (also used by the worker's task when
    it fails before or around `run`: the manifest cannot be loaded, the store is away)."""
    with db.transaction() as s:
        row = s.get(Request, request_id)
        if row is None or row.status != Status.in_progress.value:
            return
        row.error = _why(exc)[:2000]
        audit.append(s, "lawful", "request.failed", request_id, error=row.error)


def _why(exc: Exception) -> str:
    """The error as the request records it: our own errors say what to fix; anything else
    gives its class and the driver's first line, never a statement's parameters (values)."""
    from lawful.manifest.errors import ManifestError

    if isinstance(exc, EngineError | SecretKeyError | OSError | ManifestError):
        return str(exc)
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        return f"unexpected database error: {statement_error(exc.orig)}"
    return f"unexpected error: {type(exc).__name__}"


class Outcome:
    def __init__(self) -> None:
        self.result: dict[str, Any] = {"summary": []}
        self.package: bytes | None = None
        self.recipients: set[str] = set()
        self.failed: str | None = None


def _perform(service: Service, request: Request, identities: Identities) -> Outcome:
    kind, plan, outcome = Kind(request.type), service.plan, Outcome()
    details = Service.details(request)
    summary: list[str] = outcome.result["summary"]
    if kind in (Kind.access, Kind.portability):
        from lawful.engine.access import access

        report = access(plan, identities, portability=kind is Kind.portability)
        title = f"Your data at {service.manifest.organisation.name}"
        outcome.package = packages.zipped(report, title)
        outcome.result["tables"] = {f"{t.system}.{t.table}": len(t.rows)
                                    for t in report.tables}
        summary.append(f"{report.row_count} record(s) in {len(report.tables)} table(s)")
    elif kind is Kind.erasure:
        from lawful.engine.erase import erase

        result = erase(plan, identities)
        outcome.result.update(certificate(result.as_dict(), plan))
        for t in result.tables:
            if t.deleted or t.anonymised:
                tp = next(p for k, p in plan.tables.items()
                          if k.system == t.system and k.table == t.table)
                outcome.recipients |= {r for f in tp.personal_fields
                                       for r in f.context.recipients}
        summary.extend(outcome.result.pop("statements"))
        if result.verified is False:
            outcome.failed = "verification found values left: " + "; ".join(result.leftovers)
    elif kind is Kind.rectification:
        from lawful.engine.modify import rectify

        changed: dict[str, int] = {}
        for target, value in details["set"].items():
            done = rectify(plan, identities, target, value)
            changed.update(done.tables)
            outcome.recipients |= set(done.recipients)
            summary.append(f"{target} corrected in {sum(done.tables.values())} row(s)")
        outcome.result["tables"] = changed
    elif kind is Kind.restriction or (kind is Kind.objection and details.get("to") ==
                                      ObjectionTo.legitimate_interests.value):
        from lawful.engine.modify import restrict

        done = restrict(plan, identities, True)
        outcome.result["tables"] = done.tables
        outcome.recipients |= set(done.recipients)
        summary.append("processing of your data is restricted: it is kept but not used"
                       + (" while we weigh your objection against our legitimate interests "
                          "(Art. 18(1)(d))" if kind is Kind.objection else ""))
    elif kind in (Kind.objection, Kind.consent_withdrawal):
        from lawful.consent.ledger import Channel, Ledger, Subject

        ledger = Ledger(service.manifest, now=service.now)
        subject = Subject.of(email=Service.identity(request))
        if kind is Kind.objection:
            # Art. 21(3): absolute; kept as a keyed hash that outlives any later erasure.
            ledger.object_to_marketing(subject, Channel.request.value, "requester")
            summary.append("you will receive no more direct marketing (Art. 21(3)); your "
                           "address is on our do-not-contact list")
        else:
            purpose = service.manifest.consent_purpose(details["purpose"])
            assert purpose is not None
            ledger.withdraw(subject, purpose.id, Channel.request.value, "requester",
                            client_event_id=f"request:{request.id}")
            summary.append(f"your consent to {purpose.name} is withdrawn as of today")
            outcome.result["purpose"] = purpose.id
    return outcome


def certificate(erased: dict[str, Any], plan: Plan | None = None) -> dict[str, Any]:
    """What was erased, what was kept, on which law and until when: the proof sent back."""
    lines, kept, tables = [], [], {}
    for t in erased["tables"]:
        name = f"{t['system']}.{t['table']}"
        tables[name] = t["deleted"] + t["anonymised"]
        if t["deleted"] or t["anonymised"]:
            lines.append(f"{name}: {t['deleted']} row(s) deleted, {t['anonymised']} "
                         "anonymised")
        if t["held"] or t["kept_fields"]:
            rule, law, until = t["held_rule"], t["held_law"], t["held_until"]
            period = None
            if not rule and plan is not None:
                # Fields kept in rows that are otherwise erased: the engine names no rule for
                # them, so name the retention rules that hold them, from the manifest.
                rule, law, period = _field_holds(plan, t["system"], t["table"],
                                                 t["kept_fields"])
            kept.append({"table": name, "rows": t["held"], "fields": t["kept_fields"],
                         "rule": rule, "law": law, "until": until,
                         **({"period": period} if period else {})})
            what = f"{t['held']} row(s)" if t["held"] else ", ".join(t["kept_fields"])
            why = f" as {law or rule} requires" if rule else \
                " (the manifest declares no way to erase them)"
            when = f" until {until}" if until else f" for {period}" if period else ""
            lines.append(f"{name}: {what} kept{when}{why}")
    return {"run": erased["run_id"], "verified": erased["verified"], "tables": tables,
            "kept": kept, "statements": lines or ["nothing of yours was found to erase"]}


def _field_holds(plan: Plan, system: str, table: str, fields: list[str]
                 ) -> tuple[str | None, str | None, str | None]:
    """The rules (names), laws and periods that hold `fields` of a table, if any."""
    tp = next((p for k, p in plan.tables.items() if k.system == system and k.table == table),
              None)
    rules: dict[str, tuple[str | None, str | None]] = {}
    for f in tp.fields if tp is not None else []:
        if f.name in fields and f.hold is not None:
            for r, _ in f.hold.clocks:
                period = f"{r.keep} after {r.event or r.after.value.replace('_', ' ')}" \
                    if r.keep else None
                rules[r.name or r.id] = (r.law, period)
    if not rules:
        return None, None, None
    laws = "; ".join(dict.fromkeys(law for law, _ in rules.values() if law)) or None
    periods = "; ".join(dict.fromkeys(p for _, p in rules.values() if p)) or None
    return "; ".join(rules), laws, periods
