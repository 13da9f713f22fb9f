"""Identities: how a person is known, normalised so the same person always matches.

E-mail addresses are case-folded (lower-cased, as SQL's lower() does, so a stored value and a
given one compare the same in the database and here); phone numbers become E.164 (with the
controller's country as the default region for national numbers). Cookie and device ids are
weak identities: a shared browser must not lead from one person to another's account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import phonenumbers

from lawful.manifest.model import Identity

WEAK = frozenset({Identity.cookie_id, Identity.ip_address})


class IdentityError(ValueError):
    """An identity that cannot be a real one: say which and why."""


def normalise(kind: Identity, value: str, region: str | None = None) -> str:
    text = value.strip()
    if not text:
        raise IdentityError(f"empty {kind.value}")
    if len(text) > 1000:
        raise IdentityError(f"{kind.value} longer than 1000 characters")
    if kind is Identity.email:
        if "@" not in text:
            raise IdentityError(f"{value!r} is not an e-mail address")
        return text.lower()
    if kind is Identity.phone:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException as exc:
            raise IdentityError(f"{value!r} is not a phone number: {exc}") from None
        if not phonenumbers.is_possible_number(number):
            raise IdentityError(f"{value!r} is not a possible phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return text


@dataclass
class Identities:
    """Known identity values of one person (or of a batch), normalised, by kind."""

    values: dict[Identity, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, given: Mapping[Identity, Iterable[str]], region: str | None = None
           ) -> Identities:
        out = cls()
        for kind, items in given.items():
            for item in items:
                out.add(kind, normalise(kind, item, region))
        return out

    def add(self, kind: Identity, value: str) -> bool:
        bucket = self.values.setdefault(kind, set())
        if value in bucket:
            return False
        bucket.add(value)
        return True

    def __bool__(self) -> bool:
        return any(self.values.values())

    def as_dict(self) -> dict[str, list[str]]:
        return {k.value: sorted(v) for k, v in self.values.items() if v}
