"""Consent events per second through the HTTP API, with the PostgreSQL app store.

    python bench/consent.py [--url POSTGRES_URL] [--workers 2] [--connections 16]
                            [--duration 20] [--generator wrk|httpx]

Starts `lawful serve --workers N` (uvicorn) on the Kerf manifest with its app store in the
schema `lawful_consent_bench` (fresh each run), and, beside it, a bare FastAPI app with one
trivial POST route under the same uvicorn settings (same workers, loop, HTTP parser, access
log): the ceiling the framework allows on this machine. Then, in this order, each after a
warm-up that is not counted:

1. bare: `POST /bare` with a consent event's body (parsed as JSON, answered 201);
2. events: `POST /v1/consent/events`, every request a new visitor and a new client_event_id
   (a grant of `analytics-cookies` from the web banner, with a site);
3. state: `GET /v1/consent/state?visitor_id=` for random visitors of run 2, under the same
   load, then with one connection (the latency of a lookup alone).

Printed: requests per second, p50/p90/p99 latency, and afterwards the rows counted in
`consent_event` and `consent_state` against the 201s the generator saw (none lost).

The load generator is `wrk` (Debian's package) with a Lua script when it is installed: one
thread of C, a small share of a core, so most of the 2 cores go to the servers and
PostgreSQL. Without it, `--generator httpx` drives the same requests from an asyncio httpx
client in a separate process (it needs a good part of a core itself, so its figures are
lower bounds). The CPU time the generator used is printed too: it shares the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parents[1]
KERF = ROOT / "examples" / "kerf" / "lawful.yaml"
SCHEMA = "lawful_consent_bench"
PURPOSE = "analytics-cookies"


def bare() -> FastAPI:
    """The ceiling: the same framework and server, one trivial POST route (uvicorn factory)."""
    app = FastAPI()

    @app.post("/bare", status_code=201)
    async def post(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"event_id": 1, "purpose": body.get("purpose"), "replayed": False}

    return app


# --- the load generators ---------------------------------------------------------------------

EVENTS_LUA = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  path = args[2]
end
request = function()
  counter = counter + 1
  local id = prefix .. string.format("%08d", counter)
  local body = '{"visitor_id":"v' .. id .. '","purpose":"analytics-cookies",' ..
    '"action":"granted","channel":"web_banner","site":"kerf.example",' ..
    '"client_event_id":"' .. id .. '"}'
  return wrk.format("POST", path, {["Content-Type"]="application/json"}, body)
end
"""

STATE_LUA = """
function init(args)
  prefix = args[1]
  threads = tonumber(args[2])
  per_thread = tonumber(args[3])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
request = function()
  local id = prefix .. "-" .. math.random(threads) .. "-" ..
    string.format("%08d", math.random(per_thread))
  return wrk.format("GET", "/v1/consent/state?visitor_id=v" .. id)
end
"""


@dataclass
class Run:
    name: str
    requests: int
    ok: int
    seconds: float
    p50: float
    p90: float
    p99: float
    generator_cpu: float  # seconds of CPU the generator used
    server_cpu: float = 0.0  # seconds of CPU of the server's processes during the run
    database_cpu: float = 0.0  # and of its PostgreSQL backends

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def per_request(self, seconds: float) -> float:
        return 1000 * seconds / max(1, self.requests)

    @property
    def capacity(self) -> float:
        """Requests/s two idle cores would allow at this CPU cost (server, database and
        generator): what the run would reach on a machine of its own."""
        spent = self.server_cpu + self.database_cpu + self.generator_cpu
        return 2 * self.requests / spent if spent else float("nan")

    def line(self) -> str:
        return (f"| {self.name} | {self.rate:,.0f} | {self.p50:.1f} | {self.p90:.1f} | "
                f"{self.p99:.1f} | {self.requests - self.ok} | "
                f"{self.per_request(self.server_cpu):.3f} | "
                f"{self.per_request(self.database_cpu):.3f} | "
                f"{self.per_request(self.generator_cpu):.3f} | {self.capacity:,.0f} |")


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (from /proc; gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def group(pgid: int) -> list[int]:
    """The processes of a session started with start_new_session (the server, its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def backends(url: str, app_name: str) -> list[int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE "
                                    "application_name = :name"), {"name": app_name}).scalars()
        found = [int(p) for p in pids]
    engine.dispose()
    return found


def wrk(name: str, base: str, script: Path, args: list[str], connections: int,
        seconds: int, threads: int = 1) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "--timeout", "10s", "-s", str(script), base, "--", *args],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert total, out
    elapsed = _ms(total.group(2) + total.group(3)) / 1000
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                       r"timeout (\d+)", out)
    failed = (int(bad.group(1)) if bad else 0) + \
        (sum(int(g) for g in errors.groups()) if errors else 0)
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M)}
    return Run(name, int(total.group(1)), int(total.group(1)) - failed, elapsed,
               pct["50"], pct["90"], pct["99"], cpu)


def _httpx_process(base: str, kind: str, prefix: str, per_thread: int, connections: int,
                   seconds: float, queue: Any) -> None:
    async def main() -> tuple[int, int, list[float]]:
        latencies: list[float] = []
        sent = ok = 0
        end = time.perf_counter() + seconds
        limits = httpx.Limits(max_connections=connections,
                              max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
            async def one(lane: int) -> None:
                nonlocal sent, ok
                n = 0
                while time.perf_counter() < end:
                    n += 1
                    start = time.perf_counter()
                    if kind == "state":
                        lane_of = random.randint(1, max(1, connections))
                        visitor = f"v{prefix}-{lane_of}-{random.randint(1, per_thread):08d}"
                        answer = await client.get("/v1/consent/state",
                                                  params={"visitor_id": visitor})
                    else:
                        cid = f"{prefix}-{lane}-{n:08d}"
                        answer = await client.post(kind, json={
                            "visitor_id": f"v{cid}", "purpose": PURPOSE, "action": "granted",
                            "channel": "web_banner", "site": "kerf.example",
                            "client_event_id": cid})
                    latencies.append((time.perf_counter() - start) * 1000)
                    sent += 1
                    ok += answer.is_success
            await asyncio.gather(*(one(lane + 1) for lane in range(connections)))
        return sent, ok, latencies

    began = time.perf_counter()
    sent, ok, latencies = asyncio.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((sent, ok, time.perf_counter() - began, sorted(latencies),
               usage.ru_utime + usage.ru_stime))


def drive_httpx(name: str, base: str, kind: str, prefix: str, per_thread: int,
                connections: int, seconds: int) -> Run:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_httpx_process, args=(base, kind, prefix, per_thread,
                                                    connections, seconds, queue))
    proc.start()
    sent, ok, elapsed, lat, cpu = queue.get(timeout=seconds + 120)
    proc.join(30)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    return Run(name, sent, ok, elapsed, pct(0.5), pct(0.9), pct(0.99), cpu)


# --- the servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path, port: int,
           ready_path: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{args[0]} exited: see {log}\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2) \
                        .status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"no answer on port {port}: see {log}")
            time.sleep(0.3)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)  # the server and its workers (own session)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)


APP_NAME = "lawful-consent-bench"


def schema_url(base: str, schema: str) -> str:
    url = sa.engine.make_url(base)
    host = url.host or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"{host}: the benchmark runs against a loopback PostgreSQL only")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return url.update_query_dict({"options": f"-csearch_path={schema}",
                                  "application_name": APP_NAME}) \
        .render_as_string(hide_password=False)


def counted(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        events = conn.execute(sa.text("SELECT count(*) FROM consent_event")).scalar_one()
        states = conn.execute(sa.text("SELECT count(*) FROM consent_state")).scalar_one()
    engine.dispose()
    return int(events), int(states)


def postgres_version(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
    engine.dispose()
    return str(version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get(
        "LAWFUL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--schema", default=SCHEMA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16,
                        help="requests in flight (wrk connections)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds before each run")
    parser.add_argument("--generator", choices=["wrk", "httpx"],
                        default="wrk" if shutil.which("wrk") else "httpx")
    opts = parser.parse_args()

    url = schema_url(opts.url, opts.schema)
    work = Path(tempfile.mkdtemp(prefix="lawful-consent-bench-"))
    env = {**os.environ, "LAWFUL_DATABASE_URL": url, "LAWFUL_STATE_DIR": str(work / "state"),
           "LAWFUL_SECRET_KEY": "consent-bench-secret-0123456789",
           "LAWFUL_MANIFEST": str(KERF), "KERF_DATABASE_URL": f"sqlite:///{work / 'kerf.db'}",
           # every request comes from 127.0.0.1: lift the per-client limit for the bench
           "LAWFUL_RATE_LIMIT": "1000000000", "PYTHONUNBUFFERED": "1"}
    for script, text in (("events.lua", EVENTS_LUA), ("state.lua", STATE_LUA)):
        (work / script).write_text(text)
    lawful_port, bare_port = free_port(), free_port()
    lawful_base, bare_base = f"http://127.0.0.1:{lawful_port}", f"http://127.0.0.1:{bare_port}"
    uvicorn_settings = ["--workers", str(opts.workers), "--host", "127.0.0.1"]

    servers: dict[str, int] = {}  # base URL -> process group

    def load(name: str, base: str, kind: str, prefix: str, connections: int,
             seconds: int, per_thread: int = 0) -> Run:
        server_pids = group(servers[base])
        database_pids = backends(opts.url, APP_NAME) if base == lawful_base else []
        before = cpu_seconds(server_pids), cpu_seconds(database_pids)
        if opts.generator == "wrk":
            if kind == "state":
                run = wrk(name, base, work / "state.lua", [prefix, "1", str(per_thread)],
                          connections, seconds)
            else:
                run = wrk(name, base, work / "events.lua", [prefix, kind], connections,
                          seconds)
        else:
            run = drive_httpx(name, base, kind, prefix, per_thread, connections, seconds)
        run.server_cpu = cpu_seconds(server_pids) - before[0]
        # backends opened during the run are missed: the warm-up opens the pools
        run.database_cpu = cpu_seconds(database_pids) - before[1]
        return run

    print(f"consent benchmark, {dt.date.today()}: {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, PostgreSQL {postgres_version(opts.url)}; "
          f"{opts.workers} uvicorn workers, {opts.connections} connections, "
          f"{opts.duration} s a run, generator {opts.generator}; "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    runs: list[Run] = []
    with server([sys.executable, "-m", "uvicorn", "consent:bare", "--factory", "--app-dir",
                 str(Path(__file__).parent), "--port", str(bare_port), "--log-level", "info",
                 *uvicorn_settings], env, work / "bare.log", bare_port, "/docs") as bare_proc, \
            server([sys.executable, "-m", "lawful", "serve", "--port", str(lawful_port),
                    *uvicorn_settings], env, work / "serve.log", lawful_port,
                   "/v1/healthz") as lawful_proc:
        servers.update({bare_base: bare_proc.pid, lawful_base: lawful_proc.pid})
        load("warm-up", bare_base, "/bare", "wb", opts.connections, opts.warmup)
        runs.append(load("bare FastAPI POST (ceiling)", bare_base, "/bare", "b",
                         opts.connections, opts.duration))
        warm = load("warm-up", lawful_base, "/v1/consent/events", "we", opts.connections,
                    opts.warmup)
        events = load("POST /v1/consent/events", lawful_base, "/v1/consent/events", "e",
                      opts.connections, opts.duration)
        runs.append(events)
        # Visitors of the first half of each lane (wrk: one thread; httpx: one lane per
        # connection) are surely stored.
        lanes = opts.connections if opts.generator == "httpx" else 1
        per_lane = max(1, events.ok // lanes // 2)
        runs.append(load("GET /v1/consent/state, same load", lawful_base, "state", "e",
                         opts.connections, opts.duration, per_lane))
        runs.append(load("GET /v1/consent/state, one connection", lawful_base, "state", "e",
                         1, max(5, opts.duration // 2), per_lane))
    events_rows, state_rows = counted(url)
    print("\n| run | requests/s | p50 ms | p90 ms | p99 ms | failed | server CPU ms/req | "
          "PostgreSQL CPU ms/req | generator CPU ms/req | 2 idle cores would allow |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        print(run.line())
    ceiling = runs[0].rate
    print(f"\nconsent events: {events.rate:,.0f}/s = {100 * events.rate / ceiling:.0f} % of "
          f"the bare endpoint; p99 {events.p99:.1f} ms")
    # The generator stops with requests in flight: those may be stored without their
    # answer being counted (at most one per connection and run).
    acknowledged = warm.ok + events.ok
    in_flight = 2 * opts.connections
    whole = events_rows == state_rows and \
        acknowledged <= events_rows <= acknowledged + in_flight
    print(f"rows: consent_event {events_rows:,}, consent_state {state_rows:,}, for "
          f"{acknowledged:,} events answered 2xx (one new visitor each; up to {in_flight} "
          f"more were in flight at the stops): {'none lost' if whole else 'MISMATCH'}; "
          f"load average after: {os.getloadavg()[0]:.1f}")
    _drop(opts.url, opts.schema)
    shutil.rmtree(work, ignore_errors=True)


def _drop(base: str, schema: str) -> None:
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


if __name__ == "__main__":
    main()
