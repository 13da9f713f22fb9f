"""The `lawful` command line: thin, calling the same functions as everything else.

Contract (DESIGN.md): `--format json` prints one JSON document on stdout and nothing else
there; messages go to stderr. Exit 0 clean, 1 findings of severity error, 2 unusable input.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from lawful import __version__
from lawful.checks import RULES, Finding, Severity, run_checks
from lawful.manifest import Located, ManifestError, find_manifest, load_located

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
