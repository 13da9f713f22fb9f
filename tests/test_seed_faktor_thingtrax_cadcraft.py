"""The seed notices of Faktor, ThingTrax and Cadcraft, encoded as manifests, and what the
checks say about them.

Each manifest encodes what its notice says and nothing more, so the checks must report the
notice's real gaps: Faktor's processor table still cites the Privacy Shield and gives no DPA
dates; ThingTrax names no supervisory authority, no DPO e-mail and no retention period;
Cadcraft names no legal basis and no retention period.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from lawful.manifest import load_manifest
from lawful.manifest.duration import Duration
from lawful.manifest.model import Clock, Manifest, Safeguard

SEEDS = Path(__file__).resolve().parents[1] / "examples" / "seeds"

FAKTOR_PROCESSORS = {
    # id: (name as the notice gives it, locations of processing)
    "aws": ("Amazon Web Services, Inc.", ["IE", "DE"]),
    "hubspot": ("Hubspot", ["US"]),
    "google-email": ("Google", ["US"]),
    "atlassian": ("Atlassian", ["US"]),
    "chargify-accounts": ("Chargify", ["US"]),
    "chargebee": ("Chargebee", ["US"]),
    "google-cloud": ("Google", ["US"]),
    "harvest": ("Harvest", ["US"]),
    "chargify-invoicing": ("Chargify", ["US"]),
}


# --- helpers -----------------------------------------------------------------------------------


def load(name: str) -> Manifest:
    return load_manifest(SEEDS / f"{name}.yaml")


def run(manifest: Manifest) -> list:
    checks = pytest.importorskip("lawful.checks")
    return checks.run_checks(manifest)


def findings_by_rule(manifest: Manifest) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for finding in run(manifest):
        out[finding.rule].append(finding)
    return dict(out)


def pairs(manifest: Manifest) -> set[tuple[str, str]]:
    return {(f.rule, f.path) for f in run(manifest)}


def has(manifest: Manifest, rule: str, path_part: str) -> bool:
    return any(r == rule and path_part in p for r, p in pairs(manifest))


def _indexed(findings: list, section: str) -> list[int]:
    pattern = re.compile(rf"^{section}\[(\d+)\]")
    out = []
    for f in findings:
        match = pattern.match(f.path)
        assert match, f"{f.rule} finding at unexpected path {f.path!r}"
        out.append(int(match.group(1)))
    return out


def flagged_recipients(manifest: Manifest, rule: str) -> set[str]:
    found = findings_by_rule(manifest).get(rule, [])
    return {manifest.recipients[i].id for i in _indexed(found, "recipients")}


def flagged_activities(manifest: Manifest, rule: str) -> set[str]:
    found = findings_by_rule(manifest).get(rule, [])
    return {manifest.activities[i].id for i in _indexed(found, "activities")}


@pytest.fixture(scope="module")
def faktor() -> Manifest:
    return load("faktor")


@pytest.fixture(scope="module")
def thingtrax() -> Manifest:
    return load("thingtrax")


@pytest.fixture(scope="module")
def cadcraft() -> Manifest:
    return load("cadcraft")


# --- all three ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["faktor", "thingtrax", "cadcraft"])
def test_seed_manifest_loads_and_names_its_source(name: str) -> None:
    manifest = load(name)
    text = (SEEDS / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("#")
    assert "shared/seeds/00" in text.split("lawful: 1")[0]
    assert manifest.lawful == 1
    assert manifest.systems == []


# --- Faktor ------------------------------------------------------------------------------------


def test_faktor_every_processor_row_is_a_recipient(faktor: Manifest) -> None:
    assert {r.id for r in faktor.recipients} == set(FAKTOR_PROCESSORS)
    for rec in faktor.recipients:
        name, locations = FAKTOR_PROCESSORS[rec.id]
        assert rec.name == name
        assert rec.role == "processor"
        assert rec.country == "US"
        assert rec.locations == locations
        assert rec.safeguard is Safeguard.privacy_shield
        assert rec.dpa_date is None  # "we have signed DPAs" - but no date is given
        assert rec.purpose and rec.activities
    # Rows naming the same company stay distinct: two Google, two Chargify.
    names = [r.name for r in faktor.recipients]
    assert names.count("Google") == 2 and names.count("Chargify") == 2


def test_faktor_privacy_shield_flagged_on_every_processor_row(faktor: Manifest) -> None:
    assert flagged_recipients(faktor, "privacy-shield") == set(FAKTOR_PROCESSORS)
    for i in range(len(faktor.recipients)):
        assert ("privacy-shield", f"recipients[{i}].safeguard") in pairs(faktor)
    severities = {f.severity for f in findings_by_rule(faktor)["privacy-shield"]}
    assert severities == {"error"}


def test_faktor_processor_without_dpa_on_every_processor_row(faktor: Manifest) -> None:
    assert flagged_recipients(faktor, "processor-without-dpa") == set(FAKTOR_PROCESSORS)
    assert has(faktor, "processor-without-dpa", "recipients[0]")


def test_faktor_recruitment_keeps_cv_4_weeks_or_1_year_with_consent(faktor: Manifest) -> None:
    rules = [r for r in faktor.retention if "recruitment" in r.activities]
    assert len(rules) == 1
    cv = rules[0]
    assert cv.keep == Duration(4, "weeks")
    assert cv.extension is not None
    assert cv.extension.keep == Duration(1, "years")
    purpose = faktor.consent_purpose(cv.extension.consent_purpose)
    assert purpose is not None
    recruitment = faktor.activity("recruitment")
    assert recruitment is not None
    assert cv.extension.consent_purpose in {lb.consent_purpose for lb in recruitment.legal_bases}


def test_faktor_retention_promises(faktor: Manifest) -> None:
    former = next(r for r in faktor.retention if r.id == "former-clients")
    assert (former.keep, former.after, former.subjects) == (
        Duration(2, "years"), Clock.contract_end, ["customer"])
    product = next(r for r in faktor.retention if r.id == "product-data")
    assert product.after is Clock.contract_end and product.keep is None
    assert "consent-records" in product.activities
    # The notice gives retention only "for example": the rest is reported, by activity.
    assert flagged_activities(faktor, "retention-missing") == {
        "product-improvement", "prospect-marketing", "client-management"}
    assert "retention-rule-unused" not in findings_by_rule(faktor)


def test_faktor_marketing_soft_opt_in_for_customers_consent_for_others(
        faktor: Manifest) -> None:
    customers = faktor.activity("customer-marketing")
    prospects = faktor.activity("prospect-marketing")
    assert customers and customers.marketing and customers.marketing.soft_opt_in
    assert customers.subjects == ["customer"]
    assert prospects and prospects.marketing and not prospects.marketing.soft_opt_in
    assert [lb.consent_purpose for lb in prospects.legal_bases] == ["marketing-emails"]
    by_rule = findings_by_rule(faktor)
    assert "marketing-without-consent" not in by_rule
    assert "marketing-without-opt-out" not in by_rule


def test_faktor_hotjar_only_with_permission(faktor: Manifest) -> None:
    improve = faktor.activity("product-improvement")
    assert improve is not None
    assert "faktor.hotjar_session" in improve.categories
    assert "hotjar" in {lb.consent_purpose for lb in improve.legal_bases}
    assert "consent-purpose-unused" not in findings_by_rule(faktor)
    assert "consent-without-purpose" not in findings_by_rule(faktor)


def test_faktor_is_processor_for_its_clients_visitors(faktor: Manifest) -> None:
    act = faktor.activity("consent-records")
    assert act is not None
    assert act.role == "processor" and act.on_behalf_of
    assert act.subjects == ["client-visitor"]
    assert "faktor.audit_id" in act.categories
    # A processor activity has no basis of its own (the client is the controller). The only
    # activity basis-missing may report in Faktor's manifest is this one.
    assert flagged_activities(faktor, "basis-missing") <= {"consent-records"}


def test_faktor_authority_security_and_pseudonymised_ip(faktor: Manifest) -> None:
    [ap] = faktor.organisation.supervisory_authorities
    assert (ap.name, ap.country) == ("Autoriteit Persoonsgegevens", "NL")
    names = " ".join(m.name.lower() for m in faktor.security)
    for word in ("encryption", "two-factor", "password expiration", "need-to-know",
                 "pseudonymised"):
        assert word in names
    assert any(c.id == "faktor.pseudonymised_ip" and c.parent == "user.device.ip_address"
               for c in faktor.categories)
    by_rule = findings_by_rule(faktor)
    assert "authority-missing" not in by_rule
    assert "security-missing" not in by_rule


def test_faktor_interest_not_stated_where_the_notice_names_none(faktor: Manifest) -> None:
    assert flagged_activities(faktor, "interest-not-stated") == {
        "business-admin", "customer-support", "services", "product-improvement"}
    assert has(faktor, "interest-not-stated", "activities[0].legal_bases[1]")
    # Where the notice says what the interest is, it is stated.
    assert "client-management" not in flagged_activities(faktor, "interest-not-stated")
    assert "obligation-without-law" not in findings_by_rule(faktor)


# --- ThingTrax ---------------------------------------------------------------------------------


def test_thingtrax_privacy_shield_for_us_providers_sccs_for_the_rest(
        thingtrax: Manifest) -> None:
    us = {r.id for r in thingtrax.recipients if r.country == "US"}
    assert us == {"google-analytics", "auth0", "hubspot"}
    assert flagged_recipients(thingtrax, "privacy-shield") == us
    assert has(thingtrax, "privacy-shield", "recipients[7].safeguard")
    typed = [r for r in thingtrax.recipients if r.role == "processor" and r.id not in us]
    assert {r.category for r in typed} == {
        "mail", "hosting", "database management and back-up", "monitoring",
        "customer support and CRM", "accounting", "payment"}
    assert all(r.safeguard is Safeguard.sccs and r.country is None for r in typed)
    # Where the typed recipients are is not stated: reported, not invented.
    assert {r.id for r in typed} <= flagged_recipients(thingtrax, "recipient-country-missing")
    assert "transfer-without-safeguard" not in findings_by_rule(thingtrax)


def test_thingtrax_authority_missing(thingtrax: Manifest) -> None:
    assert thingtrax.organisation.supervisory_authorities == []
    assert ("authority-missing", "organisation") in pairs(thingtrax)


def test_thingtrax_named_dpo_without_contact(thingtrax: Manifest) -> None:
    dpo = thingtrax.organisation.dpo
    assert dpo is not None and dpo.name == "Aman Gupta"
    assert dpo.email is None and dpo.phone is None and dpo.address is None
    assert ("dpo-contact-missing", "organisation.dpo") in pairs(thingtrax)


def test_thingtrax_retention_missing_everywhere(thingtrax: Manifest) -> None:
    assert thingtrax.retention == []
    assert flagged_activities(thingtrax, "retention-missing") == {
        a.id for a in thingtrax.activities}
    assert has(thingtrax, "retention-missing", "activities[6].id")  # do-not-contact


def test_thingtrax_rights_access_30_days_after_identity(thingtrax: Manifest) -> None:
    rights = thingtrax.rights
    assert rights.response_time == Duration(30, "days")
    assert rights.extension is None
    assert rights.verify_identity is True
    assert rights.backup_erasure_latency is None  # "some latency", no number
    assert "erasure" in rights.offered and "restriction" not in rights.offered
    assert "response-too-long" not in findings_by_rule(thingtrax)
    assert ("right-not-offered", "rights.offered") in pairs(thingtrax)
    assert "portability-wrong-basis" not in findings_by_rule(thingtrax)


def test_thingtrax_do_not_contact_on_legitimate_interest(thingtrax: Manifest) -> None:
    act = thingtrax.activity("do-not-contact")
    assert act is not None
    [lb] = act.legal_bases
    assert lb.basis == "legitimate_interests" and "do not contact" in (lb.interest or "")
    assert "do-not-contact" not in flagged_activities(thingtrax, "interest-not-stated")


def test_thingtrax_breaches_reported_internally_to_dpo(thingtrax: Manifest) -> None:
    assert thingtrax.breaches is not None
    assert thingtrax.breaches.report_internally_to == "dpo"
    assert "immediately" in (thingtrax.breaches.procedure or "")


def test_thingtrax_processors_without_dpa_dates(thingtrax: Manifest) -> None:
    processors = {r.id for r in thingtrax.recipients if r.role == "processor"}
    assert flagged_recipients(thingtrax, "processor-without-dpa") == processors


# --- Cadcraft ----------------------------------------------------------------------------------


def test_cadcraft_social_security_numbers_and_sources(cadcraft: Manifest) -> None:
    customers = cadcraft.activity("customers")
    assert customers is not None
    assert "user.government_id.national_identification_number" in customers.categories
    assert "publicly available personal registers" in customers.sources
    assert "records used for credit assessment" in customers.sources
    assert "data_subject" in customers.sources


def test_cadcraft_calls_chats_training_and_statistics(cadcraft: Manifest) -> None:
    calls = cadcraft.activity("call-chat-training")
    assert calls is not None and "training" in calls.purpose
    assert {"cadcraft.call_recording", "cadcraft.chat_transcript"} <= set(calls.categories)
    stats = cadcraft.activity("development-statistics")
    assert stats is not None and "statistics" in stats.purpose


def test_cadcraft_gaps_are_reported_not_filled(cadcraft: Manifest) -> None:
    [controller] = cadcraft.organisation.controllers
    assert controller.address == "not stated in the notice"
    assert cadcraft.recipients == [] and cadcraft.retention == []
    all_ids = {a.id for a in cadcraft.activities}
    assert flagged_activities(cadcraft, "retention-missing") == all_ids
    assert flagged_activities(cadcraft, "basis-missing") == all_ids
    assert ("authority-missing", "organisation") in pairs(cadcraft)
    assert has(cadcraft, "retention-missing", "activities[0].id")
    assert has(cadcraft, "basis-missing", "activities[2].id")  # call recording
    assert "erasure" in cadcraft.rights.offered
    assert "Right to erasure" in cadcraft.notice.extra_sections
