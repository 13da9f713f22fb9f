"""Answers to access and portability requests: a zip encrypted at rest, fetched through a
signed link that only the requester receives and that expires after 7 days."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from lawful.keys import decrypt, derived_key, encrypt
from lawful.requests.kinds import NotFound
from lawful.store.models import Package

LINK_VALID = dt.timedelta(days=7)


def zipped(report: object, title: str) -> bytes:
    from lawful.engine.access import AccessReport, write

    assert isinstance(report, AccessReport)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "package.zip"
        write(report, target, title)
        return target.read_bytes()


def keep(s: Session, request_id: str, data: bytes, now: dt.datetime) -> Package:
    """Store (or replace, when a task runs again) the request's package, encrypted."""
    existing = s.get(Package, request_id)
    if existing is not None:
        s.delete(existing)
        s.flush()
    package = Package(request_id=request_id, blob=encrypt(data),
                      sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                      created_at=now, expires_at=now + LINK_VALID, downloads=0)
    s.add(package)
    return package


def _signature(request_id: str, expires: int) -> str:
    return hmac.new(derived_key("package-link"), f"{request_id}:{expires}".encode(),
                    hashlib.sha256).hexdigest()


def link(base_url: str, package: Package) -> str:
    expires = int(package.expires_at.replace(tzinfo=dt.UTC).timestamp())
    return (f"{base_url.rstrip('/')}/v1/packages/{package.request_id}"
            f"?expires={expires}&signature={_signature(package.request_id, expires)}")


def fetch(s: Session, request_id: str, expires: int, signature: str,
          now: dt.datetime) -> bytes:
    """The package, if the link is genuine and current; otherwise it does not exist."""
    genuine = hmac.compare_digest(_signature(request_id, expires).encode(),
                                  (signature or "").encode())
    current = now.replace(tzinfo=dt.UTC).timestamp() <= expires
    package = s.get(Package, request_id) if genuine and current else None
    if package is None or package.expires_at < now:
        raise NotFound("package")
    # counted by the database: two downloads at once are two, not one
    s.execute(sa.update(Package).where(Package.request_id == request_id)
              .values(downloads=Package.downloads + 1))
    return decrypt(package.blob)
