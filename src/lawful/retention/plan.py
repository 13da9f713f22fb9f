"""`lawful retention plan`: what each rule makes due now and in the coming days. Reads only.

Counts use the very conditions a run uses, so the plan says what a run on that day would do:
rows due, rows skipped (restricted, under a legal hold, still referenced), the oldest date
among the due rows, and, with --within, how many fall due in the coming days and the first
day one does (found by counting on candidate days, not by guessing).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from lawful.engine.connect import Connections
from lawful.engine.plan import Plan
from lawful.retention.prepare import Context, prepare
from lawful.retention.rules import Binding
from lawful.retention.sweep import BindingResult, RunResult, count, skipped


def retention_plan(plan: Plan, today: dt.date, within: int = 0) -> RunResult:
    conns = Connections(plan)
    with conns.session():
        ctx = prepare(plan, conns, today, refuse=False)
        return RunResult(None, today.isoformat(), True, due(ctx, within))


def due(ctx: Context, within: int) -> list[BindingResult]:
    results = []
    for b in ctx.bindings:
        result = BindingResult.of(b)
        results.append(result)
        if b.unclocked or (not b.deletes and not b.fields):
            continue
        held = ctx.held_keys(b.key)

        def actionable(s: Any, t: Any, b: Binding = b, held: set[Any] = held) -> Any:
            return s.actionable(b, t, ctx.bindings, held)

        result.due = count(ctx, b, actionable)
        skipped(ctx, b, result)
        if result.due:
            result.oldest = _oldest(ctx, b)
        if within > 0:
            later = ctx.today + dt.timedelta(days=within)
            by_then = count(ctx, b, actionable, later)
            result.upcoming = max(0, by_then - result.due)
            if result.upcoming:
                result.next_due = _first_day(ctx, b, actionable, result.due, within).isoformat()
    return results


def _oldest(ctx: Context, b: Binding) -> str | None:
    columns = b.columns or [c.column for c in b.tp.decl.consent
                            if c.purpose == b.rule.consent_purpose and not c.given]
    if not columns:
        return None
    sql = ctx.sql(b.key.system)
    t = sql.table(b.tp)
    stmt = sa.select(sa.func.min(t.c[columns[0]])).where(
        sql.actionable(b, t, ctx.bindings, ctx.held_keys(b.key)))
    value = ctx.conns.connection(b.key.system).execute(stmt).scalar()
    return str(value)[:10] if value is not None else None


def _first_day(ctx: Context, b: Binding, actionable: Any, now: int, within: int) -> dt.date:
    """The first day in (today, today + within] with more rows due than today."""
    lo, hi = 0, within  # count(lo) == now, count(hi) > now
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(ctx, b, actionable, ctx.today + dt.timedelta(days=mid)) > now:
            hi = mid
        else:
            lo = mid
    return ctx.today + dt.timedelta(days=hi)
