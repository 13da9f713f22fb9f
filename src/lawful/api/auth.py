"""Staff API keys with roles. A key is `lk_<id>_<secret>`; only an argon2 hash of the secret
is stored. Verified keys are remembered in memory by a SHA-256 of the whole key, so argon2's
deliberate cost is paid once per key and process, while revocation is checked on every call."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lawful.engine.state import now
from lawful.store import audit, db
from lawful.store.models import ApiKey


class Role(StrEnum):
    agent = "agent"  # lists, reads, verifies and executes requests
    privacy_lead = "privacy_lead"  # also extends, refuses, charges fees, reads the journal
    admin = "admin"  # also manages keys


RANK = {Role.agent: 1, Role.privacy_lead: 2, Role.admin: 3}
_hasher = PasswordHasher()
_verified: dict[str, str] = {}  # sha256(key) -> key id


@dataclass(frozen=True)
class Staff:
    key_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"

    def may(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


def create(name: str, role: Role, actor: str = "cli") -> str:
    """Store a new key and return it: the only time its secret is ever shown."""
    if not name.strip() or len(name) > 200:
        raise ValueError("a key needs a name of 1 to 200 characters")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    db.ensure_current()
    with db.transaction() as s:
        s.add(ApiKey(id=key_id, name=name.strip(), role=role.value,
                     secret_hash=_hasher.hash(secret), created_at=now()))
        audit.append(s, actor, "key.created", None, key=key_id, role=role.value, name=name)
    return f"lk_{key_id}_{secret}"


def revoke(key_id: str, actor: str = "cli") -> bool:
    with db.transaction() as s:
        done = s.execute(sa.update(ApiKey).where(ApiKey.id == key_id,
                                                 ApiKey.revoked_at.is_(None))
                         .values(revoked_at=now())).rowcount
        if done:
            audit.append(s, actor, "key.revoked", None, key=key_id)
    return bool(done)


def remembered(key: str) -> bool:
    """Whether this exact key was verified before in this process (no argon2 needed)."""
    return hashlib.sha256(key.encode()).hexdigest() in _verified


def authenticate(key: str) -> Staff | None:
    parts = key.split("_", 2) if key else []
    if len(parts) != 3 or parts[0] != "lk" or len(parts[1]) != 12:
        return None
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    with db.session() as s:
        row = s.get(ApiKey, parts[1])
    if row is None or row.revoked_at is not None:
        return None
    if _verified.get(fingerprint) != row.id:
        try:
            _hasher.verify(row.secret_hash, parts[2])
        except (VerificationError, InvalidHashError):
            return None
        _verified[fingerprint] = row.id
    return Staff(row.id, row.name, Role(row.role))


def listed() -> list[ApiKey]:
    with db.session() as s:
        return list(s.execute(sa.select(ApiKey).order_by(ApiKey.created_at)).scalars())
