"""Storage limitation (Art. 5(1)(e)) and the retention rules that keep it."""

from __future__ import annotations

from collections.abc import Iterator

from lawful.checks.base import Context, Hit, Severity, rule
from lawful.manifest.model import Action, Activity, Basis, Clock, Manifest, RetentionRule, Table
from lawful.manifest.taxonomy import Taxonomy

_EVENT_CLOCKS = {Clock.event, Clock.last_event, Clock.financial_year_end, Clock.decision}
_ENDS_BY_ITSELF = {Clock.consent_withdrawal, Clock.processing, Clock.contract_end}


def rules_for(activity: Activity, manifest: Manifest, tax: Taxonomy) -> list[RetentionRule]:
    """Rules that govern an activity: named for it, or by category when they name none."""
    return [r for r in manifest.retention
            if activity.id in r.activities
            or (not r.activities and r.categories
                and any(tax.covered(c, activity.categories) for c in r.categories))]


@rule("retention-missing", Severity.error, "GDPR Art. 5(1)(e), 13(2)(a)",
      "Data with no retention rule")
def retention_missing(ctx: Context) -> Iterator[Hit]:
    for i, act in enumerate(ctx.manifest.activities):
        if act.role == "controller" and not rules_for(act, ctx.manifest, ctx.taxonomy):
            yield (("activities", i, "id"),
                   f"activity {act.id!r} has no retention rule: the notice must say how long "
                   "its data is kept, and nothing will ever delete it",
                   "add a retention rule with activities: [" + act.id + "]")


@rule("retention-rule-unused", Severity.warning, "GDPR Art. 5(1)(e)",
      "Retention rule that applies to nothing")
def rule_unused(ctx: Context) -> Iterator[Hit]:
    held = {r for s in ctx.manifest.systems for t in s.tables for r in t.retention}
    held |= {f.retention for s in ctx.manifest.systems for t in s.tables for f in t.fields}
    for i, r in enumerate(ctx.manifest.retention):
        if not (r.activities or r.categories or r.subjects) and r.id not in held:
            yield (("retention", i, "id"),
                   f"retention rule {r.id!r} names no activity, category, subject or table",
                   "add activities: or categories: it applies to")


@rule("retention-obligation-without-law", Severity.error, "GDPR Art. 6(1)(c), 17(3)(b)",
      "Retention for a legal obligation without the law")
def obligation_without_law(ctx: Context) -> Iterator[Hit]:
    for i, r in enumerate(ctx.manifest.retention):
        if r.basis is Basis.legal_obligation and not r.law:
            yield (("retention", i, "basis"),
                   f"retention rule {r.id!r} keeps data for a legal obligation without naming "
                   "the law, so it cannot justify refusing an erasure",
                   "add law: the act and article requiring the period")


@rule("retention-clock-incomplete", Severity.error, "GDPR Art. 5(1)(e), 13(2)(a)",
      "Retention clock without its event or period")
def clock_incomplete(ctx: Context) -> Iterator[Hit]:
    for i, r in enumerate(ctx.manifest.retention):
        if r.after in _EVENT_CLOCKS and not (r.event or r.columns):
            yield (("retention", i, "after"),
                   f"retention rule {r.id!r} counts from an event ({r.after.value}) it does "
                   "not name", "add event: (in words) and columns: table.column")
        if r.after is Clock.consent_withdrawal and not r.consent_purpose:
            yield (("retention", i, "after"),
                   f"retention rule {r.id!r} runs until consent is withdrawn but names no "
                   "consent purpose", "add consent_purpose:")
        if r.after is Clock.consent_withdrawal:
            acts = [a for a in ctx.manifest.activities if a.id in r.activities]
            for act in acts:
                if not act.has_basis(Basis.consent):
                    yield (("retention", i, "activities", r.activities.index(act.id)),
                           f"retention rule {r.id!r} keeps the data of {act.id!r} until consent "
                           "is withdrawn, but that activity does not rely on consent: nothing "
                           "would ever end it", "give the rule a period (keep:), or correct the "
                           "activity's basis")
        if r.keep is None and r.maximum is None and r.after not in _ENDS_BY_ITSELF:
            yield (("retention", i),
                   f"retention rule {r.id!r} has no period (keep:) and no maximum, so it never "
                   "ends", "add keep: e.g. '1 year', or maximum:")


@rule("retention-long-without-law", Severity.warning, "GDPR Art. 5(1)(e)",
      "Retention of 10 years or more without a legal obligation")
def long_without_law(ctx: Context) -> Iterator[Hit]:
    for i, r in enumerate(ctx.manifest.retention):
        longest = max((d.approx_days for d in (r.keep, r.maximum) if d), default=0)
        if longest >= 3652 and r.basis is not Basis.legal_obligation:
            yield (("retention", i, "keep"),
                   f"retention rule {r.id!r} keeps data {r.keep or r.maximum} without a legal "
                   "obligation to do so", "shorten it, or give basis: legal_obligation and law:")


@rule("retention-event-unknown", Severity.error, "GDPR Art. 5(1)(e)",
      "Retention clock on a table that no system declares")
def event_unknown(ctx: Context) -> Iterator[Hit]:
    tables = {t.name for s in ctx.manifest.systems for t in s.tables}
    tables |= {f"{s.id}.{t.name}" for s in ctx.manifest.systems for t in s.tables}
    if not tables:
        return  # no systems declared yet: nothing to enforce against
    for i, r in enumerate(ctx.manifest.retention):
        for j, column in enumerate(r.columns):
            table = column.rsplit(".", 1)[0]
            if "." not in column or table not in tables:
                yield (("retention", i, "columns", j),
                       f"retention rule {r.id!r} counts from {column!r}, which is not a "
                       "column of a declared table", "write it as table.column of a system table")


def table_rules(table: Table, manifest: Manifest) -> list[RetentionRule]:
    """The rules that govern a table's rows: named on the table (`retention:`), or rules of an
    activity the table serves. Rules named on a field govern that field only."""
    return [r for r in manifest.retention
            if r.id in table.retention or set(r.activities) & set(table.activities)]


def clocked_on(rule: RetentionRule, table: Table, system: str) -> bool:
    """Whether the rule has a clock on this table: a date column of its own there, the
    table's collection date, or a consent state it holds."""
    own = any(c.rsplit(".", 1)[0] in (table.name, f"{system}.{table.name}")
              for c in rule.columns if "." in c)
    collected = table.collected_at is not None and (
        rule.after is Clock.collection or rule.maximum is not None)
    consent = rule.after is Clock.consent_withdrawal and any(
        c.purpose == rule.consent_purpose for c in table.consent)
    return own or collected or consent


def _gone_by(rule: RetentionRule) -> float:
    return max((d.approx_days for d in (rule.keep, rule.maximum) if d), default=0.0)


@rule("retention-deletes-referenced", Severity.error, "GDPR Art. 5(1)(e), 5(1)(f)",
      "Retention deletes rows that rows kept longer still reference")
def deletes_referenced(ctx: Context) -> Iterator[Hit]:
    index = {id(r): i for i, r in enumerate(ctx.manifest.retention)}
    for system in ctx.manifest.systems:
        tables = {t.name: t for t in system.tables}
        for parent in system.tables:
            for r in table_rules(parent, ctx.manifest):
                if r.action is not Action.delete or not clocked_on(r, parent, system.id):
                    continue
                for child in system.tables:
                    refs = [ref for ref in child.references if child is not parent
                            and ref.to.split(".")[-2] == parent.name
                            and (len(ref.to.split(".")) == 2 or ref.to.split(".")[0] == system.id)]
                    if not refs or child.name not in tables:
                        continue
                    deleting = [c for c in table_rules(child, ctx.manifest)
                                if c.action is Action.delete]
                    if r in deleting or any(0 < _gone_by(c) <= _gone_by(r) for c in deleting):
                        continue
                    kept = ", ".join(c.id for c in table_rules(child, ctx.manifest)) or "no rule"
                    yield (("retention", index[id(r)], "action"),
                           f"retention rule {r.id!r} deletes rows of {parent.name!r} that rows "
                           f"of {child.name!r} ({child.name}.{refs[0].field}) still reference, "
                           f"and {child.name!r} is kept longer ({kept}): the deletion would "
                           "break them, so retention would never finish",
                           f"anonymise {parent.name!r} instead (action: anonymise), or delete "
                           f"{child.name!r} by the same rule")
