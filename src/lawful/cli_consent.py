"""Commands of the consent ledger: `lawful consent state|history|export|may-contact|filter|
do-not-contact|withdraw`. They call the same ledger functions as the HTTP API."""

from __future__ import annotations

import csv
import io
import json
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
    _write,
    app,
    err,
    out,
)
from lawful.cli_service import _call, _service

if TYPE_CHECKING:
    from lawful.consent.ledger import Ledger, Subject
    from lawful.engine.plan import Plan

consent_app = typer.Typer(help="The consent ledger and the do-not-contact list.",
                          no_args_is_help=True)
app.add_typer(consent_app, name="consent")

T = TypeVar("T")
EmailOpt = Annotated[str | None, typer.Option("--email", "-e", help="The person's e-mail.")]
VisitorOpt = Annotated[str | None, typer.Option("--visitor-id",
                                                help="A website visitor's id (the banner's).")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f")]
ACTOR = "cli"


class ExportFormat(StrEnum):
    json = "json"
    csv = "csv"


def _ledger(manifest: Path | None) -> tuple[Ledger, Callable[[], Plan]]:
    """The ledger on lawful's store, and the engine's plan when it is needed."""
    from lawful.consent.ledger import Ledger

    service = _service(manifest)
    return Ledger(service.manifest, now=service.now), lambda: service.plan


def _check_purpose(ledger: Ledger, purpose: str) -> None:
    """A consent purpose or a marketing activity of the manifest, or exit 2 naming them."""
    found = ledger.manifest.activity(purpose)
    if ledger.manifest.consent_purpose(purpose) is None and \
            (found is None or found.marketing is None):
        names = [p.id for p in ledger.manifest.consent_purposes] + \
            [a.id for a in ledger.manifest.activities if a.marketing is not None]
        _fail(f"--purpose {purpose!r} is not a consent purpose or marketing activity of the "
              f"manifest (declared: {', '.join(names) or 'none'})")


def _subject(email: str | None, visitor_id: str | None) -> Subject:
    from lawful.consent.ledger import Subject

    if bool(email) == bool(visitor_id):
        _fail("give the person as exactly one of --email or --visitor-id")
    return _call(Subject.of, email, visitor_id)


def _read_addresses(path: Path) -> list[str]:
    """One address a line (blank lines and lines starting with # are skipped); a CSV with an
    `email` column is read by that column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        _fail(f"{path} is not UTF-8 text")
    first = text.splitlines()[0] if text.strip() else ""
    if "," in first and "email" in [c.strip().lower() for c in first.split(",")]:
        rows = csv.DictReader(io.StringIO(text))
        key = next(k for k in rows.fieldnames or [] if k.strip().lower() == "email")
        return [(row.get(key) or "").strip() for row in rows if (row.get(key) or "").strip()]
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@consent_app.command("state")
def consent_state(email: EmailOpt = None, visitor_id: VisitorOpt = None,
                  fmt: FormatOpt = OutputFormat.text, manifest: ManifestOpt = None) -> None:
    """The person's current consent per purpose; `stale` when given to an older text."""
    subject = _subject(email, visitor_id)
    ledger, _ = _ledger(manifest)
    states = _call(ledger.state, subject)
    if fmt is OutputFormat.json:
        print(json.dumps([s.__dict__ for s in states], default=str, indent=2))
        return
    from rich.table import Table

    grid = Table(title=f"consent of {escape(subject.value)}")
    for column in ("purpose", "status", "version", "since"):
        grid.add_column(column)
    for s in states:
        status = f"[yellow]{s.status} (stale: current text is version " \
                 f"{s.current_version})[/yellow]" if s.stale else s.status
        grid.add_row(s.purpose, status, "" if s.version is None else str(s.version),
                     f"{s.at:%Y-%m-%d %H:%M}" if s.at else "")
    out.print(grid)


@consent_app.command("history")
def consent_history(email: EmailOpt = None, visitor_id: VisitorOpt = None,
                    fmt: FormatOpt = OutputFormat.text, manifest: ManifestOpt = None) -> None:
    """Every consent event of the person, oldest first."""
    subject = _subject(email, visitor_id)
    ledger, _ = _ledger(manifest)
    events = _call(ledger.history, subject)
    if fmt is OutputFormat.json:
        print(json.dumps(events, indent=2, ensure_ascii=False))
        return
    for e in events:
        shown = f" v{e['version']} ({e['language']}, text {e['text_hash'][:12]}…)" \
            if e["text_hash"] else ""
        out.print(f"{e['at']}  {e['purpose']:<20} {e['action']:<10}{escape(shown)} via "
                  f"{e['channel']}{' at ' + escape(e['site']) if e['site'] else ''}"
                  f" by {escape(e['actor'])}{'  [GPC]' if e['gpc'] else ''}")
    err.print(f"{len(events)} event(s)")


@consent_app.command("export")
def consent_export(
    site: Annotated[str, typer.Option("--site", help="The website the events came from.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.json,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    manifest: ManifestOpt = None,
) -> None:
    """Every consent event of one site (what a consent vendor's client asks for)."""
    if not site.strip():
        _fail("--site: give the site's name")
    ledger, _ = _ledger(manifest)
    events = _call(ledger.export_site, site)
    if fmt is ExportFormat.json:
        _write(json.dumps(events, indent=2, ensure_ascii=False) + "\n", output)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(events[0]) if events else ["id"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(events)
        _write(buffer.getvalue(), output)
    err.print(f"{len(events)} event(s) of {escape(site)}")


@consent_app.command("may-contact")
def consent_may_contact(
    email: Annotated[str, typer.Option("--email", "-e")],
    purpose: Annotated[str, typer.Option("--purpose", "-p", help="A consent purpose or a "
                                         "marketing activity of the manifest.")],
    fmt: FormatOpt = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Whether the address may get a message for the purpose, and why: exit 0 yes, 1 no."""
    from lawful.consent.contact import may_contact

    ledger, plan = _ledger(manifest)
    _check_purpose(ledger, purpose)
    decision = _call(may_contact, ledger, _plan_if_needed(ledger, purpose, plan), email,
                     purpose)
    if fmt is OutputFormat.json:
        print(json.dumps({"allowed": decision.allowed, "reason": decision.reason}))
    else:
        verdict = "[green]yes[/green]" if decision.allowed else "[red]no[/red]"
        out.print(f"{verdict}: {escape(decision.reason)}")
    if not decision.allowed:
        raise typer.Exit(EXIT_FINDINGS)


def _plan_if_needed(ledger: Ledger, purpose: str, plan: Callable[[], Plan]) -> Plan | None:
    """The engine's plan only where the soft opt-in must search the customer databases."""
    activity = ledger.manifest.activity(purpose)
    if ledger.manifest.consent_purpose(purpose) is None and activity is not None and \
            activity.marketing is not None and activity.marketing.soft_opt_in:
        return _call(plan)
    return None


@consent_app.command("filter")
def consent_filter(
    file: Annotated[Path, typer.Argument(help="Addresses, one a line (or a CSV with an "
                                         "'email' column).")],
    purpose: Annotated[str, typer.Option("--purpose", "-p")],
    fmt: FormatOpt = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Print the addresses of a list that may be contacted for the purpose; the others
    (no consent, withdrawn, on the do-not-contact list, not an address) are left out."""
    from lawful.consent.contact import may_contact
    from lawful.requests.kinds import Invalid

    addresses = _read_addresses(file)
    ledger, plan = _ledger(manifest)
    _check_purpose(ledger, purpose)
    chosen = _plan_if_needed(ledger, purpose, plan)
    allowed: list[str] = []
    removed = 0
    for address in addresses:
        try:
            ok = _call_quiet(may_contact, ledger, chosen, address, purpose)
        except Invalid:  # not an address: nobody to send to
            ok = False
        if ok:
            allowed.append(address)
        else:
            removed += 1
    if fmt is OutputFormat.json:
        print(json.dumps({"allowed": allowed, "removed": removed}))
    else:
        for address in allowed:
            print(address)
    err.print(f"{len(allowed)} may be contacted for {escape(purpose)}; {removed} removed")


def _call_quiet(func: Callable[..., Any], *args: Any) -> bool:
    from lawful.engine.connect import EngineError

    try:
        return bool(func(*args).allowed)
    except EngineError as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)


@consent_app.command("do-not-contact")
def consent_do_not_contact(
    file: Annotated[Path, typer.Argument(help="Addresses, one a line (or a CSV with an "
                                         "'email' column).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with each entry).")
                      ] = "imported",
    purpose: Annotated[str | None, typer.Option(
        "--purpose", "-p", help="Only this purpose (default: any direct marketing).")] = None,
    manifest: ManifestOpt = None,
) -> None:
    """Add addresses to the do-not-contact list (kept as keyed hashes; they outlive any
    erasure). Every line must be an address: nothing is added otherwise."""
    from lawful.addresses import NotAnAddress, checked_email

    if not reason.strip() or len(reason) > 64:
        _fail("--reason: 1 to 64 characters")
    addresses = _read_addresses(file)
    bad = []
    for number, address in enumerate(addresses, 1):
        try:
            checked_email(address)
        except NotAnAddress:
            bad.append(f"{number}: {address!r}")
    if bad:
        _fail(f"{file}: {len(bad)} line(s) are not e-mail addresses (nothing was added): "
              + "; ".join(bad[:5]) + (" …" if len(bad) > 5 else ""))
    ledger, _ = _ledger(manifest)
    if purpose is not None:
        _check_purpose(ledger, purpose)
    added = _call(ledger.add_do_not_contact, addresses, reason.strip(), purpose or "*")
    out.print(f"{added} address(es) added to the do-not-contact list "
              f"({len(addresses) - added} already on it)")


@consent_app.command("withdraw")
def consent_withdraw(
    email: Annotated[str, typer.Option("--email", "-e")],
    purpose: Annotated[str, typer.Option("--purpose", "-p")],
    fmt: FormatOpt = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Withdraw a consent on the person's behalf (staff channel), in one step."""
    from lawful.consent.ledger import Channel

    subject = _subject(email, None)
    ledger, _ = _ledger(manifest)
    recorded = _call(ledger.withdraw, subject, purpose, Channel.staff.value, ACTOR)
    if fmt is OutputFormat.json:
        print(json.dumps({"event_id": recorded.event_id, "purpose": recorded.purpose,
                          "action": recorded.action}))
        return
    out.print(f"consent to {escape(recorded.purpose)} withdrawn for "
              f"{escape(subject.value)} (event {recorded.event_id})")
