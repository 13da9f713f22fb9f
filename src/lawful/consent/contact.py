"""May I contact? One answer, with its reason, weighing the do-not-contact list, objections,
consents and the soft opt-in of ePrivacy Art. 13(2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from lawful.consent.ledger import DNC, Action, Decision, Ledger, Subject
from lawful.requests.kinds import NotFound
from lawful.store import db

if TYPE_CHECKING:
    from lawful.engine.plan import Plan


def may_contact(ledger: Ledger, plan: Plan | None, email: str, purpose: str) -> Decision:
    """`purpose` is a consent purpose (the newsletter) or a marketing activity (offers to
    existing customers under the soft opt-in)."""
    subject = Subject.of(email=email)
    manifest = ledger.manifest
    consent = manifest.consent_purpose(purpose)
    activity = manifest.activity(purpose) if consent is None else None
    if consent is None and (activity is None or activity.marketing is None):
        raise NotFound(f"consent purpose or marketing activity {purpose!r}")
    blocked = ledger.on_do_not_contact(subject, purpose)
    if blocked and consent is not None and _consented_again(ledger, subject, purpose):
        blocked = None
    if blocked:
        return Decision(False, blocked)
    if activity is not None:
        assert activity.marketing is not None
        via = [b.consent_purpose for b in activity.legal_bases if b.consent_purpose]
        if via:
            return _by_consent(ledger, subject, via[0])
        if activity.marketing.soft_opt_in:
            if plan is not None and _existing_customer(plan, email, set(activity.subjects)):
                return Decision(True, "an existing customer, for similar products, until they "
                                "object (soft opt-in, ePrivacy Directive Art. 13(2))")
            return Decision(False, "not an existing customer: the soft opt-in does not apply, "
                            "and there is no consent")
        return Decision(False, f"{activity.id} declares no consent and no soft opt-in")
    return _by_consent(ledger, subject, purpose)


def _by_consent(ledger: Ledger, subject: Subject, purpose: str) -> Decision:
    current = next(s for s in ledger.state(subject) if s.purpose == purpose)
    if current.status == Action.granted:
        if current.stale:
            return Decision(True, f"consent given to text version {current.version}; the "
                            f"current text is version {current.current_version}: ask again")
        return Decision(True, f"consent given on {current.at:%Y-%m-%d} to the current text")
    if current.status == "none":
        return Decision(False, f"no consent recorded for {purpose}")
    return Decision(False, f"consent {current.status} on {current.at:%Y-%m-%d}")


def _consented_again(ledger: Ledger, subject: Subject, purpose: str) -> bool:
    """A withdrawal (or unsubscribe) puts the address on the list for that purpose alone; a
    consent to it given afterwards is the person's newer choice. An objection to all direct
    marketing, an erasure, or a list entry made after the consent still blocks."""
    if ledger.on_do_not_contact(subject) is not None:  # erased, or any direct marketing
        return False
    current = next((s for s in ledger.state(subject) if s.purpose == purpose), None)
    if current is None or current.status != Action.granted or current.at is None:
        return False
    with db.engine().connect() as conn:
        added = conn.execute(sa.select(DNC.c.added_at).where(
            DNC.c.hash == subject.hash, DNC.c.scope == purpose)).scalar()
    return added is not None and current.at > added


def _existing_customer(plan: Plan, email: str, subjects: set[str]) -> bool:
    """Rows in a table of the activity's subjects (customers) hold this address."""
    from lawful.engine.access import access
    from lawful.engine.identities import Identities
    from lawful.manifest.model import Identity

    report = access(plan, Identities.of({Identity.email: [email]}, plan.region))
    return any(t.rows and t.subject in subjects for t in report.tables)
