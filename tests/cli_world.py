"""What the command-line tests share besides the `shop` and `cli_env` fixtures (in conftest):
`lawful` run as a real process, and a customer of the shop."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path


def lawful(env: dict[str, str], *args: str, cwd: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lawful", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def customer(shop: Path, offset: int = 0) -> str:
    with sqlite3.connect(shop) as conn:
        return str(conn.execute("SELECT email FROM customer WHERE email IS NOT NULL ORDER BY "
                                "id LIMIT 1 OFFSET ?", (offset,)).fetchone()[0])
