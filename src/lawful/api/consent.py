"""Consent endpoints: the ledger, one-step withdrawal, unsubscribe links, May I contact?, the
do-not-contact list, Global Privacy Control and the cookie banner's script.

A visitor (the banner) is known by its visitor id, which only its browser holds. An e-mail
address is a person anyone could name, so consents recorded or read by e-mail need an API key
(the company's own forms and mailers call with one); the person withdraws through the
unsubscribe link in every message, or a request.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from lawful.api.auth import Role, Staff
from lawful.api.deps import checked_key, role, service_of, throttle
from lawful.consent import unsubscribe
from lawful.consent.contact import may_contact
from lawful.consent.ledger import Action, Channel, Ledger, Recorded, Subject
from lawful.requests.kinds import Invalid
from lawful.requests.workflow import Service

router = APIRouter(tags=["consent"])
STATIC = Path(__file__).parent / "static"
Agent = Annotated[Staff, Depends(role(Role.agent))]
Lead = Annotated[Staff, Depends(role(Role.privacy_lead))]
Gpc = Annotated[str | None, Header(alias="Sec-GPC", max_length=8)]
Agent_ = Annotated[str | None, Header(alias="User-Agent", max_length=1000)]


# Dependencies that do no I/O are `async def`: a plain `def` one costs a thread-pool hop per
# request. A key, when given, is checked in the pool (a store read, maybe an argon2 hash).
async def ledger_of(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


Book = Annotated[Ledger, Depends(ledger_of)]


async def maybe_staff(request: Request,
                      authorization: Annotated[str | None, Header(max_length=300)] = None,
                      x_api_key: Annotated[str | None, Header(max_length=300)] = None
                      ) -> Staff | None:
    if not (authorization or x_api_key):
        return None
    return await run_in_threadpool(checked_key, request, authorization, x_api_key)


Caller = Annotated[Staff | None, Depends(maybe_staff)]
# Channels only lawful itself or staff write through: a visitor's own post cannot claim them.
STAFF_CHANNELS = frozenset({Channel.staff, Channel.request, Channel.email_link})


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Who(Body):
    email: str | None = Field(None, max_length=320)
    visitor_id: str | None = Field(None, max_length=64)


class Event(Who):
    purpose: str = Field(max_length=100)
    action: Action
    version: int | None = Field(None, ge=1, le=10_000)
    language: str | None = Field(None, max_length=16)
    text_hash: str | None = Field(None, max_length=64,
                                  description="SHA-256 of the exact text shown.")
    channel: Channel = Channel.api
    site: str | None = Field(None, max_length=200)
    audit_id: str | None = Field(None, max_length=64)
    client_event_id: str | None = Field(None, max_length=64,
                                        description="A replay with the same id is stored "
                                        "once.")


class Choices(Who):
    choices: dict[str, bool] = Field(max_length=50)
    versions: dict[str, int] | None = Field(None, max_length=50)
    language: str | None = Field(None, max_length=16)
    site: str | None = Field(None, max_length=200)
    audit_id: str | None = Field(None, max_length=64)
    client_event_id: str | None = Field(None, max_length=48)


class Withdrawal(Who):
    purpose: str = Field(max_length=100)
    site: str | None = Field(None, max_length=200)


class Stored(BaseModel):
    event_id: int
    purpose: str
    action: str
    version: int | None
    replayed: bool
    note: str | None = None


class Addresses(Body):
    emails: list[Annotated[str, Field(max_length=320)]] = Field(max_length=10_000)
    purpose: str | None = Field(None, max_length=100)
    reason: str | None = Field(None, max_length=64)


def _subject(who: Who, caller: Staff | None) -> Subject:
    if who.email and caller is None:
        raise HTTPException(401, "consents by e-mail address need an API key; a visitor is "
                            "known by its visitor_id")
    return Subject.of(who.email, who.visitor_id)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _stored(r: Recorded) -> Stored:
    return Stored(event_id=r.event_id, purpose=r.purpose, action=r.action, version=r.version,
                  replayed=not r.created, note=r.note)


@router.get("/v1/consent/purposes", dependencies=[Depends(throttle)])
def purposes(book: Book, lang: Annotated[str | None, Query(max_length=16)] = None
             ) -> list[dict[str, Any]]:
    """The purposes and their current text, in `lang` where the manifest has it."""
    return book.purposes(lang)


@router.post("/v1/consent/events", response_model=Stored, status_code=201,
             dependencies=[Depends(throttle)])
async def record(body: Event, request: Request, book: Book, caller: Caller, gpc: Gpc = None,
                 user_agent: Agent_ = None) -> Any:
    """Record one consent event. Sec-GPC: 1 is recorded, and a grant for a purpose marked
    as sale, sharing or targeted advertising is then recorded as denied."""
    if caller is None and body.channel in STAFF_CHANNELS:
        # The channel is part of the proof: only staff (with a key) record as staff.
        raise HTTPException(401, f"channel {body.channel.value!r} needs an API key")
    # On the event loop: on PostgreSQL the ledger writes through an asyncio connection.
    recorded = await book.record_async(
        _subject(body, caller), body.purpose, body.action.value, channel=body.channel.value,
        version=body.version, language=body.language, shown_hash=body.text_hash,
        site=body.site, audit_id=body.audit_id, ip=_client(request), user_agent=user_agent,
        gpc=gpc == "1", client_event_id=body.client_event_id,
        actor=caller.actor if caller else "subject")
    stored = _stored(recorded)
    return stored if recorded.created else JSONResponse(stored.model_dump(), 200)


@router.post("/v1/consent/choices", response_model=list[Stored], status_code=201,
             dependencies=[Depends(throttle)])
def choices(body: Choices, request: Request, book: Book, caller: Caller, gpc: Gpc = None,
            user_agent: Agent_ = None) -> list[Stored]:
    """A banner's answer for several purposes at once (granted or denied each)."""
    recorded = book.choices(
        _subject(body, caller), body.choices, channel=Channel.web_banner.value,
        versions=body.versions, language=body.language, shown_hash=None, site=body.site,
        audit_id=body.audit_id, ip=_client(request), user_agent=user_agent,
        gpc=gpc == "1", client_event_id=body.client_event_id,
        actor=caller.actor if caller else "subject")
    return [_stored(r) for r in recorded]


@router.post("/v1/consent/withdraw", response_model=Stored, status_code=201,
             dependencies=[Depends(throttle)])
def withdraw(body: Withdrawal, request: Request, book: Book, caller: Caller, gpc: Gpc = None,
             user_agent: Agent_ = None) -> Stored:
    """Withdraw a consent in one step (Art. 7(3))."""
    channel = Channel.staff if caller else Channel.api
    return _stored(book.withdraw(_subject(body, caller), body.purpose, channel.value,
                                 caller.actor if caller else "subject", site=body.site,
                                 ip=_client(request), user_agent=user_agent,
                                 gpc=gpc == "1"))


@router.get("/v1/consent/state", dependencies=[Depends(throttle)])
async def current(book: Book, caller: Caller,
                  email: Annotated[str | None, Query(max_length=320)] = None,
                  visitor_id: Annotated[str | None, Query(max_length=64)] = None
                  ) -> list[dict[str, Any]]:
    """The current consent per purpose; `stale` when given to an older text version."""
    subject = _subject(Who(email=email, visitor_id=visitor_id), caller)
    return [s.__dict__ for s in await book.state_async(subject)]


@router.get("/v1/consent/history", dependencies=[Depends(throttle)])
def history(book: Book, caller: Caller,
            email: Annotated[str | None, Query(max_length=320)] = None,
            visitor_id: Annotated[str | None, Query(max_length=64)] = None
            ) -> list[dict[str, Any]]:
    """Every event of the person, oldest first."""
    return book.history(_subject(Who(email=email, visitor_id=visitor_id), caller))


@router.get("/v1/staff/consent/export")
def export(book: Book, who: Lead, site: Annotated[str, Query(min_length=1, max_length=200)],
           format: Literal["json", "csv"] = "json") -> Response:
    """Every event of one site (a consent vendor's client asking for its visitors')."""
    events = book.export_site(site)
    if format == "json":
        return JSONResponse(events)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(events[0]) if events else ["id"])
    writer.writeheader()
    writer.writerows(events)
    return Response(buffer.getvalue(), media_type="text/csv")


@router.get("/v1/staff/consent/may-contact")
def may_i_contact(book: Book, who: Agent, request: Request,
                  email: Annotated[str, Query(max_length=320)],
                  purpose: Annotated[str, Query(max_length=100)]) -> dict[str, Any]:
    """Whether this address may receive a message for this purpose, and why."""
    service: Service = service_of(request)
    decision = may_contact(book, service.plan, email, purpose)
    return {"allowed": decision.allowed, "reason": decision.reason}


@router.post("/v1/staff/consent/filter")
def filter_list(body: Addresses, book: Book, who: Agent, request: Request
                ) -> dict[str, Any]:
    """Keep only the addresses that may be contacted for `purpose` (a mailing list import)."""
    if not body.purpose:
        raise HTTPException(422, "purpose: required")
    service: Service = service_of(request)
    allowed, refused = [], 0
    for email in body.emails:
        try:
            ok = may_contact(book, service.plan, email, body.purpose).allowed
        except Invalid:  # not an address: nobody to contact
            ok = False
        if ok:
            allowed.append(email)
        else:
            refused += 1
    return {"allowed": allowed, "refused": refused}


@router.post("/v1/staff/consent/do-not-contact")
def do_not_contact(body: Addresses, book: Book, who: Lead) -> dict[str, int]:
    """Add addresses (kept as keyed hashes) that must never get direct marketing."""
    added = book.add_do_not_contact(body.emails, body.reason or "imported",
                                    body.purpose or "*")
    return {"added": added}


@router.post("/v1/staff/consent/unsubscribe-headers")
def unsubscribe_headers(body: Withdrawal, who: Agent, request: Request) -> dict[str, str]:
    """The List-Unsubscribe headers for a marketing e-mail to this address."""
    service: Service = service_of(request)
    if not body.email:
        raise HTTPException(422, "email: required")
    subject = Subject.of(email=body.email)
    return unsubscribe.headers(service.base_url, subject.value, body.purpose)


@router.get("/v1/unsubscribe", response_class=HTMLResponse, dependencies=[Depends(throttle)])
def unsubscribe_page(book: Book, token: Annotated[str, Query(max_length=2000)]) -> str:
    """The page an unsubscribe link opens: it asks to confirm (mail scanners follow links, so
    a GET changes nothing)."""
    wanted = unsubscribe.read(token)
    name = _purpose_name(book, wanted.purpose)
    return _page(f"Unsubscribe from {name}?", f"""
<p>Stop sending {html.escape(name)} to <strong>{html.escape(wanted.email)}</strong>.</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>""")


@router.post("/v1/unsubscribe", response_class=HTMLResponse, dependencies=[Depends(throttle)])
async def unsubscribe_now(request: Request, book: Book,
                          token: Annotated[str, Query(max_length=2000)],
                          user_agent: Agent_ = None) -> str:
    """One-click unsubscribe (RFC 8058): a withdrawal, or an objection to direct marketing."""
    if not _one_click(await request.body(), request.headers.get("content-type", "")):
        raise HTTPException(422, "the body must be List-Unsubscribe=One-Click (RFC 8058)")
    wanted = unsubscribe.read(token)
    subject = Subject.of(email=wanted.email)
    # The store is written in the thread pool: this handler is async (it reads the body).
    if book.manifest.consent_purpose(wanted.purpose) is not None:
        await run_in_threadpool(book.withdraw, subject, wanted.purpose,
                                Channel.email_link.value, "subject", ip=_client(request),
                                user_agent=user_agent)
    else:  # a marketing activity without consent (soft opt-in): an objection
        await run_in_threadpool(book.object_to_marketing, subject, Channel.email_link.value,
                                "subject", wanted.purpose)
    name = _purpose_name(book, wanted.purpose)
    return _page("You are unsubscribed",
                 f"<p>{html.escape(wanted.email)} will receive no more "
                 f"{html.escape(name)}.</p>")


def _one_click(body: bytes, content_type: str) -> bool:
    """RFC 8058 §3.2: the mail receiver posts List-Unsubscribe=One-Click, as multipart/form-data
    or as application/x-www-form-urlencoded."""
    if content_type.lower().startswith("multipart/form-data"):
        from email.parser import BytesParser
        from email.policy import HTTP

        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        try:
            message = BytesParser(policy=HTTP).parsebytes(head + body)
            values = [str(part.get_content()).strip() for part in message.iter_parts()
                      if part.get_param("name", header="content-disposition") ==
                      "List-Unsubscribe"]
        except (ValueError, LookupError, TypeError):
            return False
        return values == ["One-Click"]
    return parse_qs(body.decode("utf-8", "replace")).get("List-Unsubscribe") == ["One-Click"]


def _purpose_name(book: Ledger, key: str) -> str:
    consent = book.manifest.consent_purpose(key)
    activity = book.manifest.activity(key)
    return consent.name if consent else activity.name if activity else key


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width'><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1>{body}</html>")


@router.get("/.well-known/gpc.json", include_in_schema=False)
def gpc_json(book: Book) -> dict[str, Any]:
    """Global Privacy Control support, as the GPC specification asks a site to state."""
    effective = book.manifest.notice.effective or dt.date(2026, 11, 22)
    return {"gpc": True, "lastUpdate": effective.isoformat()}


@router.get("/v1/consent/banner.js", include_in_schema=False)
def banner() -> Response:
    return Response((STATIC / "banner.js").read_text(encoding="utf-8"),
                    media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=300"})
