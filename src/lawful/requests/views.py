"""What staff see of a request: one view shared by the API and the CLI."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from lawful.requests.kinds import CLOSED
from lawful.requests.workflow import Service
from lawful.store import db
from lawful.store.models import Notification
from lawful.store.models import Request as StoredRequest


class NotificationOut(BaseModel):
    recipient: str
    channel: str
    status: str
    attempts: int
    last_error: str | None


class StaffView(BaseModel):
    id: str
    type: str
    status: str
    email: str
    details: dict[str, Any]
    received_at: dt.datetime
    due_on: dt.date
    first_due_on: dt.date
    overdue: bool
    extension_reason: str | None
    verified_at: dt.datetime | None
    verified_by: str | None
    verification_note: str | None
    repeat_of: str | None
    fee: str | None
    fee_reason: str | None
    fee_paid_at: str | None
    refusal_grounds: str | None
    refusal_reason: str | None
    completed_at: dt.datetime | None
    error: str | None
    result: dict[str, Any] | None
    notifications: list[NotificationOut] = []


def view(service: Service, r: StoredRequest, notifications: bool = False) -> StaffView:
    told: list[NotificationOut] = []
    if notifications:
        with db.session() as s:
            told = [NotificationOut(recipient=n.recipient, channel=n.channel, status=n.status,
                                    attempts=n.attempts, last_error=n.last_error)
                    for n in s.execute(sa.select(Notification).where(
                        Notification.request_id == r.id).order_by(Notification.id)).scalars()]
    closed = r.status in CLOSED
    return StaffView(
        id=r.id, type=r.type, status=r.status, email=Service.identity(r),
        details=Service.details(r), received_at=r.received_at, due_on=r.due_on,
        first_due_on=r.first_due_on, overdue=not closed and r.due_on < service.now().date(),
        extension_reason=r.extension_reason, verified_at=r.verified_at,
        verified_by=r.verified_by, verification_note=r.verification_note,
        repeat_of=r.repeat_of, fee=r.fee, fee_reason=r.fee_reason,
        fee_paid_at=r.fee_paid_at.isoformat(timespec="seconds") if r.fee_paid_at else None,
        refusal_grounds=r.refusal_grounds, refusal_reason=r.refusal_reason,
        completed_at=r.completed_at, error=r.error, result=Service.result(r),
        notifications=told)
