"""`lawful retention run`: what is due, done in bounded batches, with proof.

Per binding (a rule on a table), batches walk the primary key (keyset: `pk > last`, ordered,
`LIMIT n`), each in its own transaction with its proof record in the same database, so a
process killed at any point leaves whole batches done and recorded and nothing half-done. The
due condition is evaluated again by every batch and every run, so a restarted run continues
where the killed one stopped, and a second run finds nothing to do.

On PostgreSQL a batch is two statements in one REPEATABLE READ transaction (one snapshot):
the first picks the batch's keys, digests them and writes the proof record; the second
deletes (or updates) the rows of the key range `last < pk <= hi` that are due, evaluated as one
set (hash joins, as a hand-written statement would), and must touch exactly as many rows as
were picked. Under one snapshot the due rows of that range are exactly the picked ones; a row
changed by another transaction in between makes the batch fail with a serialization error, and
it is tried again, on the same key range. Batches overlap on `workers` connections: as soon as
a batch has picked (its range is known), the next one picks from where it ends while the first
is still deleting. Ranges never overlap, so neither do the batches' rows; each batch commits on
its own, with its proof, so a killed run leaves whole batches, in any order, and the next run
finds what is left.

Deletions go first, children before parents; a row still referenced by a row that stays is
left for later. Restricted persons (the table's column, the column of the row the row belongs
to, or lawful's list) and rows under a legal hold are skipped and reported.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lawful.engine import state
from lawful.engine.connect import Connections, EngineError, statement_error
from lawful.engine.erase import _replacement, _replacer
from lawful.engine.identities import IdentityError, normalise
from lawful.engine.plan import Plan
from lawful.keys import keyed_hash
from lawful.retention import journal
from lawful.retention.prepare import Context, prepare
from lawful.retention.rules import Binding, Sql

BATCH = 50_000
WORKERS = 2  # PostgreSQL: batches in flight at once, each on its own connection
IN_CHUNK = 2_000
RETRIES = 5  # a PostgreSQL batch that met a concurrent change (serialization failure)
RETRY_STATES = {"40001", "40P01"}  # serialization failure, deadlock: try the batch again

Progress = Callable[[Binding, int], None]


@dataclass
class BindingResult:
    rule: str
    system: str
    table: str
    field: str | None
    action: str
    due: int = 0  # rows the rule makes due and nothing keeps (plan, dry run)
    done: int = 0  # rows deleted or changed (run)
    batches: int = 0
    restricted: int = 0
    held: int = 0
    referenced: int = 0
    held_reasons: list[str] = field(default_factory=list)
    oldest: str | None = None  # the earliest date among due rows
    upcoming: int = 0  # due within --within days, not yet due
    next_due: str | None = None
    unclocked: str | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, b: Binding) -> BindingResult:
        return cls(b.rule.id, b.key.system, b.key.table,
                   b.fields[0].name if b.field_level else None, b.action.value,
                   unclocked=b.unclocked, notes=list(b.notes))


@dataclass
class RunResult:
    run_id: str | None
    today: str
    dry_run: bool
    bindings: list[BindingResult]
    resumed: list[str] = field(default_factory=list)  # interrupted runs whose proof was synced
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return sum(b.done for b in self.bindings)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["bindings"] = [b.__dict__ for b in self.bindings]
        out["done"] = self.done
        return out


def ordered(bindings: list[Binding]) -> list[Binding]:
    """Deletions first, children before parents (bind() gives plan.delete_order), then
    anonymisations."""
    return [b for b in bindings if b.deletes] + [b for b in bindings if not b.deletes]


def count(ctx: Context, b: Binding, build: Callable[[Sql, Any], Any],
          today: dt.date | None = None) -> int:
    sql = ctx.sql(b.key.system, today)
    t = sql.table(b.tp)
    stmt = sa.select(sa.func.count()).select_from(t).where(build(sql, t))
    conn = ctx.conns.connection(b.key.system)
    return int(ctx.conns.execute(conn, b.tp, stmt).scalar() or 0)


def skipped(ctx: Context, b: Binding, result: BindingResult) -> None:
    """Rows due under the rule that something keeps: restriction, a hold, a reference."""
    held = ctx.held_keys(b.key)
    result.restricted += count(ctx, b, lambda s, t: sa.and_(
        s.candidates(b, t, ctx.bindings), s.restricted(b.tp, t)))
    if b.deletes:
        result.referenced = count(ctx, b, lambda s, t: sa.and_(
            s.candidates(b, t, ctx.bindings), sa.not_(s.restricted(b.tp, t)),
            s.referenced(b.tp, t)))
    if held:
        result.held = count(ctx, b, lambda s, t: sa.and_(
            s.candidates(b, t, ctx.bindings), s.held(b, t, held)))
        result.held_reasons = sorted(set(ctx.held.reasons.get(b.key, [])))


def run(plan: Plan, today: dt.date, *, dry_run: bool = False, batch_size: int = BATCH,
        progress: Progress | None = None, workers: int = WORKERS) -> RunResult:
    started = time.perf_counter()
    conns = Connections(plan)
    with conns.session():
        ctx = prepare(plan, conns, today)
        if dry_run:
            from lawful.retention.plan import due

            return RunResult(None, today.isoformat(), True, due(ctx, 0),
                             seconds=time.perf_counter() - started)
        run_id = uuid.uuid4().hex
        interrupted = journal.open_run(run_id, today)
        for system in plan.systems():
            journal.ensure_remote(conns.engine(system))
            journal.sync(system, conns.engine(system), interrupted)
        conns.close()
        results = []
        seq = 0
        for b in ordered(ctx.bindings):
            result = BindingResult.of(b)
            results.append(result)
            if b.unclocked or (not b.deletes and not b.fields):
                continue
            seq = Sweeper(ctx, b, run_id, batch_size, progress, workers).sweep(result, seq)
            journal.sync(b.key.system, conns.engine(b.key.system), [run_id])
            skipped(ctx, b, result)
            conns.close()
        outcome = RunResult(run_id, today.isoformat(), False, results, interrupted)
        outcome.seconds = time.perf_counter() - started
        journal.close_run(run_id, {"done": outcome.done, "bindings": [
            {k: v for k, v in r.__dict__.items() if k in ("rule", "table", "field", "action",
                                                          "done", "batches", "restricted",
                                                          "held", "referenced")}
            for r in results if r.done or r.restricted or r.held or r.referenced]})
    return outcome


class Sweeper:
    """The batches of one binding."""

    def __init__(self, ctx: Context, b: Binding, run_id: str, size: int,
                 progress: Progress | None, workers: int = 1):
        self.ctx, self.b, self.run_id, self.size, self.progress = ctx, b, run_id, size, progress
        self.workers = max(1, workers)
        self.engine = ctx.conns.engine(b.key.system)
        self.sql = ctx.sql(b.key.system)
        self.t = self.sql.table(b.tp)
        self.pk = [self.t.c[c] for c in b.tp.pk]
        self.due = self.sql.actionable(b, self.t, ctx.bindings, ctx.held_keys(b.key))
        # lawful's list of restricted persons: compared in Python on the batch's identities
        self.identities = list(b.tp.identity_fields) if ctx.restricted else []
        self.per_row = b.per_row() if not b.deletes else []
        self.listed = 0  # rows skipped because lawful's list restricts their person
        self.fast = (self.engine.dialect.name == "postgresql" and len(self.pk) == 1
                     and not self.identities and not self.per_row)

    def sweep(self, result: BindingResult, seq: int) -> int:
        if self.fast:
            return self._overlapped(result, seq)
        last: tuple[Any, ...] | None = None
        while True:
            seq += 1
            for attempt in range(RETRIES):
                try:
                    with self.engine.begin() as conn:
                        picked, n, last = self._generic(conn, last, seq)
                        _fault_point(f"retention:{self.b.key.table}:before-commit")
                    break
                except sa.exc.DBAPIError as exc:
                    self._retry_or_raise(exc, attempt)
            self._record(result, n)
            if not n:
                seq -= 1
            if picked < self.size:
                result.restricted += self.listed
                return seq

    def _record(self, result: BindingResult, n: int) -> None:
        """A committed batch: counted, shown, and a point where a test may kill the run."""
        if n:
            result.done += n
            result.batches += 1
            if self.progress:
                self.progress(self.b, n)
            _fault_point(f"retention:{self.b.key.table}")

    def _retry_or_raise(self, exc: sa.exc.DBAPIError, attempt: int) -> None:
        if getattr(exc.orig, "sqlstate", None) in RETRY_STATES and attempt < RETRIES - 1:
            return  # a row of the batch changed meanwhile: pick again
        raise EngineError(f"system {self.b.key.system!r}, table {self.b.key.table!r}, "
                          f"retention rule {self.b.rule.id!r}: {statement_error(exc.orig)}"
                          ) from None

    # --- PostgreSQL: batches overlapping on several connections -------------------------------

    def _overlapped(self, result: BindingResult, seq: int) -> int:
        """Start a batch, wait until it has picked (its key range is then known), start the
        next from the end of that range, with at most `workers` batches in flight. Committed
        batches are recorded in the order they were started, from this thread."""
        inflight: deque[Future[int]] = deque()
        last: Any = None
        with ThreadPoolExecutor(self.workers, thread_name_prefix="lawful-retention") as pool:
            try:
                while True:
                    while len(inflight) >= self.workers:
                        self._record(result, inflight.popleft().result())
                    seq += 1
                    picked: Future[tuple[int, Any]] = Future()
                    inflight.append(pool.submit(self._batch, last, seq, picked))
                    n, hi = picked.result()  # raises what the batch raised before its pick
                    if n < self.size:
                        if not n:
                            seq -= 1  # nothing was due: no proof record took this number
                        break
                    last = hi
                while inflight:
                    self._record(result, inflight.popleft().result())
            finally:
                for future in inflight:  # after a failure: start nothing more
                    future.cancel()
        return seq

    def _batch(self, last: Any, seq: int, picked: Future[tuple[int, Any]]) -> int:
        """One batch in its own REPEATABLE READ transaction, tried again on a concurrent change
        over the key range its first pick gave (so the next batch, already started from the end
        of that range, neither overlaps it nor leaves a gap). Sets `picked` to (rows, last key)
        once the first pick is done; returns the rows changed once committed."""
        upto: Any = None

        def on_pick(n: int, hi: Any) -> None:
            nonlocal upto
            if not picked.done():
                upto = hi
                picked.set_result((n, hi))

        try:
            for attempt in range(RETRIES):
                try:
                    with self.engine.connect().execution_options(
                            isolation_level="REPEATABLE READ") as conn, conn.begin():
                        n = self._fast(conn, last, seq, upto, on_pick)
                        _fault_point(f"retention:{self.b.key.table}:before-commit")
                    return n
                except sa.exc.DBAPIError as exc:
                    self._retry_or_raise(exc, attempt)
            raise AssertionError("unreachable: the last attempt raises")
        except BaseException as exc:
            if not picked.done():  # the coordinator is waiting for this pick
                picked.set_exception(exc)
            raise

    # --- PostgreSQL: keys and digest never leave the server -----------------------------------

    def _fast(self, conn: sa.Connection, last: Any, seq: int, upto: Any,
              on_pick: Callable[[int, Any], None]) -> int:
        """One batch, in a REPEATABLE READ transaction: the rows changed.

        1. pick the next keys that are due (`pk > last ORDER BY pk LIMIT n`, or, tried again,
           every due key up to `upto`), digest them and insert the proof record, in one
           statement, and tell `on_pick` how many and the last;
        2. delete or update the rows of the range (last, hi] that are due: under the same
           snapshot these are exactly the picked rows, and the database evaluates the due
           condition over the range as a set (hash anti-joins) rather than row by row. The
           count must match the proof; a row changed meanwhile by another transaction fails
           the statement (serialization failure) and the batch is tried again.

        (Joining the picked keys back to the table instead, `DELETE … USING picked`, made the
        planner hash-join them against a sequential scan of the whole table in every batch.)
        """
        pk = self.pk[0]
        where = [self.due] + ([pk > last] if last is not None else []) + (
            [pk <= upto] if upto is not None else [])
        picked = sa.select(pk.label("k")).where(*where).order_by(pk)
        if upto is None:
            picked = picked.limit(self.size)
        compiled = picked.compile(dialect=conn.dialect,
                                  compile_kwargs={"render_postcompile": True})
        params = dict(compiled.params)
        params.update(lawful_run=self.run_id, lawful_seq=seq, lawful_rule=self.b.rule.id,
                      lawful_tbl=self._label(), lawful_action=self.b.action.value)
        # the digest as journal.digest computes it: the keys as text, in key order, joined by
        # "," (array_agg sorts the bare keys: cheaper than string_agg(k::text ORDER BY k))
        sql = (
            f"WITH picked AS ({compiled.string}), "
            "agg AS (SELECT count(*) AS n, min(k) AS lo, max(k) AS hi, "
            "encode(sha256(convert_to(coalesce(array_to_string(array_agg(k ORDER BY k), ','), "
            "''), 'UTF8')), 'hex') AS d FROM picked), "
            f"rec AS (INSERT INTO {journal.BATCH_TABLE} (run_id, seq, rule, tbl, action, "
            "row_count, first_key, last_key, digest, done_at) "
            "SELECT %(lawful_run)s, %(lawful_seq)s, %(lawful_rule)s, %(lawful_tbl)s, "
            "%(lawful_action)s, n, lo::text, hi::text, d, now() FROM agg WHERE n > 0) "
            "SELECT n, hi FROM agg")
        n, hi = conn.exec_driver_sql(sql, params).one()
        n = int(n)
        on_pick(n, hi)
        if not n:
            return 0
        _fault_point(f"retention:{self.b.key.table}:picked")
        where = [*where, pk <= hi]
        if self.b.deletes:
            change: Any = sa.delete(self.t).where(*where)
        else:
            change = sa.update(self.t).where(*where).values(
                {f.name: _replacement(self.b.field_plan(f), "x", None) for f in self.b.fields})
        changed = conn.execute(change).rowcount
        if changed != n:  # cannot happen under one snapshot; never commit a wrong proof
            raise EngineError(f"system {self.b.key.system!r}, table {self.b.key.table!r}, "
                              f"retention rule {self.b.rule.id!r}: {changed} rows changed "
                              f"where {n} were picked; the batch was rolled back")
        return n

    # --- every backend: keys read, then changed by key ---------------------------------------

    def _generic(self, conn: sa.Connection, last: tuple[Any, ...] | None, seq: int
                 ) -> tuple[int, int, tuple[Any, ...] | None]:
        b = self.b
        cols = [*self.pk, *(self.t.c[f.name] for f in self.per_row),
                *(self.t.c[f.name] for f in self.identities)]
        where = [self.due]
        if last is not None:
            where.append(sa.tuple_(*self.pk) > sa.tuple_(*(sa.literal(v) for v in last))
                         if len(self.pk) > 1 else self.pk[0] > last[0])
        stmt = sa.select(*cols).where(*where).order_by(*self.pk).limit(self.size)
        rows = [tuple(r) for r in conn.execute(stmt)]
        if not rows:
            return 0, 0, last
        picked = len(rows)
        width = len(self.pk)
        last = rows[-1][:width]
        rows = [r for r in rows if not self._restricted(r)]
        self.listed += picked - len(rows)
        keys = [r[:width] for r in rows]
        if keys:
            if b.deletes:
                for chunk in _chunks(keys):
                    conn.execute(sa.delete(self.t).where(self._pk_in(chunk)))
            else:
                self._anonymise(conn, rows, keys)
            conn.execute(journal.remote_batches.insert().values(
                run_id=self.run_id, seq=seq, rule=b.rule.id, tbl=self._label(),
                action=b.action.value, row_count=len(keys),
                first_key=journal.key_text(keys[0]), last_key=journal.key_text(keys[-1]),
                digest=journal.digest(keys), done_at=state.now()))
        return picked, len(keys), last

    def _anonymise(self, conn: sa.Connection, rows: list[tuple[Any, ...]],
                   keys: list[tuple[Any, ...]]) -> None:
        b = self.b
        constant = {f.name: _replacement(b.field_plan(f), "x", None)
                    for f in b.fields if f not in self.per_row}
        if constant:
            for chunk in _chunks(keys):
                conn.execute(sa.update(self.t).where(self._pk_in(chunk)).values(constant))
        if self.per_row:
            width = len(self.pk)
            region = self.ctx.plan.region
            # The erased form's function chosen once per field, not once per row.
            replace = [(f"new_{f.name}", width + i, _replacer(b.field_plan(f), region))
                       for i, f in enumerate(self.per_row)]
            params = []
            for r in rows:
                values = {name: erased(r[at]) for name, at, erased in replace}
                params.append({**values, **{f"key_{c}": v for c, v in zip(
                    b.tp.pk, r[:width], strict=True)}})
            stmt = sa.update(self.t).where(*(
                self.t.c[c] == sa.bindparam(f"key_{c}") for c in b.tp.pk)).values(
                {f.name: sa.bindparam(f"new_{f.name}") for f in self.per_row})
            conn.execute(stmt, params)

    def _restricted(self, row: tuple[Any, ...]) -> bool:
        if not self.identities:
            return False
        offset = len(self.pk) + len(self.per_row)
        for i, f in enumerate(self.identities):
            value = row[offset + i]
            if value is None or f.decl.identity is None:
                continue
            try:
                text = normalise(f.decl.identity, str(value), self.ctx.plan.region)
            except IdentityError:
                continue
            if keyed_hash(f"{f.decl.identity.value}:{text}", "identity") in self.ctx.restricted:
                return True
        return False

    def _pk_in(self, keys: list[tuple[Any, ...]]) -> Any:
        if len(self.pk) == 1:
            return self.pk[0].in_([k[0] for k in keys])
        return sa.tuple_(*self.pk).in_(keys)

    def _label(self) -> str:
        b = self.b
        return f"{b.key}.{b.fields[0].name}" if b.field_level else str(b.key)


def _chunks(keys: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    return [keys[i:i + IN_CHUNK] for i in range(0, len(keys), IN_CHUNK)]


def _fault_point(where: str) -> None:
    """Test hook, as the engine's: pause at `where` so a test can SIGKILL the process (tests
    also replace it, to change rows between a batch's two statements)."""
    if os.environ.get("LAWFUL_TEST_PAUSE_AT") == where:
        print(f"paused at {where}", flush=True)
        time.sleep(float(os.environ.get("LAWFUL_TEST_PAUSE_SECONDS", "30")))
