"""The data category tree: fideslang's shared taxonomy plus the manifest's custom categories.

fideslang gives the privacy field common keys (user.contact.email, marketing.communications.email,
customer); a manifest may add its own categories under any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from fideslang.default_taxonomy import DEFAULT_TAXONOMY

from lawful.manifest.model import Manifest

# Art. 9(1) special categories, as fideslang spells them.
SPECIAL_PREFIXES = (
    "user.biometric",
    "user.health_and_medical",
    "user.demographic.political_opinion",
    "user.demographic.race_ethnicity",
    "user.demographic.religious_belief",
    "user.demographic.sexual_orientation",
)
CRIMINAL_PREFIXES = ("user.criminal_history",)


@cache
def fides_categories() -> dict[str, str]:
    """fideslang data category key -> its human name."""
    return {c.fides_key: c.name or c.fides_key for c in DEFAULT_TAXONOMY.data_category}


@cache
def fides_uses() -> dict[str, str]:
    return {u.fides_key: u.name or u.fides_key for u in DEFAULT_TAXONOMY.data_use}


@cache
def fides_subjects() -> dict[str, str]:
    return {s.fides_key: s.name or s.fides_key for s in DEFAULT_TAXONOMY.data_subject}


def _dotted_parent(key: str) -> str | None:
    return key.rsplit(".", 1)[0] if "." in key else None


@dataclass
class Taxonomy:
    """Categories known to one manifest, with their parents and names."""

    names: dict[str, str] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    special: set[str] = field(default_factory=set)
    criminal: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, manifest: Manifest) -> Taxonomy:
        tax = cls()
        for key, name in fides_categories().items():
            tax.names[key] = name
            tax.parents[key] = _dotted_parent(key)
        for cat in manifest.categories:
            tax.names[cat.id] = cat.name
            tax.parents[cat.id] = cat.parent
            if cat.special:
                tax.special.add(cat.id)
            if cat.criminal:
                tax.criminal.add(cat.id)
        return tax

    def __contains__(self, key: str) -> bool:
        return key in self.names

    def ancestors(self, key: str) -> list[str]:
        """The chain above `key`, nearest first; stops on a cycle (reported elsewhere)."""
        chain: list[str] = []
        current = self.parents.get(key)
        while current is not None and current not in chain and current != key:
            chain.append(current)
            current = self.parents.get(current)
        return chain

    def is_within(self, key: str, ancestor: str) -> bool:
        return key == ancestor or ancestor in self.ancestors(key)

    def related(self, a: str, b: str) -> bool:
        """One category is the other or contains it."""
        return self.is_within(a, b) or self.is_within(b, a)

    def is_special(self, key: str) -> bool:
        lineage = [key, *self.ancestors(key)]
        return any(k in self.special or k.startswith(SPECIAL_PREFIXES) for k in lineage)

    def is_criminal(self, key: str) -> bool:
        lineage = [key, *self.ancestors(key)]
        return any(k in self.criminal or k.startswith(CRIMINAL_PREFIXES) for k in lineage)

    def name(self, key: str) -> str:
        return self.names.get(key, key)

    def covered(self, key: str, by: Iterable[str]) -> bool:
        return any(self.related(key, other) for other in by)
