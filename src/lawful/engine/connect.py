"""Connections to the customer's databases, one engine per URL for the life of the process.

Errors are turned into one clear line naming the system (and the table or column the database
lacks); passwords never appear in a message.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lawful.engine.plan import Plan, TablePlan
from lawful.engine.readahead import read_ahead
from lawful.interop.envurl import expand_url

_ENGINES: dict[str, Engine] = {}
# Where a batch's reads are spread over two connections. Not SQLite: its driver builds the
# rows while holding Python's lock, and two readers made a batch slower (4.1 s against 3.5 s).
SPREAD_ON = {"postgresql"}


class EngineError(Exception):
    """A database could not be used as the manifest says: nothing was changed."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # SQLite ignores foreign keys unless asked: enforce them so erasure order is really tested.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _postgres_costs(dbapi_conn: Any, _record: Any) -> None:
    """The engine's statements look rows up by key. At PostgreSQL's default cost of a random
    page (4, set for spinning disks) a lookup of a few thousand keys is planned as a parallel
    scan of the whole table, several times slower than the index where the table is cached or
    on SSD. A server left at that default gets 1.1 for this session only (the usual value for
    SSD); a value the administrator chose is kept."""
    cursor = dbapi_conn.cursor()
    cursor.execute("SELECT current_setting('random_page_cost')")
    if cursor.fetchone()[0] == "4":
        cursor.execute("SET random_page_cost = 1.1")
    cursor.close()
    dbapi_conn.commit()


def _postgres_alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Instead of pool_pre_ping's round trip on every checkout (a tenth of a millisecond, a
    request's tenth): an idle pooled connection has nothing to read on its socket unless the
    server closed it or wrote to it since (a restart, a terminated backend). Only then ping, as
    pool_pre_ping would; a connection that fails is replaced by a new one."""
    try:
        if dbapi_conn.closed or dbapi_conn.pgconn.status != 0:  # 0: CONNECTION_OK
            raise sa.exc.DisconnectionError()
        ready, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
        if not ready:
            return
        cursor = dbapi_conn.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_conn.rollback()
    except sa.exc.DisconnectionError:
        raise
    except Exception:  # whatever broke, the connection is not to be used
        raise sa.exc.DisconnectionError() from None


def engine_for(url: str) -> Engine:
    real = expand_url(url)
    if real not in _ENGINES:
        postgres = sa.engine.make_url(real).get_backend_name() == "postgresql"
        engine = sa.create_engine(real, pool_pre_ping=not postgres)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        elif engine.dialect.name == "postgresql":
            sa.event.listen(engine, "connect", _postgres_costs)
            sa.event.listen(engine, "checkout", _postgres_alive)
        _ENGINES[real] = engine
    return _ENGINES[real]


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class Connections:
    """The databases of one plan, opened on first use, each with one connection at a time."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.urls = {s.id: s.url for s in plan.manifest.systems}
        self._open: dict[str, Connection] = {}
        self._second: dict[str, Connection] = {}  # PostgreSQL: a batch's second reader
        self._engines: dict[str, Engine] = {}

    def engine(self, system: str) -> Engine:
        if system in self._engines:
            return self._engines[system]
        try:
            engine = self._engines[system] = engine_for(self.urls[system])
            return engine
        except ValueError as exc:  # an unset ${VAR} in the URL
            raise EngineError(f"system {system!r}: {exc}") from None
        except sa.exc.ArgumentError as exc:
            raise EngineError(f"system {system!r}: the URL is not a database URL ({exc})"
                              ) from None

    def dialect(self, system: str) -> str:
        return self.engine(system).dialect.name

    def connection(self, system: str) -> Connection:
        """The system's reading connection. On PostgreSQL it runs in autocommit: each read is
        its own statement-level snapshot (as in a READ COMMITTED transaction), without the
        BEGIN and ROLLBACK round trips. Writes always use a transaction of their own."""
        if system not in self._open:
            self._open[system] = self._reader(system)
        return self._open[system]

    def _reader(self, system: str) -> Connection:
        engine = self.engine(system)
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise EngineError(
                f"system {system!r} ({safe_url(engine)}) cannot be reached: "
                f"{_first_line(exc.orig)}") from None
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def readers(self, system: str) -> list[Any]:
        """The driver connections a batch's reads are spread over on PostgreSQL: the reading
        connection and a second one, opened on first use and kept for the run (see
        readahead.py). Both in autocommit."""
        if system not in self._second:
            self._second[system] = self._reader(system)
        return [self.connection(system).connection.dbapi_connection,
                self._second[system].connection.dbapi_connection]

    def ping_all(self) -> None:
        """Open every database before anything is written, so a down one changes nothing.
        A new connection proves the database is up; a pooled one is pinged on checkout
        (pool_pre_ping), so no further statement is needed."""
        for system in self.urls:
            self.connection(system)

    def execute(self, conn: Connection, tp: TablePlan, stmt: sa.Executable,
                params: dict[str, Any] | None = None) -> sa.CursorResult[Any]:
        try:
            return conn.execute(stmt, params or {})
        except sa.exc.DBAPIError as exc:
            problem = self.schema_problem(tp)
            detail = problem or statement_error(exc.orig)
            raise EngineError(f"system {tp.key.system!r}, table {tp.key.table!r}: {detail}"
                              ) from None

    def fetch_all(self, conn: Connection, queries: list[tuple[TablePlan, str, Any]],
                  stream: bool = False) -> list[list[tuple[Any, ...]]]:
        """Run compiled SQL on the driver's own cursor (the search's hot path); see
        fetch_each() for `stream`."""
        return list(self.fetch_each(conn, queries, stream))

    def fetch_each(self, conn: Connection, queries: list[tuple[TablePlan, str, Any]],
                   stream: bool = False) -> Iterator[list[tuple[Any, ...]]]:
        """fetch_all() one result at a time, in the order of `queries`. On PostgreSQL, a
        few statements go out in one pipeline (one wait for them all); with `stream` (a
        batch's thousands of rows), they are spread over two connections, two backends
        working at once, and each result is handed over as soon as it is there, so the caller
        works on the rows of one table while the servers read the next (readahead.py)."""
        raw: Any = conn.connection.dbapi_connection
        spread = conn.dialect.name in SPREAD_ON and len(queries) > 1 and stream
        # The readers open their own cursors: these are for the statements run here.
        cursors = [] if spread else [raw.cursor() for _ in queries]
        current = queries[0][0] if queries else None
        ahead: Iterator[tuple[int, list[tuple[Any, ...]]]] | None = None
        try:
            if spread:
                system = queries[0][0].key.system
                assert conn is self.connection(system), "the reads of one system only"
                ahead = read_ahead(self.readers(system), queries)
                for index, rows in ahead:
                    yield rows
                    # named in the error if the next statement fails
                    current = queries[min(index + 1, len(queries) - 1)][0]
            elif conn.dialect.name == "postgresql" and len(queries) > 1:
                with raw.pipeline():
                    for cursor, (tp, sql, params) in zip(cursors, queries, strict=True):
                        current = tp
                        cursor.execute(sql, params)
                for cursor, (tp, _, _) in zip(cursors, queries, strict=True):
                    current = tp
                    yield list(cursor.fetchall())
            else:
                for cursor, (tp, sql, params) in zip(cursors, queries, strict=True):
                    current = tp
                    cursor.execute(sql, params)
                    yield list(cursor.fetchall())
        except conn.dialect.dbapi.Error as exc:  # type: ignore[union-attr]
            # The failed statement may have poisoned the driver's transaction: clear it
            # before asking the database what it has.
            raw.rollback()
            assert current is not None
            where, problem = self.first_schema_problem([q[0] for q in queries]) or (
                current, statement_error(exc))
            raise EngineError(f"system {where.key.system!r}, table {where.key.table!r}: "
                              f"{problem}") from None
        finally:
            if ahead is not None:
                ahead.close()  # its workers stopped and joined, whatever ended this
            for cursor in cursors:
                cursor.close()

    def first_schema_problem(self, tables: list[TablePlan]
                             ) -> tuple[TablePlan, str] | None:
        """In a pipeline the failing statement is not known: ask for each table in turn."""
        for tp in {t.key: t for t in tables}.values():
            problem = self.schema_problem(tp)
            if problem:
                return tp, problem
        return None

    def schema_problem(self, tp: TablePlan) -> str | None:
        """What the manifest names that the database lacks, if anything."""
        conn = self.connection(tp.key.system)
        if conn.in_transaction() and conn.dialect.name == "postgresql":
            conn.rollback()  # a failed statement poisons the transaction for inspection
        inspector = sa.inspect(conn)
        if not inspector.has_table(tp.key.table):
            return "the database has no such table"
        present = {c["name"] for c in inspector.get_columns(tp.key.table)}
        missing = [c for c in tp.columns if c not in present]
        if missing:
            return f"the database lacks the column(s) {', '.join(missing)}"
        return None

    def close(self) -> None:
        for conn in [*self._open.values(), *self._second.values()]:
            conn.close()
        self._open.clear()
        self._second.clear()

    def release(self) -> None:
        """Before writing elsewhere: close the connections that may hold a transaction (its
        snapshot would hide the writes from the verification, its locks could block them).
        PostgreSQL's autocommit readers hold neither and stay open for the verification."""
        for held in (self._open, self._second):
            for system in [s for s, c in held.items()
                           if c.get_execution_options().get("isolation_level") != "AUTOCOMMIT"]:
                held.pop(system).close()

    @contextmanager
    def session(self) -> Iterator[Connections]:
        try:
            yield self
        finally:
            self.close()


def _first_line(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def statement_error(exc: BaseException) -> str:
    """Why a statement failed, without the driver's text where it may quote a row's value
    ('invalid input syntax for type integer: "…"'): the error class and code only. SQLite's
    messages name tables and columns, never values, and are kept."""
    module = type(exc).__module__
    if module.startswith("sqlite3"):
        return _first_line(exc)
    code = getattr(exc, "sqlstate", None) or (exc.args[0] if exc.args else None)
    return f"the database refused the statement ({type(exc).__name__}, code {code})"
