"""A requester's or subscriber's e-mail address: normalised as the engine searches it, and
checked to be a real address before anything is sent to it (a value with a line break or
without a domain would otherwise reach the mail headers)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from lawful.engine.identities import IdentityError, normalise
from lawful.manifest.model import Identity


class NotAnAddress(ValueError):
    pass


def checked_email(value: str) -> str:
    try:
        address = normalise(Identity.email, value)
        validate_email(address, check_deliverability=False)
    except (IdentityError, EmailNotValidError) as exc:
        raise NotAnAddress(f"{value!r} is not an e-mail address ({exc})") from None
    return address
