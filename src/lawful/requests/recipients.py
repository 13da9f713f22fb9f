"""Art. 19: after a rectification, erasure or restriction, every recipient the manifest
declares for the affected data is told, by signed webhook (retried with backoff) or e-mail.

A webhook body is JSON; its HMAC-SHA256 (key: LAWFUL_WEBHOOK_SECRET, else a key lawful derives
from its secret and `lawful recipients secret` prints) is sent as
`X-Lawful-Signature: sha256=<hex>` with `X-Lawful-Timestamp`, over "<timestamp>.<body>".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from lawful.engine.state import now
from lawful.keys import derived_key
from lawful.manifest.model import Manifest, Recipient
from lawful.requests import mail
from lawful.store import audit, db
from lawful.store.models import Notification

ATTEMPTS = int(os.environ.get("LAWFUL_WEBHOOK_ATTEMPTS", "4"))
BACKOFF = float(os.environ.get("LAWFUL_WEBHOOK_BACKOFF", "0.5"))  # seconds, doubled each try


def secret() -> bytes:
    configured = os.environ.get("LAWFUL_WEBHOOK_SECRET")
    return configured.encode() if configured else derived_key("webhook").hex().encode()


def sign(timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret(), timestamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()


def affected(manifest: Manifest, names: set[str]) -> list[Recipient]:
    """Recipients named in the field contexts of the rows that changed."""
    return [r for r in manifest.recipients if r.name in names]


def record(s: Session, request_id: str, recipients: list[Recipient]) -> None:
    """One notification per recipient and request (a task run again adds none)."""
    done = set(s.execute(sa.select(Notification.recipient).where(
        Notification.request_id == request_id)).scalars())
    for r in recipients:
        if r.id in done:
            continue
        channel = "webhook" if r.notify and r.notify.webhook else \
            "email" if r.notify and r.notify.email else "none"
        target = (r.notify.webhook or r.notify.email) if r.notify else None
        s.add(Notification(request_id=request_id, recipient=r.id, channel=channel,
                           target=target, status="pending" if target else "manual",
                           attempts=0, last_error=None if target else
                           "the manifest gives no way to notify this recipient"))


def deliver(request_id: str, sender: str, change: dict[str, Any]) -> None:
    """Tell every pending recipient; webhooks retried with exponential backoff."""
    with db.session() as s:
        pending = list(s.execute(sa.select(Notification).where(
            Notification.request_id == request_id, Notification.status == "pending"))
            .scalars())
    for n in pending:
        body = json.dumps({"event": change["event"], "request": request_id, **change},
                          sort_keys=True, default=str).encode()
        if n.channel == "webhook":
            ok, attempts, error = _post(n.target or "", body)
        else:
            ok, attempts, error = True, 1, None
        with db.transaction() as s:
            row = s.get(Notification, n.id)
            assert row is not None
            if n.channel == "email":
                mail.queue(s, sender, n.target or "", f"Art. 19 GDPR notice: {change['event']}",
                           "A data subject's request changed personal data we share with "
                           "you. Please apply the same change to your copy:\n\n"
                           + body.decode(), request_id)
            row.attempts += attempts
            row.status = "delivered" if ok else "failed"
            row.last_error = error
            row.delivered_at = now() if ok else None
            audit.append(s, "lawful", "recipient.notified", request_id, recipient=n.recipient,
                         channel=n.channel, outcome=row.status, attempts=row.attempts)
    mail.deliver()


def _post(url: str, body: bytes) -> tuple[bool, int, str | None]:
    error: str | None = None
    for attempt in range(1, ATTEMPTS + 1):
        stamp = str(int(time.time()))
        try:
            response = httpx.post(url, content=body, timeout=10, headers={
                "Content-Type": "application/json", "X-Lawful-Timestamp": stamp,
                "X-Lawful-Signature": sign(stamp, body)})
            if response.status_code < 300:
                return True, attempt, None
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                return False, attempt, error  # the recipient refused it: retrying won't help
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt < ATTEMPTS:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
    return False, ATTEMPTS, error
