"""The command-line contract of DESIGN.md, run as a user runs it: a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lawful.checks import RULES
from tests.conftest import KERF, SEEDS


def lawful(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lawful", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_check_clean_manifest_exits_zero() -> None:
    result = lawful("check", "--manifest", str(KERF))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "clean" in result.stderr


def test_check_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    data = yaml.safe_load(KERF.read_text())
    data["rights"]["response_time"] = "60 days"
    bad = tmp_path / "lawful.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    result = lawful("check", "--format", "json", "--manifest", str(bad))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    (finding,) = doc["findings"]
    assert finding["rule"] == "response-too-long" and finding["severity"] == "error"
    assert finding["article"] == "GDPR Art. 12(3)" and finding["line"] > 1
    assert doc["summary"] == {"error": 1, "warning": 0, "info": 0}


def test_warnings_alone_exit_zero(tmp_path: Path) -> None:
    data = yaml.safe_load(KERF.read_text())
    del data["notice"]["effective"]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = lawful("check", "-m", str(path))
    assert result.returncode == 0
    assert "notice-undated" in result.stdout and "1 warning" in result.stderr


@pytest.mark.parametrize("content", [
    b"", b"organisation: [", b"\xff\xfe\x00", b"a: &a [1]\nb: [*a, *a]\n",
    b"lawful: 1\norganisation: {name: X, controllers: []}\n",
])
def test_unusable_input_exits_two_without_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    result = lawful("check", "-m", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{path}:" in result.stderr


def test_unusable_input_as_json(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("lawful: 1\norganisation:\n  name: X\n  controlers: []\n")
    result = lawful("check", "--format", "json", "-m", str(path))
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["usable"] is False
    assert {p["path"] for p in doc["problems"]} >= {"organisation.controlers"}


def test_manifest_found_from_env_then_cwd(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "LAWFUL_MANIFEST": str(KERF)}
    assert lawful("check", cwd=tmp_path, env=env).returncode == 0
    env.pop("LAWFUL_MANIFEST")
    missing = lawful("check", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "lawful.yaml" in missing.stderr
    (tmp_path / "lawful.yaml").write_text(KERF.read_text())
    assert lawful("check", cwd=tmp_path, env=env).returncode == 0


def test_rules_listing_text_and_json() -> None:
    text = lawful("check", "--rules")
    assert text.returncode == 0
    assert all(rule_id in text.stdout for rule_id in RULES)
    listed = json.loads(lawful("check", "--rules", "--format", "json").stdout)
    assert {r["id"] for r in listed} == set(RULES)
    assert all(r["article"] for r in listed)


def test_seed_with_privacy_shield_fails_the_build() -> None:
    result = lawful("check", "--format", "json", "-m", str(SEEDS / "faktor.yaml"))
    assert result.returncode == 1
    rules = {f["rule"] for f in json.loads(result.stdout)["findings"]}
    assert "privacy-shield" in rules
