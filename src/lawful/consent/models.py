"""The consent tables. Events are append-only; the state table is derived from them in the
same transaction, so "what does this person allow now" is one indexed read."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from lawful.store.models import Base


class ConsentEvent(Base):
    __tablename__ = "consent_event"
    __table_args__ = (sa.Index("ix_consent_event_subject", "subject_hash", "purpose", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    # The client's id for the event: a replay with the same id is stored once.
    client_event_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    subject_kind: Mapped[str] = mapped_column(sa.String(16))  # email, visitor
    subject_hash: Mapped[str] = mapped_column(sa.String(64))
    subject_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    audit_id: Mapped[str | None] = mapped_column(sa.String(64))
    purpose: Mapped[str] = mapped_column(sa.String(100))
    action: Mapped[str] = mapped_column(sa.String(16))  # granted, denied, withdrawn, objected
    version: Mapped[int | None] = mapped_column(sa.Integer)
    text_hash: Mapped[str | None] = mapped_column(sa.String(64))
    language: Mapped[str | None] = mapped_column(sa.String(16))
    channel: Mapped[str] = mapped_column(sa.String(16))
    site: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    ip_hash: Mapped[str | None] = mapped_column(sa.String(64))  # truncated, then keyed hash
    user_agent: Mapped[str | None] = mapped_column(sa.String(300))
    gpc: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    actor: Mapped[str] = mapped_column(sa.String(200))


class ConsentState(Base):
    __tablename__ = "consent_state"

    subject_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    action: Mapped[str] = mapped_column(sa.String(16))
    version: Mapped[int | None] = mapped_column(sa.Integer)
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
    event_id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))


class DoNotContact(Base):
    """Keyed hashes of identities that must not be contacted (for one purpose, or `*`: any
    direct marketing). They outlive the erasure of the person, by design."""

    __tablename__ = "do_not_contact"

    hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.String(64))
    added_at: Mapped[dt.datetime] = mapped_column(sa.DateTime)
