"""Dependencies shared by the routers: the service, the rate limiter, staff authentication."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from lawful.api.auth import Role, Staff, authenticate, remembered
from lawful.api.limits import RateLimiter
from lawful.requests.workflow import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _client(request: Request) -> str:
    """The client's address as the limiter counts it: an IPv6 client has a whole /64 to
    itself (one address per request would otherwise be one budget per request)."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return host


def _limit(request: Request, bucket: str, share: float) -> None:
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.allow(_client(request), bucket, share)
    if wait is not None:
        raise HTTPException(429, "too many requests; try again later",
                            headers={"Retry-After": str(int(wait) + 1)})


# The guards are `async def`: FastAPI runs a plain `def` dependency in the thread pool, a hop
# (and a thread wake-up) per request that an in-memory check does not need.
async def throttle(request: Request) -> None:
    _limit(request, "public", 1.0)


async def throttle_codes(request: Request) -> None:
    # Guessing codes is what an attacker would do here: a stricter budget per client, on top
    # of the five tries each request allows.
    _limit(request, "codes", 0.2)


def checked_key(request: Request, authorization: str | None,
                x_api_key: str | None) -> Staff | None:
    """The staff member a key belongs to. A key not verified before costs an argon2 hash
    (on purpose), so such attempts come out of a small per-client budget: nobody can make the
    server hash for every request they send."""
    key = (x_api_key or (authorization[7:] if authorization and
                         authorization.lower().startswith("bearer ") else "")).strip()
    if not key:
        return None
    if not remembered(key):
        _limit(request, "keys", 0.2)
    return authenticate(key)


def staff(request: Request,
          authorization: Annotated[str | None, Header(max_length=300)] = None,
          x_api_key: Annotated[str | None, Header(max_length=300)] = None) -> Staff:
    found = checked_key(request, authorization, x_api_key)
    if found is None:
        raise HTTPException(401, "a valid staff API key is required (Authorization: Bearer "
                            "lk_…, or X-API-Key)", headers={"WWW-Authenticate": "Bearer"})
    return found


def role(minimum: Role) -> Callable[[Staff], Staff]:
    def check(who: Annotated[Staff, Depends(staff)]) -> Staff:
        if not who.may(minimum):
            raise HTTPException(403, f"this needs the {minimum.value} role")
        return who
    return check
