"""Documents generated from the manifest: the ROPA, the privacy notice and the notice diff."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markupsafe import escape
from openpyxl import load_workbook

from lawful.documents import describe_retention, notice_diff, render_notice, render_ropa, ropa_rows
from lawful.documents.notice import notice_sections
from lawful.documents.ropa import COLUMNS
from lawful.manifest import Manifest, load_manifest
from lawful.manifest.duration import Duration
from lawful.manifest.model import (
    Activity,
    Art9Condition,
    ConsentPurpose,
    Controller,
    LegalBasis,
    Recipient,
    RetentionRule,
    Safeguard,
    SupervisoryAuthority,
)

ROOT = Path(__file__).resolve().parents[1]
KERF_FILE = ROOT / "examples" / "kerf" / "lawful.yaml"
SEED_FILES = sorted((ROOT / "examples" / "seeds").glob("*.yaml"))
EXCEL_DEFAULT_WIDTH = 8.43
NOTICE_HEADINGS = [
    "Who we are", "What we collect and why", "Legal bases", "Who receives your data",
    "Transfers outside the EEA", "How long we keep your data", "Your rights and how to use them",
    "Automated decisions and profiling", "Cookies and consent", "Security", "Complaints",
    "Changes to this notice",
]

_KERF = load_manifest(KERF_FILE)


@pytest.fixture
def kerf() -> Manifest:
    """A fresh deep copy of the Kerf manifest, free to edit."""
    return _KERF.model_copy(deep=True)


def csv_rows(manifest: Manifest) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render_ropa(manifest, "csv").decode("utf-8"),
                                           newline="")))


def activity(manifest: Manifest, key: str) -> Activity:
    found = manifest.activity(key)
    assert found is not None
    return found


def with_second_controller(manifest: Manifest) -> Manifest:
    manifest.organisation.controllers.append(Controller(
        id="kerf-uk", name="Kerf Ltd", address="1 Oxford Road, Manchester M1 7ED", country="GB",
        email="privacy@kerf.example"))
    manifest.organisation.joint_arrangement = "Kerf B.V. answers all requests for both."
    return manifest


def with_processor_activity(manifest: Manifest) -> Manifest:
    manifest.activities.append(Activity(
        id="client-hosting", name="Hosting drawings for clients", role="processor",
        purpose="Store CAD drawings for clients who run their own shops.",
        on_behalf_of="Shops that use the Kerf white-label portal", subjects=["customer"],
        categories=["kerf.cad_file"]))
    return manifest


# --- ROPA: csv ---------------------------------------------------------------------------------


def test_csv_has_one_row_per_activity_with_the_controller_and_dpo(kerf: Manifest) -> None:
    rows = csv_rows(kerf)
    assert len(rows) == len(kerf.activities) == 14
    assert list(rows[0]) == list(COLUMNS)
    for row in rows:
        assert row["controller"] == "Kerf B.V."
        assert "Keizersgracht 100, 1015 AA Amsterdam, Netherlands" in row["controller_contact"]
        assert "dpo@kerf.example" in row["dpo"]
        assert row["record"].startswith("Art. 30(1)")
    assert [row["activity_id"] for row in rows] == [a.id for a in kerf.activities]


def test_csv_names_every_recipient_of_each_activity(kerf: Manifest) -> None:
    for row, act in zip(csv_rows(kerf), kerf.activities, strict=True):
        recipients = kerf.recipients_of(act.id)
        assert recipients, act.id
        for recipient in recipients:
            assert recipient.name in row["recipients"]
    invoicing = next(r for r in csv_rows(kerf) if r["activity_id"] == "invoicing")
    assert "public authority" in invoicing["recipients"]


def test_csv_retention_transfers_bases_and_human_names(kerf: Manifest) -> None:
    rows = {row["activity_id"]: row for row in csv_rows(kerf)}
    for key in ("invoicing", "payments"):
        assert "7 years" in rows[key]["retention"]
        assert "financial year" in rows[key]["retention"]
    newsletter = rows["newsletter"]["transfers"]
    assert "Mailgun Technologies, Inc." in newsletter
    assert "United States" in newsletter and "Data Privacy Framework" in newsletter
    assert "Standard contractual clauses" in rows["support"]["transfers"]
    assert rows["quoting"]["transfers"] == "none"
    assert "Dutch Civil Code" in rows["invoicing"]["legal_basis"]
    assert "Art. 6(1)(c)" in rows["invoicing"]["legal_basis"]
    assert "talent pool" in rows["recruitment"]["legal_basis"]
    assert "Training support staff" in rows["call-recording"]["legal_basis"]
    assert "E-mail address" in rows["account"]["personal_data"]
    assert "CAD drawings and part specifications" in rows["quoting"]["personal_data"]
    assert rows["account"]["data_subjects"] == "Customers"
    assert "Two-factor authentication" in rows["account"]["security"]


def test_rows_flag_special_categories_and_art9_condition(kerf: Manifest) -> None:
    health = activity(kerf, "recruitment")
    health.categories.append("user.health_and_medical")
    health.special_category_condition = Art9Condition.explicit_consent
    row = next(r for r in ropa_rows(kerf) if r["activity_id"] == "recruitment")
    assert "special category, Art. 9" in row["personal_data"]
    assert row["special_category_condition"].startswith("Art. 9(2)(a)")


def test_csv_keeps_formula_like_text_verbatim(kerf: Manifest) -> None:
    activity(kerf, "account").purpose = '=HYPERLINK("http://evil.example","x")'
    assert csv_rows(kerf)[0]["purposes"] == '=HYPERLINK("http://evil.example","x")'


# --- ROPA: xlsx --------------------------------------------------------------------------------


def test_xlsx_one_formatted_sheet_per_controller(kerf: Manifest) -> None:
    book = load_workbook(io.BytesIO(render_ropa(kerf, "xlsx")))
    assert book.sheetnames == ["Kerf B.V."]
    sheet = book["Kerf B.V."]
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.max_row == 1 + 14
    for index in range(1, sheet.max_column + 1):
        letter = sheet.cell(row=1, column=index).column_letter
        assert sheet.column_dimensions[letter].width > EXCEL_DEFAULT_WIDTH
    assert all(cell.alignment.wrap_text for row in sheet.iter_rows() for cell in row)
    headers = [cell.value for cell in sheet[1]]
    assert "Time limits for erasure (Art. 30(1)(f))" in headers
    retention = headers.index("Time limits for erasure (Art. 30(1)(f))") + 1
    invoicing = next(row for row in sheet.iter_rows(min_row=2, values_only=True)
                     if row[1] == "invoicing")
    assert "7 years" in str(invoicing[retention - 1])


def test_xlsx_processor_sheet_only_when_processor_activities_exist(kerf: Manifest) -> None:
    book = load_workbook(io.BytesIO(render_ropa(with_processor_activity(kerf), "xlsx")))
    assert book.sheetnames == ["Kerf B.V.", "Art. 30(2) processor record"]
    processor = book["Art. 30(2) processor record"]
    values = [row for row in processor.iter_rows(min_row=2, values_only=True)]
    assert len(values) == 1
    assert "Shops that use the Kerf white-label portal" in values[0]
    controller_ids = [row[1] for row in book["Kerf B.V."].iter_rows(min_row=2, values_only=True)]
    assert "client-hosting" not in controller_ids


def test_xlsx_joint_controllers_get_a_sheet_each(kerf: Manifest) -> None:
    manifest = with_second_controller(kerf)
    activity(manifest, "recruitment").controller = "kerf-uk"
    book = load_workbook(io.BytesIO(render_ropa(manifest, "xlsx")))
    assert book.sheetnames == ["Kerf B.V.", "Kerf Ltd"]
    uk = [row[1] for row in book["Kerf Ltd"].iter_rows(min_row=2, values_only=True)]
    nl = [row[1] for row in book["Kerf B.V."].iter_rows(min_row=2, values_only=True)]
    assert "recruitment" in uk and "recruitment" not in nl
    assert len(uk) == 14 and len(nl) == 13


def test_xlsx_sheet_names_are_short_valid_and_unique(kerf: Manifest) -> None:
    long_name = "Kerf Manufacturing Marketplace Holding [Europe]: B.V."
    kerf.organisation.controllers[0].name = long_name
    kerf.organisation.controllers.append(
        kerf.organisation.controllers[0].model_copy(update={"id": "twin"}))
    names = load_workbook(io.BytesIO(render_ropa(kerf, "xlsx"))).sheetnames
    assert len(names) == len({n.lower() for n in names}) == 2
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in names)


def test_xlsx_never_turns_manifest_text_into_formulas(kerf: Manifest) -> None:
    activity(kerf, "account").purpose = "=1+1"
    activity(kerf, "quoting").name = "Quotes\x07 with a bell"
    sheet = load_workbook(io.BytesIO(render_ropa(kerf, "xlsx"))).active
    assert sheet is not None
    purposes = [c.value for c in sheet[1]].index(COLUMNS["purposes"]) + 1
    cell = sheet.cell(row=2, column=purposes)
    assert cell.value == "=1+1" and cell.data_type == "s"
    assert sheet.cell(row=3, column=3).value == "Quotes with a bell"


# --- ROPA: md and html -------------------------------------------------------------------------


def test_markdown_has_a_table_per_controller_with_a_heading(kerf: Manifest) -> None:
    manifest = with_processor_activity(with_second_controller(kerf))
    activity(manifest, "account").purpose = "Accounts | with a pipe"
    text = render_ropa(manifest, "md").decode("utf-8")
    assert "## Kerf B.V.: processing as controller (Art. 30(1))" in text
    assert "## Kerf Ltd: processing as controller (Art. 30(1))" in text
    assert "## Processing carried out as a processor (Art. 30(2))" in text
    assert "Accounts \\| with a pipe" in text
    tables = MarkdownIt("commonmark").enable("table").parse(text)
    assert sum(token.type == "table_open" for token in tables) == 3
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "Kerf B.V. answers all requests for both." in rendered


def test_html_escapes_script_from_the_manifest(kerf: Manifest) -> None:
    activity(kerf, "newsletter").purpose = "<script>alert('x')</script> & more"
    activity(kerf, "quoting").name = "<b>Quotes</b>"
    for html in (render_ropa(kerf, "html").decode("utf-8"), render_notice(kerf, "html")):
        assert "<script>" not in html and "<b>Quotes</b>" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html
        assert "&lt;b&gt;Quotes&lt;/b&gt;" in html
    markdown = MarkdownIt("commonmark").enable("table")
    for text in (render_ropa(kerf, "md").decode("utf-8"), render_notice(kerf, "md")):
        assert "<script>" not in markdown.render(text)


def test_html_ropa_is_a_complete_page(kerf: Manifest) -> None:
    html = render_ropa(kerf, "html").decode("utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert '<html lang="en">' in html
    assert html.count("<tr>") == 1 + 14


def test_unknown_formats_are_refused(kerf: Manifest) -> None:
    with pytest.raises(ValueError, match="csv, xlsx, md, html"):
        render_ropa(kerf, "pdf")
    with pytest.raises(ValueError, match="md or html"):
        render_notice(kerf, "txt")


# --- retention words ---------------------------------------------------------------------------


def rule(manifest: Manifest, key: str) -> RetentionRule:
    return next(r for r in manifest.retention if r.id == key)


def test_describe_retention_builds_the_promise_from_the_rule(kerf: Manifest) -> None:
    assert describe_retention(rule(kerf, "applications"), kerf) == (
        "4 weeks after the decision on the application, or 1 year if you agree to the "
        "talent pool")
    assert describe_retention(rule(kerf, "invoices"), kerf) == (
        "7 years after the end of the financial year in which the invoice was issued")
    assert describe_retention(rule(kerf, "newsletter"), kerf) == (
        "until you withdraw your consent to the newsletter")
    assert describe_retention(rule(kerf, "web-visits"), kerf) == "1 year after your last visit"
    assert describe_retention(rule(kerf, "id-documents"), kerf) == (
        "only until the verification, then deleted")
    assert describe_retention(rule(kerf, "account"), kerf).endswith(", then anonymised")


def test_describe_retention_prefers_the_description_and_says_maximum(kerf: Manifest) -> None:
    pixel = RetentionRule(id="pixel", keep="90 days", after="event",  # type: ignore[arg-type]
                          event="the pixel event", maximum="180 days")  # type: ignore[arg-type]
    assert describe_retention(pixel, kerf) == (
        "90 days after the pixel event, and never longer than 180 days in all")
    worded = pixel.model_copy(update={"description": "Kept  90 days\nat most."})
    assert describe_retention(worded, kerf) == "Kept 90 days at most."


def test_describe_retention_names_a_financial_year_that_ends_off_december(
        kerf: Manifest) -> None:
    kerf.organisation.controllers[0].financial_year_end = "03-31"
    assert describe_retention(rule(kerf, "invoices"), kerf).endswith(
        "(the financial year ends on 31 March)")


# --- the notice --------------------------------------------------------------------------------


def test_notice_has_every_section_activity_rule_and_authority(kerf: Manifest) -> None:
    text = render_notice(kerf, "md")
    for heading in NOTICE_HEADINGS:
        assert f"\n## {heading}\n" in text
    for act in kerf.activities:
        assert f"### {act.name}" in text
    for retention in kerf.retention:
        words = describe_retention(retention, kerf)
        assert words[:1].upper() + words[1:] in text
    assert "Autoriteit Persoonsgegevens (Netherlands)" in text
    assert "https://autoriteitpersoonsgegevens.nl/en/contact-the-dutch-dpa" in text


def test_notice_explains_bases_recipients_and_transfers_in_plain_words(kerf: Manifest) -> None:
    text = render_notice(kerf, "md")
    assert "Dutch Civil Code, Book 2, art. 10" in text
    assert "training support staff and evidence of what was agreed by phone" in text
    assert "You gave your consent to the newsletter" in text
    assert "Kerf B.V. is responsible for your personal data" in text
    assert "\n- **Our data protection officer**: Data Protection Officer" in text
    assert "\n- **Mailgun Technologies, Inc.**: Location: United States." in text
    assert "EU-U.S. Data Privacy Framework" in text
    assert "standard contractual clauses" in text
    assert "(independent controllers)" in text and "**DHL Parcel (logistics)**" in text
    assert "e-mail address, name, phone number" in text.lower()
    assert "Yes: the law requires it." in text


def test_notice_rights_say_deadline_identity_fee_and_backups(kerf: Manifest) -> None:
    text = render_notice(kerf, "md")
    assert "within 1 month" in text and "up to 2 months longer" in text
    assert "within the first month" in text
    assert "check that it comes from you" in text
    assert "manifestly unfounded or excessive" in text
    assert "Withdrawing your consent is always free" in text
    assert "erased within 35 days" in text
    assert "use the unsubscribe link in every e-mail" in text
    assert "We do not make decisions about you based only on automated processing" in text
    assert "version 2026.1" in text and "1 January 2026" in text
    assert "at least 30 days before" in text


def test_notice_without_authority_points_to_your_own(kerf: Manifest) -> None:
    kerf.organisation.supervisory_authorities = []
    kerf.rights.fee_for_unfounded = False
    text = render_notice(kerf, "md")
    assert "data protection authority of your country" in text
    assert "manifestly unfounded" not in text
    assert "Using your rights is free, and so is withdrawing your consent." in text


def test_notice_names_joint_controllers_and_their_arrangement(kerf: Manifest) -> None:
    text = render_notice(with_second_controller(kerf), "md")
    assert "Kerf B.V. and Kerf Ltd decide together" in text
    assert "joint controllers" in text
    assert "1 Oxford Road, Manchester M1 7ED, United Kingdom" in text
    assert "Kerf B.V. answers all requests for both." in text
    row = ropa_rows(kerf)[0]
    assert "Kerf Ltd, 1 Oxford Road" in row["joint_controllers"]
    assert "Arrangement (Art. 26)" in row["joint_controllers"]


@pytest.mark.skipif(not (ROOT / "examples/seeds/fractory.yaml").exists(),
                    reason="examples/seeds/fractory.yaml is not written yet")
def test_fractory_notice_has_both_joint_controllers() -> None:
    fractory = load_manifest(ROOT / "examples/seeds/fractory.yaml")
    text = render_notice(fractory, "md")
    names = [c.name for c in fractory.organisation.controllers]
    assert len(names) == 2
    assert f"{names[0]} and {names[1]} decide together" in text


def test_notice_describes_automated_decisions_and_profiling(kerf: Manifest) -> None:
    quoting = activity(kerf, "quoting")
    quoting.automated_decisions = []
    quoting.profiling = True
    text = render_notice(kerf, "md")
    assert "We use profiling" in text and "Quotes for parts" in text
    assert "We do not profile you." not in text


def test_notice_html_is_a_standalone_page_in_the_first_language(kerf: Manifest) -> None:
    kerf.notice.languages = ["nl", "en"]
    html = render_notice(kerf, "html")
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="nl">' in html and "<style>" in html and "</html>" in html
    assert '<a href="mailto:privacy@kerf.example">' in html
    assert '<a href="https://autoriteitpersoonsgegevens.nl/en/contact-the-dutch-dpa">' in html
    for section in notice_sections(kerf):
        assert f'<section id="{section.anchor}">' in html


def test_notice_extra_sections_and_processor_activities(kerf: Manifest) -> None:
    kerf.notice.extra_sections = {"Children": "# We do not knowingly collect children's data."}
    text = render_notice(with_processor_activity(kerf), "md")
    assert "## Children\n\n\\# We do not knowingly" in text
    assert "### What we do on behalf of our clients" in text
    assert "Shops that use the Kerf white-label portal" in text


# --- the notice diff ---------------------------------------------------------------------------


def test_identical_manifests_have_no_changes(kerf: Manifest) -> None:
    assert notice_diff(_KERF, kerf) == []
    assert notice_diff(_KERF, load_manifest(KERF_FILE)) == []


def test_diff_new_recipient_and_removed_activity(kerf: Manifest) -> None:
    kerf.recipients.append(Recipient(id="crm", name="Pipedrive OÜ", role="processor",
                                     country="EE", activities=["newsletter", "support"]))
    kerf.activities = [a for a in kerf.activities if a.id != "web-analytics"]
    changes = notice_diff(_KERF, kerf)
    assert ("We now share your data with Pipedrive OÜ (Estonia) for: Newsletter and "
            "Customer support.") in changes
    assert "We no longer carry out: Website analytics." in changes


def test_diff_recipient_scope_and_safeguard(kerf: Manifest) -> None:
    mailer = kerf.recipient("mailer")
    helpdesk = kerf.recipient("helpdesk")
    assert mailer is not None and helpdesk is not None
    mailer.activities = ["newsletter", "support"]
    helpdesk.safeguard = Safeguard.bcrs
    changes = notice_diff(_KERF, kerf)
    assert ("We now also share your data with Mailgun Technologies, Inc. for: Customer support."
            in changes)
    assert ("We no longer share your data with Mailgun Technologies, Inc. for: Customer account "
            "management and Offers to existing customers.") in changes
    assert ("The safeguard for transfers to Zendesk, Inc. changed from standard contractual "
            "clauses to binding corporate rules.") in changes


def test_diff_retention_keep(kerf: Manifest) -> None:
    rule(kerf, "invoices").keep = Duration(10, "years")
    assert notice_diff(_KERF, kerf) == [
        "We now keep invoices and payments for 10 years after the end of the financial year in "
        "which the invoice was issued (was 7 years)."]


def test_diff_basis_and_new_data(kerf: Manifest) -> None:
    activity(kerf, "newsletter").legal_bases = [
        LegalBasis(basis="legitimate_interests",  # type: ignore[arg-type]
                   interest="Keeping in touch with customers")]
    activity(kerf, "quoting").categories.append("user.contact.phone_number")
    changes = notice_diff(_KERF, kerf)
    assert "The legal basis for Newsletter changed from consent to legitimate interests." in changes
    assert "New data collected for Quotes for parts: phone number." in changes


def test_diff_interest_behind_an_unchanged_basis(kerf: Manifest) -> None:
    activity(kerf, "call-recording").legal_bases[0].interest = "Quality assurance."
    assert notice_diff(_KERF, kerf) == [
        "The legitimate interest we rely on for Recording of support calls is now: quality "
        "assurance."]


def test_diff_authority_controller_rights_and_consent(kerf: Manifest) -> None:
    kerf.organisation.supervisory_authorities.append(SupervisoryAuthority(
        id="ico", name="Information Commissioner's Office", country="GB"))
    with_second_controller(kerf)
    kerf.rights.response_time = Duration(30, "days")
    kerf.consent_purposes.append(ConsentPurpose(id="sms", name="Text messages about orders"))
    kerf.notice.effective = dt.date(2026, 6, 1)  # a new date alone is not a change to announce
    changes = notice_diff(_KERF, kerf)
    assert "You can now also complain to Information Commissioner's Office (United Kingdom)." \
        in changes
    assert ("Kerf Ltd (1 Oxford Road, Manchester M1 7ED, United Kingdom) is now a controller of "
            "your data.") in changes
    assert "We now answer your requests within 30 days (was 1 month)." in changes
    assert "We now ask for your consent to: Text messages about orders." in changes
    assert "The arrangement between the joint controllers changed: " \
           "Kerf B.V. answers all requests for both." in changes
    assert len(changes) == 5


def test_diff_removed_authority_and_retention_rule(kerf: Manifest) -> None:
    kerf.organisation.supervisory_authorities = []
    kerf.retention = [r for r in kerf.retention if r.id != "call-recordings"]
    changes = notice_diff(_KERF, kerf)
    assert ("Autoriteit Persoonsgegevens (Netherlands) is no longer named as a supervisory "
            "authority you can complain to.") in changes
    assert ("The retention period for recording of support calls (6 months after the call) no "
            "longer applies.") in changes


# --- seeds and properties ----------------------------------------------------------------------


@pytest.mark.parametrize("path", SEED_FILES, ids=[p.stem for p in SEED_FILES])
def test_every_seed_renders_in_every_format(path: Path) -> None:
    manifest = load_manifest(path)
    assert len(csv_rows(manifest)) == len(manifest.activities)
    load_workbook(io.BytesIO(render_ropa(manifest, "xlsx")))
    for fmt in ("md", "html"):
        assert manifest.organisation.name in render_ropa(manifest, fmt).decode("utf-8")
    notice = render_notice(manifest, "md")
    for heading in NOTICE_HEADINGS:
        assert f"\n## {heading}\n" in notice
    retention = next(s for s in notice_sections(manifest) if s.anchor == "retention")
    assert len(retention.blocks[0].entries) == len(manifest.retention)
    assert '<html lang="' in render_notice(manifest, "html")


printable = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                    max_size=60)
MARK = "\u2983"  # a bracket no generated text contains (filtered below)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(purpose=printable, name=printable)
def test_any_text_round_trips_through_csv_and_is_escaped_in_html(purpose: str,
                                                                 name: str) -> None:
    manifest = _KERF.model_copy(deep=True)
    target = activity(manifest, "support")
    target.purpose, target.name = purpose, name
    row = next(r for r in csv_rows(manifest) if r["activity_id"] == "support")
    assert row["purposes"] == purpose and row["activity"] == name

    if MARK in purpose + name:
        return
    target.purpose, target.name = f"{MARK}{purpose}{MARK}", f"{MARK}{name}{MARK}"
    ropa = render_ropa(manifest, "html").decode("utf-8")
    assert str(escape(purpose)) in ropa
    # The notice turns web and e-mail addresses in any text into links: those tags may appear.
    notice = re.sub(r'<a href="[^"<>]*">|</a>', "", render_notice(manifest, "html"))
    for html in (ropa, notice):
        segments = re.findall(f"{MARK}(.*?){MARK}", html, flags=re.S)
        assert segments
        assert not any("<" in segment for segment in segments)
