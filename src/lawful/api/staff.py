"""Staff endpoints, behind API keys with roles: list and filter by deadline, verify by other
means, extend, refuse, charge a fee, execute, and read the audit journal."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from lawful.api.auth import Role, Staff
from lawful.api.deps import role, service_of
from lawful.requests.kinds import Kind, RefusalGrounds, Status
from lawful.requests.views import StaffView, view
from lawful.requests.workflow import Service
from lawful.store import audit, db
from lawful.store.models import AuditEntry

router = APIRouter(prefix="/v1/staff", tags=["staff"])
Agent = Annotated[Staff, Depends(role(Role.agent))]
Lead = Annotated[Staff, Depends(role(Role.privacy_lead))]
Svc = Annotated[Service, Depends(service_of)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Note(Body):
    note: str = Field(min_length=1, max_length=2000,
                      description="How the identity was verified (a call back, a letter…).")


class Extension(Body):
    months: int = Field(ge=1, le=2)
    reason: str = Field(min_length=1, max_length=2000)


class Refusal(Body):
    grounds: RefusalGrounds
    reason: str = Field(min_length=1, max_length=2000)


class Fee(Body):
    amount: str = Field(max_length=32, description="e.g. '25 EUR'")
    reason: str = Field(min_length=1, max_length=2000)


class FeePaid(Body):
    note: str = Field(min_length=1, max_length=2000, description="e.g. 'bank transfer 14 May'")


class Entry(BaseModel):
    seq: int
    at: dt.datetime
    actor: str
    action: str
    request_id: str | None
    detail: str
    hash: str


@router.get("/requests", response_model=list[StaffView])
def list_requests(
    who: Agent, service: Svc,
    status: Status | None = None, type: Kind | None = None,
    due_before: dt.date | None = None, overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[StaffView]:
    """Requests by deadline, soonest first."""
    found = service.list(status.value if status else None, type.value if type else None,
                         due_before, overdue, limit)
    with db.transaction() as s:
        audit.append(s, who.actor, "requests.listed", None, count=len(found))
    return [view(service, r) for r in found]


@router.get("/requests/{request_id}", response_model=StaffView)
def show(request_id: str, who: Agent, service: Svc) -> StaffView:
    return view(service, service.get(request_id, who.actor), notifications=True)


@router.post("/requests/{request_id}/verify", response_model=StaffView)
def verify(request_id: str, body: Note, who: Agent, service: Svc) -> StaffView:
    return view(service, service.staff_verify(request_id, who.actor, body.note))


@router.post("/requests/{request_id}/execute", response_model=StaffView)
def execute(request_id: str, who: Agent, service: Svc) -> StaffView:
    service.execute(request_id, who.actor)
    return view(service, service.get(request_id, who.actor), notifications=True)


@router.post("/requests/{request_id}/extend", response_model=StaffView)
def extend(request_id: str, body: Extension, who: Lead, service: Svc) -> StaffView:
    return view(service, service.extend(request_id, who.actor, body.months, body.reason))


@router.post("/requests/{request_id}/refuse", response_model=StaffView)
def refuse(request_id: str, body: Refusal, who: Lead, service: Svc) -> StaffView:
    return view(service, service.refuse(request_id, who.actor, body.grounds.value,
                                        body.reason))


@router.post("/requests/{request_id}/fee", response_model=StaffView)
def fee(request_id: str, body: Fee, who: Lead, service: Svc) -> StaffView:
    return view(service, service.charge_fee(request_id, who.actor, body.amount, body.reason))


@router.post("/requests/{request_id}/fee-paid", response_model=StaffView)
def fee_paid(request_id: str, body: FeePaid, who: Lead, service: Svc) -> StaffView:
    return view(service, service.fee_paid(request_id, who.actor, body.note))


@router.get("/requests/{request_id}/journal", response_model=list[Entry])
def request_journal(request_id: str, who: Agent, service: Svc) -> list[Entry]:
    service.get(request_id, who.actor)  # 404 for an unknown id, and the read is audited
    with db.session() as s:
        return [_entry(e) for e in audit.entries(s, request_id)]


@router.get("/audit", response_model=list[Entry])
def journal(who: Lead, limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[Entry]:
    """The newest entries of the whole journal."""
    with db.session() as s:
        return [_entry(e) for e in audit.entries(s, None, limit)]


@router.get("/audit/verify")
def verify_journal(who: Lead) -> dict[str, Any]:
    """Walk the hash chain: any edited, inserted or removed entry is reported."""
    with db.session() as s:
        verdict = audit.verify(s)
    return {"ok": verdict.ok, "entries": verdict.entries, "problems": verdict.problems}


def _entry(e: AuditEntry) -> Entry:
    return Entry(seq=e.seq, at=e.at, actor=e.actor, action=e.action, request_id=e.request_id,
                 detail=e.detail, hash=e.hash)
