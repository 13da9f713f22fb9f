"""Real `lawful worker` processes executing requests over Redis and RabbitMQ.

The test process is the web side: it submits and verifies requests with `Service`, which hands
them to the broker; separate `lawful worker` processes execute them. Both share the app store
(a fresh PostgreSQL schema, or a SQLite file), the secret and the state directory, and the
Kerf demo database (a SQLite file).

Each test has its own task queue (LAWFUL_TASK_QUEUE), and the Redis tests their own Redis
database number, so parallel runs never take each other's tasks. Timeouts are failure guards,
never measurements; worker logs are printed when a test fails.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from lawful.demo.generate import generate
from lawful.engine import state
from lawful.manifest import load_manifest
from lawful.requests import mail, packages
from lawful.requests.kinds import Status
from lawful.requests.workflow import Service
from lawful.store import audit, db
from lawful.store.models import Package, Request
from tests.conftest import KERF, service_url
from tests.kerfdb import scalar, snapshot, store_schema

SECRET = "worker-test-secret-key-0123456789"
LAWFUL = [sys.executable, "-m", "lawful"]
CODE = re.compile(r"code is (\d{6})")
LINK = re.compile(r"https?://\S+/v1/packages/\S+")
READY_WITHIN = 90.0  # seconds for a worker to start: a failure guard, not a measurement
DONE_WITHIN = 120.0  # seconds for a request to complete once a worker runs
PAUSE_AT = re.compile(r"paused at (\S+)")


# --- worker processes ------------------------------------------------------------------------

class Worker:
    """A `lawful worker` subprocess; its output (stdout and stderr) is collected by a thread
    into `lines` and a log file."""

    def __init__(self, name: str, env: dict[str, str], log: Path, *args: str,
                 manifest: Path = KERF) -> None:
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [*LAWFUL, "worker", "--manifest", str(manifest), *args], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout, log),
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str], log: Path) -> None:
        with log.open("w") as out:
            for line in stream:
                out.write(line)
                out.flush()
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = READY_WITHIN) -> str:
        """The first output line containing `text`; fails if the worker exits first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"{self.name} exited ({self.proc.returncode}) "
                                         f"before printing {text!r}:\n{self.log}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name} printed no {text!r} within "
                                         f"{timeout:.0f} s:\n{self.log}")
                self._changed.wait(min(left, 1.0))

    def ready(self) -> Worker:
        self.wait_for(" ready.")
        return self

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, nothing cleaned up."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._reader.join(timeout=5)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Starts workers; stops every one afterwards and prints their logs (shown on failure)."""
    started: list[Worker] = []

    def start(name: str, env: dict[str, str], *args: str, manifest: Path = KERF) -> Worker:
        worker = Worker(name, env, tmp_path / f"{name}.log", *args, manifest=manifest)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        for worker in started:
            print(f"----- {worker.name} (exit {worker.proc.returncode}) -----\n{worker.log}")


# --- brokers, stores and the Kerf world ------------------------------------------------------

@dataclass
class Broker:
    url: str
    queue: str


def redis_broker() -> Iterator[Broker]:
    """Redis, on a database number of its own and a queue of its own; emptied afterwards.

    kombu keeps unacknowledged messages in one hash per Redis database, whatever the queue: a
    worker with a short visibility timeout would give back other runs' running tasks too."""
    import redis

    base = service_url("redis")
    parts = urlsplit(base)
    number = 1 + secrets.randbelow(15)
    url = parts._replace(path=f"/{number}").geturl()
    queue = f"lawful-test-{secrets.token_hex(6)}"
    try:
        yield Broker(url, queue)
    finally:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"*{queue}*", count=1000):
            client.delete(key)
        client.close()


def amqp_broker() -> Iterator[Broker]:
    """RabbitMQ, with a queue of its own, deleted afterwards."""
    from kombu import Connection

    url = service_url("amqp")
    queue = f"lawful-test-{secrets.token_hex(6)}"
    try:
        yield Broker(url, queue)
    finally:
        with Connection(url, connect_timeout=10) as conn:
            for what in ("queue_delete", "exchange_delete"):
                # a failed delete closes its channel: one channel each
                with contextlib.suppress(Exception), conn.channel() as channel:
                    getattr(channel, what)(queue)


def pg_store() -> Iterator[str]:
    """The app store on a fresh PostgreSQL schema; dropped afterwards."""
    with store_schema("worker") as url:
        yield url


@dataclass
class World:
    """The web side (this process, through `service`) and the settings workers start with."""

    tmp: Path
    kerf_url: str
    env: dict[str, str]
    service: Service = field(repr=False)

    def worker_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def person(self) -> str:
        """A customer known under every identity: tickets, visits, orders and invoices."""
        email = scalar(self.kerf_url, """
            SELECT c.email FROM customer c
            WHERE EXISTS (SELECT 1 FROM support_ticket s WHERE lower(s.customer_email) = c.email)
              AND EXISTS (SELECT 1 FROM web_visit w WHERE w.customer_id = c.id)
              AND EXISTS (SELECT 1 FROM invoice i WHERE i.customer_id = c.id)
            ORDER BY c.id LIMIT 1""")
        assert isinstance(email, str)
        return email

    def verified(self, kind: str, email: str) -> str:
        """Submitted and verified with the code from the outbox, as the requester would."""
        request, token = self.service.submit(kind, email)
        with db.session() as s:
            codes = [CODE.search(m.body) for m in mail.show(s, None)
                     if m.request_id == request.id]
        found = [c.group(1) for c in codes if c]
        assert found, "no code e-mail for the request"
        self.service.verify(request.id, token, found[-1])
        return request.id

    def wait_done(self, request_id: str, worker: Worker,
                  timeout: float = DONE_WITHIN) -> Request:
        """The request once completed (or refused); fails if the worker exits first."""
        deadline = time.monotonic() + timeout
        while True:
            found = row(request_id)
            if found.status in (Status.completed.value, Status.refused.value):
                return found
            if worker.proc.poll() is not None:
                raise AssertionError(f"{worker.name} exited ({worker.proc.returncode}) with "
                                     f"the request {found.status}:\n{worker.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the request is still {found.status} (error: "
                                     f"{found.error}) after {timeout:.0f} s")
            time.sleep(0.2)


def row(request_id: str) -> Request:
    with db.session() as s:
        found = s.get(Request, request_id)
        assert found is not None
        return found


def make_world(tmp: Path, monkeypatch: pytest.MonkeyPatch, broker: Broker,
               store_url: str | None) -> World:
    kerf_url = f"sqlite:///{tmp / 'kerf.db'}"
    generate(kerf_url, 120, seed=11)
    settings = {
        "KERF_DATABASE_URL": kerf_url, "LAWFUL_MANIFEST": str(KERF),
        "LAWFUL_STATE_DIR": str(tmp / "state"), "LAWFUL_SECRET_KEY": SECRET,
        "LAWFUL_BROKER_URL": broker.url, "LAWFUL_TASK_QUEUE": broker.queue,
        "LAWFUL_DATABASE_URL": store_url or f"sqlite:///{tmp / 'state' / 'lawful.db'}"}
    for var in ("LAWFUL_SMTP_URL", "LAWFUL_WEBHOOK_SECRET", "LAWFUL_TEST_PAUSE_AT",
                "LAWFUL_TEST_PAUSE_SECONDS", "LAWFUL_TASK_VISIBILITY"):
        monkeypatch.delenv(var, raising=False)
    for var, value in settings.items():
        monkeypatch.setenv(var, value)
    (tmp / "state").mkdir(exist_ok=True)
    service = Service(load_manifest(KERF))  # migrates the store before any worker starts
    return World(tmp, kerf_url, dict(os.environ), service)


@pytest.fixture
def redis_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Redis broker, PostgreSQL app store."""
    for broker in redis_broker():
        for store in pg_store():
            yield make_world(tmp_path, monkeypatch, broker, store)


@pytest.fixture
def amqp_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """RabbitMQ broker, the app store on SQLite (a file both processes open)."""
    for broker in amqp_broker():
        yield make_world(tmp_path, monkeypatch, broker, None)


# --- the tests -------------------------------------------------------------------------------

def access_round_trip(world: World, workers: Callable[..., Worker]) -> None:
    worker = workers("worker", world.env).ready()
    email = world.person()
    request_id = world.verified("access", email)
    assert row(request_id).status == Status.in_progress.value  # handed to the broker
    done = world.wait_done(request_id, worker)
    assert done.status == Status.completed.value, done.error
    worker.wait_for("succeeded")  # the worker ran it, not this process
    with db.session() as s:
        assert s.get(Package, request_id) is not None
        links = [LINK.search(m.body) for m in mail.show(s, None) if m.request_id == request_id]
    found = [link.group(0) for link in links if link]
    assert len(found) == 1, "one completion e-mail with the download link"
    query = parse_qs(urlsplit(found[0]).query)
    with db.transaction() as s:
        data = packages.fetch(s, request_id, int(query["expires"][0]),
                              query["signature"][0], state.now())
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        names = package.namelist()
        text = "\n".join(package.read(n).decode("utf-8", "replace") for n in names)
    assert any(n.endswith(".json") for n in names) and any(n.endswith(".csv") for n in names)
    assert email in text
    customer_id = scalar(world.kerf_url, "SELECT id FROM customer WHERE email = :e", e=email)
    invoices = scalar(world.kerf_url, "SELECT count(*) FROM invoice WHERE customer_id = :c",
                      c=customer_id)
    assert invoices > 0 and "invoice" in text


def test_access_request_completed_by_a_worker_over_redis(
        redis_world: World, workers: Callable[..., Worker]) -> None:
    access_round_trip(redis_world, workers)


def test_access_request_completed_by_a_worker_over_rabbitmq(
        amqp_world: World, workers: Callable[..., Worker]) -> None:
    access_round_trip(amqp_world, workers)


@pytest.mark.parametrize("pause_at", ["shop:before-commit", "shop"])
def test_worker_killed_mid_erasure_request_completes_on_a_new_worker(
        redis_world: World, workers: Callable[..., Worker], pause_at: str) -> None:
    """The first worker is killed with SIGKILL inside the engine (with the shop's
    transaction open, or just after it committed); the message, never acknowledged, goes back
    to the queue after the visibility timeout and a second worker finishes the request. The
    Kerf database ends exactly as after an uninterrupted erasure, and the journal verifies."""
    world = redis_world
    reference = world.tmp / "reference.db"
    shutil.copy(world.tmp / "kerf.db", reference)
    email = world.person()
    customer_id = scalar(world.kerf_url, "SELECT id FROM customer WHERE email = :e", e=email)
    invoices = ids(world.kerf_url, "SELECT id FROM invoice WHERE customer_id = :c",
                   c=customer_id)
    assert invoices, "the person has invoices"
    before = snapshot(world.kerf_url)

    first = workers("worker-1", world.worker_env(
        LAWFUL_TEST_PAUSE_AT=pause_at, LAWFUL_TEST_PAUSE_SECONDS="600")).ready()
    request_id = world.verified("erasure", email)
    assert row(request_id).status == Status.verified.value  # an erasure waits for staff
    world.service.execute(request_id, "staff:test")
    paused = PAUSE_AT.search(first.wait_for("paused at ", DONE_WITHIN))
    assert paused is not None and paused.group(1) == pause_at
    first.kill()
    assert row(request_id).status == Status.in_progress.value

    second = workers("worker-2", world.worker_env(LAWFUL_TASK_VISIBILITY="3")).ready()
    done = world.wait_done(request_id, second)
    assert done.status == Status.completed.value, done.error
    result = Service.result(done)
    assert result is not None and result["verified"] is True

    # the same end state as an erasure nobody interrupted (its own store, the same secret)
    straight = subprocess.run(
        [*LAWFUL, "erase", "--email", email, "--manifest", str(KERF), "--format", "json"],
        env={k: v for k, v in world.env.items()
             if k not in ("LAWFUL_DATABASE_URL", "LAWFUL_BROKER_URL")}
        | {"KERF_DATABASE_URL": f"sqlite:///{reference}",
           "LAWFUL_STATE_DIR": str(world.tmp / "reference-state")},
        text=True, capture_output=True, timeout=DONE_WITHIN)
    assert straight.returncode == 0, straight.stderr
    after = snapshot(world.kerf_url)
    assert after == snapshot(f"sqlite:///{reference}")

    # and that state is right: the person's values gone, invoices held, neighbours untouched
    assert scalar(world.kerf_url, "SELECT count(*) FROM customer WHERE email = :e",
                  e=email) == 0
    assert scalar(world.kerf_url, "SELECT count(*) FROM support_ticket "
                  "WHERE lower(customer_email) = :e", e=email) == 0
    assert ids(world.kerf_url, "SELECT id FROM invoice WHERE customer_id = :c",
               c=customer_id) == invoices  # kept for the tax law
    assert any(k["table"] == "shop.invoice" for k in result["kept"])
    others = {k: v for k, v in before["customer"].items() if k != (customer_id,)}
    assert {k: after["customer"][k] for k in others} == others

    # executed once: one start by staff, one completion, and an intact journal
    with db.session() as s:
        actions = [e.action for e in audit.entries(s, request_id)]
        verdict = audit.verify(s)
    assert actions.count("request.completed") == 1
    assert actions.count("request.started") == 1
    assert verdict.ok, verdict.problems


def ids(url: str, sql: str, **params: object) -> set[object]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = set(conn.execute(sa.text(sql), params).scalars())
    engine.dispose()
    return found


def test_a_task_whose_manifest_cannot_be_loaded_is_retried_until_it_can(
        redis_world: World, workers: Callable[..., Worker]) -> None:
    """The manifest is edited while the worker runs and is broken when a task arrives: the
    task is tried again later (not acknowledged as done and forgotten), and completes once the
    manifest is whole again."""
    world = redis_world
    manifest = world.tmp / "lawful.yaml"
    shutil.copy(KERF, manifest)
    worker = workers("worker", world.worker_env(LAWFUL_MANIFEST=str(manifest)),
                     manifest=manifest).ready()
    manifest.write_text("lawful: 1\norganisation: [half-written\n")
    request_id = world.verified("access", world.person())
    worker.wait_for("retry: Retry in", DONE_WITHIN)
    assert row(request_id).status == Status.in_progress.value
    shutil.copy(KERF, manifest)
    done = world.wait_done(request_id, worker)
    assert done.status == Status.completed.value, done.error
    with db.session() as s:
        actions = [e.action for e in audit.entries(s, request_id)]
    assert actions.count("request.completed") == 1 and "request.failed" not in actions


def test_a_task_that_keeps_failing_records_why_on_the_request(
        redis_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once its tries are spent, the request says why (staff can then execute it again)."""
    from lawful import tasks
    from lawful.manifest.errors import ManifestError, Problem

    world = redis_world
    request_id = world.verified("access", world.person())  # queued; no worker runs it

    def broken() -> Service:
        raise ManifestError([Problem("lawful.yaml", 2, 15, "organisation",
                                     "a mapping is expected")])

    monkeypatch.setattr(tasks, "_service", broken)
    outcome = tasks.execute.apply(args=[request_id], retries=tasks.RETRIES)
    assert outcome.failed()
    failed = row(request_id)
    assert failed.status == Status.in_progress.value
    assert failed.error is not None and "organisation: a mapping is expected" in failed.error
    with db.session() as s:
        assert "request.failed" in [e.action for e in audit.entries(s, request_id)]
    restarted = world.service.execute(request_id, "staff:test")  # a failed one can restart
    assert restarted.status == Status.in_progress.value


def test_worker_without_a_broker_exits_2_with_the_reason(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LAWFUL_BROKER_URL"}
    env["LAWFUL_STATE_DIR"] = str(tmp_path)
    done = subprocess.run([*LAWFUL, "worker", "--manifest", str(KERF)], env=env, text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "LAWFUL_BROKER_URL" in done.stderr and "Redis or RabbitMQ" in done.stderr
    assert "Traceback" not in done.stderr
