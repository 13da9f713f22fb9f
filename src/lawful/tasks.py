"""Tasks: in process on the embedded default; on Celery workers when LAWFUL_BROKER_URL names a
Redis or RabbitMQ broker (`lawful worker` runs one; `lawful worker --beat` also schedules the
daily purge of old request records).

Messages are acknowledged only after the task finished (acks_late) and given back when a
worker dies (reject_on_worker_lost), so a request whose worker was killed completes once a
worker runs again; on Redis, after the visibility timeout (LAWFUL_TASK_VISIBILITY, seconds).
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from celery import Celery
from celery.schedules import crontab

if TYPE_CHECKING:
    from lawful.requests.workflow import Service


def broker_url() -> str | None:
    return os.environ.get("LAWFUL_BROKER_URL") or None


def _make() -> Celery:
    app = Celery("lawful", broker=broker_url() or "memory://")
    app.conf.update(
        task_always_eager=broker_url() is None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": int(os.environ.get("LAWFUL_TASK_VISIBILITY", "600"))},
        task_default_queue="lawful",
        beat_schedule={"purge-request-records": {
            "task": "lawful.purge", "schedule": crontab(hour=3, minute=17)}},
    )
    return app


celery_app = _make()


@cache
def _service() -> Service:
    """The worker's service, from the same environment as `lawful serve`."""
    from lawful.manifest import find_manifest, load_located
    from lawful.requests.workflow import Service

    manifest = load_located(find_manifest(None)).manifest
    return Service(manifest, base_url=os.environ.get("LAWFUL_BASE_URL",
                                                     "http://127.0.0.1:8000"))


@celery_app.task(name="lawful.execute")
def execute(request_id: str) -> str:
    from lawful.requests.execute import run

    return run(_service(), request_id)


@celery_app.task(name="lawful.purge")
def purge() -> int:
    return _service().purge()


def enqueue(request_id: str, service: Service | None = None) -> None:
    """Run now in this process (no broker), or hand to a worker."""
    if broker_url() is None:
        from lawful.requests.execute import run

        run(service or _service(), request_id)
    else:
        execute.delay(request_id)
