"""Find every row of one person (or of a batch of persons) in every declared database.

Semi-naive closure: each round queries only with what the previous round discovered (new
identity values, new key values), so a table is read a bounded number of times whatever the
number of rows. Identities found on a person's rows (the phone on the customer row) seed the
search everywhere, across databases. References are walked both ways, except edges marked
`other_person` (an order's manufacturing partner).

Weak identities (cookie ids, IP addresses) can be shared by several people. A row found only
through one is taken when it links to nobody else, and never used to reach further rows: a
shared browser must not lead from one customer to another's account.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lawful.engine.connect import Connections
from lawful.engine.identities import WEAK, Identities, IdentityError, normalise
from lawful.engine.plan import Edge, FieldPlan, Plan, TableKey, TablePlan
from lawful.manifest.model import Identity

CHUNK = 2000  # values per IN list: under every backend's parameter limit
ARRAY_FROM = 64  # PostgreSQL: bind arrays instead of IN lists above this many values
SPREAD_FROM = 2000  # PostgreSQL: reads binding more values than this go on two connections
Row = dict[str, Any]
Pk = tuple[Any, ...]
Query = tuple[TablePlan, str, Any]  # table, compiled SQL, parameters


def sqlite_forms(lowered: str) -> set[str]:
    """SQLite's lower() folds ASCII letters only: a stored "JÖRG@x" becomes "jÖrg@x", not
    "jörg@x". Query the fully lower-cased form and the one with non-ASCII letters upper-cased,
    which covers addresses typed in one case. (Mixed-case non-ASCII letters need an index on a
    column stored lower-cased: declare match: exact.)"""
    if lowered.isascii():
        return {lowered}  # nothing for lower() to miss
    return {lowered, "".join(c if c.isascii() else c.upper() for c in lowered)}


@dataclass
class Found:
    rows: dict[TableKey, dict[Pk, Row]] = field(default_factory=lambda: defaultdict(dict))
    weak: dict[TableKey, set[Pk]] = field(default_factory=lambda: defaultdict(set))
    identities: Identities = field(default_factory=Identities)
    given: dict[Identity, set[str]] = field(default_factory=dict)  # what the request gave
    statements: int = 0
    rounds: int = 0
    extra: list[list[tuple[Any, ...]]] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def tables(self) -> list[TableKey]:
        return [k for k, rows in self.rows.items() if rows]


@dataclass
class _Condition:
    column: str
    values: set[Any]
    strong: bool
    casefold: bool = False
    kind: Identity | None = None  # set when the condition is an identity column

    def matches(self, row: Row) -> bool:
        return self.matches_value(row.get(self.column))

    def matches_value(self, value: Any) -> bool:
        if value is None:
            return False
        if self.casefold and isinstance(value, str):
            return value.lower() in self.values
        return value in self.values


def table_clause(tp: TablePlan) -> sa.TableClause:
    """The table as SQLAlchemy Core sees it: built once per plan and table, not for every
    statement of every request (a few hundred microseconds of a person's erasure)."""
    clause: sa.TableClause | None = tp.__dict__.get("_clause")
    if clause is None:
        clause = tp.__dict__["_clause"] = sa.table(
            tp.key.table, *(sa.column(c) for c in tp.columns))
    return clause


def ordered(values: Iterable[Any]) -> list[Any]:
    """Sorted as the database orders them where the values allow it (integers, strings, tuples
    of either), else by their text. Neighbouring keys then fall in the same chunk of an IN
    list, which reads neighbouring pages: text order put 1000 before 999 and made every chunk
    of integer keys span the whole table."""
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=str)


def _values(cond: _Condition, dialect: str) -> list[Any]:
    if cond.casefold and dialect != "mysql":
        return sorted({v for value in cond.values for v in sqlite_forms(value)})
    return ordered(cond.values)


def bound_values(queries: list[Query]) -> int:
    """How many values the statements bind, an array counting its elements."""
    return sum(sum(len(v) if isinstance(v, list) else 1 for v in p.values())
               if isinstance(p, dict) else len(p) for _, _, p in queries)


def _padded(values: list[Any]) -> list[Any]:
    """Repeat the last value up to a power of two: IN ignores duplicates, and the number of
    distinct statement texts (one compiled per length) stays small."""
    size = 1
    while size < len(values):
        size *= 2
    return values + [values[-1]] * (size - len(values))


def _chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Searcher:
    def __init__(self, plan: Plan, conns: Connections):
        self.plan = plan
        self.conns = conns
        # Statements are built once per plan: a request only binds values.
        self._statements = plan.statements
        # Per table, computed once per plan: the columns whose values lead to more rows.
        links = plan.statements.get(("links",))
        if links is None:
            links = plan.statements[("links",)] = {
                key: sorted(self._link_columns(tp)) for key, tp in plan.tables.items()}
        self._links: dict[TableKey, list[str]] = links
        self._normal: dict[tuple[Identity, str], str | None] = {}  # this search's, then gone

    def find(self, given: Identities, extra: list[Query] | None = None) -> Found:
        """Every row of the person(s). `extra`: statements that do not depend on the search,
        sent with its first round (one wait fewer); their results are in `found.extra`."""
        found = Found(given={k: set(v) for k, v in given.values.items()})
        for kind, values in given.values.items():
            for value in values:
                found.identities.add(kind, value)
        new_ids = Identities({k: set(v) for k, v in given.values.items()})
        # (table, column, strong) -> values discovered last round
        new_vals: dict[tuple[TableKey, str, bool], set[Any]] = {}
        seen_vals: dict[tuple[TableKey, str, bool], set[Any]] = defaultdict(set)
        pending = list(extra or [])
        while new_ids or new_vals or pending:
            found.rounds += 1
            next_ids = Identities()
            next_vals: dict[tuple[TableKey, str, bool], set[Any]] = defaultdict(set)
            # Every statement of a round depends only on the previous round: build them all,
            # send them together, then take the rows.
            work: list[tuple[TablePlan, list[_Condition], list[Query]]] = []
            for tp in self.plan.tables.values():
                conditions = self._conditions(tp, new_ids, new_vals, seen_vals)
                if conditions:
                    work.append((tp, conditions, self._queries(tp, conditions)))
            results = self._run([q for _, _, queries in work for q in queries] + pending,
                                found)
            # Closed whatever happens: a failure while taking rows must not leave reads
            # running on connections that are about to go back to the pool.
            with contextlib.closing(results):
                for tp, conditions, queries in work:
                    for _ in queries:
                        self._take_all(tp, next(results), conditions, found, seen_vals,
                                       next_ids, next_vals)
                found.extra += [next(results) for _ in pending]
                pending = []
                deque(results, maxlen=0)  # to its end: the pipeline closes, the cursors too
            new_ids, new_vals = next_ids, {k: v for k, v in next_vals.items() if v}
        return found

    def _run(self, queries: list[Query], found: Found) -> Iterator[list[tuple[Any, ...]]]:
        """Results in the order of `queries`, each database's statements sent together; with
        one database, each result as it arrives. A batch's statements (thousands of keys,
        where the server's work dominates) are read on two connections and handed over one
        by one; a person's few go out together and come back in one wait."""
        found.statements += len(queries)
        by_system: dict[str, list[int]] = defaultdict(list)
        for i, query in enumerate(queries):
            by_system[query[0].key.system].append(i)
        if len(by_system) == 1:
            system = next(iter(by_system))
            return self.conns.fetch_each(self.conns.connection(system), queries,
                                         stream=bound_values(queries) > SPREAD_FROM)
        out: list[list[tuple[Any, ...]]] = [[] for _ in queries]
        for system, indexes in by_system.items():
            conn = self.conns.connection(system)
            mine = [queries[i] for i in indexes]
            rows = self.conns.fetch_all(conn, mine, stream=bound_values(mine) > SPREAD_FROM)
            for i, result in zip(indexes, rows, strict=True):
                out[i] = result
        return (rows for rows in out)  # a generator, closed like the others

    def _conditions(self, tp: TablePlan, new_ids: Identities,
                    new_vals: dict[tuple[TableKey, str, bool], set[Any]],
                    seen_vals: dict[tuple[TableKey, str, bool], set[Any]]) -> list[_Condition]:
        out: list[_Condition] = []
        for f in tp.identity_fields:
            kind = f.decl.identity
            assert kind is not None
            values = new_ids.values.get(kind)
            if values:
                out.append(_Condition(f.name, set(values), kind not in WEAK, f.casefold, kind))
        for e in self.plan.same_person_parents.get(tp.key, []):
            # tp's rows point at a found parent row: they belong to the same person.
            for strong in (True, False):
                values = new_vals.get((e.parent, e.parent_col, strong))
                if values:
                    out.append(_Condition(e.child_col, set(values), strong))
        for e in self.plan.same_person_children.get(tp.key, []):
            # A found child row points at a row of tp: walk up, from strong rows only, to the
            # rows not found yet.
            values = new_vals.get((e.child, e.child_col, True), set()) - \
                seen_vals[(tp.key, e.parent_col, True)]
            if values:
                out.append(_Condition(e.parent_col, values, True))
        return out

    def _queries(self, tp: TablePlan, conditions: list[_Condition]) -> list[Query]:
        dialect = self.conns.engine(tp.key.system).dialect
        total = sum(len(c.values) for c in conditions)
        if dialect.name == "postgresql" and total > ARRAY_FROM:
            # A batch: one array parameter per condition (= ANY), whatever the number of
            # values, so one statement per table and round even for 10,000 persons. (For a
            # few values the cached IN statements are faster.)
            sql, _ = self._statement(tp, conditions, None, dialect)
            return [(tp, sql, {f"p{i}": _values(c, dialect.name)
                               for i, c in enumerate(conditions)})]
        # Few values (one person): every condition in one statement. Many (a batch): one
        # statement per condition and chunk, so no IN list outgrows a backend's limits.
        if total <= CHUNK:
            batches = [conditions]
        else:
            batches = [[_Condition(c.column, set(chunk), c.strong, c.casefold, c.kind)]
                       for c in conditions for chunk in _chunks(ordered(c.values))]
        out: list[Query] = []
        for batch in batches:
            values = [_padded(_values(c, dialect.name)) for c in batch]
            sql, order = self._statement(tp, batch, [len(v) for v in values], dialect)
            flat = {f"p{i}_{j}": value for i, vals in enumerate(values)
                    for j, value in enumerate(vals)}
            out.append((tp, sql, tuple(flat[name] for name in order) if order else flat))
        return out

    def _statement(self, tp: TablePlan, batch: list[_Condition], sizes: list[int] | None,
                   dialect: sa.Dialect) -> tuple[str, tuple[str, ...] | None]:
        """The SQL of one shape of conditions, compiled once by SQLAlchemy for the dialect and
        then run on the driver directly: the search's statements are its hot path. Without
        sizes, each condition binds one array (PostgreSQL's = ANY)."""
        shape = (tp.key, tuple((c.column, c.casefold) for c in batch),
                 tuple(sizes) if sizes else None, dialect.name)
        cached = self._statements.get(shape)
        if cached is None and sizes is not None and dialect.name == "sqlite":
            # SQLAlchemy's compiler takes tens of milliseconds for a list of 2,000 parameters,
            # once per shape: SQLite's plain text is written directly (names quoted by the
            # dialect, every value a parameter).
            quote = dialect.identifier_preparer.quote
            parts, order = [], []
            for i, c in enumerate(batch):
                column = f"lower({quote(c.column)})" if c.casefold else quote(c.column)
                parts.append(f"{column} IN ({', '.join('?' * sizes[i])})")
                order += [f"p{i}_{j}" for j in range(sizes[i])]
            sql = (f"SELECT {', '.join(quote(c) for c in tp.columns)} "
                   f"FROM {quote(tp.key.table)} WHERE {' OR '.join(parts)}")
            cached = self._statements[shape] = (sql, tuple(order))
        if cached is None:
            tc = table_clause(tp)
            parts = []
            for i, c in enumerate(batch):
                column = tc.c[c.column]
                if c.casefold and dialect.name != "mysql":  # MariaDB's collation ignores case
                    column = sa.func.lower(column)
                if sizes is None:
                    parts.append(column == sa.any_(sa.bindparam(f"p{i}")))
                else:
                    parts.append(column.in_([sa.bindparam(f"p{i}_{j}")
                                             for j in range(sizes[i])]))
            compiled = sa.select(*(tc.c[name] for name in tp.columns)).where(
                sa.or_(*parts)).compile(dialect=dialect)
            order = tuple(compiled.positiontup) if compiled.positional else None
            cached = self._statements[shape] = (compiled.string, order)
        return cached

    def _take_all(self, tp: TablePlan, results: list[tuple[Any, ...]],
                  conditions: list[_Condition], found: Found,
                  seen_vals: dict[tuple[TableKey, str, bool], set[Any]], next_ids: Identities,
                  next_vals: dict[tuple[TableKey, str, bool], set[Any]]) -> None:
        """_take for every row of one statement, the common case inline: what is per table
        (positions, the sets a row's link values go to) is looked up once, not per row."""
        key, columns = tp.key, tp.columns
        rows, weak = found.rows[key], found.weak[key]
        at = [columns.index(c) for c in tp.pk]
        one = at[0] if len(at) == 1 else None
        tests = [(columns.index(c.column), c) for c in conditions]
        links: list[tuple[int, set[Any], set[Any]]] | None = None  # when a new row comes
        identity = tp.identity_fields
        for values in results:
            pk = (values[one],) if one is not None else tuple(values[i] for i in at)
            known = pk in rows
            if known and pk not in weak:
                continue  # already known strongly: nothing new can come of it
            strong = False
            for i, c in tests:
                if c.strong and c.matches_value(values[i]):
                    strong = True
                    break
            if not strong:
                # Weak only, or matched by nothing (a collation's match): the careful path.
                self._take(tp, dict(zip(columns, values, strict=True)), conditions, found,
                           seen_vals, next_ids, next_vals)
                continue
            row = dict(zip(columns, values, strict=True))
            rows[pk] = row
            if known:
                weak.discard(pk)
            self._harvest(identity, row, found, next_ids)
            if links is None:
                links = [(columns.index(c), seen_vals[(key, c, True)],
                          next_vals[(key, c, True)]) for c in self._links[key]]
            for i, seen, fresh in links:
                value = values[i]
                if value is not None and value not in seen:
                    seen.add(value)
                    fresh.add(value)

    def _take(self, tp: TablePlan, row: Row, conditions: list[_Condition], found: Found,
              seen_vals: dict[tuple[TableKey, str, bool], set[Any]], next_ids: Identities,
              next_vals: dict[tuple[TableKey, str, bool], set[Any]]) -> None:
        pk = tuple(row[c] for c in tp.pk)
        matched = [c for c in conditions if c.matches(row)]
        if not matched:
            # The database matched what an exact comparison does not (an accent- or
            # space-insensitive collation): not this person's value, so not their row.
            return
        strong = any(c.strong for c in matched)
        rows = found.rows[tp.key]
        if pk in rows and not (strong and pk in found.weak[tp.key]):
            return  # already known, and not upgraded from weak to strong
        if not strong:
            given = any(c.kind is not None and row.get(c.column) in
                        found.given.get(c.kind, set()) for c in matched)
            if not self._owned_by_found(tp, row, seen_vals, given):
                return  # a shared cookie id or IP address on another person's row
        rows[pk] = row
        if strong:
            found.weak[tp.key].discard(pk)
            self._harvest(tp.identity_fields, row, found, next_ids)
        else:
            found.weak[tp.key].add(pk)
        for column in self._links[tp.key]:
            value = row.get(column)
            if value is not None and value not in seen_vals[(tp.key, column, strong)]:
                seen_vals[(tp.key, column, strong)].add(value)
                next_vals[(tp.key, column, strong)].add(value)

    def _link_columns(self, tp: TablePlan) -> set[str]:
        down = {e.parent_col for e in self.plan.same_person_children.get(tp.key, [])}
        return down | {e.child_col for e in self.plan.same_person_parents.get(tp.key, [])}

    def _owned_by_found(self, tp: TablePlan, row: Row,
                        seen_vals: dict[tuple[TableKey, str, bool], set[Any]],
                        given: bool) -> bool:
        """Whether a row found only by a weak identity is the person's: it must point at
        nobody or at the person's own rows. In a table that points at no owner, only an
        identity the requester gave (their own cookie) counts, never one found on their rows."""
        edges: list[Edge] = self.plan.same_person_parents.get(tp.key, [])
        if not edges:
            return given
        return all(row.get(e.child_col) is None
                   or row.get(e.child_col) in seen_vals[(e.parent, e.parent_col, True)]
                   for e in edges)

    def _harvest(self, fields: list[FieldPlan], row: Row, found: Found,
                 next_ids: Identities) -> None:
        known = found.identities.values
        for f in fields:
            value = row.get(f.name)
            kind = f.decl.identity
            if not isinstance(value, str) or kind is None:
                continue
            if value in known.get(kind, ()):
                continue  # stored as already known (normalising is idempotent): nothing new
            if f.holds_erased(value):
                continue  # an erased value (a pseudonym, a mask) identifies nobody
            normal = self._normalised(kind, value)
            if normal is None:
                continue  # an erased or malformed value identifies nobody
            if found.identities.add(kind, normal):
                next_ids.add(kind, normal)

    def _normalised(self, kind: Identity, value: str) -> str | None:
        """normalise(), remembered for this search only (parsing a phone number is slow)."""
        key = (kind, value)
        if key not in self._normal:
            try:
                self._normal[key] = normalise(kind, value, self.plan.region)
            except IdentityError:
                self._normal[key] = None
        return self._normal[key]
