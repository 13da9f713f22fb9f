"""The FastAPI application: routers, error mapping, body limit, background upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import gc
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
    # The consent router first: its endpoints take the most traffic (a banner on every
    # page), and routes are matched in order.
    app.include_router(consent.router)
    app.include_router(public.router)
    app.include_router(staff.router)
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(EngineError, _engine_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit)  # type: ignore[arg-type]
    # The cookie banner runs on the company's website and posts here: public endpoints may
    # be called cross-origin (no cookies, no credentials); staff keys never are.
    app.add_middleware(CORSMiddleware, allow_origins=_origins(), allow_credentials=False,
                       allow_methods=["GET", "POST"], allow_headers=["Content-Type"])
    return app


def from_env() -> FastAPI:
    """The app as `lawful serve --workers N` starts it in each worker process (uvicorn needs
    an import string for several workers): the manifest from LAWFUL_MANIFEST (else
    ./lawful.yaml), the public address from LAWFUL_BASE_URL. Each worker keeps its own rate
    limiter and connection pool; one of them (the holder of a lock file) runs the upkeep."""
    from lawful.manifest.load import find_manifest, load_located

    service = Service(load_located(find_manifest(None)).manifest,
                      base_url=os.environ.get("LAWFUL_BASE_URL", "http://127.0.0.1:8000"))
    app = create_app(service, upkeep=_upkeep_lock())
    settle_heap()
    return app


def settle_heap() -> None:
    """Once the app is built: move everything alive (the manifest, the taxonomy, SQLAlchemy's
    and pydantic's schemas, ~150,000 objects) out of the garbage collector's sight. A full
    collection otherwise walks them all, about 80 ms during which the worker answers
    nothing: the slowest 1 % of requests under load."""
    gc.collect()
    gc.freeze()


_held: list[int] = []


def _upkeep_lock() -> bool:
    """True in the one worker process that holds the upkeep lock (released when it exits, so
    the worker uvicorn starts in its place takes it over)."""
    import fcntl

    from lawful.keys import state_dir

    path = state_dir() / "upkeep.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held.append(fd)  # kept open for the life of the process
    return True


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
