"""Cross references inside a manifest: ids that must exist, ids that must be unique.

Returns plain tuples (path, message, suggestion, prefer_key) so the loader can pin each to a line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from lawful.manifest.errors import Path
from lawful.manifest.model import Manifest
from lawful.manifest.suggest import suggest
from lawful.manifest.taxonomy import Taxonomy, fides_subjects, fides_uses

Finding = tuple[Path, str, str | None, bool]


def _hint(word: str, choices: Iterable[str]) -> str | None:
    return suggest(word, choices, list_if_few=True)


def _dupes(items: Sequence[object], attr: str, path: Path, what: str) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        key = getattr(item, attr)
        if key in seen:
            yield ((*path, i, attr), f"duplicate {what} {key!r} (also item {seen[key]})",
                   "give each a unique id", False)
        else:
            seen[key] = i


def _refs(values: Sequence[str], known: Iterable[str], path: Path, what: str
          ) -> Iterator[Finding]:
    known = set(known)
    for i, value in enumerate(values):
        if value not in known:
            yield ((*path, i), f"unknown {what} {value!r}", _hint(value, known), False)


def _ref(value: str | None, known: Iterable[str], path: Path, what: str) -> Iterator[Finding]:
    known = set(known)
    if value is not None and value not in known:
        yield (path, f"unknown {what} {value!r}", _hint(value, known), False)


def check_references(m: Manifest) -> list[Finding]:
    out: list[Finding] = []
    tax = Taxonomy.of(m)
    cats = set(tax.names)
    controllers = [c.id for c in m.organisation.controllers]
    subjects = [s.id for s in m.subjects]
    activities = [a.id for a in m.activities]
    purposes = [p.id for p in m.consent_purposes]
    rules = [r.id for r in m.retention]

    out += _dupes(m.organisation.controllers, "id", ("organisation", "controllers"), "controller")
    out += _dupes(m.organisation.supervisory_authorities, "id",
                  ("organisation", "supervisory_authorities"), "authority")
    for key, what in [("subjects", "subject"), ("categories", "category"),
                      ("activities", "activity"), ("recipients", "recipient"),
                      ("retention", "retention rule"), ("consent_purposes", "consent purpose"),
                      ("systems", "system")]:
        out += _dupes(getattr(m, key), "id", (key,), what)

    for i, subject in enumerate(m.subjects):
        out += _ref(subject.fideslang, fides_subjects(), ("subjects", i, "fideslang"),
                    "fideslang data subject")

    builtin = set(tax.names) - {c.id for c in m.categories}
    for i, cat in enumerate(m.categories):
        if cat.id in builtin:
            out.append((("categories", i, "id"), f"{cat.id!r} is already a fideslang category",
                        "use it directly, or give the custom category its own id", False))
        out += _ref(cat.parent, cats, ("categories", i, "parent"), "parent category")
        if cat.id in tax.ancestors(cat.id) or _cycles(tax, cat.id):
            out.append((("categories", i, "parent"),
                        f"category {cat.id!r} is its own ancestor (a cycle of parents)",
                        "point one of them at a fideslang category", False))

    for i, act in enumerate(m.activities):
        base = ("activities", i)
        out += _refs(act.subjects, subjects, (*base, "subjects"), "subject")
        out += _refs(act.categories, cats, (*base, "categories"), "data category")
        out += _ref(act.data_use, fides_uses(), (*base, "data_use"), "fideslang data use")
        out += _ref(act.controller, controllers, (*base, "controller"), "controller")
        for j, lb in enumerate(act.legal_bases):
            out += _ref(lb.consent_purpose, purposes,
                        (*base, "legal_bases", j, "consent_purpose"), "consent purpose")

    for i, rec in enumerate(m.recipients):
        out += _refs(rec.activities, activities, ("recipients", i, "activities"), "activity")
        out += _refs(rec.categories, cats, ("recipients", i, "categories"), "data category")

    for i, rule in enumerate(m.retention):
        base = ("retention", i)
        out += _refs(rule.activities, activities, (*base, "activities"), "activity")
        out += _refs(rule.categories, cats, (*base, "categories"), "data category")
        out += _refs(rule.subjects, subjects, (*base, "subjects"), "subject")
        out += _ref(rule.consent_purpose, purposes, (*base, "consent_purpose"), "consent purpose")
        if rule.extension:
            out += _ref(rule.extension.consent_purpose, purposes,
                        (*base, "extension", "consent_purpose"), "consent purpose")

    out += _systems(m, cats, subjects, activities, rules)
    return out


def _cycles(tax: Taxonomy, key: str) -> bool:
    seen = {key}
    current = tax.parents.get(key)
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        current = tax.parents.get(current)
    return False


def _systems(m: Manifest, cats: set[str], subjects: list[str], activities: list[str],
             rules: list[str]) -> Iterator[Finding]:
    tables_by_system = {s.id: {t.name: t for t in s.tables} for s in m.systems}
    for si, system in enumerate(m.systems):
        yield from _dupes(system.tables, "name", ("systems", si, "tables"), "table")
        for ti, table in enumerate(system.tables):
            base: Path = ("systems", si, "tables", ti)
            yield from _dupes(table.fields, "name", (*base, "fields"), "field")
            yield from _ref(table.subject, subjects, (*base, "subject"), "subject")
            yield from _refs(table.retention, rules, (*base, "retention"), "retention rule")
            yield from _refs(table.activities, activities, (*base, "activities"), "activity")
            for fi, fld in enumerate(table.fields):
                yield from _ref(fld.category, cats, (*base, "fields", fi, "category"),
                                "data category")
                yield from _ref(fld.retention, rules, (*base, "fields", fi, "retention"),
                                "retention rule")
            for ri, ref in enumerate(table.references):
                parts = ref.to.split(".")
                where = (*base, "references", ri, "to")
                if len(parts) == 2:
                    target_system, (target, _column) = system.id, parts
                elif len(parts) == 3:
                    target_system, target, _column = parts
                else:
                    yield (where, f"{ref.to!r} is not 'table.column' or 'system.table.column'",
                           None, False)
                    continue
                if target_system not in tables_by_system:
                    yield (where, f"unknown system {target_system!r}",
                           _hint(target_system, tables_by_system), False)
                elif target not in tables_by_system[target_system]:
                    yield (where, f"unknown table {target!r} in system {target_system!r}",
                           _hint(target, tables_by_system[target_system]), False)
