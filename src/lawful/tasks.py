"""Tasks: in process on the embedded default; on Celery workers when LAWFUL_BROKER_URL names a
Redis or RabbitMQ broker (`lawful worker` runs one; `lawful worker --beat` also schedules the
daily retention run and the daily purge of old request records).

Messages are acknowledged only after the task finished (acks_late) and given back when a
worker dies (reject_on_worker_lost), so a request whose worker was killed completes once a
worker runs again; on Redis, after the visibility timeout (LAWFUL_TASK_VISIBILITY, seconds).
Tasks go through the queue LAWFUL_TASK_QUEUE (default "lawful"), so several installations or
test runs can share one broker without taking each other's tasks.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from celery import Celery, Task
from celery.schedules import crontab

if TYPE_CHECKING:
    from lawful.requests.workflow import Service


def broker_url() -> str | None:
    return os.environ.get("LAWFUL_BROKER_URL") or None


def queue_name() -> str:
    return os.environ.get("LAWFUL_TASK_QUEUE") or "lawful"


def _make(url: str | None, queue: str, current: bool = True) -> Celery:
    visibility = int(os.environ.get("LAWFUL_TASK_VISIBILITY", "600"))
    app = Celery("lawful", broker=url or "memory://", set_as_current=current)
    app.conf.update(
        task_always_eager=url is None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # kombu (>= 5.7) looks for the unacknowledged messages of dead workers only every
            # interval x throttle seconds (10 x 10 by default), whatever the visibility
            # timeout: look at least as often as the timeout, so a short one takes effect.
            "unacked_restore_interval": max(1, min(10, visibility)),
            "unacked_restore_throttle": 1},
        task_default_queue=queue,
        beat_schedule={
            "purge-request-records": {
                "task": "lawful.purge", "schedule": crontab(hour=3, minute=17)},
            # Retention is idempotent: a day missed is caught up the next day.
            "enforce-retention": {
                "task": "lawful.retention", "schedule": crontab(hour=2, minute=31)}},
    )
    return app


celery_app = _make(broker_url(), queue_name())


@cache
def _sender(url: str, queue: str) -> Celery:
    """The app that publishes to `url` and `queue`. They are read when a task is sent, not
    only when this module was first imported: a process whose environment changed since
    (a test pointing at a broker) would otherwise run tasks eagerly or send them elsewhere."""
    conf = celery_app.conf
    if conf.broker_url == url and conf.task_default_queue == queue:
        return celery_app
    return _make(url, queue, current=False)


@cache
def _service() -> Service:
    """The worker's service, from the same environment as `lawful serve`."""
    from lawful.manifest import find_manifest, load_located
    from lawful.requests.workflow import Service

    manifest = load_located(find_manifest(None)).manifest
    return Service(manifest, base_url=os.environ.get("LAWFUL_BASE_URL",
                                                     "http://127.0.0.1:8000"))


RETRIES = 5  # a task that fails outside `run`'s own handling: tried again after 5 .. 80 s


@celery_app.task(name="lawful.execute", bind=True, max_retries=RETRIES)
def execute(self: Task, request_id: str) -> str:
    from lawful.requests.execute import record_failure, run

    try:
        return run(_service(), request_id)
    except Exception as exc:
        # `run` records what fails inside the engine; this is what fails around it: the
        # manifest cannot be loaded (being edited, say) or the store is unreachable. A failed
        # task is acknowledged like a finished one, so without this the request would stay
        # in progress with no error and nobody would run it again. Try again with backoff;
        # once the tries are spent, the request records why, and staff can execute it again.
        if self.request.retries < RETRIES:
            raise self.retry(exc=exc, countdown=5 * 2 ** self.request.retries) from exc
        record_failure(request_id, exc)
        raise


@celery_app.task(name="lawful.purge")
def purge() -> int:
    return _service().purge()


@celery_app.task(name="lawful.retention")
def retention() -> dict[str, object]:
    """`lawful retention run`, as the daily beat schedules it (`lawful worker --beat`)."""
    from lawful.retention.prepare import today_from
    from lawful.retention.sweep import run

    service = _service()
    if not service.manifest.systems:
        return {"run": None, "done": 0}
    result = run(service.plan, today_from(None))
    return {"run": result.run_id, "done": result.done}


def enqueue(request_id: str, service: Service | None = None) -> None:
    """Run now in this process (no broker), or hand to a worker."""
    url = broker_url()
    if url is None:
        from lawful.requests.execute import run

        run(service or _service(), request_id)
    else:
        queue = queue_name()
        _sender(url, queue).send_task(execute.name, args=[request_id], queue=queue)
