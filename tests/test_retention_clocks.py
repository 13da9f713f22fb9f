"""The clock arithmetic and its inverse, for any day and period (hypothesis), and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lawful.engine.clock import add, financial_year_end
from lawful.manifest.duration import Duration
from lawful.retention import clocks
from tests.conftest import KERF

days = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 12, 31))
durations = st.builds(Duration, st.integers(0, 40),
                      st.sampled_from(["days", "weeks", "months", "years"]))
year_ends = st.sampled_from(["12-31", "03-31", "06-30", "02-28", "09-30"])


@given(days, durations, days)
def test_due_exactly_the_day_after_the_period(event: dt.date, keep: Duration, today: dt.date
                                              ) -> None:
    assert clocks.is_due(event, keep, today) == (add(event, keep) < today)


@given(days, durations, days, st.none() | year_ends)
def test_cutoff_is_the_exact_inverse(event: dt.date, keep: Duration, today: dt.date,
                                     year_end: str | None) -> None:
    """The database compares the event column with one cutoff day: it must agree with the
    calendar for every event day."""
    last = clocks.cutoff(keep, today, year_end)
    due = clocks.is_due(event, keep, today, year_end)
    assert due == (last is not None and event <= last)


@given(days, durations, year_ends)
def test_financial_year_end_clock(event: dt.date, keep: Duration, year_end: str) -> None:
    first = clocks.due_day(event, keep, year_end)
    assert first == add(financial_year_end(event, year_end), keep) + dt.timedelta(days=1)
    assert not clocks.is_due(event, keep, first - dt.timedelta(days=1), year_end)
    assert clocks.is_due(event, keep, first, year_end)


@given(days)
def test_immediately_means_the_day_itself(event: dt.date) -> None:
    assert clocks.due_day(event, None) == event
    assert clocks.cutoff(None, event) == event


def lawful(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lawful", *args], text=True,
                          capture_output=True, timeout=300, cwd=tmp,
                          env={**os.environ, "LAWFUL_STATE_DIR": str(tmp / "state"),
                               "LAWFUL_SECRET_KEY": "retention-cli-key", **env})


def test_cli_plan_run_hold_release_journal(tmp_path: Path) -> None:
    db = tmp_path / "kerf.db"
    env = {"KERF_DATABASE_URL": f"sqlite:///{db}", "LAWFUL_MANIFEST": str(KERF)}
    assert lawful(["demo-data", "--customers", "60", "--url", env["KERF_DATABASE_URL"]],
                  tmp_path).returncode == 0
    bad = lawful(["retention", "plan", "--today", "2025-13-01"], tmp_path, **env)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
    plan = lawful(["retention", "plan", "--within", "30", "--format", "json"], tmp_path,
                  **env, LAWFUL_TODAY="2025-01-01")
    assert plan.returncode == 0, plan.stderr
    due = {(b["rule"], b["table"], b["field"]): b["due"] for b in json.loads(plan.stdout)[
        "bindings"]}
    dry = lawful(["retention", "run", "--dry-run", "--today", "2025-01-01", "-f", "json"],
                 tmp_path, **env)
    assert json.loads(dry.stdout)["done"] == 0
    hold = lawful(["retention", "hold", "--email", "nobody@example.com", "--reason",
                   "claim 7"], tmp_path, **env)
    assert hold.returncode == 0 and "claim 7" in hold.stdout
    done = lawful(["retention", "run", "--today", "2025-01-01", "-f", "json"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {(b["rule"], b["table"], b["field"]): b["done"] for b in result["bindings"]} == due
    again = lawful(["retention", "run", "--today", "2025-01-01", "-f", "json"], tmp_path, **env)
    assert json.loads(again.stdout)["done"] == 0
    listed = lawful(["retention", "journal", "--run", result["run_id"]], tmp_path, **env)
    assert listed.stdout.count("sha256") == sum(b["batches"] for b in result["bindings"])
    assert lawful(["retention", "release", "--email", "nobody@example.com"], tmp_path,
                  **env).returncode == 0
    assert "no legal holds" in lawful(["retention", "holds"], tmp_path, **env).stderr


def test_the_beat_task_enforces_retention_once_a_day(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`lawful worker --beat` runs the `lawful.retention` task daily: it deletes what is due,
    and run again the same day it finds nothing more (idempotent)."""
    from lawful import tasks
    from lawful.demo.generate import generate

    shop = tmp_path / "kerf.db"
    generate(f"sqlite:///{shop}", 30, 4)
    monkeypatch.setenv("KERF_DATABASE_URL", f"sqlite:///{shop}")
    monkeypatch.setenv("LAWFUL_MANIFEST", str(KERF))
    monkeypatch.setenv("LAWFUL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAWFUL_SECRET_KEY", "beat-test-secret-key")
    monkeypatch.setenv("LAWFUL_TODAY", "2026-11-22")
    assert "enforce-retention" in tasks.celery_app.conf.beat_schedule
    tasks._service.cache_clear()

    def visits() -> int:
        with sqlite3.connect(shop) as conn:
            return int(conn.execute("SELECT count(*) FROM web_visit").fetchone()[0])

    before = visits()
    try:
        first = tasks.retention.run()
        after = visits()
        second = tasks.retention.run()
    finally:
        tasks._service.cache_clear()
    assert first["done"] > 0 and after < before
    assert second["done"] == 0 and visits() == after
