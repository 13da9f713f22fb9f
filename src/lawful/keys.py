"""lawful's secret: one master key, from which purpose-bound keys are derived.

The master comes from LAWFUL_SECRET_KEY or, on the embedded default, from a file lawful creates
once under the state directory (mode 0600). Separate derived keys for pseudonyms, suppression
hashes and encryption mean a leak of one use does not expose the others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet


def state_dir() -> Path:
    """Where the embedded default keeps its files: $LAWFUL_STATE_DIR or ./.lawful."""
    return Path(os.environ.get("LAWFUL_STATE_DIR", ".lawful"))


def _master() -> bytes:
    configured = os.environ.get("LAWFUL_SECRET_KEY")
    if configured:
        return configured.encode("utf-8")
    path = state_dir() / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode("utf-8")


@cache
def _derived(master: bytes, label: str) -> bytes:
    return hmac.new(master, f"lawful:{label}".encode(), hashlib.sha256).digest()


def derived_key(label: str) -> bytes:
    return _derived(_master(), label)


def keyed_hash(value: str, label: str = "pseudonym") -> str:
    """HMAC-SHA256 of a normalised value: the same input always gives the same pseudonym."""
    return hmac.new(derived_key(label), value.encode("utf-8"), hashlib.sha256).hexdigest()


def fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derived_key("encryption")))


def encrypt(data: bytes) -> bytes:
    return fernet().encrypt(data)


def decrypt(token: bytes) -> bytes:
    return fernet().decrypt(token)
