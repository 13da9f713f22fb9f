"""The Record of Processing Activities (GDPR Art. 30), generated from the manifest.

One row per processing activity carries every field of Art. 30(1)(a)-(g) (or Art. 30(2) for
activities done as a processor), plus the legal basis and Art. 9 condition privacy teams expect.
`ropa_rows` computes the rows once; CSV, XLSX, Markdown and HTML only lay them out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from lawful.documents import words
from lawful.documents.render import render
from lawful.manifest.model import Activity, Controller, Manifest
from lawful.manifest.taxonomy import Taxonomy

CONTROLLER_RECORD = "Art. 30(1) controller"
PROCESSOR_RECORD = "Art. 30(2) processor"
NONE = "none"

# Stable column keys (the CSV header) -> the label a regulator reads in xlsx, md and html.
COLUMNS: dict[str, str] = {
    "record": "Record",
    "activity_id": "Activity id",
    "activity": "Processing activity",
    "controller": "Controller (Art. 30(1)(a), 30(2)(a))",
    "controller_contact": "Controller contact details (Art. 30(1)(a))",
    "processor": "Processor and contact details (Art. 30(2)(a))",
    "joint_controllers": "Joint controllers (Art. 30(1)(a))",
    "representative": "Representative (Art. 30(1)(a))",
    "dpo": "Data protection officer (Art. 30(1)(a))",
    "purposes": "Purposes (Art. 30(1)(b))",
    "legal_basis": "Legal basis (Art. 6(1))",
    "special_category_condition": "Special categories condition (Art. 9(2), Art. 10)",
    "data_subjects": "Categories of data subjects (Art. 30(1)(c))",
    "personal_data": "Categories of personal data (Art. 30(1)(c))",
    "recipients": "Categories of recipients (Art. 30(1)(d))",
    "transfers": "Transfers to third countries and safeguards (Art. 30(1)(e))",
    "retention": "Time limits for erasure (Art. 30(1)(f))",
    "security": "Technical and organisational security measures (Art. 30(1)(g))",
    "sources": "Sources of the data",
    "automated_decisions": "Automated decisions and profiling (Art. 22)",
}
# Facts that are the same for every row of a controller's table: md and html state them once,
# above the table, instead of repeating them in every row.
SECTION_FACTS = ("controller", "controller_contact", "processor", "representative", "dpo",
                 "security")
XLSX_MIN_WIDTH, XLSX_MAX_WIDTH = 14, 60
PROCESSOR_SHEET = "Art. 30(2) processor record"


# --- rows -----------------------------------------------------------------------------------------


def ropa_rows(manifest: Manifest) -> list[dict[str, str]]:
    """One dict per activity, in manifest order, keyed by COLUMNS."""
    return [_row(activity, manifest) for activity in manifest.activities]


def _row(activity: Activity, manifest: Manifest) -> dict[str, str]:
    row = _parties(activity, manifest)
    row.update(
        activity_id=activity.id,
        activity=activity.name,
        purposes=_purposes(activity),
        legal_basis=_lines(words.basis_label(b, manifest) for b in activity.legal_bases),
        special_category_condition=_special_condition(activity),
        data_subjects=_lines(words.upper_first(name)
                             for name in words.subject_names(activity.subjects, manifest)),
        personal_data=_lines(_personal_data(activity, manifest)),
        recipients=_lines(words.recipient_label(r)
                          for r in manifest.recipients_of(activity.id)),
        transfers=_lines(_transfers(activity, manifest)),
        retention=_lines(_retention(activity, manifest)),
        security=_lines(_security(manifest)),
        sources=_lines(words.upper_first(s)
                       for s in words.source_words(activity.sources, "the data subject")),
        automated_decisions=_lines(_automated(activity)),
    )
    return {key: row[key] for key in COLUMNS}


def _lines(items: Iterable[str | None]) -> str:
    """Several values in one cell, one per line: wrapped in xlsx, <br> in md and html."""
    values = [item for item in items if item]
    return "\n".join(values) if values else NONE


def _parties(activity: Activity, manifest: Manifest) -> dict[str, str]:
    """Art. 30(1)(a) for a controller activity, Art. 30(2)(a) for a processor activity."""
    ours = manifest.controllers_of(activity)
    parties = {
        "representative": _representative(manifest),
        "dpo": _dpo(manifest),
        "joint_controllers": _joint(ours, manifest) if len(ours) > 1 else NONE,
    }
    if activity.role == "processor":
        clients = activity.on_behalf_of or "our clients (not named in the manifest)"
        parties.update(record=PROCESSOR_RECORD, controller=" ".join(clients.split()),
                       controller_contact="", processor=_lines(_named_contact(c) for c in ours),
                       joint_controllers="")
    else:
        parties.update(record=CONTROLLER_RECORD, controller=_lines(c.name for c in ours),
                       controller_contact=_lines(words.controller_contact(c) for c in ours),
                       processor="")
    return parties


def _named_contact(controller: Controller) -> str:
    return f"{controller.name}, {words.controller_contact(controller)}"


def _joint(controllers: list[Controller], manifest: Manifest) -> str:
    lines = [_named_contact(c) for c in controllers]
    arrangement = manifest.organisation.joint_arrangement
    if arrangement:
        lines.append(f"Arrangement (Art. 26): {' '.join(arrangement.split())}")
    return "\n".join(lines)


def _representative(manifest: Manifest) -> str:
    rep = manifest.organisation.representative
    if rep is None:
        return NONE
    parts = [rep.name, words.with_country(rep.address, rep.country), rep.email]
    return ", ".join(p for p in parts if p)


def _dpo(manifest: Manifest) -> str:
    dpo = manifest.organisation.dpo
    if dpo is None:
        return NONE
    parts = [dpo.name, dpo.email, dpo.phone, dpo.address]
    return ", ".join(p for p in parts if p) or NONE


def _purposes(activity: Activity) -> str:
    if activity.description:
        return f"{activity.purpose}\n{activity.description}"
    return activity.purpose


def _special_condition(activity: Activity) -> str:
    parts = []
    if activity.special_category_condition:
        condition = activity.special_category_condition
        parts.append(f"{condition.article} {words.ART9_NAMES[condition]}")
    if activity.criminal_data_authority:
        parts.append(f"Art. 10: {activity.criminal_data_authority}")
    return _lines(parts)


def _personal_data(activity: Activity, manifest: Manifest) -> list[str]:
    """Human names, marked when Art. 9 or Art. 10 applies, with the key for traceability."""
    taxonomy = Taxonomy.of(manifest)
    names = words.data_names(activity.categories, manifest)
    lines = []
    for key, name in zip(activity.categories, names, strict=True):
        marks = [key]
        if taxonomy.is_special(key):
            marks.append("special category, Art. 9")
        if taxonomy.is_criminal(key):
            marks.append("criminal data, Art. 10")
        lines.append(f"{words.upper_first(name)} ({'; '.join(marks)})")
    return lines


def _transfers(activity: Activity, manifest: Manifest) -> list[str]:
    lines = []
    for recipient in manifest.recipients_of(activity.id):
        outside = words.third_countries(recipient)
        if outside:
            lines.append(f"{recipient.name} ({words.country_names(outside)}): "
                         f"{words.safeguard_label(recipient)}")
    return lines


def _retention(activity: Activity, manifest: Manifest) -> list[str]:
    rules = words.rules_for(activity, manifest)
    if not rules:
        return ["no retention rule declared"]
    return [f"{words.rule_title(rule, manifest)}: {words.describe_retention(rule, manifest)}"
            for rule in rules]


def _security(manifest: Manifest) -> list[str]:
    lines = []
    for measure in manifest.security:
        text = f"{measure.name} ({measure.kind})"
        lines.append(f"{text}: {measure.description}" if measure.description else text)
    return lines


def _automated(activity: Activity) -> list[str]:
    lines = [_decision_line(d.description, d.logic, d.human_review)
             for d in activity.automated_decisions]
    if activity.profiling or (activity.marketing and activity.marketing.profiling):
        lines.append("Profiling")
    return lines


def _decision_line(description: str, logic: str | None, human_review: bool) -> str:
    text = f"{description} (logic: {logic})" if logic else description
    return f"{text}; human review available" if human_review else text


# --- grouping -------------------------------------------------------------------------------------


@dataclass
class Section:
    """One table: a controller's Art. 30(1) record, or the Art. 30(2) processor record."""

    title: str
    kind: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def heading(self) -> str:
        if self.kind == PROCESSOR_RECORD:
            return "Processing carried out as a processor (Art. 30(2))"
        return f"{self.title}: processing as controller (Art. 30(1))"

    @property
    def columns(self) -> list[str]:
        hidden = {"record", *SECTION_FACTS}
        if self.kind == PROCESSOR_RECORD:
            hidden -= {"controller"}
        return [key for key in COLUMNS if key not in hidden]


def sections(manifest: Manifest, rows: list[dict[str, str]]) -> list[Section]:
    """A section per controller (its activities and those of all controllers), then 30(2)."""
    paired = list(zip(manifest.activities, rows, strict=True))
    result = []
    for controller in manifest.organisation.controllers:
        mine = [row for activity, row in paired
                if activity.role == "controller" and activity.controller in (None, controller.id)]
        result.append(Section(controller.name, CONTROLLER_RECORD,
                              _controller_facts(controller, manifest), mine))
    processed = [row for activity, row in paired if activity.role == "processor"]
    if processed:
        result.append(Section(PROCESSOR_SHEET, PROCESSOR_RECORD,
                              _processor_facts(processed), processed))
    return result


def _controller_facts(controller: Controller, manifest: Manifest) -> list[tuple[str, str]]:
    return [
        (COLUMNS["controller"], controller.name),
        (COLUMNS["controller_contact"], words.controller_contact(controller)),
        (COLUMNS["representative"], _representative(manifest)),
        (COLUMNS["dpo"], _dpo(manifest)),
        (COLUMNS["security"], _lines(_security(manifest))),
    ]


def _processor_facts(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    keys = ("processor", "representative", "dpo", "security")
    return [(COLUMNS[key], "\n".join(dict.fromkeys(row[key] for row in rows))) for key in keys]


# --- formats --------------------------------------------------------------------------------------


def render_ropa(manifest: Manifest, fmt: str) -> bytes:
    """The record as csv, xlsx, md or html bytes (text formats are UTF-8)."""
    renderers: dict[str, Callable[[Manifest, list[dict[str, str]]], bytes]] = {
        "csv": _csv, "xlsx": _xlsx, "md": _markdown, "html": _html,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown ROPA format {fmt!r}; use one of {', '.join(renderers)}")
    return renderers[fmt](manifest, ropa_rows(manifest))


def _csv(manifest: Manifest, rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _context(manifest: Manifest, rows: list[dict[str, str]]) -> dict[str, object]:
    org = manifest.organisation
    return {
        "title": f"Record of processing activities: {org.name}",
        "version": manifest.notice.version,
        "effective": words.long_date(manifest.notice.effective)
        if manifest.notice.effective else None,
        "sections": sections(manifest, rows),
        "labels": COLUMNS,
    }


def _markdown(manifest: Manifest, rows: list[dict[str, str]]) -> bytes:
    return render("ropa.md.j2", **_context(manifest, rows)).encode("utf-8")


def _html(manifest: Manifest, rows: list[dict[str, str]]) -> bytes:
    language = manifest.notice.languages[0]
    return render("ropa.html.j2", lang=language, **_context(manifest, rows)).encode("utf-8")


# --- xlsx -----------------------------------------------------------------------------------------


def _xlsx(manifest: Manifest, rows: list[dict[str, str]]) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    taken: set[str] = set()
    for section in sections(manifest, rows):
        sheet = workbook.create_sheet(_sheet_title(section.title, taken))
        _fill_sheet(sheet, section.rows)
    workbook.properties.title = f"Record of processing activities: {manifest.organisation.name}"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet_title(name: str, taken: set[str]) -> str:
    """Excel's rules: at most 31 characters, none of \\ / ? * [ ] :, unique ignoring case."""
    clean = "".join("-" if ch in "\\/?*[]:" else ch for ch in name).strip().strip("'")
    base = clean[:31] or "Controller"
    title, number = base, 1
    # Excel reserves "History" for its change-tracking sheet.
    while title.lower() in taken or title.lower() == "history":
        number += 1
        suffix = f" ({number})"
        title = base[:31 - len(suffix)] + suffix
    taken.add(title.lower())
    return title


def _fill_sheet(sheet: Worksheet, rows: list[dict[str, str]]) -> None:
    keys = list(COLUMNS)
    sheet.append([COLUMNS[key] for key in keys])
    for row in rows:
        sheet.append([_cell_text(row[key]) for key in keys])
    _style(sheet, keys, rows)


def _cell_text(value: str) -> str:
    # openpyxl refuses control characters; they carry no meaning in a record.
    return str(ILLEGAL_CHARACTERS_RE.sub("", value))


def _style(sheet: Worksheet, keys: list[str], rows: list[dict[str, str]]) -> None:
    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE4EE")
    wrap = Alignment(wrap_text=True, vertical="top")
    for row in sheet.iter_rows():
        for cell in row:
            # A value starting with "=" is text from the manifest, never a formula to run.
            if cell.data_type == "f":
                cell.data_type = "s"
            cell.alignment = wrap
    for cell in sheet[1]:
        cell.font = header_font
        cell.fill = header_fill
    for index, key in enumerate(keys, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = _width(key, rows)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    sheet.print_title_rows = "1:1"
    sheet.page_setup.orientation = "landscape"


def _width(key: str, rows: list[dict[str, str]]) -> float:
    """Wide enough for the longest line, within limits: long text wraps instead."""
    longest = max([len(word) for word in COLUMNS[key].split()]
                  + [len(line) for row in rows for line in row[key].split("\n")])
    return float(min(max(longest + 2, XLSX_MIN_WIDTH), XLSX_MAX_WIDTH))
