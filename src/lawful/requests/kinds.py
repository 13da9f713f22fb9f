"""Request kinds, states, and the service's errors (the API maps them to HTTP statuses)."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    access = "access"
    portability = "portability"
    rectification = "rectification"
    erasure = "erasure"
    restriction = "restriction"
    objection = "objection"
    consent_withdrawal = "consent_withdrawal"


class Status(StrEnum):
    received = "received"
    awaiting_verification = "awaiting_verification"
    verified = "verified"
    in_progress = "in_progress"
    completed = "completed"
    refused = "refused"


CLOSED = (Status.completed, Status.refused)
# Art. 19: the recipients are told of these.
TELL_RECIPIENTS = (Kind.rectification, Kind.erasure, Kind.restriction)


class RefusalGrounds(StrEnum):
    manifestly_unfounded = "manifestly_unfounded"  # Art. 12(5)(b)
    excessive = "excessive"  # Art. 12(5)(b), in particular repetitive
    identity_not_verified = "identity_not_verified"  # Art. 12(2), 12(6)
    legal_exemption = "legal_exemption"  # Art. 17(3), 23
    other = "other"


class ObjectionTo(StrEnum):
    direct_marketing = "direct_marketing"  # Art. 21(2)-(3): absolute
    legitimate_interests = "legitimate_interests"  # Art. 21(1)


class ServiceError(Exception):
    status = 400


class Invalid(ServiceError):
    status = 422


class NotFound(ServiceError):
    status = 404

    def __init__(self, what: str = "request") -> None:
        # Unknown and not-yours read the same, so nobody learns which ids exist.
        super().__init__(f"no such {what}")


class Conflict(ServiceError):
    status = 409


class Locked(ServiceError):
    status = 423


class Throttled(ServiceError):
    status = 429
