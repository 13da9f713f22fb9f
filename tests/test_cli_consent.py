"""`lawful consent ...` as a user runs it: real processes, a real store, the Kerf database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_world import customer, lawful
from tests.conftest import KERF


@pytest.fixture
def env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**cli_env, "LAWFUL_SECRET_KEY": "cli-consent-secret-" + tmp_path.name}


RECORD = """
import json, sys
from lawful.consent.ledger import Ledger, Subject
from lawful.manifest import load_located
ledger = Ledger(load_located(sys.argv[1]).manifest)
for who, purpose, action, site in json.loads(sys.argv[2]):
    kind = "email" if "@" in who else "visitor_id"
    ledger.record(Subject.of(**{kind: who}), purpose, action, site=site, ip="192.0.2.7")
"""


def grant(env: dict[str, str], *events: tuple[str, str, str, str | None]) -> None:
    """Record events (who, purpose, action, site) through the ledger, in lawful's store,
    as the API would: the CLI reads what the API wrote."""
    done = subprocess.run([sys.executable, "-c", RECORD, str(KERF), json.dumps(events)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def test_state_history_and_withdraw(env: dict[str, str]) -> None:
    email = "Reader@Example.org"
    grant(env, (email, "newsletter", "granted", None),
          (email, "analytics-cookies", "denied", "shop.kerf.example"))
    state = lawful(env, "consent", "state", "--email", email, "--format", "json")
    assert state.returncode == 0, state.stderr
    by = {s["purpose"]: s for s in json.loads(state.stdout)}
    assert by["newsletter"]["status"] == "granted" and by["newsletter"]["version"] == 1
    assert by["analytics-cookies"]["status"] == "denied"
    assert by["testimonial"]["status"] == "none" and not by["newsletter"]["stale"]
    text = lawful(env, "consent", "state", "--email", email)
    assert text.returncode == 0 and "newsletter" in text.stdout and "granted" in text.stdout
    gone = lawful(env, "consent", "withdraw", "--email", email.lower(), "--purpose",
                  "newsletter", "--format", "json")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["action"] == "withdrawn"
    history = lawful(env, "consent", "history", "--email", email, "--format", "json")
    events = json.loads(history.stdout)
    assert [(e["purpose"], e["action"]) for e in events] == [
        ("newsletter", "granted"), ("analytics-cookies", "denied"),
        ("newsletter", "withdrawn")]
    assert (events[-1]["channel"], events[-1]["actor"]) == ("staff", "cli")
    assert all(e["subject"] == email.lower() for e in events)
    assert "192.0.2.7" not in history.stdout  # only its pseudonym is kept
    readable = lawful(env, "consent", "history", "--email", email)
    assert readable.returncode == 0 and "withdrawn" in readable.stdout
    assert "3 event(s)" in readable.stderr
    # Visitors too.
    grant(env, ("visitor-0001", "analytics-cookies", "granted", None))
    visitor = lawful(env, "consent", "state", "--visitor-id", "visitor-0001", "--format",
                     "json")
    assert {s["purpose"]: s["status"] for s in json.loads(visitor.stdout)}[
        "analytics-cookies"] == "granted"


def test_bad_input_exits_2_with_one_line(env: dict[str, str], tmp_path: Path) -> None:
    for args, said in (
        (("state",), "exactly one of --email or --visitor-id"),
        (("state", "--email", "a@b.example", "--visitor-id", "visitor-0001"), "exactly one"),
        (("state", "--email", "nobody"), "e-mail"),
        (("history", "--visitor-id", "bad id"), "visitor_id"),
        (("withdraw", "--email", "a@b.example", "--purpose", "horoscopes"), "newsletter"),
        (("may-contact", "--email", "a@b.example", "--purpose", "horoscopes"),
         "customer-marketing"),
        (("may-contact", "--email", "nobody", "--purpose", "newsletter"), "e-mail"),
        (("filter", str(tmp_path / "missing.txt"), "--purpose", "newsletter"),
         "cannot read"),
        (("export", "--site", " "), "--site"),
    ):
        done = lawful(env, "consent", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_may_contact_exits_0_or_1_with_the_reason(env: dict[str, str], shop: Path) -> None:
    email = "subscriber@example.org"
    no = lawful(env, "consent", "may-contact", "--email", email, "--purpose", "newsletter")
    assert no.returncode == 1 and "no consent recorded" in no.stdout, no.stderr
    grant(env, (email, "newsletter", "granted", None))
    yes = lawful(env, "consent", "may-contact", "--email", email.upper(), "--purpose",
                 "newsletter", "--format", "json")
    assert yes.returncode == 0, yes.stderr
    assert json.loads(yes.stdout)["allowed"] is True
    # The soft opt-in: a Kerf customer may get offers, a stranger may not.
    client = customer(shop)
    soft = lawful(env, "consent", "may-contact", "--email", client, "--purpose",
                  "customer-marketing")
    assert soft.returncode == 0 and "soft opt-in" in soft.stdout, soft.stderr
    stranger = lawful(env, "consent", "may-contact", "--email", "stranger@example.org",
                      "--purpose", "customer-marketing", "--format", "json")
    assert stranger.returncode == 1
    assert "not an existing customer" in json.loads(stranger.stdout)["reason"]


def test_do_not_contact_and_filter(env: dict[str, str], shop: Path, tmp_path: Path) -> None:
    consented, listed, client = "yes@example.org", "Blocked@Example.org", customer(shop, 1)
    grant(env, (consented, "newsletter", "granted", None),
          (listed.lower(), "newsletter", "granted", None))
    blocked = tmp_path / "blocked.txt"
    blocked.write_text(f"# complaints of May\n{listed}\n\n{listed.lower()}\nother@x.example\n")
    added = lawful(env, "consent", "do-not-contact", str(blocked), "--reason", "complaint")
    assert added.returncode == 0, added.stderr
    assert "2 address(es) added" in added.stdout
    again = lawful(env, "consent", "do-not-contact", str(blocked))
    assert again.returncode == 0 and "0 address(es) added" in again.stdout
    broken = tmp_path / "broken.txt"
    broken.write_text("fine@example.org\nnot an address\n")
    refused = lawful(env, "consent", "do-not-contact", str(broken))
    assert refused.returncode == 2 and "2: 'not an address'" in refused.stderr
    assert lawful(env, "consent", "may-contact", "--email", "fine@example.org", "--purpose",
                  "customer-marketing").stdout.count("do-not-contact") == 0  # nothing added
    why = lawful(env, "consent", "may-contact", "--email", listed, "--purpose", "newsletter")
    assert why.returncode == 1 and "do-not-contact" in why.stdout and "complaint" in \
        why.stdout
    imported = tmp_path / "import.txt"
    imported.write_text("\n".join([consented, listed, "never@example.org", "not-an-address",
                                   client]) + "\n")
    kept = lawful(env, "consent", "filter", str(imported), "--purpose", "newsletter")
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.splitlines() == [consented]
    assert "4 removed" in kept.stderr
    offers = lawful(env, "consent", "filter", str(imported), "--purpose",
                    "customer-marketing", "--format", "json")
    assert json.loads(offers.stdout) == {"allowed": [client], "removed": 4}
    # A CSV with an email column is read by that column.
    table = tmp_path / "list.csv"
    table.write_text(f"name,email\nYes,{consented}\nNo,{listed}\n")
    from_csv = lawful(env, "consent", "filter", str(table), "--purpose", "newsletter")
    assert from_csv.stdout.splitlines() == [consented] and "1 removed" in from_csv.stderr
    # A purpose-scoped entry blocks that purpose only.
    scoped = tmp_path / "scoped.txt"
    scoped.write_text(f"{consented}\n")
    assert lawful(env, "consent", "do-not-contact", str(scoped), "--purpose",
                  "customer-marketing").returncode == 0
    assert lawful(env, "consent", "may-contact", "--email", consented, "--purpose",
                  "newsletter").returncode == 0
    assert lawful(env, "consent", "do-not-contact", str(scoped), "--purpose",
                  "horoscopes").returncode == 2


def test_export_one_site(env: dict[str, str], tmp_path: Path) -> None:
    grant(env, ("visitor-0001", "analytics-cookies", "granted", "shop.kerf.example"),
          ("visitor-0002", "analytics-cookies", "denied", "shop.kerf.example"),
          ("visitor-0003", "analytics-cookies", "granted", "other.example"))
    as_json = lawful(env, "consent", "export", "--site", "shop.kerf.example")
    assert as_json.returncode == 0, as_json.stderr
    events = json.loads(as_json.stdout)
    assert [e["subject"] for e in events] == ["visitor-0001", "visitor-0002"]
    assert {e["site"] for e in events} == {"shop.kerf.example"}
    assert "2 event(s)" in as_json.stderr
    target = tmp_path / "out" / "export.csv"
    as_csv = lawful(env, "consent", "export", "--site", "shop.kerf.example", "--format",
                    "csv", "-o", str(target))
    assert as_csv.returncode == 0 and as_csv.stdout == "", as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["subject"] for r in rows] == ["visitor-0001", "visitor-0002"]
    assert "visitor-0003" not in target.read_text()
    none = lawful(env, "consent", "export", "--site", "nobody.example", "--format", "csv")
    assert none.returncode == 0 and none.stdout.strip() == "id"
