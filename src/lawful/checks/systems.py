"""The systems section against the declarations: what the databases hold, and how."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lawful.checks.base import Context, Hit, Severity, rule
from lawful.manifest.errors import Path
from lawful.manifest.model import FieldDecl, Strategy, Table

# scheme://user:password@host — a password in clear unless it is wholly ${ENV_VAR}.
_URL_PASSWORD = re.compile(r"^[A-Za-z0-9+.\-]+://[^:/@]*:(?P<pw>[^@]+)@")
_QUERY_PASSWORD = re.compile(r"[?&](password|passwd|pwd)=(?P<pw>[^&]+)", re.IGNORECASE)
_ENV_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$")


def _personal(table: Table) -> bool:
    return any(f.category for f in table.fields)


def _fields(ctx: Context) -> Iterator[tuple[Path, Table, FieldDecl]]:
    """Every declared field, with its path in the document and its table."""
    for si, system in enumerate(ctx.manifest.systems):
        for ti, table in enumerate(system.tables):
            for fi, fld in enumerate(table.fields):
                yield ("systems", si, "tables", ti, "fields", fi), table, fld


@rule("database-url-password", Severity.error, "GDPR Art. 32(1)",
      "Database password written in the manifest")
def url_password(ctx: Context) -> Iterator[Hit]:
    for i, system in enumerate(ctx.manifest.systems):
        for pattern in (_URL_PASSWORD, _QUERY_PASSWORD):
            match = pattern.search(system.url)
            if match and not _ENV_ONLY.match(match.group("pw")):
                yield (("systems", i, "url"),
                       f"the URL of system {system.id!r} holds a password in clear",
                       "use ${ENV_VAR} for the URL or its password, e.g. url: ${SHOP_DB_URL}")
                break


@rule("field-not-covered", Severity.error, "GDPR Art. 5(1)(b), 6(1), 30(1)(c)",
      "Personal field in a system that no activity covers")
def field_not_covered(ctx: Context) -> Iterator[Hit]:
    m = ctx.manifest
    for si, system in enumerate(m.systems):
        for ti, table in enumerate(system.tables):
            acts = [a for a in m.activities if not table.activities or a.id in table.activities]
            collected = [c for a in acts for c in a.categories]
            for fi, fld in enumerate(table.fields):
                if fld.category and not ctx.taxonomy.covered(fld.category, collected):
                    yield (("systems", si, "tables", ti, "fields", fi, "category"),
                           f"{table.name}.{fld.name} holds {fld.category!r}, which no "
                           "processing activity declares: it has no purpose or legal basis",
                           "add the category to the activity that uses it, or stop storing it")


@rule("category-not-in-systems", Severity.warning, "GDPR Art. 30(1)(c), 5(1)(c)",
      "Category collected by an activity but held in no system")
def category_not_held(ctx: Context) -> Iterator[Hit]:
    m = ctx.manifest
    if not m.systems:
        return
    held = [f.category for s in m.systems for t in s.tables for f in t.fields if f.category]
    for i, act in enumerate(m.activities):
        for j, cat in enumerate(act.categories):
            if not ctx.taxonomy.covered(cat, held):
                yield (("activities", i, "categories", j),
                       f"activity {act.id!r} collects {cat!r}, but no declared table holds it, "
                       "so requests and retention cannot reach it",
                       "declare the table and field that hold it under systems:")


@rule("table-unreachable", Severity.warning, "GDPR Art. 15, 17",
      "Personal table that no identity reaches")
def table_unreachable(ctx: Context) -> Iterator[Hit]:
    for si, system in enumerate(ctx.manifest.systems):
        links: dict[str, set[str]] = {t.name: set() for t in system.tables}
        for t in system.tables:
            for ref in t.references:
                target = ref.to.split(".")[-2]
                if target in links:
                    links[t.name].add(target)
                    links[target].add(t.name)
        reached = {t.name for t in system.tables if any(f.identity for f in t.fields)}
        frontier = list(reached)
        while frontier:
            for nxt in links[frontier.pop()] - reached:
                reached.add(nxt)
                frontier.append(nxt)
        for ti, table in enumerate(system.tables):
            if _personal(table) and table.name not in reached:
                yield (("systems", si, "tables", ti, "name"),
                       f"table {table.name!r} holds personal data but has no identity column "
                       "and no reference to a table that has one: requests cannot find its rows",
                       "mark an identity: field, or add references: to the owning table")


@rule("field-without-erasure", Severity.warning, "GDPR Art. 17(1)",
      "Personal field without an erasure strategy")
def field_without_erasure(ctx: Context) -> Iterator[Hit]:
    for path, table, fld in _fields(ctx):
        if fld.category and fld.erase is None and table.erase is None:
            yield (path, f"{table.name}.{fld.name} holds personal data with no erasure "
                   "strategy", "add erase: null, fixed, hash, mask or delete_row")


@rule("keep-without-hold", Severity.error, "GDPR Art. 17(1), 17(3)(b)",
      "Field kept on erasure without a retention rule")
def keep_without_hold(ctx: Context) -> Iterator[Hit]:
    for path, table, fld in _fields(ctx):
        strategy = fld.erase or table.erase
        if strategy is Strategy.keep and not (fld.retention or table.retention):
            yield ((*path, "erase"), f"{table.name}.{fld.name} is kept on erasure with no "
                   "retention rule that justifies keeping it",
                   "add retention: <rule id> (a legal hold), or choose a strategy")


@rule("fixed-without-value", Severity.error, "GDPR Art. 17(1)",
      "Fixed-text erasure without the text")
def fixed_without_value(ctx: Context) -> Iterator[Hit]:
    for path, table, fld in _fields(ctx):
        if (fld.erase or table.erase) is Strategy.fixed and fld.fixed_value is None:
            yield (path, f"{table.name}.{fld.name} is erased with a fixed text it does not "
                   "give", "add fixed_value: e.g. '(erased)'")


@rule("self-reference-same-person", Severity.warning, "GDPR Art. 5(1)(f), 15, 17",
      "A table referencing its own rows as the same person")
def self_reference(ctx: Context) -> Iterator[Hit]:
    for si, system in enumerate(ctx.manifest.systems):
        for ti, table in enumerate(system.tables):
            for ri, ref in enumerate(table.references):
                target = ref.to.split(".")[-2]
                if target == table.name and not ref.other_person:
                    yield (("systems", si, "tables", ti, "references", ri),
                           f"{table.name}.{ref.field} points at another {table.name} row, "
                           "which may be someone else's (a reply, a referral): requests would "
                           "walk from one person to the other",
                           "set other_person: true, unless the rows always share one person")
