"""Access requests per second through the request service, and the time to a download.

    python bench/requests.py [--customers 10000] [--workers 2] [--clients 8] [--requests 200]
                             [--url POSTGRES_URL] [--redis REDIS_URL] [--no-embedded]

Builds the Kerf demo database on PostgreSQL (schema `lawful_req_bench`, rebuilt unless it
already holds that many customers), starts `lawful serve` (uvicorn) and `--workers` `lawful
worker` processes over Redis with the app store on PostgreSQL (schema
`lawful_req_bench_store`, fresh each run), then drives `--clients` concurrent clients, each
doing what a person does:

    POST /v1/requests (access, a random customer's e-mail) -> read the code from the outbox
    -> POST /v1/requests/ID/verify -> GET /v1/requests/ID until "download" is there
    -> GET the download (a zip)

The code is read from the outbox in this process (the same store and secret), as `lawful
outbox` would. Printed: requests completed per second, and p50/p95 of submission alone, of
verification alone, and of submission to a downloadable package. Then the same flow on the
embedded default (`lawful serve` with no broker: tasks run in process, inside the verify call;
the app store on SQLite), the Kerf database unchanged, for comparison.

The public endpoints are rate-limited per client address (LAWFUL_RATE_LIMIT, 60 a minute by
default): every bench client comes from 127.0.0.1, so the bench raises it for its server.
The first `--warmup` requests of each run (workers building their plan, connections) are
not counted.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
KERF = ROOT / "examples" / "kerf" / "lawful.yaml"
LAWFUL = [sys.executable, "-m", "lawful"]
KERF_SCHEMA = "lawful_req_bench"
STORE_SCHEMA = "lawful_req_bench_store"
CODE = re.compile(r"code is (\d{6})")
POLL = 0.05  # seconds between two GETs of a request while it is executed (--poll)
TIMEOUT = 300.0  # seconds: a request not downloadable by then fails the bench


# --- processes -------------------------------------------------------------------------------

class Proc:
    """A lawful subprocess; its output goes to a log file and is searched for lines."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log_path = name, log
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen([*LAWFUL, *args], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        with self.log_path.open("w") as out:
            for line in stream:
                out.write(line)
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                if self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} exited ({self.proc.returncode}); "
                                     f"see {self.log_path}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.name} not ready after {timeout:.0f} s; "
                                     f"see {self.log_path}")
                self._changed.wait(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._reader.join(timeout=5)


@contextmanager
def running(procs: list[Proc]) -> Iterator[list[Proc]]:
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, server: Proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{server.name} did not answer {url}; see {server.log_path}")
        time.sleep(0.2)


# --- databases -------------------------------------------------------------------------------

def schema_url(base: str, schema: str, fresh: bool) -> str:
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        if fresh:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    engine.dispose()
    return make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}) \
        .render_as_string(hide_password=False)


def drop_schema(base: str, schema: str) -> None:
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


def kerf_database(base: str, customers: int, seed: int) -> str:
    """The Kerf demo on PostgreSQL, rebuilt unless it already has `customers` customers."""
    from lawful.demo.generate import generate

    url = schema_url(base, KERF_SCHEMA, fresh=False)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        present = conn.execute(sa.text(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s "
            "AND table_name = 'customer'"), {"s": KERF_SCHEMA}).scalar_one()
        have = conn.execute(sa.text("SELECT count(*) FROM customer")).scalar_one() \
            if present else -1
    engine.dispose()
    if have != customers:
        url = schema_url(base, KERF_SCHEMA, fresh=True)
        print(f"building the Kerf demo ({customers:,} customers) in schema {KERF_SCHEMA}",
              file=sys.stderr)
        generate(url, customers, seed=seed)
    return url


def emails(url: str, count: int, seed: int) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = list(conn.execute(sa.text(
            "SELECT email FROM customer WHERE email IS NOT NULL ORDER BY id")).scalars())
    engine.dispose()
    rng = random.Random(seed)
    return [rng.choice(found) for _ in range(count)]


def read_code(request_id: str) -> str:
    """The code e-mailed for a request, from the outbox of the store this process points at
    (the same store and secret as the server)."""
    from lawful.keys import decrypt
    from lawful.store import db
    from lawful.store.models import OutboxMessage

    with db.session() as s:
        bodies = [decrypt(m.body_enc).decode() for m in s.execute(
            sa.select(OutboxMessage).where(OutboxMessage.request_id == request_id)).scalars()]
    for body in bodies:
        found = CODE.search(body)
        if found:
            return found.group(1)
    raise RuntimeError(f"no code e-mail for request {request_id}")


# --- the clients -----------------------------------------------------------------------------

@dataclass
class Timing:
    submit: float  # seconds for POST /v1/requests
    verify: float  # seconds for POST …/verify
    downloadable: float  # seconds from submission to a response holding the download link
    downloaded: float  # … and the zip fetched


def one_request(client: httpx.Client, email: str, poll: float = POLL) -> Timing:
    start = time.perf_counter()
    r = client.post("/v1/requests", json={"type": "access", "email": email})
    if r.status_code != 201:
        raise RuntimeError(f"submit: HTTP {r.status_code} {r.text[:200]}")
    submitted = time.perf_counter()
    made = r.json()
    rid, headers = made["id"], {"X-Request-Token": made["token"]}
    code = read_code(rid)
    before_verify = time.perf_counter()
    r = client.post(f"/v1/requests/{rid}/verify", json={"code": code}, headers=headers)
    if r.status_code != 200:
        raise RuntimeError(f"verify: HTTP {r.status_code} {r.text[:200]}")
    verified = time.perf_counter()
    body = r.json()
    while not body.get("download"):
        if body.get("status") in ("refused", "completed") or \
                time.perf_counter() - start > TIMEOUT:
            raise RuntimeError(f"request {rid} is {body.get('status')} without a download")
        time.sleep(poll)
        r = client.get(f"/v1/requests/{rid}", headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"follow: HTTP {r.status_code} {r.text[:200]}")
        body = r.json()
    ready = time.perf_counter()
    r = client.get(body["download"])
    if r.status_code != 200 or not r.content.startswith(b"PK"):
        raise RuntimeError(f"download: HTTP {r.status_code}")
    return Timing(submitted - start, verified - before_verify, ready - start,
                  time.perf_counter() - start)


@dataclass
class Run:
    label: str
    timings: list[Timing]
    seconds: float
    clients: int


def drive(label: str, base_url: str, people: list[str], clients: int, warmup: int,
          poll: float) -> Run:
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=60)
        return local.client  # type: ignore[no-any-return]

    def task(email: str) -> Timing:
        return one_request(client(), email, poll)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(task, people[:warmup]))
        start = time.perf_counter()
        timings = list(pool.map(task, people[warmup:]))
        seconds = time.perf_counter() - start
    return Run(label, timings, seconds, clients)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(run: Run) -> None:
    def line(name: str, pick: Callable[[Timing], float]) -> str:
        values = [pick(t) for t in run.timings]
        return (f"  {name:<26} p50 {pct(values, 0.5) * 1000:8.1f} ms   "
                f"p95 {pct(values, 0.95) * 1000:8.1f} ms   "
                f"mean {statistics.fmean(values) * 1000:8.1f} ms")

    n = len(run.timings)
    print(f"{run.label}: {n} access requests, {run.clients} clients, {run.seconds:.1f} s")
    print(f"  completed (downloaded)     {n / run.seconds:8.1f} requests/s")
    print(line("submit", lambda t: t.submit))
    print(line("verify", lambda t: t.verify))
    print(line("submit -> downloadable", lambda t: t.downloadable))
    print(line("submit -> downloaded", lambda t: t.downloaded))


# --- the two set-ups -------------------------------------------------------------------------

def base_env(state: Path, kerf_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAWFUL_")}
    env.update({
        "KERF_DATABASE_URL": kerf_url, "LAWFUL_MANIFEST": str(KERF),
        "LAWFUL_STATE_DIR": str(state), "LAWFUL_SECRET_KEY": secrets.token_urlsafe(32),
        "LAWFUL_BASE_URL": f"http://127.0.0.1:{port}",
        "LAWFUL_RATE_LIMIT": "10000000",  # every bench client is 127.0.0.1
    })
    return env


def point_here(env: dict[str, str]) -> None:
    """This process reads the outbox of the same store with the same secret."""
    for key in ("LAWFUL_DATABASE_URL", "LAWFUL_SECRET_KEY", "LAWFUL_STATE_DIR"):
        os.environ.pop(key, None)
        if key in env:
            os.environ[key] = env[key]


def serve(env: dict[str, str], port: int, logs: Path, label: str) -> Proc:
    server = Proc(f"{label} server", ["serve", "--host", "127.0.0.1", "--port", str(port),
                                      "--manifest", str(KERF)], env, logs / f"{label}-serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/healthz", server)
    except BaseException:
        server.stop()
        raise
    return server


def with_workers(args: argparse.Namespace, kerf_url: str, people: list[str], logs: Path,
                 state: Path) -> Run:
    port = free_port()
    env = base_env(state, kerf_url, port)
    env["LAWFUL_DATABASE_URL"] = schema_url(args.url, STORE_SCHEMA, fresh=True)
    env["LAWFUL_BROKER_URL"] = args.redis
    env["LAWFUL_TASK_QUEUE"] = queue = f"lawful-bench-{secrets.token_hex(4)}"
    point_here(env)
    try:
        # the server migrates the store first; workers then find it current
        procs = [serve(env, port, logs, "redis")]
        with running(procs):
            workers = []
            for i in range(args.workers):
                workers.append(Proc(f"worker {i}", ["worker", "--manifest", str(KERF)], env,
                                    logs / f"worker-{i}.log"))
                procs.append(workers[-1])
            for w in workers:
                w.wait_for(" ready.")
            label = (f"PostgreSQL store, {args.workers} Celery worker(s) over Redis, "
                     f"{args.customers:,} customers")
            return drive(label, f"http://127.0.0.1:{port}", people, args.clients,
                         args.warmup, args.poll)
    finally:
        _empty_queue(args.redis, queue)
        drop_schema(args.url, STORE_SCHEMA)


def _empty_queue(url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*{queue}*", count=1000):
        client.delete(key)
    client.close()


def embedded(args: argparse.Namespace, kerf_url: str, people: list[str], logs: Path,
             state: Path) -> Run:
    port = free_port()
    env = base_env(state, kerf_url, port)  # no broker, no LAWFUL_DATABASE_URL: SQLite
    point_here(env)
    server = serve(env, port, logs, "embedded")
    with running([server]):
        label = (f"embedded default (SQLite store, tasks in process), Kerf on PostgreSQL, "
                 f"{args.customers:,} customers")
        return drive(label, f"http://127.0.0.1:{port}", people, args.clients, args.warmup,
                     args.poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="lawful worker processes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="measured, per set-up")
    parser.add_argument("--warmup", type=int, default=16, help="not measured, per set-up")
    parser.add_argument("--url", default=os.environ.get("LAWFUL_TEST_POSTGRES_URL"),
                        help="PostgreSQL (default $LAWFUL_TEST_POSTGRES_URL)")
    parser.add_argument("--redis", default=os.environ.get("LAWFUL_TEST_REDIS_URL"),
                        help="Redis broker (default $LAWFUL_TEST_REDIS_URL)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poll", type=float, default=POLL,
                        help="seconds between two GETs of a request being executed")
    parser.add_argument("--no-embedded", action="store_true",
                        help="skip the embedded default")
    parser.add_argument("--logs", type=Path, help="keep the servers' and workers' logs here")
    args = parser.parse_args(argv)
    if not args.url or not args.redis:
        parser.error("give --url and --redis, or set LAWFUL_TEST_POSTGRES_URL and "
                     "LAWFUL_TEST_REDIS_URL")
    for url in (args.url, args.redis):
        host = urlsplit(url.replace("+psycopg", "")).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error(f"{host}: the bench only runs against loopback services")

    kerf_url = kerf_database(args.url, args.customers, args.seed)
    people = emails(kerf_url, args.warmup + args.requests, args.seed)
    print(f"request service bench: {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, "
          f"poll every {args.poll * 1000:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="lawful-req-bench-") as tmp:
        logs = args.logs or Path(tmp) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            runs = [with_workers(args, kerf_url, people, logs, Path(tmp) / "redis-state")]
            if not args.no_embedded:
                runs.append(embedded(args, kerf_url, people, logs, Path(tmp) / "embedded"))
        except BaseException:
            keep = args.logs or Path(tempfile.mkdtemp(prefix="lawful-req-bench-logs-"))
            if keep != logs:
                for log in logs.iterdir():
                    (keep / log.name).write_bytes(log.read_bytes())
            print(f"failed: logs kept in {keep}", file=sys.stderr)
            raise
    for run in runs:
        report(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
