"""Guards for the public endpoints: a per-client rate limit and a cap on body size.

The limiter is in memory, per process (a sliding window per client address and bucket):
enough for one `lawful serve`; behind several processes, put the proxy's limiter in front.
LAWFUL_RATE_LIMIT sets requests per minute per client (default 60; verification codes get a
fifth of it).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

MAX_BODY = 64 * 1024  # bytes: a request form is small; anything larger is refused


class RateLimiter:
    def __init__(self, per_minute: int | None = None) -> None:
        self.per_minute = per_minute or int(os.environ.get("LAWFUL_RATE_LIMIT", "60"))
        self._hits: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._swept = 0.0
        self.max_clients = 100_000

    def allow(self, client: str, bucket: str, share: float = 1.0) -> float | None:
        """None if allowed; else seconds to wait."""
        limit = max(1, int(self.per_minute * share))
        at = time.monotonic()
        with self._lock:
            hits = self._hits[(client, bucket)]
            while hits and at - hits[0] > 60:
                hits.popleft()
            if len(hits) >= limit:
                return 60 - (at - hits[0])
            hits.append(at)
            if len(self._hits) > self.max_clients and at - self._swept > 1:
                # Forget clients idle for a minute (their window is empty by now); at most one
                # sweep a second, so a flood of new addresses cannot make every call slow.
                self._swept = at
                for key in [k for k, v in self._hits.items() if not v or at - v[-1] > 60]:
                    del self._hits[key]
        return None


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: refuse bodies over MAX_BODY with 413, whether or not a length is
    declared (a chunked body is counted as it arrives)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            await _too_large(send)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = b'{"detail":"the request body is larger than 65536 bytes"}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
