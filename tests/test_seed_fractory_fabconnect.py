"""The Fractory and Fabconnect seed notices, encoded as manifests, and what the checks find in them.

The manifests (examples/seeds/fractory.yaml, examples/seeds/fabconnect.yaml) encode the public
notices in shared/seeds/000_0c48d3205b6c37f7.txt and 001_b4493753c6dd22fa.txt as they are, so
the gaps the notices really have must be reported, and nothing the notices do say may be.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from lawful.checks import Finding, run_checks
from lawful.manifest import load_manifest
from lawful.manifest.duration import Duration
from lawful.manifest.model import Basis, Clock, Manifest
from lawful.manifest.taxonomy import fides_categories

SEEDS = Path(__file__).resolve().parents[1] / "examples" / "seeds"

# Section 3 of the Fractory notice: the processing table, row by row, in the notice's words.
FRACTORY_TABLE = [
    ("customer-communication", "Customer communication via email"),
    ("customer-feedback", "Customer feedback management"),
    ("customer-invoicing", "Customer invoicing"),
    ("customer-payment-processing", "Customer payment processing"),
    ("customer-profile", "Customer profile management"),
    ("order-delivery", "Delivery of customer’s orders"),
    ("profiled-email-marketing", "Profiled email marketing to B2C customers"),
    ("transactional-email", "Transactional email communication to customers"),
    ("manufacturer-invoices", "Processing invoices of manufacturers"),
    ("social-media-marketing", "Social media marketing"),
    ("candidates", "Candidates"),
    ("service-call-recordings", "Service call recordings"),
]
# Processing the notice declares outside that table (newsletter in section 8; the purposes of
# the retention table that have no row in section 3).
FRACTORY_OUTSIDE_TABLE = ["newsletter", "advertising", "website-improvement",
                          "customer-support", "website-traffic"]


@pytest.fixture(scope="module")
def fractory() -> Manifest:
    return load_manifest(SEEDS / "fractory.yaml")


@pytest.fixture(scope="module")
def fabconnect() -> Manifest:
    return load_manifest(SEEDS / "fabconnect.yaml")


# --- helpers ----------------------------------------------------------------------------------


def rules_for(manifest: Manifest) -> set[str]:
    return {f.rule for f in run_checks(manifest)}


def _index(items: Iterable[Any], key: str) -> int:
    ids = [item.id for item in items]
    assert key in ids, f"{key!r} not declared"
    return ids.index(key)


def path_of(manifest: Manifest, section: str, key: str) -> str:
    """The path of a declared element: 'activities[3]' for 'customer-payment-processing'."""
    return f"{section}[{_index(getattr(manifest, section), key)}]"


def _under(path: str, prefix: str) -> bool:
    # 'activities[1]' must not match 'activities[13]'.
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def findings(manifest: Manifest, rule: str) -> list[Finding]:
    return [f for f in run_checks(manifest) if f.rule == rule]


def fires(manifest: Manifest, rule: str, prefix: str) -> bool:
    """True when `rule` reports something at `prefix` or below it."""
    return any(_under(f.path, prefix) for f in findings(manifest, rule))


def flagged(manifest: Manifest, rule: str, section: str) -> set[str]:
    """Ids of the elements of `section` that `rule` reports."""
    items = getattr(manifest, section)
    return {item.id for i, item in enumerate(items)
            if any(_under(f.path, f"{section}[{i}]") for f in findings(manifest, rule))}


# --- Fractory: the encoding ----------------------------------------------------------------


def test_fractory_every_table_row_is_an_activity(fractory: Manifest) -> None:
    table = [(a.id, a.name) for a in fractory.activities[:len(FRACTORY_TABLE)]]
    assert table == FRACTORY_TABLE
    assert [a.id for a in fractory.activities[len(FRACTORY_TABLE):]] == FRACTORY_OUTSIDE_TABLE
    assert len(fractory.activities) == 12 + 5


def test_fractory_has_all_17_retention_rules(fractory: Manifest) -> None:
    assert len(fractory.retention) == 17
    descriptions = [r.description for r in fractory.retention]
    for words in ["After the withdrawal of consent (unsubscribed)",
                  "45 days since sending of the message",
                  "90 days since pixel event tracking",
                  "Maximum 180 days",
                  "7 years after the end of the financial year when the transaction took place",
                  "Data is deleted after processing",
                  "90 days since the last visit",
                  "7 years after the end of the business year when the invoice was sent",
                  "90 days since the event of a visit",
                  "6 months"]:
        assert words in descriptions
    assert sum(d == "3 years after termination of the agreement" for d in descriptions) == 2


def test_fractory_retention_clocks(fractory: Manifest) -> None:
    rule = {r.id: r for r in fractory.retention}
    invoices = rule["customer-invoices"]
    assert (invoices.keep, invoices.after) == (Duration(7, "years"), Clock.financial_year_end)
    assert invoices.activities == ["customer-invoicing"]
    assert rule["marketing-maximum"].maximum == Duration(180, "days")
    assert rule["marketing-processed"].after is Clock.processing
    consent = rule["marketing-consent"]
    assert (consent.after, consent.consent_purpose) == (Clock.consent_withdrawal, "newsletter")
    ads = rule["advertising"]
    assert (ads.keep, ads.after) == (Duration(90, "days"), Clock.last_event)
    assert rule["visitor-data"].keep == Duration(2, "years")
    assert rule["visitor-data"].after is Clock.last_event
    applications = rule["job-applications"]
    assert (applications.keep, applications.after) == (Duration(1, "years"), Clock.decision)
    assert rule["customer-profile"].after is Clock.contract_end
    assert rule["order-delivery"].after is Clock.event
    assert rule["call-recordings"].keep == Duration(6, "months")


def test_fractory_organisation(fractory: Manifest) -> None:
    org = fractory.organisation
    assert [(c.name, c.country) for c in org.controllers] == [
        ("Fractory Solutions OÜ", "EE"), ("Fractory Ltd", "GB")]
    assert org.joint and org.joint_arrangement is None
    authorities = {a.name: a.country for a in org.supervisory_authorities}
    assert authorities == {"Estonian Data Protection Inspectorate": "EE",
                           "Information Commissioner's Office": "GB"}
    assert fractory.rights.response_time == Duration(30, "days")
    assert fractory.notice.effective is not None
    assert (fractory.notice.effective.year, fractory.notice.effective.month) == (2021, 7)


def test_fractory_recipients_by_category(fractory: Manifest) -> None:
    recipients = {r.id: r for r in fractory.recipients}
    assert set(recipients) == {"service-providers", "payment-processors", "logistics",
                               "advertising-partners", "chatbot-provider"}
    assert recipients["payment-processors"].activities == ["customer-payment-processing"]
    assert recipients["logistics"].activities == ["order-delivery"]
    assert "advertising" in recipients["advertising-partners"].activities
    assert all(not r.countries and r.dpa_date is None for r in fractory.recipients)


def test_fractory_custom_categories(fractory: Manifest) -> None:
    names = {c.name: c.parent for c in fractory.categories}
    for name in ["Personal Identification Information", "Consumption habits",
                 "Electronic identification data",
                 "Identification details, issued by the government"]:
        assert name in names
        assert names[name] in fides_categories()


def test_fractory_legal_bases(fractory: Manifest) -> None:
    act = {a.id: a for a in fractory.activities}
    assert [lb.basis for lb in act["customer-invoicing"].legal_bases] == [
        Basis.legal_obligation, Basis.contract]
    assert act["candidates"].legal_bases[0].basis is Basis.contract
    marketing = act["profiled-email-marketing"]
    assert marketing.has_basis(Basis.legitimate_interests)
    assert marketing.marketing is not None and marketing.marketing.soft_opt_in
    assert act["newsletter"].legal_bases[0].consent_purpose == "newsletter"
    for key in ["advertising", "website-improvement", "customer-support", "website-traffic"]:
        assert act[key].legal_bases == []  # the notice gives none


# --- Fractory: the findings it deserves ----------------------------------------------------


def test_fractory_authorities_named(fractory: Manifest) -> None:
    assert "authority-missing" not in rules_for(fractory)


def test_fractory_joint_controllers_without_arrangement(fractory: Manifest) -> None:
    assert fires(fractory, "joint-controller-without-arrangement", "organisation")


def test_fractory_processors_without_dpa(fractory: Manifest) -> None:
    assert flagged(fractory, "processor-without-dpa", "recipients") == {
        "service-providers", "payment-processors", "logistics", "chatbot-provider"}


def test_fractory_recipients_without_country(fractory: Manifest) -> None:
    assert flagged(fractory, "recipient-country-missing", "recipients") == {
        r.id for r in fractory.recipients}


def test_fractory_payment_processing_has_no_retention(fractory: Manifest) -> None:
    # Every row of section 3 has a retention row except payment processing.
    assert flagged(fractory, "retention-missing", "activities") == {"customer-payment-processing"}


def test_fractory_legal_obligation_without_law(fractory: Manifest) -> None:
    invoicing = path_of(fractory, "activities", "customer-invoicing")
    assert fires(fractory, "obligation-without-law", f"{invoicing}.legal_bases[0]")
    invoices = path_of(fractory, "retention", "customer-invoices")
    assert fires(fractory, "retention-obligation-without-law", invoices)


def test_fractory_purposes_outside_table_have_no_basis(fractory: Manifest) -> None:
    assert flagged(fractory, "basis-missing", "activities") == {
        "advertising", "website-improvement", "customer-support", "website-traffic"}


def test_fractory_marketing(fractory: Manifest) -> None:
    # Social media and behavioural advertising are offered no opt-out by the notice.
    assert flagged(fractory, "marketing-without-opt-out", "activities") == {
        "social-media-marketing", "advertising"}
    # Profiled e-mails rely on the soft opt-in for customers, the newsletter on consent.
    assert "marketing-without-consent" not in rules_for(fractory)


def test_fractory_consent_clock_on_legitimate_interest_marketing(fractory: Manifest) -> None:
    # "After the withdrawal of consent (unsubscribed)" is the retention promised for marketing
    # that the notice bases on legitimate interests: no consent, so no withdrawal ends it.
    hits = [f for f in run_checks(fractory) if f.rule == "retention-clock-incomplete"]
    assert {f.message.split("'")[3] for f in hits} == {
        "profiled-email-marketing", "social-media-marketing"}


def test_fractory_transfer_outside_eea_without_safeguard(fractory: Manifest) -> None:
    assert flagged(fractory, "transfer-without-safeguard", "recipients") == {"service-providers"}


def test_fractory_consent_without_text(fractory: Manifest) -> None:
    assert fires(fractory, "consent-purpose-without-text", "consent_purposes[0]")


def test_fractory_what_the_notice_does_say(fractory: Manifest) -> None:
    found = rules_for(fractory)
    for rule in ["interest-not-stated", "consent-without-purpose", "consent-purpose-unused",
                 "response-too-long", "security-missing", "portability-wrong-basis",
                 "retention-rule-unused", "recipient-unused",
                 "special-without-art9", "privacy-shield", "dpf-not-certified",
                 "notice-undated"]:
        assert rule not in found, rule


# --- Fabconnect: the encoding --------------------------------------------------------------


def test_fabconnect_encoding(fabconnect: Manifest) -> None:
    act = {a.id: a for a in fabconnect.activities}
    assert len(act) == 14
    assert fabconnect.retention == []  # the policy gives no periods
    assert fabconnect.organisation.supervisory_authorities == []
    assert act["marketing"].legal_bases[0].basis is Basis.legitimate_interests
    assert act["marketing"].legal_bases[0].interest
    assert act["marketing"].marketing is not None and act["marketing"].marketing.opt_out
    assert act["testimonials"].legal_bases[0].consent_purpose == "testimonial"
    assert "pricing" in (act["anonymisation"].legal_bases[0].interest or "")
    assert {lb.basis for lb in act["legal-disclosures"].legal_bases} == {
        Basis.legal_obligation, Basis.legitimate_interests}
    assert act["services"].legal_bases[0].basis is Basis.contract
    partners = fabconnect.recipient("manufacturing-partners")
    assert partners is not None and partners.activities == ["order-fulfilment"]


def test_fabconnect_rights_and_notice(fabconnect: Manifest) -> None:
    rights = fabconnect.rights
    assert rights.response_time == Duration(1, "months")
    assert rights.extension is not None
    assert rights.fee_for_unfounded and rights.verify_identity
    assert fabconnect.notice.change_notice_days == 30


# --- Fabconnect: the findings it deserves --------------------------------------------------


def test_fabconnect_no_authority(fabconnect: Manifest) -> None:
    assert fires(fabconnect, "authority-missing", "organisation")


def test_fabconnect_no_retention_anywhere(fabconnect: Manifest) -> None:
    assert flagged(fabconnect, "retention-missing", "activities") == {
        a.id for a in fabconnect.activities}


def test_fabconnect_marketing_on_legitimate_interests(fabconnect: Manifest) -> None:
    # E-mail marketing to customers, prospects and partners without consent or soft opt-in.
    marketing = path_of(fabconnect, "activities", "marketing")
    assert fires(fabconnect, "marketing-without-consent", marketing)
    assert "marketing-without-opt-out" not in rules_for(fabconnect)


def test_fabconnect_processors_without_dpa(fabconnect: Manifest) -> None:
    assert flagged(fabconnect, "processor-without-dpa", "recipients") == {
        "service-providers", "manufacturing-partners", "analytics-providers"}


def test_fabconnect_recipients_without_country(fabconnect: Manifest) -> None:
    assert flagged(fabconnect, "recipient-country-missing", "recipients") == {
        r.id for r in fabconnect.recipients}


def test_fabconnect_law_not_named(fabconnect: Manifest) -> None:
    disclosures = path_of(fabconnect, "activities", "legal-disclosures")
    assert fires(fabconnect, "obligation-without-law", f"{disclosures}.legal_bases[0]")


def test_fabconnect_undated_and_consent_without_text(fabconnect: Manifest) -> None:
    assert fires(fabconnect, "notice-undated", "notice")
    assert fires(fabconnect, "consent-purpose-without-text", "consent_purposes[0]")


def test_fabconnect_what_the_policy_does_say(fabconnect: Manifest) -> None:
    found = rules_for(fabconnect)
    for rule in ["basis-missing", "interest-not-stated", "consent-without-purpose",
                 "consent-purpose-unused", "response-too-long", "security-missing",
                 "portability-wrong-basis", "contract-basis-for-marketing",
                 "joint-controller-without-arrangement", "recipient-unused",
                 "special-without-art9"]:
        assert rule not in found, rule


# --- The notice generated from the Fractory manifest ------------------------------------------


def _section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_fractory_notice_lists_its_activities_and_17_retention_periods(
        fractory: Manifest) -> None:
    from lawful.documents import render_notice

    text = render_notice(fractory, "md")
    collected = _section(text, "What we collect and why")
    # The 12 rows of the notice's processing table, and the newsletter of its section 8: the
    # 13 activities the notice declares with a purpose and a legal basis.
    declared = [a for a in fractory.activities if a.legal_bases]
    assert len(declared) == 13
    for activity in fractory.activities:
        assert f"### {activity.name}" in collected, activity.name
    kept = _section(text, "How long we keep your data")
    periods = [line for line in kept.splitlines() if line.startswith("- **")]
    assert len(periods) == 17
    for rule in fractory.retention:
        assert rule.description and rule.description.rstrip(".") in kept, rule.id
    assert "7 years after the end of the financial year when the transaction took place" in kept
