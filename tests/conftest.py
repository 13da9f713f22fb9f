"""Shared fixtures. Tests that need a server read LAWFUL_TEST_*_URL and skip without it,
unless LAWFUL_REQUIRE_SERVICES=1 (CI), where a missing service is a failure."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from lawful.demo.generate import generate

ROOT = Path(__file__).resolve().parents[1]
KERF = ROOT / "examples" / "kerf" / "lawful.yaml"
SEEDS = ROOT / "examples" / "seeds"


def service_url(name: str) -> str:
    """The URL of a test service, or skip (fail in CI) with the reason."""
    var = f"LAWFUL_TEST_{name.upper()}_URL"
    url = os.environ.get(var)
    if not url:
        reason = f"{var} is not set"
        if os.environ.get("LAWFUL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and LAWFUL_REQUIRE_SERVICES=1 requires it")
        pytest.skip(reason)
    return url


_KERF_DATA: dict[str, Any] = yaml.safe_load(KERF.read_text())


@pytest.fixture
def kerf_data() -> dict[str, Any]:
    """The Kerf manifest as plain data, a fresh copy to mutate."""
    return copy.deepcopy(_KERF_DATA)


# --- the command-line tests' shop and environment ---------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Kerf shop (SQLite) shared by a module's command-line tests."""
    from lawful.demo.generate import generate

    path = tmp_path_factory.mktemp("shop") / "kerf.db"
    generate(f"sqlite:///{path}", 40, 3)
    return path


@pytest.fixture
def cli_env(shop: Path, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAWFUL_", "KERF_"))}
    return {**base, "LAWFUL_MANIFEST": str(KERF), "KERF_DATABASE_URL": f"sqlite:///{shop}",
            "LAWFUL_STATE_DIR": str(tmp_path / "state")}


def free_port() -> int:
    """A loopback port nothing listens on (closed again before it is returned)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def kerf_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small Kerf database (SQLite, 60 customers), one per test module."""
    path = tmp_path_factory.mktemp("kerf") / "kerf.db"
    generate(f"sqlite:///{path}", 60, 11)
    return f"sqlite:///{path}"
