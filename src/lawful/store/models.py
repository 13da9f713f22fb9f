"""The app store's tables. Identities and answers are encrypted at rest (Fernet) and found
again by keyed hash; nothing here holds a requester's e-mail in plain text."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Request(Base):
    __tablename__ = "request"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(32), index=True)
    # The requester's identity: encrypted, plus a keyed hash to find repeats and their requests.
    identity_kind: Mapped[str] = mapped_column(sa.String(32))
    identity_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    identity_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    details_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)  # rectification values…
    details_digest: Mapped[str] = mapped_column(sa.String(64))  # spots identical repeats
    token_hash: Mapped[str] = mapped_column(sa.String(64))  # the requester's follow token
    received_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    due_on: Mapped[dt.date] = mapped_column(sa.Date, index=True)
    first_due_on: Mapped[dt.date] = mapped_column(sa.Date)
    extension_reason: Mapped[str | None] = mapped_column(sa.Text)
    verified_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    verified_by: Mapped[str | None] = mapped_column(sa.String(200))
    verification_note: Mapped[str | None] = mapped_column(sa.Text)
    repeat_of: Mapped[str | None] = mapped_column(sa.String(32))
    fee: Mapped[str | None] = mapped_column(sa.String(64))
    fee_reason: Mapped[str | None] = mapped_column(sa.Text)
    fee_paid_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)  # none: unpaid
    refusal_grounds: Mapped[str | None] = mapped_column(sa.String(64))
    refusal_reason: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime, index=True)
    result_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)  # certificate, summary
    error: Mapped[str | None] = mapped_column(sa.Text)


class Verification(Base):
    __tablename__ = "verification"

    request_id: Mapped[str] = mapped_column(
        sa.ForeignKey("request.id", ondelete="CASCADE"), primary_key=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    codes_sent: Mapped[int] = mapped_column(sa.Integer, default=1)
    sent_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)


class Package(Base):
    __tablename__ = "package"

    request_id: Mapped[str] = mapped_column(
        sa.ForeignKey("request.id", ondelete="CASCADE"), primary_key=True)
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary)  # the zip, encrypted
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    downloads: Mapped[int] = mapped_column(sa.Integer, default=0)


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("request.id", ondelete="CASCADE"), index=True)
    sender: Mapped[str] = mapped_column(sa.String(300))
    to_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    subject: Mapped[str] = mapped_column(sa.String(300))
    body_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    # kept, sending (claimed by a sender), sent, failed
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)


class Notification(Base):
    """Art. 19: a recipient told of a rectification, erasure or restriction."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        sa.ForeignKey("request.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str] = mapped_column(sa.String(200))
    channel: Mapped[str] = mapped_column(sa.String(16))  # webhook, email, none
    target: Mapped[str | None] = mapped_column(sa.String(500))
    status: Mapped[str] = mapped_column(sa.String(16))  # pending, delivered, failed, manual
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)


class AuditEntry(Base):
    """One link of the hash chain: an HMAC over the previous link and this entry."""

    __tablename__ = "audit"

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(64))
    request_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    detail: Mapped[str] = mapped_column(sa.Text)  # JSON, never a plain identity
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditHead(Base):
    """The chain's newest link. Appends update this row first, which serialises them and lets
    `audit verify` notice entries cut from the end."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer)
    hash: Mapped[str] = mapped_column(sa.String(64))


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # the key's public prefix
    name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(32))
    secret_hash: Mapped[str] = mapped_column(sa.String(200))  # argon2
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
