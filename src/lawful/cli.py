"""The `lawful` command line: thin, calling the same functions as everything else.

Contract (DESIGN.md): `--format json` prints one JSON document on stdout and nothing else
there; messages go to stderr. Exit 0 clean, 1 findings of severity error, 2 unusable input.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from lawful import __version__
from lawful.checks import RULES, Finding, Severity, run_checks
from lawful.manifest import Located, Manifest, ManifestError, find_manifest, load_located
from lawful.manifest.model import Identity

if TYPE_CHECKING:  # the engine (SQLAlchemy) loads only for the commands that use it
    from lawful.engine.erase import EraseResult
    from lawful.engine.identities import Identities
    from lawful.engine.modify import ModifyResult
    from lawful.engine.plan import Plan

app = typer.Typer(
    name="lawful",
    help="Privacy operations from one manifest: checks, ROPA, notice, requests, retention.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_FINDINGS = 1
EXIT_UNUSABLE = 2
T = TypeVar("T")

ManifestOpt = Annotated[
    Path | None,
    typer.Option("--manifest", "-m", help="Manifest file (else $LAWFUL_MANIFEST, ./lawful.yaml)."),
]


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class RopaFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    md = "md"
    html = "html"


class NoticeFormat(StrEnum):
    md = "md"
    html = "html"


def _fail(message: str, code: int = EXIT_UNUSABLE) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _load(path: Path | None, as_json: bool = False) -> Located:
    """Load or exit 2 with every problem listed (as JSON on stdout when asked)."""
    chosen = find_manifest(str(path) if path else None)
    try:
        return load_located(chosen)
    except ManifestError as exc:
        if as_json:
            print(json.dumps({"manifest": str(chosen), "usable": False,
                              "problems": [p.as_dict() for p in exc.problems]}, indent=2))
        else:
            for problem in exc.problems:
                err.print(escape(str(problem)))
            err.print(f"[red]{len(exc.problems)} problem(s): {escape(str(chosen))} "
                      "cannot be used[/red]")
        raise typer.Exit(EXIT_UNUSABLE) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"lawful {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """lawful keeps the promises of a privacy notice in software."""


@app.command()
def check(
    manifest: ManifestOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    rules: Annotated[bool, typer.Option("--rules", help="List every rule and exit.")] = False,
) -> None:
    """Check the manifest against the GDPR and the ePrivacy Directive."""
    if rules:
        _print_rules(fmt)
        return
    located = _load(manifest, fmt is OutputFormat.json)
    findings = run_checks(located.manifest, located.positions)
    errors = sum(f.severity is Severity.error for f in findings)
    if fmt is OutputFormat.json:
        print(json.dumps({
            "manifest": located.file, "usable": True,
            "summary": {s.value: sum(f.severity is s for f in findings) for s in Severity},
            "findings": [f.as_dict() for f in findings],
        }, indent=2))
    else:
        _print_findings(located.file, findings)
    raise typer.Exit(EXIT_FINDINGS if errors else 0)


def _print_findings(file: str, findings: list[Finding]) -> None:
    colour = {Severity.error: "red", Severity.warning: "yellow", Severity.info: "blue"}
    for f in findings:
        where = f"{file}:{f.line}:{f.column}" if f.line else file
        out.print(f"{escape(where)}: [{colour[f.severity]}]{f.severity.value}[/] "
                  f"[bold]{f.rule}[/bold] ({escape(f.article)})\n  {escape(f.path)}: "
                  f"{escape(f.message)}\n  fix: {escape(f.fix)}")
    counts = {s: sum(f.severity is s for f in findings) for s in Severity}
    summary = ", ".join(f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in counts.items())
    if findings:
        err.print(f"{escape(file)}: {summary}")
    else:
        err.print(f"[green]{escape(file)}: clean[/green] ({len(RULES)} rules checked)")


def _print_rules(fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        print(json.dumps([{"id": r.id, "severity": r.severity.value, "article": r.article,
                           "theme": r.theme, "title": r.title} for r in RULES.values()],
                         indent=2))
        return
    for r in sorted(RULES.values(), key=lambda r: (r.theme, r.id)):
        out.print(f"{r.id:<40} {r.severity.value:<8} {r.theme:<13} {escape(r.article)}\n"
                  f"{'':<40} {escape(r.title)}")
    err.print(f"{len(RULES)} rules")


def _write(data: bytes | str, output: Path | None) -> None:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if output is None:
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, output)  # never leave a half-written document behind
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    err.print(f"wrote {escape(str(output))}")


@app.command()
def ropa(
    fmt: Annotated[RopaFormat, typer.Option("--format", "-f")] = RopaFormat.md,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    manifest: ManifestOpt = None,
) -> None:
    """Write the Record of Processing Activities (Art. 30)."""
    from lawful.documents.ropa import render_ropa

    located = _load(manifest)
    if fmt is RopaFormat.xlsx and output is None and sys.stdout.isatty():
        _fail("a spreadsheet is binary: give -o FILE.xlsx")
    _write(render_ropa(located.manifest, fmt.value), output)


@app.command()
def notice(
    fmt: Annotated[NoticeFormat, typer.Option("--format", "-f")] = NoticeFormat.md,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    diff: Annotated[Path | None, typer.Option(
        "--diff", help="An older manifest: print what changed since it, in plain words.")] = None,
    manifest: ManifestOpt = None,
) -> None:
    """Write the privacy notice, or what changed since an older manifest (--diff)."""
    located = _load(manifest)
    if diff is not None:
        from lawful.documents.diff import notice_diff

        old = _load(diff)
        changes = notice_diff(old.manifest, located.manifest)
        text = "\n".join(f"- {c}" for c in changes) if changes else "No change a reader would see."
        _write(text + "\n", output)
        return
    from lawful.documents.notice import render_notice

    _write(render_notice(located.manifest, fmt.value), output)


# --- the engine: requests executed on the real databases --------------------------------------

EXIT_UNAVAILABLE = 3  # a database could not be reached or does not match the manifest

EmailOpt = Annotated[list[str] | None, typer.Option("--email", "-e", help="E-mail (repeatable).")]
PhoneOpt = Annotated[list[str] | None, typer.Option("--phone", help="Phone number (repeatable).")]
CookieOpt = Annotated[list[str] | None, typer.Option("--cookie-id", help="Cookie id (repeatable).")]
IdentityOpt = Annotated[list[str] | None, typer.Option(
    "--identity", help="KIND=VALUE, e.g. customer_number=C-1001 (repeatable).")]


def _identities(manifest: Manifest, emails: list[str] | None, phones: list[str] | None,
                cookies: list[str] | None, others: list[str] | None,
                emails_file: Path | None = None) -> Identities:
    from lawful.engine.identities import Identities, IdentityError

    given: dict[Identity, list[str]] = {Identity.email: list(emails or []),
                                        Identity.phone: list(phones or []),
                                        Identity.cookie_id: list(cookies or [])}
    for item in others or []:
        kind, sep, value = item.partition("=")
        if not sep or kind not in Identity.__members__:
            _fail(f"--identity {item!r}: write KIND=VALUE with KIND one of "
                  f"{', '.join(Identity.__members__)}")
        given.setdefault(Identity(kind), []).append(value)
    if emails_file is not None:
        try:
            lines = emails_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {emails_file}: {exc}")
        given[Identity.email] += [ln.strip() for ln in lines
                                  if ln.strip() and not ln.lstrip().startswith("#")]
    region = manifest.organisation.controllers[0].country
    try:
        identities = Identities.of(given, region)
    except IdentityError as exc:
        _fail(f"invalid identity: {exc}")
    if not identities:
        _fail("give at least one identity: --email, --phone, --cookie-id or --identity")
    if not manifest.systems:
        _fail("the manifest declares no systems: nothing to search")
    return identities


def _plan(manifest: Manifest) -> Plan:
    from lawful.engine.plan import build_plan

    return build_plan(manifest)


def _engine_call(func: Callable[[], T]) -> T:
    """Run an engine operation, turning its failures into one clear line and an exit code."""
    from lawful.engine.connect import EngineError
    from lawful.engine.modify import InvalidValue
    from lawful.keys import SecretKeyError

    try:
        return func()
    except EngineError as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    except SecretKeyError as exc:
        _fail(str(exc))
    except InvalidValue as exc:
        _fail(str(exc))


@app.command()
def access(
    email: EmailOpt = None, phone: PhoneOpt = None, cookie_id: CookieOpt = None,
    identity: IdentityOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="A directory, or a file ending in .zip.")] = None,
    portability: Annotated[bool, typer.Option(
        "--portability", help="Only what the person provided, on consent or contract "
        "(Art. 20).")] = False,
    manifest: ManifestOpt = None,
) -> None:
    """Everything lawful finds about a person, with why it is held (Art. 15, Art. 20)."""
    from lawful.engine import access as engine_access

    located = _load(manifest, fmt is OutputFormat.json)
    ids = _identities(located.manifest, email, phone, cookie_id, identity)
    plan = _plan(located.manifest)
    report = _engine_call(lambda: engine_access.access(plan, ids, portability=portability))
    if output is not None:
        title = f"Your data at {located.manifest.organisation.name}"
        files = engine_access.write(report, output, title)
        err.print(f"wrote {escape(str(output))}: {', '.join(files)}")
    if fmt is OutputFormat.json:
        print(engine_access.to_json(report))
        return
    from rich.table import Table as RichTable

    if not report.tables:
        out.print("nothing found for " + escape("; ".join(
            f"{kind} {', '.join(values)}" for kind, values in report.identities.items())))
        err.print(f"{report.statements} statements, {report.seconds * 1000:.0f} ms")
        return
    whom = "; ".join(f"{kind} {', '.join(values)}" for kind, values in report.identities.items())
    grid = RichTable(title=f"{report.row_count} record(s) for {whom}")
    for column in ("table", "rows", "fields", "kept as the law requires"):
        grid.add_column(column)
    for section in report.tables:
        grid.add_row(f"{section.system}.{section.table}", str(len(section.rows)),
                     ", ".join(section.rows[0]) if section.rows else "", section.held_by or "")
    out.print(grid)
    if report.restricted:
        out.print("[yellow]processing of this person's data is restricted (Art. 18)[/yellow]")
    err.print(f"{report.statements} statements, {report.seconds * 1000:.0f} ms")


@app.command()
def erase(
    email: EmailOpt = None, phone: PhoneOpt = None, cookie_id: CookieOpt = None,
    identity: IdentityOpt = None,
    emails_file: Annotated[Path | None, typer.Option(
        "--emails-file", help="Erase many persons in one run: one e-mail per line.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Erase a person (or many): strategies applied, legal holds kept, the result verified."""
    from lawful.engine.erase import erase as engine_erase

    located = _load(manifest, fmt is OutputFormat.json)
    ids = _identities(located.manifest, email, phone, cookie_id, identity, emails_file)
    persons = sum(len(v) for v in ids.values.values()) if emails_file else 1
    plan = _plan(located.manifest)
    if emails_file and err.is_terminal:
        # A batch takes seconds to minutes: say what it is doing meanwhile (on stderr, so
        # --format json keeps stdout to its one document).
        with err.status(f"erasing {persons:,} persons") as status:
            result = _engine_call(lambda: engine_erase(
                plan, ids, dry_run=dry_run, persons=persons,
                phase=lambda what: status.update(f"erasing {persons:,} persons: {what}")))
    else:
        result = _engine_call(lambda: engine_erase(plan, ids, dry_run=dry_run,
                                                   persons=persons))
    if fmt is OutputFormat.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        _print_erasure(result)
    if result.verified is False:
        raise typer.Exit(EXIT_FINDINGS)


def _print_erasure(result: EraseResult) -> None:
    from rich.table import Table as RichTable

    title = "What erasure would do (dry run)" if result.dry_run else "Erased"
    grid = RichTable(title=title)
    for column in ("table", "found", "deleted", "anonymised", "kept (legal hold)"):
        grid.add_column(column)
    for t in result.tables:
        held = f"{t.held}: {t.held_rule}, until {t.held_until}" if t.held else ""
        if t.kept_fields:
            held += ("; " if held else "") + f"kept fields: {', '.join(t.kept_fields)}"
        grid.add_row(f"{t.system}.{t.table}", str(t.found), str(t.deleted), str(t.anonymised),
                     held)
    out.print(grid)
    laws = sorted({t.held_law for t in result.tables if t.held_law})
    for law in laws:
        out.print(f"kept on: {escape(law)}")
    if result.verified is not None:
        verdict = "[green]verified: no erasable value remains[/green]" if result.verified \
            else "[red]verification failed:[/red] " + "; ".join(result.leftovers)
        out.print(verdict)
    if result.run_id:
        err.print(f"run {result.run_id}{' (resumed)' if result.resumed else ''}: "
                  f"{result.statements} statements, {result.seconds:.2f} s, "
                  f"{result.suppressed} identities added to the suppression list")


@app.command()
def rectify(
    set_: Annotated[str, typer.Option("--set", help="TABLE.FIELD=VALUE")],
    email: EmailOpt = None, phone: PhoneOpt = None, cookie_id: CookieOpt = None,
    identity: IdentityOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Correct a field of a person's rows (Art. 16); the value is validated first."""
    from lawful.engine.modify import rectify as engine_rectify

    target, sep, value = set_.partition("=")
    if not sep:
        _fail("--set takes TABLE.FIELD=VALUE")
    located = _load(manifest, fmt is OutputFormat.json)
    ids = _identities(located.manifest, email, phone, cookie_id, identity)
    plan = _plan(located.manifest)
    result = _engine_call(lambda: engine_rectify(plan, ids, target, value))
    _print_modify(result, fmt)


def _restriction(restricted: bool, email: list[str] | None, phone: list[str] | None,
                 cookie_id: list[str] | None, identity: list[str] | None, fmt: OutputFormat,
                 manifest: Path | None) -> None:
    from lawful.engine.modify import restrict as engine_restrict

    located = _load(manifest, fmt is OutputFormat.json)
    ids = _identities(located.manifest, email, phone, cookie_id, identity)
    plan = _plan(located.manifest)
    _print_modify(_engine_call(lambda: engine_restrict(plan, ids, restricted)), fmt)


@app.command()
def restrict(
    email: EmailOpt = None, phone: PhoneOpt = None, cookie_id: CookieOpt = None,
    identity: IdentityOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Restrict processing of a person's data (Art. 18): kept, marked, skipped by retention."""
    _restriction(True, email, phone, cookie_id, identity, fmt, manifest)


@app.command()
def unrestrict(
    email: EmailOpt = None, phone: PhoneOpt = None, cookie_id: CookieOpt = None,
    identity: IdentityOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    manifest: ManifestOpt = None,
) -> None:
    """Lift a restriction."""
    _restriction(False, email, phone, cookie_id, identity, fmt, manifest)


def _print_modify(result: ModifyResult, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
        return
    for table, count in result.tables.items():
        out.print(f"{result.action}: {count} row(s) in {escape(table)}")
    if not result.tables:
        out.print(f"{result.action}: no rows to change")
    if result.recipients:
        out.print("recipients to tell (Art. 19): " + escape(", ".join(result.recipients)))


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option("--customers", "-n", min=0)] = 1000,
    url: Annotated[str | None, typer.Option(
        "--url", help="Database URL (default: sqlite:///kerf.db).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 1,
) -> None:
    """Build the Kerf demo database (drops and recreates its tables)."""
    import sqlalchemy as sa
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from lawful.demo.generate import default_url, describe, generate
    from lawful.interop.envurl import expand_url

    target = expand_url(url) if url else default_url()
    with Progress(TextColumn("customers"), BarColumn(), TextColumn("{task.completed:,}/"
                  "{task.total:,}"), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("load", total=customers)
        try:
            counts = generate(target, customers, seed,
                              progress=lambda done, total: bar.update(task, completed=done))
        except sa.exc.SQLAlchemyError as exc:
            _fail(f"cannot load {sa.engine.make_url(target).render_as_string(True)}: "
                  f"{str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}",
                  EXIT_UNAVAILABLE)
    out.print(describe(counts))


systems_app = typer.Typer(help="The systems section: draft it from a live database.",
                          no_args_is_help=True)
import_app = typer.Typer(help="Import declarations from other tools.", no_args_is_help=True)
export_app = typer.Typer(help="Export declarations for other tools.", no_args_is_help=True)
app.add_typer(systems_app, name="systems")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(__import__("lawful.retention.cli").retention.cli.app, name="retention")


@systems_app.command("reflect")
def systems_reflect(
    url: Annotated[str, typer.Option("--url", help="Database URL (${ENV} allowed).")],
    system_id: Annotated[str, typer.Option("--id", help="Id of the system.")] = "db",
) -> None:
    """Draft a systems entry from the database's own foreign keys and column names."""
    from lawful.interop.fides import systems_yaml
    from lawful.interop.reflect import reflect

    try:
        system = reflect(url, system_id)
    except (ConnectionError, ValueError) as exc:
        _fail(str(exc), EXIT_UNAVAILABLE if isinstance(exc, ConnectionError) else 2)
    print(systems_yaml([system]), end="")
    err.print("review the guessed categories and identities, then paste under systems:")


@import_app.command("fides")
def import_fides_cmd(
    dataset: Annotated[Path, typer.Argument(help="A fideslang dataset YAML file.")],
) -> None:
    """Turn a fideslang dataset into a systems section (printed as YAML)."""
    from lawful.interop.fides import import_fides, systems_yaml

    try:
        systems = import_fides(dataset)
    except ManifestError as exc:
        for problem in exc.problems:
            err.print(escape(str(problem)))
        raise typer.Exit(EXIT_UNUSABLE) from None
    print(systems_yaml(systems), end="")


@export_app.command("fides")
def export_fides_cmd(
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    manifest: ManifestOpt = None,
) -> None:
    """Write the manifest's systems as a fideslang dataset."""
    from lawful.interop.fides import export_fides

    located = _load(manifest)
    if not located.manifest.systems:
        _fail("the manifest declares no systems")
    _write(export_fides(located.manifest.systems), output)


# The request service's commands (serve, worker, requests, outbox, audit, keys, db) and
# the consent ledger's (consent ...).
from lawful import cli_consent, cli_service  # noqa: E402, F401


def run() -> None:
    """Entry point that turns any unexpected failure into a message, not a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug in lawful: say so plainly, keep the trace on request
        if os.environ.get("LAWFUL_DEBUG"):
            raise
        err.print(f"[red]internal error:[/red] {escape(type(exc).__name__)}: {escape(str(exc))}"
                  "\nrun again with LAWFUL_DEBUG=1 for details, and please report it")
        sys.exit(70)
