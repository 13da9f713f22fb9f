"""The FastAPI application: routers, error mapping, body limit, background upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from lawful import __version__
from lawful.api import consent, public, staff
from lawful.api.limits import BodyLimit, RateLimiter
from lawful.consent.ledger import Ledger
from lawful.engine.connect import EngineError
from lawful.requests import mail
from lawful.requests.kinds import ServiceError
from lawful.requests.workflow import Service

UPKEEP_SECONDS = 60.0  # retry kept e-mails; purge old request records once a day


def create_app(service: Service, limiter: RateLimiter | None = None,
               upkeep: bool = False) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_upkeep(service)) if upkeep else None
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(
        title=f"lawful: {service.manifest.organisation.name}", version=__version__,
        description="Data subject requests (GDPR Art. 15-22): make one, verify, follow it "
        "and download the answer; staff endpoints handle them within the deadline.",
        lifespan=lifespan)
    app.state.service = service
    app.state.ledger = Ledger(service.manifest, now=service.now)
    app.state.limiter = limiter or RateLimiter()
    app.include_router(public.router)
    app.include_router(staff.router)
    app.include_router(consent.router)
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(EngineError, _engine_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit)  # type: ignore[arg-type]
    # The cookie banner runs on the company's website and posts here: public endpoints may
    # be called cross-origin (no cookies, no credentials); staff keys never are.
    app.add_middleware(CORSMiddleware, allow_origins=_origins(), allow_credentials=False,
                       allow_methods=["GET", "POST"], allow_headers=["Content-Type"])
    return app


def _origins() -> list[str]:
    configured = os.environ.get("LAWFUL_CORS_ORIGINS", "*")
    return [o.strip() for o in configured.split(",") if o.strip()]


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


async def _engine_error(_: Request, exc: EngineError) -> JSONResponse:
    return JSONResponse({"detail": f"a database is unavailable: {exc}"}, status_code=503)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    # One readable line per problem: where, and what is wrong; never the submitted values
    # (they may be personal data).
    problems: list[dict[str, Any]] = [
        {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
        for e in exc.errors()]
    text = "; ".join(f"{p['where']}: {p['problem']}" for p in problems)
    return JSONResponse({"detail": text or "invalid request", "problems": problems},
                        status_code=422)


async def _upkeep(service: Service) -> None:
    ticks = 0
    while True:
        await asyncio.sleep(UPKEEP_SECONDS)
        ticks += 1
        with contextlib.suppress(Exception):  # upkeep must never take the service down
            await asyncio.to_thread(mail.deliver)
            if ticks % (24 * 60) == 1:
                await asyncio.to_thread(service.purge)
