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


MIN_KEY = 16  # characters: anything shorter makes pseudonyms guessable


class SecretKeyError(RuntimeError):
    """lawful's secret is missing or too weak: nothing is pseudonymised with it."""


def _master() -> bytes:
    configured = os.environ.get("LAWFUL_SECRET_KEY")
    if configured is not None:
        if len(configured) < MIN_KEY:
            raise SecretKeyError(f"LAWFUL_SECRET_KEY must be at least {MIN_KEY} characters")
        return configured.encode("utf-8")
    return _file_key(str(state_dir() / "secret.key"))


@cache
def _file_key(name: str) -> bytes:
    path = Path(name)
    if not path.exists():
        # Written whole under another name, then renamed: no reader ever sees half a key.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # fails if another process won the race: use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < MIN_KEY:
        raise SecretKeyError(f"{path} holds no usable key; restore it from your backup")
    return key.encode("utf-8")


@cache
def _derived(master: bytes, label: str) -> bytes:
    return hmac.new(master, f"lawful:{label}".encode(), hashlib.sha256).digest()


def derived_key(label: str) -> bytes:
    return _derived(_master(), label)


def keyed_hash(value: str, label: str = "pseudonym") -> str:
    """HMAC-SHA256 of a normalised value: the same input always gives the same pseudonym."""
    return hmac.new(derived_key(label), value.encode("utf-8"), hashlib.sha256).hexdigest()


def keyed_hashes(values: list[str], label: str = "pseudonym") -> list[str]:
    """keyed_hash() of each value, the key derived once."""
    key = derived_key(label)
    return [hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
            for value in values]


def fernet() -> Fernet:
    return _fernet(derived_key("encryption"))


@cache
def _fernet(key: bytes) -> Fernet:
    # Built once per key: the consent ledger encrypts an identity per event.
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(data: bytes) -> bytes:
    return fernet().encrypt(data)


def decrypt(token: bytes) -> bytes:
    return fernet().decrypt(token)
