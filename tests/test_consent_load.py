"""The consent ledger under load, against a real `lawful serve --workers 2` (uvicorn) with the
app store on PostgreSQL: concurrent posts are all stored, replays once, and a server killed
with SIGKILL in the middle of the load keeps every event it acknowledged, whole.

Each test gets its own schema (`cload_<random>`) and state directory; the servers run in their
own process group, killed and waited for at the end whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import KERF, free_port
from tests.kerfdb import store_schema

pytestmark = pytest.mark.postgres

WORKERS = 2
IN_FLIGHT = 150
EVENTS = 1_000
REPLAYED = 100  # of the EVENTS, posted twice at the same time
PURPOSE = "analytics-cookies"


@dataclass
class Served:
    base: str
    url: str  # the store, in its own schema
    env: dict[str, str]
    port: int
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lawful", "serve", "--port", str(self.port),
                 "--workers", str(WORKERS)], env=self.env, cwd=self.log.parent,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"lawful serve exited {proc.returncode}:\n"
                            f"{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/v1/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"lawful serve did not answer within 120 s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the server and its workers at once: no shutdown handler runs."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)

    def rows(self, sql: str) -> list[Any]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(sql)))
        finally:
            engine.dispose()



@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with store_schema("cload") as url:
        server = _server(url, tmp_path)
        try:
            yield server
        finally:
            server.kill()


def _server(url: str, tmp_path: Path) -> Served:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAWFUL_", "KERF_"))}
    env.update(LAWFUL_DATABASE_URL=url, LAWFUL_STATE_DIR=str(tmp_path / "state"),
               LAWFUL_SECRET_KEY="consent-load-secret-" + secrets.token_hex(8),
               LAWFUL_MANIFEST=str(KERF), KERF_DATABASE_URL=f"sqlite:///{tmp_path}/kerf.db",
               LAWFUL_RATE_LIMIT="10000000")  # every client here is 127.0.0.1
    return Served(f"http://127.0.0.1:{port}", url, env, port, tmp_path / "serve.log")


def _event(cid: str) -> dict[str, Any]:
    return {"visitor_id": f"v{cid}", "purpose": PURPOSE, "action": "granted",
            "channel": "web_banner", "site": "load.kerf.example", "client_event_id": cid}


def _whole(server: Served) -> None:
    """Every stored event has its state row (one visitor per event here)."""
    orphans = server.rows(
        "SELECT e.client_event_id FROM consent_event e LEFT JOIN consent_state s "
        "ON s.subject_hash = e.subject_hash AND s.purpose = e.purpose AND s.event_id = e.id "
        "WHERE s.event_id IS NULL")
    assert orphans == [], f"events without their state: {orphans[:5]}"
    events, states = server.rows("SELECT (SELECT count(*) FROM consent_event), "
                                 "(SELECT count(*) FROM consent_state)")[0]
    assert events == states


def test_a_thousand_concurrent_posts_are_all_stored_and_replays_once(served: Served) -> None:
    served.start()
    run = secrets.token_hex(4)
    ids = [f"{run}-{n:05d}" for n in range(EVENTS)]
    twice = set(secrets.SystemRandom().sample(ids, REPLAYED))

    async def load() -> list[tuple[str, int, dict[str, Any]]]:
        gate = asyncio.Semaphore(IN_FLIGHT)
        limits = httpx.Limits(max_connections=IN_FLIGHT + REPLAYED)
        async with httpx.AsyncClient(base_url=served.base, limits=limits,
                                     timeout=60) as client:
            async def post(cid: str) -> tuple[str, int, dict[str, Any]]:
                answer = await client.post("/v1/consent/events", json=_event(cid))
                return cid, answer.status_code, answer.json()

            async def one(cid: str) -> list[tuple[str, int, dict[str, Any]]]:
                copies = 2 if cid in twice else 1  # a replayed event: both at once
                async with gate:
                    return list(await asyncio.gather(*(post(cid) for _ in range(copies))))
            done = await asyncio.gather(*(one(cid) for cid in ids))
            return [answer for pair in done for answer in pair]

    answers = asyncio.run(asyncio.wait_for(load(), 240))
    assert len(answers) == EVENTS + REPLAYED
    assert sorted(code for _, code, _ in answers if code not in (200, 201)) == []
    created = [cid for cid, code, _ in answers if code == 201]
    replayed = [cid for cid, code, body in answers if code == 200 and body["replayed"]]
    assert sorted(created) == ids  # each event created once...
    assert sorted(replayed) == sorted(twice)  # ...and its replay answered as such
    event_ids: dict[str, set[int]] = {}
    for cid, _, body in answers:
        event_ids.setdefault(cid, set()).add(body["event_id"])
    assert all(len(found) == 1 for found in event_ids.values())  # the replay names the same

    stored = served.rows("SELECT client_event_id, id FROM consent_event")
    assert sorted(cid for cid, _ in stored) == ids
    assert {cid: {eid} for cid, eid in stored} == event_ids
    assert served.rows("SELECT count(*) FROM consent_state")[0][0] == EVENTS
    _whole(served)


def test_a_server_killed_mid_load_keeps_every_acknowledged_event(served: Served) -> None:
    served.start()
    run = secrets.token_hex(4)
    acknowledged: set[str] = set()
    sent: set[str] = set()
    kill_after = 400  # acknowledged events, then SIGKILL while ~IN_FLIGHT more are under way

    async def load() -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        async with httpx.AsyncClient(base_url=served.base, limits=limits,
                                     timeout=30) as client:
            async def post(cid: str) -> None:
                async with gate:
                    if stop.is_set():
                        return
                    sent.add(cid)
                    try:
                        answer = await client.post("/v1/consent/events", json=_event(cid))
                    except httpx.HTTPError:
                        stop.set()  # the server is gone
                        return
                if answer.is_success:
                    acknowledged.add(cid)
                    if len(acknowledged) == kill_after:
                        served.kill()
                        stop.set()

            await asyncio.gather(*(post(f"{run}-{n:05d}") for n in range(20 * kill_after)))

    asyncio.run(asyncio.wait_for(load(), 240))
    assert len(acknowledged) >= kill_after, served.log.read_text()[-3000:]
    assert len(sent) > len(acknowledged)  # some were under way when the server died

    stored = {cid for (cid,) in served.rows("SELECT client_event_id FROM consent_event")}
    assert acknowledged <= stored, f"acknowledged but lost: {sorted(acknowledged - stored)[:5]}"
    assert stored <= sent
    _whole(served)

    # Restarted, the server answers the clients' retries: what was stored is a replay, what
    # was lost is stored now; either way once.
    served.start()
    unanswered = sorted(sent - acknowledged)
    with httpx.Client(base_url=served.base, timeout=60) as client:
        for cid in unanswered:
            answer = client.post("/v1/consent/events", json=_event(cid))
            assert answer.status_code == (200 if cid in stored else 201), answer.text
    assert sorted(cid for (cid,) in served.rows(
        "SELECT client_event_id FROM consent_event")) == sorted(sent)
    _whole(served)


def test_the_asyncio_pool_bounds_and_heals_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger's asyncio pool (lawful.store.aio): at most LAWFUL_DB_POOL_SIZE connections
    whatever the demand; a waiter cancelled in the queue passes its turn on; a connection
    whose statement failed or was cancelled is closed, never handed out again; the pool
    serves another event loop, and closes with its engine."""
    from lawful.engine import state
    from lawful.store import aio

    with store_schema("cload") as url:
        monkeypatch.setenv("LAWFUL_DATABASE_URL", url)
        monkeypatch.setenv("LAWFUL_DB_POOL_SIZE", "3")
        try:
            _pool_checks(aio.pool())
        finally:
            cached = state._ENGINES.pop(url, None)
            if cached is not None:
                cached.dispose()


def _pool_checks(pool: Any) -> None:
    assert pool is not None and pool.size == 3
    seen: set[int] = set()

    async def use(delay: float) -> None:
        async with pool.connection() as conn:
            seen.add(id(conn))
            await conn.execute("SELECT pg_sleep(%s)", (delay,))

    async def main() -> None:
        tasks = [asyncio.create_task(use(0.05)) for _ in range(12)]
        await asyncio.sleep(0.01)
        tasks[6].cancel()  # waiting in the queue
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        assert [type(r).__name__ for r in results if r is not None] == ["CancelledError"]
        assert len(seen) == 3 and pool._opened == 3
        with pytest.raises(Exception, match="division by zero"):
            async with pool.connection() as conn:
                await conn.execute("SELECT 1/0")
        busy = asyncio.create_task(use(5))
        await asyncio.sleep(0.2)
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
        assert pool._opened == 1  # both closed, not returned
        await asyncio.wait_for(asyncio.gather(*(use(0.01) for _ in range(6))), 60)
        assert pool._opened == 3

    asyncio.run(main())
    asyncio.run(use(0))  # another loop, the same pool
    pool.engine.dispose()
    assert pool.closed and not pool._idle
