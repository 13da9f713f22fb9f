"""The outbox: every e-mail lawful sends is stored first (encrypted), in the same transaction
as the change that caused it, and sent after commit by SMTP when LAWFUL_SMTP_URL is set.
Without it the embedded default keeps them for `lawful outbox` to show.

LAWFUL_SMTP_URL: smtp://[user:password@]host[:port] (add ?starttls=1), or smtps:// for TLS.
"""

from __future__ import annotations

import datetime as dt
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from lawful.engine.state import now
from lawful.keys import decrypt, encrypt
from lawful.store import audit, db
from lawful.store.models import OutboxMessage

MAX_ATTEMPTS = 5
# A claim older than this is a sender that died mid-send (a send takes seconds at most).
CLAIM_EXPIRES = dt.timedelta(minutes=10)


def queue(s: Session, sender: str, to: str, subject: str, body: str,
          request_id: str | None = None) -> OutboxMessage:
    message = OutboxMessage(
        request_id=request_id, sender=sender, to_enc=encrypt(to.encode()), subject=subject,
        body_enc=encrypt(body.encode()), status="kept", created_at=now(), attempts=0)
    s.add(message)
    s.flush()
    audit.append(s, "lawful", "email.queued", request_id, message=message.id, subject=subject)
    return message


@dataclass(frozen=True)
class Shown:
    id: int
    request_id: str | None
    to: str
    subject: str
    body: str
    status: str
    created_at: str
    error: str | None


def show(s: Session, status: str | None = "kept") -> list[Shown]:
    query = sa.select(OutboxMessage).order_by(OutboxMessage.id)
    if status:
        query = query.where(OutboxMessage.status == status)
    return [Shown(m.id, m.request_id, decrypt(m.to_enc).decode(), m.subject,
                  decrypt(m.body_enc).decode(), m.status, m.created_at.isoformat(), m.error)
            for m in s.execute(query).scalars()]


def smtp_url() -> str | None:
    return os.environ.get("LAWFUL_SMTP_URL") or None


def _connect(url: str) -> smtplib.SMTP:
    parts = urlsplit(url)
    if parts.hostname is None or parts.scheme not in ("smtp", "smtps"):
        raise ValueError("LAWFUL_SMTP_URL must look like smtp://user:password@host:port")
    options = parse_qs(parts.query)
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=20,
                                                context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=20)
        if options.get("starttls", ["0"])[0] in ("1", "true", "yes"):
            client.starttls(context=ssl.create_default_context())
    if parts.username:
        client.login(unquote(parts.username), unquote(parts.password or ""))
    return client


def deliver() -> int:
    """Send what is kept (at most MAX_ATTEMPTS tries each); returns how many went out."""
    url = smtp_url()
    if url is None:
        return 0
    db.ensure_current()
    sent = 0
    stale = now() - CLAIM_EXPIRES
    with db.transaction() as s:
        # Claimed by a sender that never finished (killed mid-send) and out of attempts.
        s.execute(sa.update(OutboxMessage).where(
            _abandoned(stale), OutboxMessage.attempts >= MAX_ATTEMPTS).values(
            status="failed", error="the sender stopped while sending"))
    with db.session() as s:
        ids = list(s.execute(sa.select(OutboxMessage.id).where(
            _claimable(stale), OutboxMessage.attempts < MAX_ATTEMPTS)
            .order_by(OutboxMessage.id)).scalars())
    if not ids:
        return 0
    try:
        client = _connect(url)
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        # The server is down, not the message at fault: keep trying at every upkeep without
        # using up the messages' attempts, so an outage never loses a code or a notice.
        _failed(ids, f"cannot reach the mail server: {exc}", counted=True)
        return 0
    with client:
        for message_id in ids:
            sent += _send_one(client, message_id)
    return sent


def _send_one(client: smtplib.SMTP, message_id: int) -> int:
    with db.transaction() as s:
        # Claim it: a concurrent sender that claimed it first makes this update match nothing.
        claimed = s.execute(sa.update(OutboxMessage).where(
            OutboxMessage.id == message_id, _claimable(now() - CLAIM_EXPIRES))
            .values(status="sending", claimed_at=now(),
                    attempts=OutboxMessage.attempts + 1)).rowcount
        if not claimed:
            return 0
        m = s.get(OutboxMessage, message_id)
        assert m is not None
        try:
            email = EmailMessage()
            email["From"], email["To"], email["Subject"] = m.sender, \
                decrypt(m.to_enc).decode(), m.subject
            email.set_content(decrypt(m.body_enc).decode())
        except ValueError as exc:
            # A line break in an address or subject: it must never become a header of its
            # own (no injected Bcc), and trying again cannot help. Kept as failed for
            # `lawful outbox`, instead of raising out of the caller and staying "sending".
            m.status, m.error = "failed", f"not sent: {exc}"[:500]
            return 0
    try:
        client.send_message(email)
    except (OSError, smtplib.SMTPException) as exc:
        _failed([message_id], str(exc), counted=True)
        return 0
    with db.transaction() as s:
        s.execute(sa.update(OutboxMessage).where(OutboxMessage.id == message_id)
                  .values(status="sent", sent_at=now(), error=None))
        audit.append(s, "lawful", "email.sent", m.request_id, message=message_id)
    return 1


def _abandoned(stale: dt.datetime) -> sa.ColumnElement[bool]:
    """Claimed before `stale` (or before claims had a time) and never marked sent or failed:
    its sender died between the claim and the outcome."""
    return sa.and_(OutboxMessage.status == "sending", sa.or_(
        OutboxMessage.claimed_at.is_(None), OutboxMessage.claimed_at < stale))


def _claimable(stale: dt.datetime) -> sa.ColumnElement[bool]:
    # An abandoned message goes out again: sent at least once, rather than never (its sender
    # may have died after the server took it, so the person may get it twice).
    return sa.or_(OutboxMessage.status == "kept", _abandoned(stale))


def _failed(ids: list[int], error: str, counted: bool = False) -> None:
    """Back to the queue, or failed for good after MAX_ATTEMPTS (shown by `lawful outbox`)."""
    attempts = OutboxMessage.attempts if counted else OutboxMessage.attempts + 1
    with db.transaction() as s:
        s.execute(sa.update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(
            status=sa.case((attempts >= MAX_ATTEMPTS, "failed"), else_="kept"),
            attempts=attempts, error=error[:500]))
