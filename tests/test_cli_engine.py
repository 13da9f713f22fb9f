"""The engine's commands as a user runs them: a real process on a real Kerf database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import KERF, ROOT


def lawful(*args: str, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lawful", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "LAWFUL_MANIFEST": str(KERF), **(env or {})})


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding kerf.db, made by `lawful demo-data` (the README's way)."""
    cwd = tmp_path_factory.mktemp("shop")
    made = lawful("demo-data", "--customers", "200", "--seed", "5", cwd=cwd)
    assert made.returncode == 0, made.stderr
    assert "customer" in made.stdout and (cwd / "kerf.db").exists()
    return cwd


def an_email(cwd: Path, offset: int) -> str:
    engine = sa.create_engine(f"sqlite:///{cwd / 'kerf.db'}")
    with engine.connect() as conn:
        email = conn.execute(sa.text(
            "SELECT c.email FROM customer c WHERE EXISTS (SELECT 1 FROM orders o WHERE "
            "o.customer_id = c.id) ORDER BY c.id LIMIT 1 OFFSET :o"), {"o": offset}).scalar()
    engine.dispose()
    assert isinstance(email, str)
    return email


def test_access_writes_a_package(shop: Path) -> None:
    email = an_email(shop, 0)
    result = lawful("access", "--email", email, "-o", "pkg.zip", cwd=shop)
    assert result.returncode == 0, result.stderr
    assert "shop.customer" in result.stdout
    with zipfile.ZipFile(shop / "pkg.zip") as archive:
        names = set(archive.namelist())
        data = json.loads(archive.read("data.json"))
        page = archive.read("index.html").decode()
    assert {"data.json", "index.html", "csv/shop.customer.csv"} <= names
    assert data["identities"]["email"] == [email]
    assert email in page and "General Tax Act" in page


def test_access_json_and_portability(shop: Path) -> None:
    email = an_email(shop, 1)
    full = json.loads(lawful("access", "--email", email, "--format", "json", cwd=shop).stdout)
    port = json.loads(lawful("access", "--email", email, "--portability", "--format", "json",
                             cwd=shop).stdout)
    assert port["kind"] == "portability" and full["kind"] == "access"
    full_tables = {t["table"] for t in full["tables"]}
    port_tables = {t["table"] for t in port["tables"]}
    # Portability leaves out what the person did not provide (visits, call recordings) and
    # what is not processed on consent or contract.
    assert port_tables < full_tables
    customer = next(t for t in port["tables"] if t["table"] == "customer")
    assert "password_hash" not in customer["rows"][0] and "email" in customer["rows"][0]


def test_erase_then_access_finds_only_what_the_law_keeps(shop: Path) -> None:
    email = an_email(shop, 2)
    dry = lawful("erase", "--email", email, "--dry-run", cwd=shop)
    assert dry.returncode == 0 and "dry run" in dry.stdout
    done = lawful("erase", "--email", email, "--format", "json", cwd=shop)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["verified"] is True and result["suppressed"] >= 1
    held = {t["table"] for t in result["tables"] if t["held"]}
    assert held <= {"invoice", "payment"}
    after = json.loads(lawful("access", "--email", email, "--format", "json", cwd=shop).stdout)
    assert {t["table"] for t in after["tables"]} <= {"invoice", "payment", "orders", "customer",
                                                    "quote", "address"}


def test_batch_erasure_from_a_file(shop: Path) -> None:
    emails = [an_email(shop, n) for n in range(10, 20)]
    (shop / "batch.txt").write_text("# erasure requests of the week\n" + "\n".join(emails))
    done = lawful("erase", "--emails-file", "batch.txt", "--format", "json", cwd=shop)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["persons"] == 10


@pytest.mark.parametrize(("args", "code", "message"), [
    (["rectify", "--email", "x@example.com", "--set", "customer.email=nope"], 2,
     "not an e-mail address"),
    (["rectify", "--email", "x@example.com", "--set", "customer.phone"], 2, "TABLE.FIELD=VALUE"),
    (["access", "--phone", "not a phone"], 2, "invalid identity"),
    (["access"], 2, "at least one identity"),
    (["erase", "--identity", "shoe_size=42"], 2, "KIND=VALUE"),
])
def test_bad_input_is_refused(shop: Path, args: list[str], code: int, message: str) -> None:
    result = lawful(*args, cwd=shop)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_database_down_is_one_clear_line(shop: Path) -> None:
    env = {"KERF_DATABASE_URL": "postgresql+psycopg://kerf:hunter2@127.0.0.1:1/kerf"}
    result = lawful("erase", "--email", "x@example.com", cwd=shop, env=env)
    assert result.returncode == 3
    assert "cannot be reached" in result.stderr and "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_rectify_and_restrict(shop: Path) -> None:
    email = an_email(shop, 30)
    fixed = lawful("rectify", "--email", email, "--set", "customer.job_title=CTO", cwd=shop)
    assert fixed.returncode == 0 and "1 row(s) in shop.customer" in fixed.stdout
    assert "Art. 19" in fixed.stdout
    assert lawful("restrict", "--email", email, cwd=shop).returncode == 0
    data = json.loads(lawful("access", "--email", email, "--format", "json", cwd=shop).stdout)
    assert data["restricted"] is True
    customer = next(t for t in data["tables"] if t["table"] == "customer")
    assert customer["rows"][0]["job_title"] == "CTO"


def test_fides_round_trip_and_reflect(shop: Path) -> None:
    exported = lawful("export", "fides", "-o", "kerf.fides.yml", cwd=shop)
    assert exported.returncode == 0, exported.stderr
    imported = lawful("import", "fides", "kerf.fides.yml", cwd=shop)
    assert imported.returncode == 0 and "customer" in imported.stdout
    drafted = lawful("systems", "reflect", "--url", "sqlite:///kerf.db", "--id", "shop",
                     cwd=shop)
    assert drafted.returncode == 0, drafted.stderr
    assert "identity: email" in drafted.stdout and "to: customer.id" in drafted.stdout
    bad = lawful("import", "fides", str(ROOT / "README.md"), cwd=shop)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
