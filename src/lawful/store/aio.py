"""Asyncio connections to a PostgreSQL app store, for the HTTP API's hottest paths.

The consent ledger records an event in one statement. Sent through SQLAlchemy from FastAPI's
thread pool, most of a request's CPU went to the thread hand-off and to SQLAlchemy's
execution layers around that one statement; from the event loop on an asyncio psycopg
connection it costs a fraction. Everything else keeps the synchronous store (`db.engine()`).

One pool per store engine and process, of at most LAWFUL_DB_POOL_SIZE (10) autocommit
connections, opened as needed and closed when the engine is disposed. A connection whose
statement failed or was cancelled is closed, not reused. The pool belongs to no event loop:
psycopg looks the running loop up at each wait, and a connection is used by one task at a
time, so the same pool serves uvicorn's loop and a test client's loops alike.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg
import sqlalchemy as sa

from lawful.engine import state


class Pool:
    def __init__(self, engine: sa.Engine, size: int) -> None:
        self.engine = engine  # held: its id keys the pool
        self.conninfo = conninfo(engine.url)
        self.size = size
        self._idle: deque[psycopg.AsyncConnection[Any]] = deque()
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._opened = 0
        self._lock = threading.Lock()  # test clients run the app in their own threads
        self.closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        conn = await self._get()
        try:
            yield conn
        except BaseException:
            self._discard(conn)  # its state is unknown: never hand it out again
            raise
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._discard(conn)
        else:
            self._put(conn)

    async def _get(self) -> psycopg.AsyncConnection[Any]:
        while True:
            with self._lock:
                if self._idle:
                    return self._idle.pop()
                opening = self._opened < self.size
                if opening:
                    self._opened += 1
                else:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiting.append(waiter)
            if opening:
                try:
                    return await psycopg.AsyncConnection.connect(self.conninfo,
                                                                 autocommit=True)
                except BaseException:
                    self._released()
                    raise
            try:
                await waiter
            except BaseException:  # cancelled: a wake-up meant for this waiter goes on
                with self._lock, suppress(ValueError):
                    self._waiting.remove(waiter)
                self._wake()
                raise

    def _put(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self.closed:
            self._discard(conn)
            return
        with self._lock:
            self._idle.append(conn)
        self._wake()

    def _discard(self, conn: psycopg.AsyncConnection[Any]) -> None:
        with suppress(Exception):
            conn.pgconn.finish()
        self._released()

    def _released(self) -> None:
        with self._lock:
            self._opened -= 1
        self._wake()

    def _wake(self) -> None:
        while True:
            with self._lock:
                waiter = self._waiting.popleft() if self._waiting else None
            if waiter is None:
                return
            if waiter.done():  # cancelled: the next one
                continue
            try:
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
                return
            except RuntimeError:  # its loop has closed: nobody waits there any more
                continue

    def close(self) -> None:
        self.closed = True
        with self._lock:
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            self._discard(conn)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_POOLS: dict[int, Pool] = {}
_POOLS_LOCK = threading.Lock()


def pool() -> Pool | None:
    """The store's asyncio pool, or None when the store is not PostgreSQL."""
    engine = state.store()
    found = _POOLS.get(id(engine))
    if found is not None and not found.closed:
        return found
    if engine.dialect.name != "postgresql":
        return None
    with _POOLS_LOCK:
        found = _POOLS.get(id(engine))
        if found is None or found.closed:
            found = _POOLS[id(engine)] = Pool(
                engine, int(os.environ.get("LAWFUL_DB_POOL_SIZE", "10")))
            sa.event.listen(engine, "engine_disposed", lambda _: _close(id(engine)))
    return found


def _close(key: int) -> None:
    with _POOLS_LOCK:
        found = _POOLS.pop(key, None)
    if found is not None:
        found.close()


def conninfo(url: sa.URL) -> str:
    """libpq's connection string for a SQLAlchemy URL (its query, e.g. `options`, included)."""
    params: dict[str, Any] = {"host": url.host, "port": url.port, "user": url.username,
                              "password": url.password, "dbname": url.database}
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items()
                                              if v is not None})
