"""Access (Art. 15) and portability (Art. 20): what lawful finds, explained field by field.

Access gives every personal field found, with its category and what the manifest says of it:
the purposes, legal bases, recipients and retention. Portability gives only what the person
provided, processed on consent or contract, as machine-readable JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lawful.documents.render import environment
from lawful.engine import state
from lawful.engine.bulk import collector_paused
from lawful.engine.connect import Connections
from lawful.engine.identities import Identities
from lawful.engine.plan import Plan, TablePlan
from lawful.engine.search import Found, Row, Searcher


@dataclass
class TableSection:
    system: str
    table: str
    subject: str | None
    fields: dict[str, dict[str, Any]]  # field -> what the manifest says of it
    rows: list[dict[str, Any]]
    held_by: str | None = None


@dataclass
class AccessReport:
    identities: dict[str, list[str]]
    restricted: bool
    generated_at: str
    tables: list[TableSection] = field(default_factory=list)
    statements: int = 0
    seconds: float = 0.0
    portability: bool = False

    @property
    def row_count(self) -> int:
        return sum(len(t.rows) for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "portability" if self.portability else "access",
            "generated_at": self.generated_at,
            "identities": self.identities,
            "restricted": self.restricted,
            "tables": [t.__dict__ for t in self.tables],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _restricted(plan: Plan, found: Found) -> bool:
    for key, rows in found.rows.items():
        column = plan.tables[key].decl.restricted_column
        if column and any(row.get(column) for row in rows.values()):
            return True
    return state.restricted_any(found.identities)


def _section(tp: TablePlan, rows: dict[Any, Row], portable_only: bool) -> TableSection | None:
    fields = [f for f in tp.personal_fields if f.context.portable or not portable_only]
    if not fields:
        return None
    described = {
        f.name: {
            "category": f.context.category,
            "category_name": f.context.category_name,
            "purposes": list(f.context.purposes),
            "legal_bases": list(f.context.legal_bases),
            "recipients": list(f.context.recipients),
            "retention": list(f.context.retention),
        } for f in fields
    }
    out_rows = [{f.name: _plain(row.get(f.name)) for f in fields} for row in rows.values()]
    hold = tp.hold.describe() if tp.hold else None
    return TableSection(tp.key.system, tp.key.table, tp.decl.subject,
                        {} if portable_only else described, out_rows, hold)


def access(plan: Plan, identities: Identities, *, portability: bool = False) -> AccessReport:
    started = time.perf_counter()
    conns = Connections(plan)
    with conns.session(), collector_paused():
        found = Searcher(plan, conns).find(identities)
        report = AccessReport(
            found.identities.as_dict(), _restricted(plan, found),
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            statements=found.statements, portability=portability)
    for key, rows in sorted(found.rows.items()):
        section = _section(plan.tables[key], rows, portability) if rows else None
        if section is not None:
            report.tables.append(section)
    report.seconds = time.perf_counter() - started
    return report


# --- writers -----------------------------------------------------------------------------------


def to_json(report: AccessReport) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str)


def to_csv(section: TableSection) -> str:
    buffer = io.StringIO()
    names = list(section.rows[0]) if section.rows else list(section.fields)
    writer = csv.DictWriter(buffer, fieldnames=names)
    writer.writeheader()
    for row in section.rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def to_html(report: AccessReport, title: str) -> str:
    template = environment("html").get_template("access.html.j2")
    return template.render(report=report, title=title)


def write(report: AccessReport, target: Path, title: str) -> list[str]:
    """Write JSON, a CSV per table and (for access) an HTML page to a directory or a .zip."""
    files: dict[str, str] = {"data.json": to_json(report)}
    for section in report.tables:
        files[f"csv/{section.system}.{section.table}.csv"] = to_csv(section)
    if not report.portability:
        files["index.html"] = to_html(report, title)
    if target.suffix == ".zip":
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in files.items():
                archive.writestr(name, content)
        tmp.replace(target)
    else:
        for name, content in files.items():
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    return sorted(files)
