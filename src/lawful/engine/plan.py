"""The plan: the manifest's systems as a graph of tables, built once per manifest.

Everything a request needs that does not depend on the person is computed here, once: which
columns to read, which edges lead from a person's rows to more of their rows, the order in which
rows can be deleted without breaking foreign keys, which tables and fields are under a legal
hold, and what the notice says about each field (for the access report).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lawful.checks.retention import rules_for
from lawful.documents.words import describe_retention
from lawful.engine import clock
from lawful.manifest.model import (
    Basis,
    Clock,
    FieldDecl,
    Identity,
    Manifest,
    RetentionRule,
    Strategy,
    Table,
)
from lawful.manifest.taxonomy import Taxonomy

_PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
_MASKED = re.compile(r"^\*+[^*]{0,4}$")


def _is_none(value: Any) -> bool:
    return value is None


@dataclass(frozen=True, order=True)
class TableKey:
    system: str
    table: str

    def __post_init__(self) -> None:
        # Hashed for every row the search takes: once, not a tuple built on every call.
        object.__setattr__(self, "_hash", hash((self.system, self.table)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined,no-any-return]

    def __reduce__(self) -> tuple[Any, ...]:
        return TableKey, (self.system, self.table)  # hashed again where it is unpickled

    def __str__(self) -> str:
        return f"{self.system}.{self.table}"


@dataclass(frozen=True)
class Edge:
    """child.child_col references parent.parent_col."""

    child: TableKey
    child_col: str
    parent: TableKey
    parent_col: str
    other_person: bool


@dataclass(frozen=True)
class Hold:
    """A legal hold: retention rules on a legal obligation keep rows or fields on erasure.
    With several rules, a row is kept until the latest of them ends."""

    clocks: tuple[tuple[RetentionRule, str | None], ...]  # rule, and this table's date column

    @property
    def columns(self) -> list[str]:
        return [column for _, column in self.clocks if column]

    def until(self, row: dict[str, Any], year_end: str) -> tuple[dt.date | None, RetentionRule]:
        """The last day of the hold for `row`, and the rule that sets it; None: open-ended
        (a rule with no date on this table, or a row whose date is not set yet)."""
        latest: tuple[dt.date | None, RetentionRule] | None = None
        for rule, column in self.clocks:
            day = clock.as_date(row.get(column)) if column else None
            if day is None or rule.keep is None:
                return None, rule
            if rule.after is Clock.financial_year_end:
                day = clock.financial_year_end(day, year_end)
            end = clock.add(day, rule.keep)
            if latest is None or (latest[0] is not None and end > latest[0]):
                latest = (end, rule)
        assert latest is not None
        return latest

    def describe(self) -> str:
        return "; ".join(
            f"{rule.name or rule.id}" + (f" ({rule.law})" if rule.law else "")
            for rule, _ in self.clocks)


@dataclass(frozen=True)
class FieldContext:
    """What the manifest says about a field: shown to the person in an access report."""

    category: str | None
    category_name: str | None
    purposes: tuple[str, ...]
    legal_bases: tuple[str, ...]
    recipients: tuple[str, ...]
    retention: tuple[str, ...]
    portable: bool


@dataclass
class FieldPlan:
    decl: FieldDecl
    strategy: Strategy | None
    hold: Hold | None
    context: FieldContext

    @property
    def name(self) -> str:
        return self.decl.name

    def holds_erased(self, value: Any) -> bool:
        """Whether a stored value is already in the erased form of this field's strategy, so
        that erasing twice changes nothing and an erased value never identifies anyone."""
        return self.erased_test(value)

    @cached_property
    def erased_test(self) -> Callable[[Any], bool]:
        """holds_erased() as one function chosen once per field: it runs on every field of
        every row a batch erases or verifies."""
        if self.strategy is Strategy.fixed:
            fixed = self.decl.fixed_value
            return lambda value: value is None or value == fixed
        if self.strategy in (Strategy.hash, Strategy.mask):
            form = _PSEUDONYM if self.strategy is Strategy.hash else _MASKED
            return lambda value: value is None or (
                isinstance(value, str) and form.match(value) is not None)
        return _is_none

    @property
    def casefold(self) -> bool:
        if self.decl.match is not None:
            return self.decl.match == "casefold"
        return self.decl.identity is Identity.email


@dataclass
class TablePlan:
    key: TableKey
    decl: Table
    pk: tuple[str, ...]
    fields: list[FieldPlan]
    hold: Hold | None
    columns: tuple[str, ...] = ()

    @cached_property
    def identity_fields(self) -> list[FieldPlan]:
        return [f for f in self.fields if f.decl.identity is not None]

    @cached_property
    def personal_fields(self) -> list[FieldPlan]:
        return [f for f in self.fields if f.decl.category is not None]

    @property
    def deletes_rows(self) -> bool:
        return self.decl.erase is Strategy.delete_row or any(
            f.strategy is Strategy.delete_row for f in self.fields)


@dataclass
class Plan:
    manifest: Manifest
    tables: dict[TableKey, TablePlan]
    edges: list[Edge]
    delete_order: list[TableKey]
    cycles: list[list[TableKey]] = field(default_factory=list)
    # Compiled-once statements of the search, by table and shape of conditions.
    statements: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def region(self) -> str | None:
        return self.manifest.organisation.controllers[0].country

    @property
    def year_end(self) -> str:
        return self.manifest.organisation.controllers[0].financial_year_end

    @cached_property
    def same_person_parents(self) -> dict[TableKey, list[Edge]]:
        out: dict[TableKey, list[Edge]] = defaultdict(list)
        for e in self.edges:
            if not e.other_person:
                out[e.child].append(e)
        return out

    @cached_property
    def same_person_children(self) -> dict[TableKey, list[Edge]]:
        out: dict[TableKey, list[Edge]] = defaultdict(list)
        for e in self.edges:
            if not e.other_person:
                out[e.parent].append(e)
        return out

    @cached_property
    def referencing(self) -> dict[TableKey, list[Edge]]:
        """Every edge into a table, whoever the rows belong to: rows referenced from outside
        the erasure cannot be deleted without breaking the referencing rows."""
        out: dict[TableKey, list[Edge]] = defaultdict(list)
        for e in self.edges:
            out[e.parent].append(e)
        return out

    def systems(self) -> list[str]:
        return list(dict.fromkeys(k.system for k in self.tables))

    def table(self, system: str, name: str) -> TablePlan:
        return self.tables[TableKey(system, name)]


def _hold_for(rule_ids: list[str], manifest: Manifest, table: Table, system: str
              ) -> Hold | None:
    clocks = []
    for rule in manifest.retention:
        if rule.id not in rule_ids or rule.basis is not Basis.legal_obligation:
            continue
        own = [c.rsplit(".", 1)[-1] for c in rule.columns
               if c.rsplit(".", 1)[0] in (table.name, f"{system}.{table.name}")]
        clocks.append((rule, own[0] if own else None))
    return Hold(tuple(clocks)) if clocks else None


def _context(manifest: Manifest, tax: Taxonomy, table: Table, decl: FieldDecl
             ) -> FieldContext:
    if decl.category is None:
        return FieldContext(None, None, (), (), (), (), False)
    acts = [a for a in manifest.activities
            if (not table.activities or a.id in table.activities)
            and tax.covered(decl.category, a.categories)]
    recipients = [r.name for a in acts for r in manifest.recipients_of(a.id)
                  if not r.categories or tax.covered(decl.category, r.categories)]
    bases = [f"{lb.basis.value.replace('_', ' ')} ({lb.basis.article})"
             for a in acts for lb in a.legal_bases]
    # The rules that hold this table or field speak for it; otherwise its activities' rules.
    own = [decl.retention] if decl.retention else table.retention
    rules = [r for r in manifest.retention if r.id in own] or [
        r for a in acts for r in rules_for(a, manifest, tax)]
    portable = decl.provided and any(
        a.has_basis(Basis.consent, Basis.contract) and a.portability is not False for a in acts)
    return FieldContext(
        decl.category, tax.name(decl.category),
        tuple(dict.fromkeys(f"{a.name}: {a.purpose}" for a in acts)),
        tuple(dict.fromkeys(bases)),
        tuple(dict.fromkeys(recipients)),
        tuple(dict.fromkeys(describe_retention(r, manifest) for r in rules)),
        portable,
    )


def build_plan(manifest: Manifest) -> Plan:
    tax = Taxonomy.of(manifest)
    tables: dict[TableKey, TablePlan] = {}
    edges: list[Edge] = []
    for system in manifest.systems:
        for table in system.tables:
            key = TableKey(system.id, table.name)
            fields = []
            for decl in table.fields:
                strategy = decl.erase or table.erase
                hold = _hold_for([decl.retention], manifest, table, system.id) \
                    if decl.retention else None
                fields.append(FieldPlan(decl, strategy, hold, _context(manifest, tax, table, decl)))
            tables[key] = TablePlan(key, table, tuple(table.primary_key), fields,
                                    _hold_for(table.retention, manifest, table, system.id))
            for ref in table.references:
                parts = ref.to.split(".")
                target = TableKey(system.id, parts[0]) if len(parts) == 2 \
                    else TableKey(parts[0], parts[1])
                edges.append(Edge(key, ref.field, target, parts[-1], ref.other_person))
    for tp in tables.values():
        wanted = list(tp.pk) + [f.name for f in tp.fields]
        wanted += [e.child_col for e in edges if e.child == tp.key]
        wanted += [e.parent_col for e in edges if e.parent == tp.key]
        holds = [tp.hold, *(f.hold for f in tp.fields)]
        wanted += [c for h in holds if h is not None for c in h.columns]
        if tp.decl.restricted_column:
            wanted.append(tp.decl.restricted_column)
        tp.columns = tuple(dict.fromkeys(wanted))
    order, cycles = _delete_order(list(tables), edges)
    return Plan(manifest, tables, edges, order, cycles)


def _delete_order(keys: list[TableKey], edges: list[Edge]
                  ) -> tuple[list[TableKey], list[list[TableKey]]]:
    """Children before parents (Kahn's algorithm); tables left in a cycle come last, and the
    executor falls back to anonymising rows that are still referenced."""
    children: dict[TableKey, set[TableKey]] = {k: set() for k in keys}
    for e in edges:
        if e.child != e.parent and e.parent in children and e.child in children:
            children[e.parent].add(e.child)
    remaining = {k: set(v) for k, v in children.items()}
    order: list[TableKey] = []
    while True:
        ready = sorted(k for k, kids in remaining.items() if not kids)
        if not ready:
            break
        for k in ready:
            order.append(k)
            del remaining[k]
        for kids in remaining.values():
            kids.difference_update(ready)
    cycles = [sorted(remaining)] if remaining else []
    return order + sorted(remaining), cycles
