"""`lawful retention run` killed with SIGKILL and started again ends exactly where a run never
interrupted ends, and its proof covers every row once (PostgreSQL, real process kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lawful.demo.generate import generate
from tests.conftest import KERF
from tests.kerfdb import backend_url, scalar, snapshot

TODAY = "2025-06-01"


def lawful(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lawful", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("pause_at", ["retention:web_visit",
                                      "retention:web_visit:before-commit"])
def test_killed_retention_run_resumes_to_the_same_state(tmp_path: Path, pause_at: str) -> None:
    urls = {name: backend_url("postgres", f"ret_crash_{name}", tmp_path)
            for name in ("killed", "straight")}
    for url in urls.values():
        generate(url, 150, seed=13)
    base = {**os.environ, "LAWFUL_SECRET_KEY": "retention-crash-key", "LAWFUL_TODAY": TODAY,
            "LAWFUL_MANIFEST": str(KERF)}
    killed = {**base, "KERF_DATABASE_URL": urls["killed"],
              "LAWFUL_STATE_DIR": str(tmp_path / "killed")}
    straight = {**base, "KERF_DATABASE_URL": urls["straight"],
                "LAWFUL_STATE_DIR": str(tmp_path / "straight")}
    visits = scalar(urls["killed"], "SELECT count(*) FROM web_visit")

    proc = lawful(["retention", "run", "--batch-size", "20", "--no-progress"],
                  {**killed, "LAWFUL_TEST_PAUSE_AT": pause_at,
                   "LAWFUL_TEST_PAUSE_SECONDS": "60"})
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()  # blocks until the pause point
    assert line.strip() == f"paused at {pause_at}", line + proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    left = scalar(urls["killed"], "SELECT count(*) FROM web_visit")
    batches = scalar(urls["killed"], "SELECT count(*) FROM lawful_retention_batch "
                                     "WHERE tbl = 'shop.web_visit'")
    if pause_at.endswith("before-commit"):
        assert left == visits and batches == 0  # the open batch rolled back whole
    else:
        # the first batch done, with its proof; the second, started as soon as the first had
        # picked its keys (two batches in flight), may have committed too
        assert batches in (1, 2) and left == visits - 20 * batches

    def finish(env: dict[str, str]) -> dict[str, object]:
        done = subprocess.run([sys.executable, "-m", "lawful", "retention", "run",
                               "--batch-size", "20", "--format", "json"], env=env, text=True,
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    resumed = finish(killed)
    reference = finish(straight)
    assert snapshot(urls["killed"]) == snapshot(urls["straight"])
    if not pause_at.endswith("before-commit"):
        assert resumed["resumed"]  # the killed run's proof was carried into lawful's store
    # every deleted visit is in exactly one batch record, in both databases
    for name in ("killed", "straight"):
        assert scalar(urls[name], "SELECT sum(row_count) FROM lawful_retention_batch "
                                  "WHERE tbl = 'shop.web_visit'") == visits - scalar(
            urls["straight"], "SELECT count(*) FROM web_visit")
    journal = subprocess.run([sys.executable, "-m", "lawful", "retention", "journal",
                              "--format", "json"], env=killed, text=True, capture_output=True,
                             timeout=120)
    records = [r for r in json.loads(journal.stdout) if r["table"] == "shop.web_visit"]
    assert sum(r["rows"] for r in records) == visits - scalar(
        urls["killed"], "SELECT count(*) FROM web_visit")
    assert json.loads(json.dumps(reference))["done"] > 0
    # idempotent: nothing left to do
    assert finish(killed)["done"] == 0
