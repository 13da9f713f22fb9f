"""A batch's reads on two PostgreSQL connections at once, results handed over in order.

A search round of a 10,000-person batch is a dozen statements, each looking up thousands of
keys: the server's work, not the client's, is most of its time (measured: 0.9 s of a 1.4 s
search spent waiting). psycopg's pipeline does not help there: the first result asked for is
only returned once every statement queued before the sync has run, and one backend runs them
one after the other on one core. Two connections, each a worker thread taking the next
statement, keep two backends busy; the caller takes each result, in the order of the
statements, as soon as it is there, while the workers go on with the rest.

Every statement runs in autocommit, so each reads its own snapshot whichever connection runs
it: the same as one connection reading them in turn.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

Query = tuple[Any, str, Any]  # what a statement is about, its SQL, its parameters


def read_ahead(connections: Sequence[Any], queries: Sequence[Query]
               ) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """(index, rows) for each query, in order. `connections` are driver connections in
    autocommit, each used by one worker only. A failed statement stops the workers and is
    raised here, once the statements already running have ended: nothing is left running
    on a connection the caller may roll back."""
    results: dict[int, list[tuple[Any, ...]] | BaseException] = {}
    ready = threading.Condition()
    state = {"next": 0, "stop": False}
    busy: set[int] = set()  # the connections (by position) running a statement

    def take(worker: int) -> int | None:
        with ready:
            if state["stop"] or state["next"] >= len(queries):
                return None
            index = state["next"]
            state["next"] += 1
            busy.add(worker)
            return index

    def work(worker: int, conn: Any) -> None:
        while (index := take(worker)) is not None:
            outcome: list[tuple[Any, ...]] | BaseException
            try:
                _, sql, params = queries[index]
                cursor = conn.cursor()  # (sqlite3's cursor is no context manager)
                try:
                    cursor.execute(sql, params)
                    outcome = cursor.fetchall()
                finally:
                    cursor.close()
            except BaseException as exc:  # handed to the caller, who raises it
                outcome = exc
            with ready:
                busy.discard(worker)
                results[index] = outcome
                if isinstance(outcome, BaseException):
                    state["stop"] = True
                ready.notify_all()

    workers = [threading.Thread(target=work, args=(i, conn), daemon=True,
                                name="lawful-read-ahead") for i, conn in enumerate(connections)]
    for worker in workers:
        worker.start()
    try:
        for index in range(len(queries)):
            with ready:
                while index not in results:
                    ready.wait()
                outcome = results.pop(index)
            if isinstance(outcome, BaseException):
                raise outcome
            yield index, outcome
    finally:
        with ready:
            state["stop"] = True  # a caller that stops early, or a failure: no new statement
            running = [connections[i] for i in busy]
        for conn in running:
            # Nobody will read what is still running: ask the server to stop it rather than
            # wait for it (a request that arrives after the statement ended does nothing).
            with contextlib.suppress(Exception):
                conn.cancel_safe()
        for worker in workers:
            worker.join()
