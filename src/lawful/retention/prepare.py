"""What `plan` and `run` share: the bindings, checked against the manifest and the databases
before anything is read or changed, the day, the held rows and the restricted persons."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lawful.checks import Severity, run_checks
from lawful.engine import state
from lawful.engine.connect import Connections, EngineError
from lawful.engine.plan import Plan, TableKey
from lawful.retention.consent import ColumnConsent, ConsentSource
from lawful.retention.holds import HeldRows, held_rows
from lawful.retention.rules import Binding, RetentionInputError, Sql, bind

# Findings that make a run refuse: it would break references, or count from nowhere.
BLOCKING = {"retention-deletes-referenced", "retention-event-unknown"}


def today_from(text: str | None = None) -> dt.date:
    """The day retention runs as: --today, else $LAWFUL_TODAY, else the calendar."""
    value = text or os.environ.get("LAWFUL_TODAY")
    if not value:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise RetentionInputError(f"{value!r} is not a day: write YYYY-MM-DD") from None


@dataclass
class Context:
    plan: Plan
    conns: Connections
    today: dt.date
    bindings: list[Binding]
    held: HeldRows
    restricted: set[str] = field(default_factory=set)  # keyed hashes (lawful's list)
    consent: ConsentSource = field(default_factory=ColumnConsent)

    def sql(self, system: str, today: dt.date | None = None) -> Sql:
        return Sql(self.plan, self.conns.dialect(system), today or self.today, self.consent)

    def held_keys(self, key: TableKey) -> set[tuple[Any, ...]]:
        return self.held.rows.get(key, set())


def prepare(plan: Plan, conns: Connections, today: dt.date, *, refuse: bool = True) -> Context:
    bindings = bind(plan)
    if refuse:
        blocking = [f for f in run_checks(plan.manifest)
                    if f.rule in BLOCKING and f.severity is Severity.error]
        if blocking:
            raise RetentionInputError("; ".join(f"{f.path}: {f.message}" for f in blocking)
                                      + " (lawful check names the fix); nothing was changed")
    conns.ping_all()
    validate(bindings, conns)
    with state.store().connect() as conn:
        restricted = {r.hash for r in conn.execute(sa.select(state.restrictions.c.hash))}
    return Context(plan, conns, today, bindings, held_rows(plan, conns), restricted)


def validate(bindings: list[Binding], conns: Connections) -> None:
    """Every column a rule counts from exists and holds dates; every problem at once."""
    problems: list[str] = []
    columns: dict[TableKey, dict[str, Any] | None] = {}
    for b in bindings:
        key = b.key
        if key not in columns:
            inspector = sa.inspect(conns.connection(key.system))
            columns[key] = {c["name"]: c["type"] for c in inspector.get_columns(key.table)} \
                if inspector.has_table(key.table) else None
        present = columns[key]
        where = f"retention rule {b.rule.id!r} on {key}"
        if present is None:
            problems.append(f"{where}: the database has no table {key.table!r}")
            continue
        needed = list(dict.fromkeys([*b.tp.pk, *(f.name for f in b.fields), *b.per,
                                     *(c.column for c in b.tp.decl.consent)]))
        for name in needed:
            if name not in present:
                problems.append(f"{where}: the database has no column {key.table}.{name}")
        dated = [*b.columns, *(c.withdrawn_at or c.given_at or "" for c in b.tp.decl.consent),
                 *([b.tp.decl.collected_at] if b.tp.decl.collected_at else [])]
        for name in dict.fromkeys(d for d in dated if d):
            if name not in present:
                problems.append(f"{where}: the database has no column {key.table}.{name} "
                                "to count from")
            elif not isinstance(present[name], sa.Date | sa.DateTime):
                problems.append(f"{where}: {key.table}.{name} holds {present[name]}, not dates")
            elif conns.dialect(key.system) == "sqlite" and _sqlite_non_dates(conns, b, name):
                problems.append(f"{where}: {key.table}.{name} holds values that are not dates "
                                "(YYYY-MM-DD…)")
    if problems:
        raise RetentionInputError("; ".join(dict.fromkeys(problems)) + "; nothing was changed")


def _sqlite_non_dates(conns: Connections, b: Binding, column: str) -> bool:
    """SQLite stores any value in any column: a text that is not an ISO date would compare
    as a date, wrongly. Look for one (through the column's index when it has one)."""
    t = sa.table(b.key.table, sa.column(column))
    stmt = sa.select(sa.literal(1)).select_from(t).where(
        t.c[column].is_not(None),
        sa.not_(sa.func.coalesce(t.c[column].op("GLOB")(
            "[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]*"), False))).limit(1)
    try:
        return conns.connection(b.key.system).execute(stmt).first() is not None
    except sa.exc.DBAPIError as exc:
        raise EngineError(f"system {b.key.system!r}, table {b.key.table!r}: {exc.orig}"
                          ) from None
