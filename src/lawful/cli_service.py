"""Commands of the request service: `serve`, `worker`, `db`, `requests`, `outbox`, `audit`,
`keys`. They call the same service functions as the HTTP API."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape

from lawful.cli import (
    EXIT_FINDINGS,
    EXIT_UNAVAILABLE,
    ManifestOpt,
    OutputFormat,
    _fail,
    _load,
    app,
    err,
    out,
)
from lawful.requests.kinds import Kind

if TYPE_CHECKING:
    from lawful.requests.workflow import Service

db_app = typer.Typer(help="lawful's own store (requests, journal).", no_args_is_help=True)
requests_app = typer.Typer(help="Data subject requests: submit, list, show, handle.",
                           no_args_is_help=True)
audit_app = typer.Typer(help="The audit journal.", no_args_is_help=True)
keys_app = typer.Typer(help="Staff API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(requests_app, name="requests")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")

DEMO_CUSTOMERS = 200
T = TypeVar("T")


def _service(manifest: Path | None, base_url: str | None = None) -> Service:
    from lawful.keys import SecretKeyError
    from lawful.requests.workflow import Service

    located = _load(manifest)
    try:
        return Service(located.manifest, base_url=base_url or os.environ.get(
            "LAWFUL_BASE_URL", "http://127.0.0.1:8000"))
    except SecretKeyError as exc:
        _fail(str(exc))
    except Exception as exc:  # the store cannot be reached or migrated
        import sqlalchemy as sa

        if isinstance(exc, sa.exc.SQLAlchemyError):
            _fail(f"lawful's store is unavailable: {str(exc).splitlines()[0]}",
                  EXIT_UNAVAILABLE)
        raise


def _call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service call: its refusals (bad input, unknown id, wrong state) become one clear
    line and exit 2; an unreachable database exits 3."""
    from lawful.engine.connect import EngineError
    from lawful.requests.kinds import ServiceError

    try:
        return func(*args, **kwargs)
    except ServiceError as exc:
        _fail(str(exc))
    except EngineError as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate lawful's store to the newest schema."""
    import sqlalchemy as sa

    from lawful.engine.state import store_url
    from lawful.store import db

    revision = db.upgrade()
    shown = sa.engine.make_url(store_url()).render_as_string(hide_password=True)
    err.print(f"store {escape(shown)} is at revision {revision}")


# --- requests ---------------------------------------------------------------------------------


@requests_app.command("submit")
def requests_submit(
    kind: Annotated[Kind, typer.Option("--type", "-t")],
    email: Annotated[str, typer.Option("--email", "-e")],
    detail: Annotated[list[str] | None, typer.Option(
        "--detail", help="KEY=VALUE: set.TABLE.FIELD=VALUE (rectification), to=… and "
        "grounds=… (objection), purpose=… (consent_withdrawal). Repeatable.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Record a request received by post, phone or in person; the code goes to the e-mail."""
    details: dict[str, object] = {}
    for item in detail or []:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--detail {item!r}: write KEY=VALUE")
        if key.startswith("set."):
            details.setdefault("set", {})[key[4:]] = value  # type: ignore[index]
        else:
            details[key] = value
    service = _service(manifest)
    request, token = _call(service.submit, kind.value, email, details or None, "cli")
    if fmt is OutputFormat.json:
        print(json.dumps({"id": request.id, "token": token, "status": request.status,
                          "due_on": str(request.due_on)}))
        return
    out.print(f"request {request.id}: {request.type}, {request.status}, due {request.due_on}")
    out.print(f"requester's follow token (shown once): {token}")
    if request.repeat_of:
        out.print(f"[yellow]repeats request {request.repeat_of}[/yellow]")


@requests_app.command("list")
def requests_list(
    status: Annotated[str | None, typer.Option("--status")] = None,
    overdue: Annotated[bool, typer.Option("--overdue")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Requests by deadline, soonest first."""
    from lawful.requests.kinds import Status
    from lawful.requests.views import view

    if status and status not in Status.__members__:
        _fail(f"--status: one of {', '.join(Status.__members__)}")
    service = _service(manifest)
    views = [view(service, r) for r in service.list(status, None, None, overdue)]
    if fmt is OutputFormat.json:
        print(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        return
    from rich.table import Table

    grid = Table(title=f"{len(views)} request(s)")
    for column in ("id", "type", "status", "due", "received", "e-mail"):
        grid.add_column(column)
    for v in views:
        due = f"[red]{v.due_on} overdue[/red]" if v.overdue else str(v.due_on)
        grid.add_row(v.id, v.type, v.status, due, f"{v.received_at:%Y-%m-%d}",
                     escape(v.email))
    out.print(grid)


@requests_app.command("show")
def requests_show(
    request_id: Annotated[str, typer.Argument()],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """One request, its answer and its notifications."""
    from lawful.requests.views import view

    service = _service(manifest)
    shown = view(service, _call(service.get, request_id, "cli"), notifications=True)
    if fmt is OutputFormat.json:
        print(shown.model_dump_json(indent=2))
        return
    for key, value in shown.model_dump(mode="json").items():
        if value not in (None, [], {}):
            out.print(f"[bold]{key}[/bold]: {escape(json.dumps(value, ensure_ascii=False))}")


def _staff_action(name: str, request_id: str, manifest: Path | None, *args: object) -> None:
    service = _service(manifest)
    request = _call(getattr(service, name), request_id, "cli", *args)
    out.print(f"request {request_id}: {request.status}"
              + (f", due {request.due_on}" if name == "extend" else ""))


@requests_app.command("verify")
def requests_verify(request_id: str, note: Annotated[str, typer.Option(
        "--note", help="How the identity was verified.")], manifest: ManifestOpt = None) -> None:
    """Record that staff verified the requester by other means."""
    _staff_action("staff_verify", request_id, manifest, note)


@requests_app.command("execute")
def requests_execute(request_id: str, manifest: ManifestOpt = None) -> None:
    """Execute a verified request (on a worker when LAWFUL_BROKER_URL is set)."""
    _staff_action("execute", request_id, manifest)


@requests_app.command("extend")
def requests_extend(request_id: str,
                    months: Annotated[int, typer.Option("--months", min=1, max=2)],
                    reason: Annotated[str, typer.Option("--reason")],
                    manifest: ManifestOpt = None) -> None:
    """Extend the deadline (Art. 12(3)); the requester is told why, before the month ends."""
    _staff_action("extend", request_id, manifest, months, reason)


@requests_app.command("refuse")
def requests_refuse(request_id: str, grounds: Annotated[str, typer.Option("--grounds")],
                    reason: Annotated[str, typer.Option("--reason")],
                    manifest: ManifestOpt = None) -> None:
    """Refuse, with reasons and the right to complain to the supervisory authority."""
    _staff_action("refuse", request_id, manifest, grounds, reason)


@requests_app.command("fee")
def requests_fee(request_id: str,
                 amount: Annotated[str, typer.Option("--amount", help="e.g. '25 EUR'")],
                 reason: Annotated[str, typer.Option("--reason")],
                 manifest: ManifestOpt = None) -> None:
    """Charge a fee for a manifestly unfounded or excessive request (Art. 12(5)(a)); the
    requester is told, and the request waits until the payment is recorded."""
    _staff_action("charge_fee", request_id, manifest, amount, reason)


@requests_app.command("fee-paid")
def requests_fee_paid(request_id: str, note: Annotated[str, typer.Option(
        "--note", help="How it was paid.")], manifest: ManifestOpt = None) -> None:
    """Record that the fee was paid: the request can then be executed."""
    _staff_action("fee_paid", request_id, manifest, note)


@requests_app.command("purge")
def requests_purge(manifest: ManifestOpt = None) -> None:
    """Delete closed requests older than rights.keep_request_records."""
    count = _service(manifest).purge()
    out.print(f"{count} closed request(s) purged")


# --- outbox, audit, keys ----------------------------------------------------------------------


@app.command()
def outbox(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    all_: Annotated[bool, typer.Option("--all", help="Also those already sent.")] = False,
) -> None:
    """E-mails the embedded default did not send (no LAWFUL_SMTP_URL)."""
    from lawful.requests import mail
    from lawful.store import db

    db.ensure_current()
    with db.session() as s:
        shown = mail.show(s, None if all_ else "kept")
    if fmt is OutputFormat.json:
        print(json.dumps([m.__dict__ for m in shown], indent=2, ensure_ascii=False))
        return
    for m in shown:
        out.print(f"[bold]#{m.id}[/bold] {m.created_at} to {escape(m.to)} ({m.status})\n"
                  f"Subject: {escape(m.subject)}\n\n{escape(m.body)}")
    err.print(f"{len(shown)} message(s)")


@audit_app.command("verify")
def audit_verify(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
) -> None:
    """Check the journal's hash chain: any edited, inserted or removed entry is found."""
    from lawful.store import audit, db

    db.ensure_current()
    with db.session() as s:
        verdict = audit.verify(s)
    if fmt is OutputFormat.json:
        print(json.dumps(verdict.__dict__))
    elif verdict.ok:
        out.print(f"[green]audit journal intact[/green]: {verdict.entries} entries")
    else:
        for problem in verdict.problems:
            out.print(f"[red]{escape(problem)}[/red]")
    if not verdict.ok:
        raise typer.Exit(EXIT_FINDINGS)


class RoleOpt(StrEnum):
    agent = "agent"
    privacy_lead = "privacy_lead"
    admin = "admin"


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option("--name")],
                role: Annotated[RoleOpt, typer.Option("--role")] = RoleOpt.agent) -> None:
    """Create a staff API key; it is printed once and stored only as a hash."""
    from lawful.api.auth import Role, create

    try:
        print(create(name, Role(role.value)))
    except ValueError as exc:
        _fail(str(exc))
    err.print(f"key for {escape(name)} ({role.value}): keep it now, it cannot be shown again")


@keys_app.command("list")
def keys_list() -> None:
    from lawful.api.auth import listed

    for key in listed():
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        out.print(f"{key.id}  {key.role:<13} {escape(key.name)}  {state}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    from lawful.api.auth import revoke

    if not revoke(key_id):
        _fail(f"no active key {key_id}")
    out.print(f"key {key_id} revoked")


# --- serve and worker -------------------------------------------------------------------------


def demo_manifest() -> Path:
    """The Kerf manifest of the source tree (the demo runs from a clone)."""
    here = Path(__file__).resolve().parents[2] / "examples" / "kerf" / "lawful.yaml"
    return here if here.exists() else Path("examples/kerf/lawful.yaml")


@app.command()
def serve(
    demo: Annotated[bool, typer.Option("--demo", help="Build the Kerf demo database and "
                                       "serve its manifest.")] = False,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="Log every request with the client's address (off: lawful "
        "itself never keeps a whole IP address).")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Worker processes (each with its own connection "
        "pool and rate limiter); 1 serves in this process.")] = 1,
    manifest: ManifestOpt = None,
) -> None:
    """Start the HTTP API (OpenAPI at /docs); migrations run first."""
    import uvicorn

    from lawful.api.app import create_app, settle_heap
    from lawful.manifest.load import find_manifest
    from lawful.store import db

    base_url = os.environ.get("LAWFUL_BASE_URL", f"http://{host}:{port}")
    if demo:
        manifest = manifest or demo_manifest()
        example = _demo_database()
    db.upgrade()
    service = _service(manifest, base_url)  # checked here: a bad manifest stops before workers
    if demo:
        _demo_instructions(base_url, example)
    if workers == 1:
        served = create_app(service, upkeep=True)
        settle_heap()
        uvicorn.run(served, host=host, port=port, log_level="info", access_log=access_log)
        return
    # The workers build the same app from the environment (lawful.api.app.from_env).
    os.environ["LAWFUL_MANIFEST"] = str(find_manifest(str(manifest) if manifest else None)
                                        .resolve())
    os.environ["LAWFUL_BASE_URL"] = base_url
    db.engine().dispose()
    uvicorn.run("lawful.api.app:from_env", factory=True, workers=workers, host=host,
                port=port, log_level="info", access_log=access_log)


def _demo_database() -> str:
    """Build the demo Kerf database once (kept under the state directory); an e-mail to try."""
    import sqlalchemy as sa

    from lawful.demo.generate import generate
    from lawful.keys import state_dir

    path = state_dir() / "demo" / "kerf.db"
    url = f"sqlite:///{path}"
    os.environ["KERF_DATABASE_URL"] = url
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        err.print(f"building the Kerf demo database ({DEMO_CUSTOMERS} customers) in {path}")
        generate(url, DEMO_CUSTOMERS, 1)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        email = conn.execute(sa.text("SELECT email FROM customer WHERE email IS NOT NULL "
                                     "ORDER BY id LIMIT 1")).scalar_one()
    engine.dispose()
    return str(email)


def _demo_instructions(base: str, email: str) -> None:
    from lawful.api.auth import Role, create

    key = create("demo", Role.privacy_lead, "serve --demo")
    err.print(f"""
[bold]lawful is serving the Kerf demo at {base}[/bold] (OpenAPI: {base}/docs)

Try an access request as the customer {email}:
  curl -s -X POST {base}/v1/requests -H 'Content-Type: application/json' \\
       -d '{{"type": "access", "email": "{email}"}}'
  # note "id" and "token"; the e-mail with the code is kept (no SMTP configured):
  .venv/bin/lawful outbox
  curl -s -X POST {base}/v1/requests/ID/verify -H 'X-Request-Token: TOKEN' \\
       -H 'Content-Type: application/json' -d '{{"code": "123456"}}'
  curl -s {base}/v1/requests/ID -H 'X-Request-Token: TOKEN'   # "download" is the zip's link

Staff endpoints take this privacy-lead key (shown once):
  curl -s {base}/v1/staff/requests -H 'Authorization: Bearer {key}'
""")


@app.command()
def worker(
    beat: Annotated[bool, typer.Option(
        "--beat", help="Also schedule the daily retention run and request purge.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=64)] = 1,
    manifest: ManifestOpt = None,
) -> None:
    """A Celery worker executing requests (needs LAWFUL_BROKER_URL: redis:// or amqp://)."""
    from lawful.manifest import find_manifest
    from lawful.store import db

    if not os.environ.get("LAWFUL_BROKER_URL"):
        _fail("set LAWFUL_BROKER_URL to a Redis or RabbitMQ URL; without one, requests run "
              "inside `lawful serve` and no worker is needed")
    os.environ["LAWFUL_MANIFEST"] = str(find_manifest(str(manifest) if manifest else None))
    _load(manifest)  # a broken manifest stops here, with its problems listed
    db.upgrade()
    from lawful.tasks import celery_app, queue_name

    argv = ["worker", "--loglevel", "INFO", "-Q", queue_name(), "--concurrency", str(concurrency),
            "--pool", "solo" if concurrency == 1 else "prefork"]
    celery_app.worker_main([*argv, *(["--beat"] if beat else [])])
