"""The request service's commands as a user runs them: real processes, a real store."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.cli_world import customer, lawful
from tests.conftest import free_port


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env


def test_a_request_from_intake_to_answer(env: dict[str, str], shop: Path) -> None:
    email = customer(shop)
    made = lawful(env, "requests", "submit", "--type", "access", "--email", email,
                  "--format", "json")
    assert made.returncode == 0, made.stderr
    request = json.loads(made.stdout)
    assert request["status"] == "awaiting_verification" and len(request["token"]) > 20
    kept = json.loads(lawful(env, "outbox", "--format", "json").stdout)
    assert kept[-1]["to"] == email and re.search(r"code is \d{6}", kept[-1]["body"])
    listed = json.loads(lawful(env, "requests", "list", "--format", "json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(request["id"],
                                                         "awaiting_verification")]
    verified = lawful(env, "requests", "verify", request["id"], "--note",
                      "identity card shown at the desk")
    assert verified.returncode == 0 and "completed" in verified.stdout, verified.stderr
    shown = json.loads(lawful(env, "requests", "show", request["id"], "--format",
                              "json").stdout)
    assert shown["status"] == "completed" and shown["verified_by"] == "cli"
    assert shown["result"]["summary"][0].endswith("table(s)")
    again = lawful(env, "requests", "verify", request["id"], "--note", "twice")
    assert again.returncode == 2 and "completed" in again.stderr


def test_a_fee_holds_an_access_request_until_paid(env: dict[str, str], shop: Path) -> None:
    made = json.loads(lawful(env, "requests", "submit", "--type", "access", "--email",
                             customer(shop, 2), "--format", "json").stdout)
    rid = made["id"]
    charged = lawful(env, "requests", "fee", rid, "--amount", "10 EUR", "--reason",
                     "weekly copies of the same data")
    assert charged.returncode == 0, charged.stderr
    held = lawful(env, "requests", "verify", rid, "--note", "identity card at the desk")
    assert held.returncode == 0 and "verified" in held.stdout, held.stderr
    refused = lawful(env, "requests", "execute", rid)
    assert refused.returncode == 2 and "unpaid" in refused.stderr
    paid = lawful(env, "requests", "fee-paid", rid, "--note", "paid at the desk")
    assert paid.returncode == 0 and "completed" in paid.stdout, paid.stderr


def test_bad_input_is_refused_with_one_line(env: dict[str, str]) -> None:
    bad = lawful(env, "requests", "submit", "--type", "access", "--email", "nobody")
    assert bad.returncode == 2 and "e-mail" in bad.stderr and "Traceback" not in bad.stderr
    unknown = lawful(env, "requests", "show", "f" * 32)
    assert unknown.returncode == 2 and "no such request" in unknown.stderr
    purpose = lawful(env, "requests", "submit", "--type", "consent_withdrawal", "--email",
                     "a@b.example", "--detail", "purpose=horoscopes")
    assert purpose.returncode == 2 and "newsletter" in purpose.stderr


def test_audit_verify_finds_an_edited_entry(env: dict[str, str], shop: Path) -> None:
    lawful(env, "requests", "submit", "--type", "erasure", "--email", customer(shop, 1))
    ok = lawful(env, "audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    store = Path(env["LAWFUL_STATE_DIR"]) / "lawful.db"
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE audit SET detail = '{}' WHERE seq = 2")
    broken = lawful(env, "audit", "verify", "--format", "json")
    assert broken.returncode == 1
    assert "entry 2 was altered" in json.loads(broken.stdout)["problems"]


def test_keys_are_shown_once_and_stored_hashed(env: dict[str, str]) -> None:
    made = lawful(env, "keys", "create", "--name", "Ann", "--role", "privacy_lead")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert re.fullmatch(r"lk_[0-9a-f]{12}_[\w-]{40,}", key)
    store = Path(env["LAWFUL_STATE_DIR"]) / "lawful.db"
    with sqlite3.connect(store) as conn:
        stored = conn.execute("SELECT secret_hash FROM api_key").fetchone()[0]
    assert key.split("_", 2)[2] not in stored and stored.startswith("$argon2")
    assert "privacy_lead" in lawful(env, "keys", "list").stdout
    assert lawful(env, "keys", "revoke", key.split("_")[1]).returncode == 0
    assert "revoked" in lawful(env, "keys", "list").stdout



def test_serve_demo_answers_the_printed_walkthrough(tmp_path: Path) -> None:
    """`lawful serve --demo` from an empty directory: builds the demo, prints a key and a
    customer to try, and the steps it prints work."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAWFUL_", "KERF_"))}
    server = subprocess.Popen([sys.executable, "-m", "lawful", "serve", "--demo", "--port",
                               str(port)], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/v1/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        assert httpx.get(f"{base}/openapi.json").json()["paths"]
        made = httpx.post(f"{base}/v1/requests", json={"type": "access",
                                                       "email": _printed_customer(tmp_path)})
        assert made.status_code == 201, made.text
        outbox = lawful({**env}, "outbox", "--format", "json", cwd=tmp_path)
        code = re.search(r"code is (\d{6})", json.loads(outbox.stdout)[-1]["body"])
        assert code, outbox.stderr
        done = httpx.post(f"{base}/v1/requests/{made.json()['id']}/verify",
                          json={"code": code.group(1)},
                          headers={"X-Request-Token": made.json()["token"]}, timeout=60)
        assert done.status_code == 200 and done.json()["download"].startswith(base)
        assert httpx.get(done.json()["download"]).status_code == 200
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "Authorization: Bearer lk_" in output and "/docs" in output


def _printed_customer(cwd: Path) -> str:
    with sqlite3.connect(cwd / ".lawful" / "demo" / "kerf.db") as conn:
        return str(conn.execute("SELECT email FROM customer WHERE email IS NOT NULL ORDER BY "
                                "id LIMIT 1").fetchone()[0])
