"""`lawful retention …`: plan, run, legal holds, and the proof journal.

Loads nothing heavy at import: the engine (SQLAlchemy) loads when a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

if TYPE_CHECKING:
    from lawful.retention.sweep import RunResult

app = typer.Typer(help="Retention: delete or anonymise what has outlived its period, with proof.",
                  no_args_is_help=True)

ManifestOpt = Annotated[Path | None, typer.Option(
    "--manifest", "-m", help="Manifest file (else $LAWFUL_MANIFEST, ./lawful.yaml).")]
TodayOpt = Annotated[str | None, typer.Option(
    "--today", help="Run as of this day, YYYY-MM-DD (else $LAWFUL_TODAY, else today).")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text or json.")]
EmailOpt = Annotated[list[str] | None, typer.Option("--email", help="E-mail (repeatable).")]
PhoneOpt = Annotated[list[str] | None, typer.Option("--phone", help="Phone (repeatable).")]
IdentityOpt = Annotated[list[str] | None, typer.Option(
    "--identity", help="KIND=VALUE, e.g. customer_number=C-1001 (repeatable).")]


def _call(func: Any) -> Any:
    """Run, turning bad input into exit 2 and an unusable database into exit 3."""
    from lawful import cli
    from lawful.retention.rules import RetentionInputError

    try:
        return cli._engine_call(func)
    except RetentionInputError as exc:
        cli._fail(str(exc))
    except ValueError as exc:
        cli._fail(str(exc))


def _format(fmt: str) -> bool:
    from lawful import cli

    if fmt not in ("text", "json"):
        cli._fail(f"--format {fmt!r}: use text or json")
    return fmt == "json"


def _setup(manifest: Path | None, today: str | None, as_json: bool) -> Any:
    from lawful import cli
    from lawful.retention.prepare import today_from

    located = cli._load(manifest, as_json)
    if not located.manifest.systems:
        cli._fail("the manifest declares no systems: nothing to enforce retention on")
    day = _call(lambda: today_from(today))
    return cli._plan(located.manifest), day


@app.command("plan")
def plan_cmd(
    within: Annotated[int, typer.Option("--within", min=0, max=3660,
                                        help="Also what falls due in the next DAYS days.")] = 0,
    fmt: FormatOpt = "text", today: TodayOpt = None, manifest: ManifestOpt = None,
) -> None:
    """What each rule makes due now (and within DAYS days), touching nothing."""
    from lawful.retention.plan import retention_plan

    as_json = _format(fmt)
    plan, day = _setup(manifest, today, as_json)
    result = _call(lambda: retention_plan(plan, day, within))
    _print(result, as_json, within)


@app.command("run")
def run_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be done.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1_000_000,
                                            help="Rows per batch (one transaction).")] = 50_000,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=8,
        help="PostgreSQL: batches in flight at once, each on its own connection.")] = 2,
    fmt: FormatOpt = "text", today: TodayOpt = None, manifest: ManifestOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="A progress bar on stderr.")] = True,
) -> None:
    """Delete or anonymise what is due, in batches, journaled; safe to run again."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from lawful import cli
    from lawful.retention.sweep import run

    as_json = _format(fmt)
    plan, day = _setup(manifest, today, as_json)
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.completed:,} rows"), TimeElapsedColumn(),
                   console=cli.err, disable=not progress or dry_run, transient=False)
    tasks: dict[str, Any] = {}

    def advance(b: Any, rows: int) -> None:
        if b.name not in tasks:
            tasks[b.name] = bar.add_task(f"{b.action.value} {b.name}", total=None)
        bar.advance(tasks[b.name], rows)

    with bar:
        result = _call(lambda: run(plan, day, dry_run=dry_run, batch_size=batch_size,
                                   progress=advance, workers=workers))
    _print(result, as_json, 0)


def _print(result: RunResult, as_json: bool, within: int) -> None:
    from rich.table import Table

    from lawful import cli

    if as_json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
        return
    doing = "due" if result.dry_run else "done"
    grid = Table(title=f"retention as of {result.today}" + (" (nothing changed)"
                                                           if result.dry_run else ""))
    columns = ["rule", "table", "action", doing, "oldest", "skipped"]
    if within:
        columns += [f"within {within} d", "next due"]
    for column in columns:
        grid.add_column(column)
    for b in result.bindings:
        target = f"{b.system}.{b.table}" + (f".{b.field}" if b.field else "")
        if b.unclocked:
            grid.add_row(b.rule, target, b.action, "-", "", f"not enforced: {b.unclocked}")
            continue
        skips = [f"{n} {what}" for n, what in ((b.restricted, "restricted"),
                                               (b.held, "held"), (b.referenced, "referenced"))
                 if n]
        if b.held_reasons:
            skips.append("hold: " + "; ".join(b.held_reasons))
        row = [b.rule, target, b.action, f"{b.due if result.dry_run else b.done:,}",
               b.oldest or "", ", ".join(skips + b.notes)]
        if within:
            row += [f"{b.upcoming:,}", b.next_due or ""]
        grid.add_row(*(escape(str(v)) for v in row))
    cli.out.print(grid)
    if not result.dry_run:
        cli.err.print(f"run {result.run_id}: {result.done:,} row(s) in "
                      f"{sum(b.batches for b in result.bindings)} batch(es), "
                      f"{result.seconds:.1f} s" + (f"; completed the proof of interrupted run(s) "
                                                  f"{', '.join(result.resumed)}"
                                                  if result.resumed else ""))


@app.command("hold")
def hold_cmd(
    reason: Annotated[str, typer.Option("--reason", help="The legal claim (recorded).")],
    email: EmailOpt = None, phone: PhoneOpt = None, identity: IdentityOpt = None,
    manifest: ManifestOpt = None,
) -> None:
    """Place a legal hold on a person: retention keeps every row of theirs until released."""
    from lawful import cli
    from lawful.retention import holds

    located = cli._load(manifest)
    ids = cli._identities(located.manifest, email, phone, None, identity)
    placed = _call(lambda: holds.place(ids, reason))
    cli.out.print(f"hold {placed.id} on {escape(_who(placed.identities))}: "
                  f"{escape(placed.reason)}")


@app.command("release")
def release_cmd(
    email: EmailOpt = None, phone: PhoneOpt = None, identity: IdentityOpt = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
    manifest: ManifestOpt = None,
) -> None:
    """Lift a person's legal hold; the next run applies retention to their rows again."""
    from lawful import cli
    from lawful.retention import holds

    located = cli._load(manifest)
    ids = cli._identities(located.manifest, email, phone, None, identity)
    released = _call(lambda: holds.release(ids, reason))
    if not released:
        cli._fail("no active hold on these identities (give the ones the hold was placed with)")
    for h in released:
        cli.out.print(f"released hold {h.id} ({escape(h.reason)})")


@app.command("holds")
def holds_cmd(
    released: Annotated[bool, typer.Option("--all", help="Include released holds.")] = False,
    fmt: FormatOpt = "text",
) -> None:
    """The legal holds on persons, with their reasons."""
    from lawful import cli
    from lawful.retention import holds

    items = _call(lambda: holds.listing(released))
    if _format(fmt):
        print(json.dumps([h.as_dict() for h in items], indent=2))
        return
    for h in items:
        state = f"released {h.released_at}" if h.released_at else "active"
        cli.out.print(f"{h.id}  {h.placed_at}  {state}  {escape(_who(h.identities))}: "
                      f"{escape(h.reason)}")
    if not items:
        cli.err.print("no legal holds")


@app.command("journal")
def journal_cmd(
    run_id: Annotated[str | None, typer.Option("--run", help="One run only.")] = None,
    fmt: FormatOpt = "text",
) -> None:
    """The proof: one record per batch (rule, table, rows, SHA-256 of the keys, time)."""
    from lawful import cli
    from lawful.retention import journal

    records = _call(lambda: journal.batches_of(run_id))
    if _format(fmt):
        print(json.dumps([r.__dict__ for r in records], indent=2, default=str))
        return
    for r in records:
        cli.out.print(f"{r.done_at:%Y-%m-%d %H:%M:%S}  {r.run_id}  #{r.seq}  {r.action}  "
                      f"{r.rule}  {r.table}  {r.rows} row(s)  sha256 {r.digest}")
    if not records:
        cli.err.print("no retention batches recorded")


def _who(identities: dict[str, list[str]] | None) -> str:
    return "; ".join(f"{k} {', '.join(v)}" for k, v in (identities or {}).items())
