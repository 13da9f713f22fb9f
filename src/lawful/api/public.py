"""Public endpoints: a person submits a request, verifies, follows it and downloads the answer.

A request is followed with the token returned at submission (header `X-Request-Token`);
without the right token a request does not exist (404), exactly like an unknown id.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from lawful.api.deps import service_of, throttle, throttle_codes
from lawful.requests import packages
from lawful.requests.kinds import Kind, NotFound
from lawful.requests.workflow import Service
from lawful.store import audit, db
from lawful.store.models import Notification, Package
from lawful.store.models import Request as StoredRequest

router = APIRouter(prefix="/v1", tags=["public"])
Token = Annotated[str, Header(alias="X-Request-Token", max_length=100,
                              description="The token returned when the request was made.")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Submission(Body):
    type: Kind
    email: str = Field(max_length=320, description="Where the verification code is sent.")
    details: dict[str, Any] | None = Field(
        None, description="rectification: {set: {TABLE.FIELD: value}}; objection: {to: "
        "direct_marketing|legitimate_interests, grounds}; consent_withdrawal: {purpose}.")


class Submitted(BaseModel):
    id: str
    token: str = Field(description="Keep it: it is needed to follow the request.")
    status: str
    due_on: dt.date
    next: str


class Code(Body):
    code: str = Field(min_length=1, max_length=12)


class Journal(BaseModel):
    at: dt.datetime
    action: str
    by: Literal["you", "staff", "lawful"]


class Told(BaseModel):
    recipient: str
    outcome: str


class Followed(BaseModel):
    id: str
    type: str
    status: str
    received_at: dt.datetime
    due_on: dt.date
    extended: bool
    extension_reason: str | None = None
    refusal_reason: str | None = None
    fee: str | None = None
    result: dict[str, Any] | None = None
    download: str | None = None
    recipients_told: list[Told] = Field(
        [], description="Art. 19: who was told of a rectification, erasure or restriction.")
    journal: list[Journal] = []


@router.post("/requests", status_code=201, response_model=Submitted,
             dependencies=[Depends(throttle)])
def submit(body: Submission, service: Annotated[Service, Depends(service_of)]) -> Submitted:
    """Make a request. A 6-digit code is e-mailed to the address: send it to /verify."""
    request, token = service.submit(body.type.value, body.email, body.details)
    return Submitted(id=request.id, token=token, status=request.status, due_on=request.due_on,
                     next=f"POST /v1/requests/{request.id}/verify with the code e-mailed to you")


@router.post("/requests/{request_id}/verify", response_model=Followed,
             dependencies=[Depends(throttle_codes)])
def verify(request_id: str, body: Code, token: Token,
           service: Annotated[Service, Depends(service_of)]) -> Followed:
    """Prove the address is yours. Five wrong codes lock the request."""
    service.verify(request_id, token, body.code)
    return follow(request_id, token, service)


@router.post("/requests/{request_id}/resend", status_code=202,
             dependencies=[Depends(throttle_codes)])
def resend(request_id: str, token: Token,
           service: Annotated[Service, Depends(service_of)]) -> dict[str, str]:
    """Send a new code (at most three per request)."""
    service.resend_code(request_id, token)
    return {"status": "sent"}


@router.get("/requests/{request_id}", response_model=Followed, dependencies=[Depends(throttle)])
def follow(request_id: str, token: Token,
           service: Annotated[Service, Depends(service_of)]) -> Followed:
    """Where your request stands, its journal, and the answer once it is done."""
    request, entries = service.for_requester(request_id, token)
    return Followed(
        id=request.id, type=request.type, status=request.status,
        received_at=request.received_at, due_on=request.due_on,
        extended=request.due_on != request.first_due_on,
        extension_reason=request.extension_reason, refusal_reason=request.refusal_reason,
        fee=request.fee, result=Service.result(request), download=_link(service, request),
        recipients_told=_told(service, request.id),
        journal=[Journal(at=e.at, action=e.action, by=_who(e.actor))
                 for e in reversed(entries)])


def _who(actor: str) -> Literal["you", "staff", "lawful"]:
    return "you" if actor == "requester" else "lawful" if actor == "lawful" else "staff"


def _told(service: Service, request_id: str) -> list[Told]:
    with db.session() as s:
        rows = s.execute(sa.select(Notification).where(Notification.request_id == request_id)
                         .order_by(Notification.id)).scalars()
        named = {r.id: r.name for r in service.manifest.recipients}
        return [Told(recipient=named.get(n.recipient, n.recipient), outcome=n.status)
                for n in rows]


def _link(service: Service, request: StoredRequest) -> str | None:
    with db.session() as s:
        package = s.get(Package, request.id)
        if package is None or package.expires_at < service.now():
            return None
        return packages.link(service.base_url, package)


@router.get("/packages/{request_id}", response_class=Response,
            responses={200: {"content": {"application/zip": {}}}},
            dependencies=[Depends(throttle)])
def download(request_id: str, service: Annotated[Service, Depends(service_of)],
             expires: Annotated[int, Query(ge=0, le=2**40)],
             signature: Annotated[str, Query(max_length=128)]) -> Response:
    """The answer to an access or portability request, through the link e-mailed to you."""
    try:
        with db.transaction() as s:
            data = packages.fetch(s, request_id, expires, signature, service.now())
            audit.append(s, "requester", "package.downloaded", request_id)
    except NotFound:
        raise HTTPException(404, "no such package") from None
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{request_id}.zip"',
        "Cache-Control": "no-store"})


@router.get("/healthz", include_in_schema=False)
def health(request: Request) -> dict[str, str]:
    return {"status": "ok"}
