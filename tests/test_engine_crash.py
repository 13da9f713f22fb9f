"""A run killed with SIGKILL and started again ends exactly where an uninterrupted run ends.

Two PostgreSQL databases (schemas), so a kill can land between them: the first committed with
its marker row, the second untouched. The restarted run resumes from the journal, skips the
first (its marker says done) and finishes the second: nothing is done twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lawful.demo.generate import generate
from lawful.manifest import load_manifest
from tests.conftest import KERF
from tests.kerfdb import backend_url, scalar, snapshot

CRM_TABLES = {"newsletter_subscriber", "support_ticket"}  # tables without foreign keys


def two_system_manifest(path: Path, shop_url: str, crm_url: str) -> Path:
    manifest = load_manifest(KERF)
    shop = manifest.systems[0]
    crm = shop.model_copy(deep=True)
    crm.id, crm.name, crm.url = "crm", "Kerf CRM", crm_url
    crm.tables = [t for t in crm.tables if t.name in CRM_TABLES]
    shop.url = shop_url
    shop.tables = [t for t in shop.tables if t.name not in CRM_TABLES]
    manifest.systems.append(crm)
    data = manifest.model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def lawful(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lawful", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def erase_and_kill(manifest: Path, email: str, env: dict[str, str], pause_at: str) -> None:
    proc = lawful(["erase", "--email", email, "-m", str(manifest)],
                  {**env, "LAWFUL_TEST_PAUSE_AT": pause_at, "LAWFUL_TEST_PAUSE_SECONDS": "60"})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the pause point is reached
    assert line.strip() == f"paused at {pause_at}", line + proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("pause_at", ["shop", "shop:before-commit", "crm:before-commit"])
def test_killed_run_resumes_to_the_same_state(tmp_path: Path, pause_at: str) -> None:
    urls = {name: backend_url("postgres", f"lawful_crash_{name}", tmp_path)
            for name in ("shop", "crm", "ref_shop", "ref_crm")}
    for url in urls.values():
        generate(url, 120, seed=11)
    email = scalar(urls["shop"], """SELECT c.email FROM customer c WHERE EXISTS
        (SELECT 1 FROM support_ticket s WHERE lower(s.customer_email) = c.email)
        AND EXISTS (SELECT 1 FROM newsletter_subscriber n WHERE n.email = c.email)
        ORDER BY c.id""")
    env = {**os.environ, "LAWFUL_SECRET_KEY": "crash-test-secret-key",
           "LAWFUL_STATE_DIR": str(tmp_path)}
    killed = two_system_manifest(tmp_path / "killed.yaml", urls["shop"], urls["crm"])
    reference = two_system_manifest(tmp_path / "ref.yaml", urls["ref_shop"], urls["ref_crm"])
    before_crm = snapshot(urls["crm"])

    erase_and_kill(killed, email, env, pause_at)
    markers = scalar(urls["shop"], "SELECT count(*) FROM lawful_journal")
    if pause_at == "shop":
        assert markers == 1  # the shop committed, with its marker
        assert snapshot(urls["crm"]) == before_crm  # the CRM was never touched
    elif pause_at == "shop:before-commit":
        assert markers == 0  # rolled back whole: nothing half-done
        assert snapshot(urls["shop"]) == snapshot(urls["ref_shop"])

    resumed = subprocess.run([sys.executable, "-m", "lawful", "erase", "--email", email,
                              "-m", str(killed), "--format", "json"], env=env, text=True,
                             capture_output=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    # the journal was written before anything was applied: the restart always resumes it
    assert '"resumed": true' in resumed.stdout
    straight = subprocess.run([sys.executable, "-m", "lawful", "erase", "--email", email,
                               "-m", str(reference), "--format", "json"],
                              env={**env, "LAWFUL_STATE_DIR": str(tmp_path / "ref")},
                              text=True, capture_output=True, timeout=120)
    assert straight.returncode == 0, straight.stderr
    assert '"verified": true' in resumed.stdout and '"verified": true' in straight.stdout
    for name in ("shop", "crm"):
        got, want = snapshot(urls[name]), snapshot(urls[f"ref_{name}"])
        assert got == want, f"{name} differs from the uninterrupted run"
    # each database committed this erasure exactly once
    assert scalar(urls["shop"], "SELECT count(*) FROM lawful_journal") == 1
    assert scalar(urls["crm"], "SELECT count(*) FROM lawful_journal") == 1
