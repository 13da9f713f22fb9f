"""Every rule fires on the defect it names, at the right place, and Kerf is clean."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from lawful.checks import RULES, Severity, run_checks
from lawful.manifest import load_located, load_manifest_text
from tests.conftest import KERF

Data = dict[str, Any]


def act(d: Data, key: str) -> Data:
    return next(a for a in d["activities"] if a["id"] == key)


def rec(d: Data, key: str) -> Data:
    return next(r for r in d["recipients"] if r["id"] == key)


def ret(d: Data, key: str) -> Data:
    return next(r for r in d["retention"] if r["id"] == key)


def purpose(d: Data, key: str) -> Data:
    return next(p for p in d["consent_purposes"] if p["id"] == key)


def table(d: Data, name: str) -> Data:
    return next(t for t in d["systems"][0]["tables"] if t["name"] == name)


def field(d: Data, tname: str, fname: str) -> Data:
    return next(f for f in table(d, tname)["fields"] if f["name"] == fname)


def _set(target: Data, **values: Any) -> None:
    target.update(values)


def _add_processor(d: Data, **values: Any) -> None:
    base = {"id": "x", "name": "X Corp", "role": "processor", "purpose": "p", "country": "US",
            "dpa_date": "2024-01-01", "activities": ["support"]}
    d["recipients"].append({**base, **values})


def _automated(d: Data, **values: Any) -> None:
    act(d, "quoting")["automated_decisions"] = [{"description": "credit limit", **values}]


def _add_category(d: Data, key: str) -> None:
    act(d, "account")["categories"].append(key)


def _joint(d: Data) -> None:
    d["organisation"]["controllers"].append(
        {"id": "kerf-uk", "name": "Kerf Ltd", "address": "1 High St, London", "country": "GB"})


# rule id -> a change to Kerf that must make it fire (and where)
CASES: dict[str, tuple[Callable[[Data], None], str]] = {
    "basis-missing": (lambda d: _set(act(d, "support"), legal_bases=[]), "activities[6]"),
    "consent-without-purpose": (
        lambda d: _set(act(d, "newsletter"), legal_bases=["consent"]), "activities[8]"),
    "obligation-without-law": (
        lambda d: act(d, "invoicing")["legal_bases"][0].pop("law"), "activities[3]"),
    "interest-not-stated": (
        lambda d: act(d, "call-recording")["legal_bases"][0].pop("interest"), "activities[7]"),
    "vital-interests-unexplained": (
        lambda d: act(d, "support")["legal_bases"].append("vital_interests"), "activities[6]"),
    "special-without-art9": (lambda d: _add_category(d, "user.health_and_medical"),
                             "activities[0].categories"),
    "explicit-consent-not-recorded": (
        lambda d: _set(act(d, "account"), special_category_condition="a"), "activities[0]"),
    "criminal-without-authority": (lambda d: _add_category(d, "user.criminal_history"),
                                   "activities[0]"),
    "automated-decision-without-exception": (lambda d: _automated(d), "activities[1]"),
    "automated-decision-without-safeguards": (
        lambda d: _automated(d, exception="contract"), "activities[1]"),
    "contract-basis-for-marketing": (
        lambda d: _set(act(d, "customer-marketing"), legal_bases=["contract"]), "activities[9]"),
    "consent-purpose-without-text": (
        lambda d: _set(purpose(d, "newsletter"), versions=[]), "consent_purposes[0]"),
    "consent-version-duplicate": (
        lambda d: purpose(d, "newsletter")["versions"].append(
            dict(purpose(d, "newsletter")["versions"][0])), "consent_purposes[0].versions[1]"),
    "consent-no-current-text": (
        lambda d: _set(purpose(d, "newsletter")["versions"][0], effective="2999-01-01"),
        "consent_purposes[0]"),
    "consent-text-language-missing": (
        lambda d: purpose(d, "talent-pool")["versions"][0]["text"].pop("nl"),
        "consent_purposes[2]"),
    "cookies-without-consent": (
        lambda d: _set(act(d, "web-analytics"), legal_bases=[
            {"basis": "legitimate_interests", "interest": "statistics"}]),
        "activities[10].categories"),
    "consent-purpose-unused": (lambda d: d["consent_purposes"].append(
        {"id": "surveys", "name": "Surveys", "versions": [
            {"version": 1, "effective": "2024-01-01", "text": {"en": "a", "nl": "b"}}]}),
        "consent_purposes[4]"),
    "marketing-without-consent": (
        lambda d: _set(act(d, "customer-marketing"), subjects=["customer", "prospect"]),
        "activities[9]"),
    "marketing-without-opt-out": (
        lambda d: _set(act(d, "newsletter")["marketing"], opt_out=False), "activities[8]"),
    "transfer-without-safeguard": (
        lambda d: rec(d, "helpdesk").pop("safeguard"), "recipients[3]"),
    "privacy-shield": (
        lambda d: _set(rec(d, "helpdesk"), safeguard="privacy_shield"), "recipients[3]"),
    "dpf-not-certified": (lambda d: _set(rec(d, "mailer"), dpf_certified=False),
                          "recipients[2]"),
    "dpf-outside-us": (lambda d: _set(rec(d, "mailer"), locations=["US", "IN"]),
                       "recipients[2]"),
    "adequacy-claimed-wrongly": (
        lambda d: _set(rec(d, "helpdesk"), safeguard="adequacy"), "recipients[3]"),
    "art49-for-regular-transfers": (
        lambda d: _set(rec(d, "helpdesk"), safeguard="art49"), "recipients[3]"),
    "bcrs-without-reference": (
        lambda d: _set(rec(d, "helpdesk"), safeguard="bcrs", safeguard_reference=None),
        "recipients[3]"),
    "recipient-country-missing": (
        lambda d: _add_processor(d, country=None, safeguard="sccs"), "recipients[7]"),
    "processor-without-dpa": (lambda d: rec(d, "helpdesk").pop("dpa_date"), "recipients[3]"),
    "recipient-unused": (lambda d: _set(rec(d, "carrier"), activities=[]), "recipients[5]"),
    "joint-controller-without-arrangement": (_joint, "organisation"),
    "recipient-without-purpose": (
        lambda d: _add_processor(d, purpose=None, safeguard="sccs"), "recipients[7]"),
    "webhook-not-https": (
        lambda d: _set(rec(d, "carrier"), notify={"webhook": "http://carrier.example/hook"}),
        "recipients[5].notify.webhook"),
    "recipient-category-not-collected": (
        lambda d: rec(d, "carrier").update(categories=["user.financial.bank_account"]),
        "recipients[5].categories[0]"),
    "retention-missing": (lambda d: _set(ret(d, "quotes"), activities=[]), "activities[1]"),
    "retention-rule-unused": (lambda d: _set(ret(d, "quotes"), activities=[]), "retention[1]"),
    "retention-obligation-without-law": (lambda d: ret(d, "invoices").pop("law"),
                                         "retention[3]"),
    "retention-clock-incomplete": (
        lambda d: [ret(d, "orders").pop(k) for k in ("event", "columns")], "retention[2]"),
    "retention-clock-incomplete@consent": (
        lambda d: ret(d, "newsletter")["activities"].append("support"),
        "retention[7].activities[1]"),
    "retention-long-without-law": (lambda d: _set(ret(d, "orders"), keep="12 years"),
                                   "retention[2]"),
    "retention-deletes-referenced": (lambda d: _set(ret(d, "quotes"), action="delete"),
                                     "retention[1]"),
    "retention-event-unknown": (lambda d: _set(ret(d, "orders"), columns="order.delivered"),
                                "retention[2].columns[0]"),
    "database-url-password": (
        lambda d: _set(d["systems"][0], url="postgresql://kerf:s3cret@db.internal/kerf"),
        "systems[0].url"),
    "field-not-covered": (
        lambda d: table(d, "customer")["fields"].append(
            {"name": "birthday", "category": "user.demographic.date_of_birth", "erase": "null"}),
        "systems[0].tables[0].fields[7]"),
    "category-not-in-systems": (lambda d: _add_category(d, "user.demographic.gender"),
                                "activities[0].categories"),
    "table-unreachable": (lambda d: table(d, "testimonial").pop("references"),
                          "systems[0].tables[12]"),
    "field-without-erasure": (lambda d: field(d, "customer", "phone").pop("erase"),
                              "systems[0].tables[0].fields[3]"),
    "keep-without-hold": (lambda d: _set(field(d, "customer", "phone"), erase="keep"),
                          "systems[0].tables[0].fields[3]"),
    "fixed-without-value": (lambda d: _set(field(d, "customer", "phone"), erase="fixed"),
                            "systems[0].tables[0].fields[3]"),
    "self-reference-same-person": (
        lambda d: table(d, "customer").setdefault("references", []).append(
            {"field": "referred_by", "to": "customer.id"}),
        "systems[0].tables[0].references[0]"),
    "authority-missing": (lambda d: _set(d["organisation"], supervisory_authorities=[]),
                          "organisation"),
    "response-too-long": (lambda d: _set(d["rights"], response_time="45 days"),
                          "rights.response_time"),
    "right-not-offered": (lambda d: _set(d["rights"], offered=["access", "erasure"]),
                          "rights.offered"),
    "portability-wrong-basis": (lambda d: _set(act(d, "call-recording"), portability=True),
                                "activities[7].portability"),
    "controller-contact-missing": (
        lambda d: (d["organisation"]["controllers"][0].pop("email"), d["rights"].pop("contact")),
        "organisation.controllers[0]"),
    "controller-country-missing": (
        lambda d: d["organisation"]["controllers"][0].pop("country"),
        "organisation.controllers[0]"),
    "representative-missing": (
        lambda d: _set(d["organisation"]["controllers"][0], country="US"), "organisation"),
    "dpo-contact-missing": (lambda d: _set(d["organisation"], dpo={"name": "A. Person"}),
                            "organisation.dpo"),
    "security-missing": (lambda d: _set(d, security=[]), "security"),
    "children-data": (lambda d: _add_category(d, "user.childrens"), "activities[0]"),
    "notice-undated": (lambda d: d["notice"].pop("effective"), "notice"),
}


def test_processor_activities_need_no_basis_of_their_own(kerf_data: Data) -> None:
    def change(d: Data) -> None:
        _set(act(d, "support"), role="processor", on_behalf_of="clients", legal_bases=[])
    assert "basis-missing" not in {f.rule for f in findings_after(change, kerf_data)}


def test_automated_decision_right_only_required_when_decisions_are_made(kerf_data: Data) -> None:
    offered = ["access", "portability", "rectification", "erasure", "restriction", "objection",
               "consent_withdrawal"]
    quiet = [f for f in findings_after(lambda d: _set(d["rights"], offered=offered),
                                       kerf_data) if f.rule == "right-not-offered"]
    assert quiet == []
    def change(d: Data) -> None:
        _set(d["rights"], offered=offered)
        _automated(d, exception="contract", human_review=True, logic="score")
    loud = [f for f in findings_after(change, kerf_data) if f.rule == "right-not-offered"]
    assert len(loud) == 1 and "automated_decision" in loud[0].message


def findings_after(change: Callable[[Data], None], data: Data) -> list[Any]:
    change(data)
    return run_checks(load_manifest_text(yaml.safe_dump(data, sort_keys=False), "kerf.yaml"))


def test_kerf_is_clean() -> None:
    located = load_located(KERF)
    assert run_checks(located.manifest, located.positions) == []


def test_at_least_thirty_rules_each_with_id_article_and_title() -> None:
    assert len(RULES) >= 30
    for r in RULES.values():
        assert r.article.startswith(("GDPR", "ePrivacy")), r.id
        assert r.title and r.severity in Severity


def test_every_rule_has_a_case() -> None:
    assert {case.split("@")[0] for case in CASES} == set(RULES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_fires_where_expected(case: str, kerf_data: Data) -> None:
    change, where = CASES[case]
    rule_id = case.split("@")[0]
    hits = [f for f in findings_after(change, kerf_data) if f.rule == rule_id]
    assert hits, f"{rule_id} did not fire"
    assert any(f.path.startswith(where) for f in hits), [f.path for f in hits]
    for f in hits:
        assert f.message and f.fix and f.article == RULES[rule_id].article


def test_findings_carry_line_numbers(tmp_path: Any, kerf_data: Data) -> None:
    act(kerf_data, "support")["legal_bases"] = []
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(kerf_data, sort_keys=False))
    located = load_located(path)
    (hit,) = [f for f in run_checks(located.manifest, located.positions)
              if f.rule == "basis-missing"]
    line = path.read_text().splitlines()[hit.line - 1]
    assert "id: support" in line


def test_transfer_to_an_unnamed_country_outside_the_eea(kerf_data: Data) -> None:
    def change(d: Data) -> None:
        _add_processor(d, country=None, outside_eea=True)
    hits = [f for f in findings_after(change, kerf_data) if f.rule == "transfer-without-safeguard"]
    assert len(hits) == 1 and "unnamed country outside the EEA" in hits[0].message


def test_soft_opt_in_for_customers_only_is_fine(kerf_data: Data) -> None:
    rules = {f.rule for f in findings_after(lambda d: None, kerf_data)}
    assert "marketing-without-consent" not in rules
    assert act(kerf_data, "customer-marketing")["marketing"]["soft_opt_in"] is True


def test_password_only_in_env_var_is_fine(kerf_data: Data) -> None:
    change = lambda d: _set(d["systems"][0], url="postgresql://kerf:${KERF_PW}@db/kerf")  # noqa: E731
    assert not [f for f in findings_after(change, kerf_data) if f.rule == "database-url-password"]


@pytest.mark.parametrize(("country", "certified", "fires"), [
    ("US", True, False), ("US", False, True), ("CH", False, False), ("IN", False, True),
    ("GB", False, False), ("JP", False, False), ("BR", False, True),
])
def test_adequacy_list(country: str, certified: bool, fires: bool, kerf_data: Data) -> None:
    def change(d: Data) -> None:
        _add_processor(d, country=country, dpf_certified=certified)
    hits = [f for f in findings_after(change, kerf_data) if f.rule == "transfer-without-safeguard"]
    assert bool(hits) is fires
