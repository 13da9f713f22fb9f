"""Retention rules bound to tables, and the SQL that says which rows are due.

A binding is one rule acting on one table: on its rows (the table names the rule, or serves an
activity of the rule), or on one field (a field names the rule: a legal hold on a column, such
as a partner's VAT number kept with the invoices). Its due condition is built once, as
SQLAlchemy Core, and evaluated by the database: no row goes to Python to decide whether it is
due. Every clock becomes a range condition on an indexed date column (see clocks.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lawful.checks.retention import table_rules
from lawful.engine.plan import Edge, FieldPlan, Plan, TableKey, TablePlan
from lawful.manifest.duration import Duration
from lawful.manifest.model import Action, Basis, Clock, ConsentColumn, RetentionRule, Strategy
from lawful.retention import clocks
from lawful.retention.consent import ColumnConsent, ConsentSource

_PSEUDONYM = "^[0-9a-f]{64}$"
_MASKED = r"^\*+[^*]{0,4}$"
_DATED = (Clock.collection, Clock.event, Clock.last_event, Clock.financial_year_end,
          Clock.contract_end, Clock.processing, Clock.decision)


class RetentionInputError(ValueError):
    """A rule that cannot be enforced as written (a column missing or holding non-dates, a
    rule deleting rows others keep): nothing was changed."""


@dataclass
class Binding:
    rule: RetentionRule
    tp: TablePlan
    fields: list[FieldPlan]  # changed by anonymise / pseudonymise (field bindings: the field)
    field_level: bool
    columns: list[str]  # the rule's date columns on this table
    per: list[str]  # last_event: columns grouping one person's rows
    unclocked: str | None = None  # why the rule cannot run on this table
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> TableKey:
        return self.tp.key

    @property
    def action(self) -> Action:
        if self.field_level:
            return Action.pseudonymise if self.rule.action is Action.pseudonymise \
                else Action.anonymise
        return self.rule.action

    @property
    def deletes(self) -> bool:
        return self.action is Action.delete

    @property
    def name(self) -> str:
        target = f"{self.key}.{self.fields[0].name}" if self.field_level else str(self.key)
        return f"{self.rule.id} on {target}"

    def strategy(self, f: FieldPlan) -> Strategy:
        """How a field is changed when the rule anonymises or pseudonymises it."""
        if self.action is Action.pseudonymise:
            return Strategy.hash
        if f.strategy in (Strategy.fixed, Strategy.hash, Strategy.mask):
            return f.strategy
        return Strategy.null  # null, delete_row, keep or none: the value goes

    def field_plan(self, f: FieldPlan) -> FieldPlan:
        return dataclasses.replace(f, strategy=self.strategy(f))

    def per_row(self) -> list[FieldPlan]:
        """Fields whose new value depends on the old one (keyed hash, mask): computed in
        Python. The others (null, fixed text) are set by the database."""
        return [f for f in self.fields if self.strategy(f) in (Strategy.hash, Strategy.mask)]

    @property
    def date_columns(self) -> list[str]:
        out = list(self.columns) + list(self.per)
        if self.tp.decl.collected_at:
            out.append(self.tp.decl.collected_at)
        return out


def _own(columns: list[str], tp: TablePlan) -> list[str]:
    names = (tp.key.table, str(tp.key))
    return [c.rsplit(".", 1)[1] for c in columns if "." in c and c.rsplit(".", 1)[0] in names]


def bind(plan: Plan) -> list[Binding]:
    """Every binding of the manifest, children before parents (plan.delete_order)."""
    out: list[Binding] = []
    manifest = plan.manifest
    for key in plan.delete_order:
        tp = plan.tables[key]
        held_fields = {f.name for f in tp.fields if f.decl.retention}
        for rule in table_rules(tp.decl, manifest):
            fields = [f for f in tp.personal_fields
                      if f.name not in held_fields and f.strategy is not Strategy.keep]
            out.append(_binding(rule, tp, fields, False))
        for f in tp.fields:
            rule = next((r for r in manifest.retention if r.id == f.decl.retention), None)
            if rule is not None and f.decl.category is not None:
                out.append(_binding(rule, tp, [f], True))
    return out


def _binding(rule: RetentionRule, tp: TablePlan, fields: list[FieldPlan], field_level: bool
             ) -> Binding:
    columns = _own(rule.columns, tp)
    per = _own(rule.per, tp)
    if rule.after is Clock.last_event and not per:
        identity = [f.name for f in tp.fields if f.decl.identity is not None]
        per = identity if len(identity) == 1 else []
    b = Binding(rule, tp, fields, field_level, columns, per)
    consent = {c.purpose for c in tp.decl.consent}
    if rule.after is Clock.consent_withdrawal:
        if rule.consent_purpose not in consent:
            b.unclocked = (f"the table holds no consent state for {rule.consent_purpose!r} "
                           "(declare consent: on the table)")
    elif not columns:
        if rule.after is Clock.collection and tp.decl.collected_at:
            b.columns = [tp.decl.collected_at]
        elif rule.maximum is None or not tp.decl.collected_at:
            b.unclocked = "the rule names no date column of this table"
    if b.unclocked is None and rule.keep is None and rule.maximum is None and \
            rule.after not in (Clock.processing, Clock.consent_withdrawal,
                               Clock.financial_year_end):
        b.unclocked = "the rule has no period (keep:) and no maximum"
    if rule.extension and rule.extension.consent_purpose not in consent:
        b.notes.append(f"no consent state for {rule.extension.consent_purpose!r} on this "
                       "table: the extension never applies")
    if not b.deletes and not fields:
        b.notes.append("no personal field to change")
    return b


# --- SQL -------------------------------------------------------------------------------------


class Sql:
    """The due condition of bindings on one database, for one day."""

    def __init__(self, plan: Plan, dialect: str, today: dt.date,
                 consent: ConsentSource | None = None):
        self.plan = plan
        self.dialect = dialect
        self.today = today
        self.consent = consent or ColumnConsent()
        self._aliases = 0

    # tables and values

    def table(self, tp: TablePlan) -> sa.TableClause:
        booleans = {c.given for c in tp.decl.consent if c.given}
        if tp.decl.restricted_column:
            booleans.add(tp.decl.restricted_column)
        dates = [c for r in self.plan.manifest.retention for c in _own([*r.columns, *r.per], tp)]
        names = dict.fromkeys([*tp.pk, *(f.name for f in tp.fields), *booleans, *dates,
                               *(c.column for c in tp.decl.consent),
                               *([tp.decl.collected_at] if tp.decl.collected_at else []),
                               *(e.child_col for e in self.plan.edges if e.child == tp.key),
                               *(e.parent_col for e in self.plan.edges if e.parent == tp.key)])
        return sa.table(tp.key.table, *(
            sa.column(n, sa.Boolean) if n in booleans else sa.column(n) for n in names))

    @staticmethod
    def column(t: Any, name: str) -> Any:
        return t.c[name]

    def alias(self, tp: TablePlan) -> Any:
        self._aliases += 1
        return self.table(tp).alias(f"r{self._aliases}")

    def day(self, day: dt.date) -> Any:
        """A day as the database compares it with its timestamps: SQLite stores ISO text, where
        '2026-03-02' sorts before '2026-03-02 08:00:00' and after '2026-03-01 23:59:59'."""
        return sa.literal(day.isoformat() if self.dialect == "sqlite" else day)

    # clocks

    def before(self, t: Any, columns: list[str], keep: Duration | None, year_end: str | None
               ) -> tuple[Any, Any] | None:
        """(condition that every column is due, the bound) or None: nothing can be due."""
        last = clocks.cutoff(keep, self.today, year_end)
        if last is None:
            return None
        bound = self.day(last + dt.timedelta(days=1))
        return sa.and_(*(self.column(t, c) < bound for c in columns)), bound

    def event(self, b: Binding, t: Any, keep: Duration | None, columns: list[str] | None = None
              ) -> Any:
        columns = columns or b.columns
        rule = b.rule
        year_end = self.plan.year_end if rule.after is Clock.financial_year_end else None
        if keep is None and rule.after not in (Clock.processing, Clock.financial_year_end):
            return sa.false()
        found = self.before(t, columns, keep, year_end)
        if found is None:
            return sa.false()
        cond, bound = found
        if rule.after is Clock.last_event and b.per and columns is b.columns:
            other = self.alias(b.tp)
            same = sa.and_(*(self.column(other, p) == self.column(t, p) for p in b.per))
            later = sa.or_(*(self.column(other, c) >= bound for c in columns))
            cond = sa.and_(cond, ~sa.exists().where(same, later))
        return cond

    def expired(self, b: Binding, t: Any) -> Any:
        """The rule's clock has ended for the row (without the action's own conditions)."""
        rule = b.rule
        if b.unclocked:
            return sa.false()
        base: Any
        if rule.after is Clock.consent_withdrawal:
            base = self.consent.withdrawn(self, b.tp, t, rule.consent_purpose or "", rule.keep)
        elif b.columns:
            base = self.event(b, t, rule.keep)
            ext = rule.extension
            if ext and self.consent.knows(b.tp, ext.consent_purpose):
                given = self.consent.given(self, b.tp, t, ext.consent_purpose)
                base = sa.or_(sa.and_(sa.not_(given), base),
                              sa.and_(given, self.event(b, t, ext.keep)))
        else:
            base = sa.false()
        if rule.maximum is not None:
            start = b.tp.decl.collected_at or (b.columns[0] if b.columns else None)
            if start:
                found = self.before(t, [start], rule.maximum, None)
                if found is not None:
                    base = sa.or_(base, found[0])
        return base

    # the action's own conditions

    def not_erased(self, b: Binding, t: Any) -> Any:
        """Some field still holds a value the action would change (anonymising twice changes
        nothing, and is not selected again)."""
        conds = []
        for f in b.fields:
            c = self.column(t, f.name)
            strategy = b.strategy(f)
            if strategy is Strategy.fixed:
                conds.append(sa.and_(c.is_not(None), c != f.decl.fixed_value))
            elif strategy is Strategy.hash:
                conds.append(sa.and_(c.is_not(None), sa.not_(c.regexp_match(_PSEUDONYM))))
            elif strategy is Strategy.mask:
                conds.append(sa.and_(c.is_not(None), sa.not_(c.regexp_match(_MASKED))))
            else:
                conds.append(c.is_not(None))
        return sa.or_(*conds) if conds else sa.false()

    def candidates(self, b: Binding, t: Any, bindings: list[Binding]) -> Any:
        """Due under this rule, no other rule of the table keeps the row, and (for anonymising)
        something left to change."""
        conds = [self.expired(b, t)]
        if not b.field_level:
            for other in bindings:
                if other is b or other.key != b.key or other.field_level:
                    continue
                if other.unclocked and other.rule.basis is not Basis.legal_obligation:
                    continue  # a rule that cannot run on this table keeps nothing here
                conds.append(self.expired(other, t))  # the longest period wins
            if b.deletes:  # a field still held keeps its row
                for other in bindings:
                    if other.key == b.key and other.field_level:
                        f = self.column(t, other.fields[0].name)
                        conds.append(sa.or_(f.is_(None), self.expired(other, t)))
        if not b.deletes:
            conds.append(self.not_erased(b, t))
        return sa.and_(*conds)

    def restricted(self, tp: TablePlan, t: Any) -> Any:
        """The row, or the row of the person it belongs to, is restricted (Art. 18)."""
        conds = []
        if tp.decl.restricted_column:
            conds.append(self.column(t, tp.decl.restricted_column) == sa.true())
        for edge in self.plan.same_person_parents.get(tp.key, []):
            parent = self.plan.tables.get(edge.parent)
            if parent is None or not parent.decl.restricted_column or \
                    edge.parent.system != tp.key.system or edge.parent == tp.key:
                continue
            p = self.alias(parent)
            conds.append(sa.exists().where(
                self.column(p, edge.parent_col) == self.column(t, edge.child_col),
                self.column(p, parent.decl.restricted_column) == sa.true()))
        return sa.or_(*conds) if conds else sa.false()

    def referenced(self, tp: TablePlan, t: Any) -> Any:
        """Another row still points at this one: deleting it would break a foreign key."""
        conds = []
        for edge in self.plan.referencing.get(tp.key, []):
            if edge.child.system != tp.key.system:
                continue
            conds.append(self._referencing(edge, t))
        return sa.or_(*conds) if conds else sa.false()

    def _referencing(self, edge: Edge, t: Any) -> Any:
        child = self.alias(self.plan.tables[edge.child])
        return sa.exists().where(
            self.column(child, edge.child_col) == self.column(t, edge.parent_col))

    def held(self, b: Binding, t: Any, held: set[tuple[Any, ...]]) -> Any:
        if not held:
            return sa.false()
        if len(b.tp.pk) == 1:
            return self.column(t, b.tp.pk[0]).in_(sorted(k[0] for k in held))
        return sa.tuple_(*(self.column(t, c) for c in b.tp.pk)).in_(sorted(held))

    def actionable(self, b: Binding, t: Any, bindings: list[Binding],
                   held: set[tuple[Any, ...]]) -> Any:
        conds = [self.candidates(b, t, bindings), sa.not_(self.restricted(b.tp, t))]
        if b.deletes:
            conds.append(sa.not_(self.referenced(b.tp, t)))
        if held:
            conds.append(sa.not_(self.held(b, t, held)))
        return sa.and_(*conds)


def consent_column(tp: TablePlan, purpose: str) -> ConsentColumn | None:
    return next((c for c in tp.decl.consent if c.purpose == purpose), None)

