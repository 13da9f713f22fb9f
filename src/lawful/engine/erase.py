"""Erasure (Art. 17): strategies applied set-based, legal holds kept, then proof.

1. Find every row of the person(s) (search.py).
2. Decide per row: held (a legal obligation keeps it, until a date), deleted (children first),
   or anonymised field by field (null, fixed text, keyed hash, mask). A row that would be
   deleted but is still referenced by a row that stays is anonymised instead, so no foreign key
   breaks.
3. Record the decisions, encrypted, in the run journal; apply them in one transaction per
   database, which also writes a marker row. A run killed mid-way resumes from the journal and
   skips databases whose marker exists: nothing is done twice.
4. Verify: read the rows again and search again; no erasable value of the person may remain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from lawful.engine import clock, state
from lawful.engine.bulk import collector_paused
from lawful.engine.connect import Connections, EngineError, safe_url, statement_error
from lawful.engine.identities import WEAK, Identities, IdentityError, normalise
from lawful.engine.plan import FieldPlan, Hold, Plan, TableKey, TablePlan
from lawful.engine.search import (
    CHUNK,
    SPREAD_FROM,
    Found,
    Pk,
    Row,
    Searcher,
    bound_values,
    ordered,
    table_clause,
)
from lawful.keys import keyed_hash
from lawful.manifest.model import Identity, Strategy

MARKER_TABLE = "lawful_journal"
CASE_CHUNK = 200  # rows per UPDATE when per-row values go through a CASE
_marker_meta = sa.MetaData()
marker = sa.Table(
    MARKER_TABLE, _marker_meta,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("system", sa.String(200), primary_key=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("completed_at", sa.DateTime, nullable=False),
)


@dataclass
class TableResult:
    system: str
    table: str
    found: int = 0
    deleted: int = 0
    anonymised: int = 0
    held: int = 0
    held_rule: str | None = None
    held_law: str | None = None
    held_until: str | None = None  # the latest day any held row is kept; "open" if unknown
    kept_fields: list[str] = field(default_factory=list)


@dataclass
class EraseResult:
    run_id: str | None
    dry_run: bool
    persons: int
    identities: dict[str, list[str]]
    tables: list[TableResult]
    statements: int = 0
    verified: bool | None = None
    leftovers: list[str] = field(default_factory=list)
    suppressed: int = 0
    resumed: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = self.__dict__.copy()
        out["tables"] = [t.__dict__ for t in self.tables]
        return out


def _json_key(pk: Pk | list[Any]) -> str:
    """The key of a row in the journal: its primary key as JSON."""
    if len(pk) == 1 and type(pk[0]) is int:
        return f"[{pk[0]}]"  # what json.dumps gives, without its cost
    return json.dumps(list(pk), default=str)


def _replacement(f: FieldPlan, value: Any, region: str | None) -> Any:
    return _replacer(f, region)(value)


def _replacer(f: FieldPlan, region: str | None) -> Callable[[Any], Any]:
    """The erased form of a value of `f`, as one function chosen once per field and run: a
    batch calls it for every field of every row it anonymises."""
    strategy = f.strategy
    if strategy in (None, Strategy.null, Strategy.delete_row):
        return _nothing
    if strategy is Strategy.fixed:
        fixed = f.decl.fixed_value
        return lambda value: None if value is None else fixed
    if strategy is Strategy.mask:
        return _masked
    if strategy is Strategy.hash:
        kind = f.decl.identity

        def pseudonym(value: Any) -> Any:
            if value is None:
                return None
            text = str(value)
            if kind is not None:
                with contextlib.suppress(IdentityError):
                    text = normalise(kind, text, region)
            return keyed_hash(text)
        return pseudonym
    return _kept


def _nothing(_value: Any) -> None:
    return None


def _kept(value: Any) -> Any:
    return value


def _masked(value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    # Keep the last four only when something is left to hide; short values go entirely.
    return "*" * len(text) if len(text) <= 4 else "*" * (len(text) - 4) + text[-4:]


def _erasable(f: FieldPlan) -> bool:
    return f.decl.category is not None and f.strategy is not Strategy.keep


def is_erased(f: FieldPlan, value: Any) -> bool:
    return f.holds_erased(value)


class Eraser:
    def __init__(self, plan: Plan, conns: Connections, today: dt.date | None = None):
        self.plan = plan
        self.conns = conns
        self.today = today or dt.date.today()
        self._ends: dict[tuple[Any, ...], tuple[dt.date | None, Any]] = {}

    # --- deciding ---------------------------------------------------------------------------

    def decide(self, found: Found) -> tuple[dict[str, Any], list[TableResult]]:
        """The actions per system, as JSON-able data (journaled), and the per-table result."""
        actions: dict[str, dict[str, Any]] = defaultdict(dict)
        results: dict[TableKey, TableResult] = {}
        deleting: dict[TableKey, set[Pk]] = {}
        for key in self.plan.delete_order:  # children first: their deletions are known
            rows = found.rows.get(key)
            if not rows:
                continue
            tp = self.plan.tables[key]
            result = results[key] = TableResult(key.system, key.table, found=len(rows))
            live = self.apply_table_hold(tp, rows, result)
            # A row with a field still under a legal hold stays (that field kept, the others
            # erased) even in a table whose rows are otherwise deleted.
            held = [f for f in tp.fields if f.hold is not None]
            delete = set() if not tp.deletes_rows else set(live) if not held else {
                pk for pk in live if not any(self.field_held(f, rows[pk]) for f in held)}
            delete -= self._still_referenced(tp, {pk: rows[pk] for pk in delete}, deleting)
            deleting[key] = delete
            updates = self._updates(tp, {pk: rows[pk] for pk in live if pk not in delete},
                                    result)
            result.deleted = len(delete)
            result.anonymised = sum(len(group["pks"]) for group in updates)  # one group a row
            actions[key.system][key.table] = {
                "delete": [list(pk) for pk in ordered(delete)],
                "update": updates,
            }
        in_order = [results[k] for k in self.plan.delete_order if k in results]
        return dict(actions), in_order

    def apply_table_hold(self, tp: TablePlan, rows: dict[Pk, Row], result: TableResult
                         ) -> list[Pk]:
        """The rows no legal hold keeps any more; the others are counted in `result`."""
        if tp.hold is None:
            return list(rows)
        live: list[Pk] = []
        latest: dt.date | None = None
        open_ended = False
        rules: dict[str, str | None] = {}
        for pk, row in rows.items():
            until, rule = self.hold_until(tp.hold, row)
            if until is not None and until < self.today:
                live.append(pk)  # every hold has ended: erase as usual
                continue
            result.held += 1
            rules[rule.name or rule.id] = rule.law
            if until is None:
                open_ended = True
            elif latest is None or until > latest:
                latest = until
        if result.held:
            result.held_rule = "; ".join(rules)
            result.held_law = "; ".join(law for law in rules.values() if law) or None
            result.held_until = "open" if open_ended else (latest.isoformat() if latest else None)
        return live

    def _still_referenced(self, tp: TablePlan, candidates: dict[Pk, Row],
                          deleting: dict[TableKey, set[Pk]]) -> set[Pk]:
        """Rows that rows staying elsewhere still point at: they cannot be deleted."""
        if not candidates:
            return set()
        keep: set[Pk] = set()
        for edge in self.plan.referencing.get(tp.key, []):
            values = {row[edge.parent_col] for row in candidates.values()
                      if row.get(edge.parent_col) is not None}
            if not values:
                continue
            child = self.plan.tables[edge.child]
            tc = table_clause(child)
            cols = [tc.c[c] for c in child.pk] + [tc.c[edge.child_col]]
            gone = deleting.get(edge.child, set())
            conn = self.conns.connection(edge.child.system)
            referenced: set[Any] = set()
            if conn.dialect.name == "postgresql" and all(type(v) is int for v in values):
                # One statement, the values in one array (as the search does).
                quote = conn.dialect.identifier_preparer.quote
                sql = (f"SELECT {', '.join(quote(c) for c in (*child.pk, edge.child_col))} "
                       f"FROM {quote(child.key.table)} "
                       f"WHERE {quote(edge.child_col)} = ANY(%(v)s)")
                results = self.conns.fetch_all(conn, [(child, sql, {"v": list(values)})])[0]
            else:
                results = []
                keys = ordered(values)
                for start in range(0, len(keys), CHUNK):
                    chunk = keys[start:start + CHUNK]
                    stmt = sa.select(*cols).where(tc.c[edge.child_col].in_(chunk))
                    results += list(self.conns.execute(conn, child, stmt))
            for row in results:
                pk = tuple(row[:len(child.pk)])
                if pk not in gone:
                    referenced.add(row[-1])
            keep |= {pk for pk, row in candidates.items()
                     if row.get(edge.parent_col) in referenced}
        return keep

    def _updates(self, tp: TablePlan, rows: dict[Pk, Row], result: TableResult
                 ) -> list[dict[str, Any]]:
        """Rows grouped by the set of fields to change; each group is one UPDATE per chunk."""
        groups: dict[tuple[str, ...], dict[str, Any]] = {}
        erasable = [f for f in tp.personal_fields if _erasable(f)]
        kept: set[str] = {f.name for f in tp.personal_fields if not _erasable(f)} \
            if rows else set()
        region = self.plan.region
        # What is per field, looked up once: the loop below runs for every row of a batch.
        specs = [(f, f.name, f.hold is not None, f.erased_test, _replacer(f, region))
                 for f in erasable]
        for pk, row in rows.items():
            changes: dict[str, Any] = {}
            for f, name, held, erased, replace in specs:
                if held and self.field_held(f, row):
                    kept.add(name)
                    continue
                value = row.get(name)
                if not erased(value):
                    changes[name] = replace(value)
            if not changes:
                continue
            names = tuple(sorted(changes)) if len(changes) > 1 else tuple(changes)
            group = groups.get(names)
            if group is None:
                group = groups[names] = {"fields": list(names), "pks": [], "values": {}}
            group["pks"].append(list(pk))
            key = _json_key(pk)
            values = group["values"]
            for name, new in changes.items():
                column = values.get(name)
                if column is None:
                    column = values[name] = {}
                column[key] = new
        result.kept_fields = sorted(kept)
        return list(groups.values())

    def hold_until(self, hold: Hold, row: Row) -> tuple[dt.date | None, Any]:
        """hold.until(row), remembered by the dates it depends on (rows share days)."""
        key = (id(hold), *(clock.as_date(row.get(c)) if c else None for _, c in hold.clocks))
        if key not in self._ends:
            self._ends[key] = hold.until(row, self.plan.year_end)
        return self._ends[key]

    def field_held(self, f: FieldPlan, row: Row) -> bool:
        if f.hold is None:
            return False
        until, _ = self.hold_until(f.hold, row)
        return until is None or until >= self.today

    # --- applying ---------------------------------------------------------------------------

    def apply(self, run_id: str, actions: dict[str, Any],
              before_commit: Callable[[], Any] | None = None) -> int:
        """One transaction per database, with its marker row; returns statements executed.
        `before_commit` is called (once) before the first database commits: it waits for the
        journal, which is written while the writes run."""
        statements = 0
        committed: list[str] = []
        for system in self.plan.systems():
            todo = actions.get(system)
            if not todo:
                continue
            try:
                statements += self._apply_one(run_id, system, todo, before_commit)
                before_commit = None
            except EngineError as exc:
                if not committed:
                    raise
                # Earlier databases committed: say so, and how to finish.
                raise EngineError(
                    f"{exc}; the run is partial ({', '.join(committed)} done): fix the cause "
                    "and run the same command again to finish it") from None
            committed.append(system)
        return statements

    def _apply_one(self, run_id: str, system: str, todo: dict[str, Any],
                   before_commit: Callable[[], Any] | None = None) -> int:
        """One database: its writes and its marker row in one transaction."""
        engine = self.conns.engine(system)
        if engine.url not in _MARKER_MADE:
            # Once per database and process, before the first write: otherwise a new
            # database's first run fails its marker insert inside the write pipeline (psycopg
            # logs the aborted pipeline as a warning) and starts again.
            _ensure_marker(engine)
            _MARKER_MADE.add(engine.url)
        try:
            return self._apply_marked(run_id, system, todo, engine, before_commit)
        except _NoMarkerTable:
            # The first run on this database (or it was recreated): make the marker table,
            # DDL outside the transaction (MySQL would commit it), and start again.
            _ensure_marker(engine)
            return self._apply_marked(run_id, system, todo, engine, before_commit)

    def _apply_marked(self, run_id: str, system: str, todo: dict[str, Any],
                      engine: sa.Engine, before_commit: Callable[[], Any] | None = None
                      ) -> int:
        """The marker row goes first in the transaction: a run already committed here (a
        resumed run) fails on it before any write, and is then skipped; no separate read."""
        try:
            with engine.begin() as conn:
                writes: list[Write] = [(None, marker.insert().values(
                    run_id=run_id, system=system, action="erase", completed_at=state.now()))]
                writes += self._writes(conn, system, todo)
                self._execute(conn, writes)
                if before_commit is not None:
                    before_commit()  # the journal is durable: only now may this commit
                _fault_point(f"{system}:before-commit")
        except EngineError as failed:
            try:
                done = _marker_row(engine, run_id, system)  # after the rollback: why?
            except sa.exc.DBAPIError:
                raise failed from None  # the database is gone too: the write's own error
            if done is None:
                raise _NoMarkerTable from None
            if done:
                state.record_step(run_id, system, {"skipped": "already committed"})
                return 0
            raise
        _fault_point(system)
        state.record_step(run_id, system, {"tables": sorted(todo)})
        return len(writes) - 1

    def _writes(self, conn: sa.Connection, system: str, todo: dict[str, Any]) -> list[Write]:
        """The statements of one database, in order: updates, then deletes children first."""
        writes: list[Write] = []
        joined = conn.dialect.name == "postgresql"
        json_joined = conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 33)
        for table, action in todo.items():
            tp = self.plan.tables[TableKey(system, table)]
            tc = table_clause(tp)
            for group in action["update"]:
                # unnest needs typed arrays: psycopg types a list of integers, but sends
                # strings untyped, so text or UUID keys take the CASE below, which compares
                # them with the key column and lets the database infer the type
                if joined and len(tp.pk) == 1 and all(type(pk[0]) is int
                                                      for pk in group["pks"]):
                    writes.append((tp, self._update_joined(conn, tp, group)))
                    continue
                if json_joined and len(tp.pk) == 1:
                    update = _update_json(conn, tp, group)
                    if update is not None:
                        writes.append((tp, update))
                        continue
                # A CASE per row value costs rows x branches: keep its chunks small.
                for start in range(0, len(group["pks"]), CASE_CHUNK):
                    chunk = group["pks"][start:start + CASE_CHUNK]
                    assignments = {
                        name: self._assignment(tc, tp, name, group["values"][name], chunk)
                        for name in group["fields"]}
                    writes.append((tp, sa.update(tc).where(_pk_in(tc, tp, chunk)).values(
                        assignments)))
        for key in self.plan.delete_order:  # children before parents
            if key.system != system or key.table not in todo:
                continue
            tp = self.plan.tables[key]
            writes.extend((tp, sql) for sql in _by_pk(
                conn.dialect, tp, "DELETE", todo[key.table]["delete"]))
        return writes

    def _execute(self, conn: sa.Connection, writes: list[Write]) -> None:
        """Run the writes in the open transaction; on PostgreSQL in one pipeline (one wait,
        not one per statement). A failure names the table and what the database lacks."""
        raw: Any = conn.connection.dbapi_connection
        compiled = [(tp, *_driver_sql(conn.dialect, w)) for tp, w in writes]
        cursor = raw.cursor()
        current: TablePlan | None = None

        def send() -> None:
            nonlocal current
            for tp, sql, params in compiled:
                current = tp  # named in the error if this statement fails
                cursor.execute(sql, params)

        try:
            if conn.dialect.name == "postgresql" and len(compiled) > 1:
                with raw.pipeline():
                    send()
            else:
                send()
        except conn.dialect.dbapi.Error as exc:  # type: ignore[union-attr]
            raw.rollback()
            tables = [tp for tp, _, _ in compiled if tp is not None]
            where, problem = self.conns.first_schema_problem(tables) or (
                current, statement_error(exc))
            name = f"system {where.key.system!r}, table {where.key.table!r}" if where \
                else "the journal marker"
            raise EngineError(f"{name}: {problem}") from None
        finally:
            cursor.close()

    def _update_joined(self, conn: sa.Connection, tp: TablePlan, group: dict[str, Any]
                       ) -> tuple[str, dict[str, Any]]:
        """PostgreSQL: one UPDATE joined to the new values (unnest of arrays), linear in rows
        whatever their number, where a CASE would compare every row with every branch."""
        quote = conn.dialect.identifier_preparer.quote
        keys = [_json_key(pk) for pk in group["pks"]]
        params: dict[str, Any] = {"pk": [pk[0] for pk in group["pks"]]}
        sets, columns, arrays = [], ["pk"], ["%(pk)s"]
        for i, name in enumerate(group["fields"]):
            values = [group["values"][name].get(key) for key in keys]
            if _same(values):
                params[f"c{i}"] = values[0]
                sets.append(f"{quote(name)} = %(c{i})s")
            else:
                params[f"v{i}"] = [None if v is None else str(v) for v in values]
                columns.append(f"v{i}")
                arrays.append(f"%(v{i})s::text[]")
                sets.append(f"{quote(name)} = v.v{i}")
        table, pk = quote(tp.key.table), quote(tp.pk[0])
        sql = (f"UPDATE {table} SET {', '.join(sets)} FROM unnest({', '.join(arrays)}) "
               f"AS v({', '.join(columns)}) WHERE {table}.{pk} = v.pk")
        return sql, params

    @staticmethod
    def _assignment(tc: sa.TableClause, tp: TablePlan, name: str, values: dict[str, Any],
                    chunk: list[list[Any]]) -> Any:
        wanted = [values.get(json.dumps(pk, default=str)) for pk in chunk]
        distinct = {json.dumps(v, default=str) for v in wanted}
        if len(distinct) == 1:
            return wanted[0]  # null or fixed text: the same for every row
        # Per-row values (keyed hash, mask): a CASE on the primary key, still one statement.
        whens = [(sa.and_(*(tc.c[c] == v for c, v in zip(tp.pk, pk, strict=True))), value)
                 for pk, value in zip(chunk, wanted, strict=True)]
        return sa.case(*whens, else_=tc.c[name])


Write = tuple[TablePlan | None, "sa.Executable | tuple[str, Any]"]


class _NoMarkerTable(Exception):
    """The marker table could not be read: create it, then apply again."""


def _update_json(conn: sa.Connection, tp: TablePlan, group: dict[str, Any]
                 ) -> tuple[str, tuple[Any, ...]] | None:
    """SQLite: one UPDATE joined to the new values, sent as one JSON array (json_each), linear
    in rows where a CASE compares every row with every branch. None where a key or value is not
    a plain integer or string (JSON would not give it back as it was): the CASE is used."""
    quote = conn.dialect.identifier_preparer.quote
    pks = [pk[0] for pk in group["pks"]]
    if not all(type(pk) in (int, str) for pk in pks):
        return None
    keys = [_json_key(pk) for pk in group["pks"]]
    sets: list[str] = []
    constants: list[Any] = []
    columns: list[list[Any]] = [pks]
    for name in group["fields"]:
        values = [group["values"][name].get(key) for key in keys]
        if _same(values):
            sets.append(f"{quote(name)} = ?")
            constants.append(values[0])
        elif all(v is None or type(v) is str for v in values):
            sets.append(f"{quote(name)} = json_extract(v.value, '$[{len(columns)}]')")
            columns.append(values)
        else:
            return None
    table, pk = quote(tp.key.table), quote(tp.pk[0])
    sql = (f"UPDATE {table} SET {', '.join(sets)} FROM json_each(?) AS v "
           f"WHERE {table}.{pk} = json_extract(v.value, '$[0]')")
    return sql, (*constants, json.dumps([list(row) for row in zip(*columns, strict=True)]))


def _same(values: list[Any]) -> bool:
    """Whether every value is the same one (as JSON would tell: 1 is not True or "1")."""
    first = values[0]
    kind = type(first)
    return all(type(v) is kind and v == first for v in values)


def _marker_row(engine: sa.Engine, run_id: str, system: str) -> bool | None:
    """Whether the run's marker row is committed in the database; None: no marker table.
    A database that cannot be reached raises."""
    with engine.connect() as conn:
        try:
            return conn.execute(sa.select(marker.c.run_id).where(
                marker.c.run_id == run_id, marker.c.system == system)).first() is not None
        except sa.exc.DBAPIError:
            return None


_MARKER_MADE: set[sa.URL] = set()  # databases whose marker table this process has made sure of


def _ensure_marker(engine: sa.Engine) -> None:
    """One cheap statement, not a schema inspection: the database may have been recreated
    since the last run, so nothing is remembered."""
    with engine.begin() as conn:
        conn.execute(CreateTable(marker, if_not_exists=True))


def _driver_sql(dialect: sa.Dialect, write: Any) -> tuple[str, Any]:
    """SQL text and parameters in the driver's own style, for a raw cursor."""
    if isinstance(write, tuple):
        return write
    compiled = write.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positional:
        return compiled.string, tuple(params[name] for name in compiled.positiontup)
    return compiled.string, params


def _deleted_checks(plan: Plan, conns: Connections, actions: dict[str, Any]
                    ) -> list[tuple[TablePlan, str, Any]]:
    """The statements asking, by primary key, for every row the run deleted."""
    queries: list[tuple[TablePlan, str, Any]] = []
    for system, tables in actions.items():
        dialect = conns.engine(system).dialect
        for table, action in tables.items():
            tp = plan.tables[TableKey(system, table)]
            queries += [(tp, *sql) for sql in _by_pk(dialect, tp, "SELECT KEYS",
                                                      action["delete"])]
    return queries


def _reread(plan: Plan, conns: Connections, actions: dict[str, Any],
            read: dict[TableKey, dict[Pk, Row]] | None = None, deleted: bool = True
            ) -> list[str]:
    """Read back every planned row by primary key, one pipeline per database. Changed rows in
    `read` (rows the second search has just read, after the commit) are checked as read there
    rather than read a second time. Deleted rows are asked for by key (unless `deleted` is
    False: the caller did, see verify)."""
    problems: list[str] = []
    read = read or {}

    def check(tp: TablePlan, group: dict[str, Any], row: Row) -> None:
        key = _json_key([row[c] for c in tp.pk])
        wrong = [name for name in group["fields"]
                 if row[name] != group["values"][name].get(key)]
        if wrong:
            problems.append(f"{tp.key}: row {key} still holds {', '.join(wrong)}")

    for system, tables in actions.items():
        dialect = conns.engine(system).dialect
        queries: list[tuple[TablePlan, str, Any]] = []
        checks: list[tuple[str, TablePlan, dict[str, Any] | None]] = []
        for table, action in tables.items():
            tp = plan.tables[TableKey(system, table)]
            for sql in _by_pk(dialect, tp, "SELECT KEYS", action["delete"] if deleted else []):
                queries.append((tp, *sql))
                checks.append(("deleted", tp, None))
            seen = read.get(tp.key, {})
            for group in action["update"]:
                unread = []
                for pk in group["pks"]:
                    row = seen.get(tuple(pk))
                    if row is None:
                        unread.append(pk)
                    else:
                        check(tp, group, row)
                for sql in _by_pk(dialect, tp, "SELECT", unread):
                    queries.append((tp, *sql))
                    checks.append(("updated", tp, group))
        if not queries:
            continue
        conn = conns.connection(system)
        # A batch's re-reads (thousands of keys) on two connections; one person's in one go.
        results = conns.fetch_each(conn, queries, bound_values(queries) > SPREAD_FROM)
        with contextlib.closing(results):  # no read left running if a check fails
            for (kind, tp, group), result in zip(checks, results, strict=True):
                if kind == "deleted" and result:
                    problems.append(f"{tp.key}: {len(result)} row(s) not deleted")
                for values in result if group is not None else []:
                    check(tp, group, dict(zip(tp.columns, values, strict=True)))
    return problems


_PK_SQL: dict[tuple[Any, ...], tuple[str, tuple[str, ...] | None]] = {}


def _by_pk(dialect: sa.Dialect, tp: TablePlan, verb: str, pks: list[list[Any]]
           ) -> list[tuple[str, Any]]:
    """Statements on rows given by primary key (verb: DELETE, SELECT for the plan's columns,
    SELECT KEYS for the key only), as driver SQL and parameters. On PostgreSQL, integer keys
    go in one array parameter: one statement whatever the number of rows. Elsewhere, chunked
    IN lists padded to a power of two, so each shape is compiled once per process."""
    if not pks:
        return []
    if dialect.name == "postgresql" and len(tp.pk) == 1 and all(
            type(pk[0]) is int for pk in pks):
        quote = dialect.identifier_preparer.quote
        what = {"DELETE": "DELETE", "SELECT KEYS": f"SELECT {quote(tp.pk[0])}",
                "SELECT": "SELECT " + ", ".join(quote(c) for c in tp.columns)}[verb]
        return [(f"{what} FROM {quote(tp.key.table)} "
                 f"WHERE {quote(tp.pk[0])} = ANY(%(pk)s)", {"pk": [pk[0] for pk in pks]})]
    tc = table_clause(tp)
    out: list[tuple[str, Any]] = []
    for start in range(0, len(pks), CHUNK):
        chunk = pks[start:start + CHUNK]
        if len(tp.pk) != 1:
            stmt: Any = sa.delete(tc) if verb == "DELETE" else sa.select(*(
                tc.c[c] for c in (tp.pk if verb == "SELECT KEYS" else tp.columns)))
            out.append(_driver_sql(dialect, stmt.where(_pk_in(tc, tp, chunk))))
            continue
        size = 1
        while size < len(chunk):
            size *= 2
        shape = (tp.key.table, tp.pk, tp.columns, verb, size, dialect.name)
        if shape not in _PK_SQL and dialect.name == "sqlite":
            # Plain text, as the search writes it for SQLite: no compiler for 2,000 parameters.
            quote = dialect.identifier_preparer.quote
            what = {"DELETE": "DELETE", "SELECT KEYS": f"SELECT {quote(tp.pk[0])}",
                    "SELECT": "SELECT " + ", ".join(quote(c) for c in tp.columns)}[verb]
            _PK_SQL[shape] = (f"{what} FROM {quote(tp.key.table)} WHERE {quote(tp.pk[0])} "
                              f"IN ({', '.join('?' * size)})", tuple(f"k{i}" for i in range(size)))
        if shape not in _PK_SQL:
            names = [sa.bindparam(f"k{i}") for i in range(size)]
            where = tc.c[tp.pk[0]].in_(names)
            stmt = sa.delete(tc) if verb == "DELETE" else sa.select(*(
                tc.c[c] for c in (tp.pk if verb == "SELECT KEYS" else tp.columns)))
            compiled = stmt.where(where).compile(dialect=dialect)
            _PK_SQL[shape] = (compiled.string,
                              tuple(compiled.positiontup) if compiled.positional else None)
        sql, order = _PK_SQL[shape]
        values = [pk[0] for pk in chunk]
        values += [values[-1]] * (size - len(values))  # IN ignores the repeats
        params = {f"k{i}": v for i, v in enumerate(values)}
        out.append((sql, tuple(params[n] for n in order) if order else params))
    return out


def _pk_in(tc: sa.TableClause, tp: TablePlan, pks: list[list[Any]]) -> sa.ColumnElement[bool]:
    if len(tp.pk) == 1:
        return tc.c[tp.pk[0]].in_([pk[0] for pk in pks])
    return sa.tuple_(*(tc.c[c] for c in tp.pk)).in_([tuple(pk) for pk in pks])


def _fault_point(where: str) -> None:
    """Test hook: pause at `where` ("shop" after committing it, "shop:before-commit" inside
    its transaction) so a test can kill the process there with SIGKILL."""
    if os.environ.get("LAWFUL_TEST_PAUSE_AT") == where:
        print(f"paused at {where}", flush=True)
        time.sleep(float(os.environ.get("LAWFUL_TEST_PAUSE_SECONDS", "30")))


def manifest_digest(plan: Plan, conns: Connections) -> str:
    """What a run's decisions depend on: the systems, the retention rules, and the databases
    the URLs point at once ${VAR}s are filled in (a run planned on staging must never be
    finished on production)."""
    text = plan.statements.get(("manifest-digest",))
    if text is None:  # the plan is built once per manifest: so is this
        text = plan.statements[("manifest-digest",)] = plan.manifest.model_dump_json(
            include={"systems", "retention"})
    targets = [safe_url(conns.engine(system)) for system in plan.systems()]
    return hashlib.sha256((text + json.dumps(targets)).encode()).hexdigest()


def erase(plan: Plan, identities: Identities, *, dry_run: bool = False, persons: int = 1,
          today: dt.date | None = None, phase: Callable[[str], Any] | None = None
          ) -> EraseResult:
    """`phase`, if given, is told what the run is doing as it goes (for a progress line)."""
    started = time.perf_counter()
    say = phase or (lambda _what: None)
    conns = Connections(plan)
    with conns.session(), collector_paused():
        conns.ping_all()
        eraser = Eraser(plan, conns, today)
        digest = state.request_digest("erase", identities)
        resumed = None if dry_run else state.unfinished_run("erase", digest)
        if resumed is not None:
            if resumed.manifest_digest != manifest_digest(plan, conns):
                # The tables or holds changed since the run was planned: its decisions may no
                # longer fit the databases. Refuse rather than guess.
                raise EngineError(
                    f"run {resumed.run_id} of this erasure was interrupted and planned with "
                    "another version of the manifest's systems or retention rules, or against "
                    "other databases; run it again with that version to finish it")
            run_id, payload = resumed.run_id, resumed.payload
            actions, tables = payload["actions"], [TableResult(**t) for t in payload["tables"]]
            known = Identities({Identity(k): set(v) for k, v in payload["identities"].items()})
            statements = 0
        else:
            say("finding every row")
            found = Searcher(plan, conns).find(identities)
            say(f"deciding for {found.count():,} rows")
            actions, tables = eraser.decide(found)
            known, statements = found.identities, found.statements
            run_id = uuid.uuid4().hex
        result = EraseResult(None if dry_run else run_id, dry_run, persons, known.as_dict(),
                             tables, statements, resumed=resumed is not None)
        if dry_run:
            result.seconds = time.perf_counter() - started
            return result
        conns.release()  # writes use their own transactions
        # While the databases work on a batch's writes, this process has nothing to do but
        # the journal (encrypting the decisions) and the suppression list's keyed hashes: both
        # run beside the writes. The journal must be durable before any database commits (a
        # run killed after a commit resumes from it), not before the writes are sent. A small
        # run does them in turn: a thread would cost it more than it saves.
        big = _rows_planned(actions) >= ASIDE_FROM
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="lawful-erase") if big \
                else contextlib.nullcontext() as aside:
            journal = None if resumed is not None else _soon(
                aside, state.open_run, run_id, "erase", digest, manifest_digest(plan, conns), {
                    "actions": actions, "tables": [t.__dict__ for t in tables],
                    "identities": known.as_dict()})
            hashes = _soon(aside, state.identity_hashes, known)
            say("writing")
            result.statements += eraser.apply(
                run_id, actions, before_commit=journal.result if journal else None)
            if journal is not None:
                journal.result()  # nothing to write anywhere: its failure is still raised
            say("verifying: searching again")
            result.leftovers = verify(plan, conns, known, actions, eraser.today)
            result.verified = not result.leftovers
            say("adding to the suppression list")
            result.suppressed = state.suppress_and_close(
                known, "erasure", run_id, {"tables": [t.__dict__ for t in tables],
                                           "verified": result.verified},
                hashes=hashes.result())
    result.seconds = time.perf_counter() - started
    return result


ASIDE_FROM = 2000  # rows planned from which the journal and the hashes run beside the writes


def _rows_planned(actions: dict[str, Any]) -> int:
    return sum(len(action["delete"]) + sum(len(group["pks"]) for group in action["update"])
               for tables in actions.values() for action in tables.values())


def _soon(pool: ThreadPoolExecutor | None, func: Callable[..., Any], *args: Any
          ) -> Future[Any]:
    """func(*args) on the pool; without one, now (a failure raised at once, as before any
    write), its result kept the same way."""
    if pool is not None:
        return pool.submit(func, *args)
    done: Future[Any] = Future()
    done.set_result(func(*args))
    return done


def verify(plan: Plan, conns: Connections, identities: Identities, actions: dict[str, Any],
           today: dt.date) -> list[str]:
    """Proof, twice over. (1) The search runs again with every identity the person had: a row
    still reachable must hold no erasable value outside a legal hold. (2) Every row the run
    planned to change is read again after the commit: deleted rows, by primary key, must be
    gone, and changed fields must hold what was written (changed rows the search read are
    checked as it read them; the others, those it can no longer reach once the identity leading
    to them is a pseudonym, are read by primary key)."""
    # Weak identities found on the person's rows were never theirs alone: search with the
    # strong ones (the weak ones are found again on the person's own rows).
    strong = Identities({k: set(v) for k, v in identities.values.items() if k not in WEAK})
    # The deleted rows are asked for with the search's first round (they depend on nothing).
    deleted = _deleted_checks(plan, conns, actions)
    again = Searcher(plan, conns).find(strong, extra=deleted)
    problems = [f"{tp.key}: {len(result)} row(s) not deleted"
                for (tp, _, _), result in zip(deleted, again.extra, strict=True) if result]
    # After the search: the changed rows it read are not read a second time.
    problems += _reread(plan, conns, actions, again.rows, deleted=False)
    eraser = Eraser(plan, conns, today)
    for key, rows in again.rows.items():
        tp = plan.tables[key]
        scratch = TableResult(key.system, key.table)
        erasable = [f for f in tp.personal_fields if _erasable(f)]
        for pk in eraser.apply_table_hold(tp, rows, scratch):
            row = rows[pk]
            left = [f.name for f in erasable if not f.holds_erased(row.get(f.name))
                    and not eraser.field_held(f, row)]
            if left:
                problems.append(f"{key}: row {list(pk)} still holds {', '.join(left)}")
    conns.close()
    return problems


__all__ = ["EngineError", "EraseResult", "Eraser", "erase", "verify"]
