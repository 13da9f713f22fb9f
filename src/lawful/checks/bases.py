"""Legal bases (Art. 6), special categories (Art. 9), criminal data (Art. 10), Art. 22."""

from __future__ import annotations

from collections.abc import Iterator

from lawful.checks.base import Context, Hit, Severity, rule
from lawful.manifest.model import Activity, Art9Condition, Basis


def _activities(ctx: Context) -> Iterator[tuple[int, Activity]]:
    return enumerate(ctx.manifest.activities)


@rule("basis-missing", Severity.error, "GDPR Art. 6(1)", "Activity without a legal basis")
def basis_missing(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        # A processor acts on its client's basis; the client's own record carries it.
        if not act.legal_bases and act.role == "controller":
            yield (("activities", i, "id"), f"activity {act.id!r} has no legal basis",
                   "add legal_bases: one of consent, contract, legal_obligation, "
                   "vital_interests, public_task, legitimate_interests")


@rule("consent-without-purpose", Severity.error, "GDPR Art. 6(1)(a), 7(1)",
      "Consent as basis without a consent purpose")
def consent_without_purpose(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        for j, lb in enumerate(act.legal_bases):
            if lb.basis is Basis.consent and not lb.consent_purpose:
                yield (("activities", i, "legal_bases", j),
                       f"activity {act.id!r} relies on consent but names no consent purpose, "
                       "so no consent can be recorded or proven",
                       "add consent_purpose: <id of a consent_purposes entry>")


@rule("obligation-without-law", Severity.error, "GDPR Art. 6(1)(c), 6(3)",
      "Legal obligation without the law")
def obligation_without_law(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        for j, lb in enumerate(act.legal_bases):
            if lb.basis is Basis.legal_obligation and not lb.law:
                yield (("activities", i, "legal_bases", j),
                       f"activity {act.id!r} relies on a legal obligation without naming the law",
                       "add law: the act and article that oblige you (e.g. 'AWR art. 52')")


@rule("interest-not-stated", Severity.error, "GDPR Art. 6(1)(f), 13(1)(d)",
      "Legitimate interest without the interest stated")
def interest_not_stated(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        for j, lb in enumerate(act.legal_bases):
            if lb.basis is Basis.legitimate_interests and not lb.interest:
                yield (("activities", i, "legal_bases", j),
                       f"activity {act.id!r} relies on legitimate interests without stating "
                       "the interest, which the notice must give",
                       "add interest: what you pursue and why it is not overridden")


@rule("vital-interests-unexplained", Severity.warning, "GDPR Art. 6(1)(d), Recital 46",
      "Vital interests without explanation")
def vital_unexplained(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        for j, lb in enumerate(act.legal_bases):
            if lb.basis is Basis.vital_interests and not lb.detail:
                yield (("activities", i, "legal_bases", j),
                       f"activity {act.id!r} relies on vital interests with no explanation; "
                       "this basis is for life-or-death situations only",
                       "add detail: whose life is protected and why no other basis applies")


@rule("special-without-art9", Severity.error, "GDPR Art. 9(1)-(2)",
      "Special categories without an Art. 9 condition")
def special_without_art9(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        special = [c for c in act.categories if ctx.taxonomy.is_special(c)]
        if special and act.special_category_condition is None:
            yield (("activities", i, "categories"),
                   f"activity {act.id!r} processes special categories ({', '.join(special)}) "
                   "without an Art. 9(2) condition",
                   "add special_category_condition: e.g. explicit_consent, employment, "
                   "legal_claims; or stop collecting it")


@rule("explicit-consent-not-recorded", Severity.error, "GDPR Art. 9(2)(a), 7(1)",
      "Explicit consent as Art. 9 condition without a consent basis")
def explicit_consent(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        if act.special_category_condition is Art9Condition.explicit_consent and not any(
                lb.basis is Basis.consent and lb.consent_purpose for lb in act.legal_bases):
            yield (("activities", i, "special_category_condition"),
                   f"activity {act.id!r} relies on explicit consent for special categories "
                   "but declares no consent purpose to record it",
                   "add a legal basis `consent` with its consent_purpose")


@rule("criminal-without-authority", Severity.error, "GDPR Art. 10",
      "Criminal convictions data without authorisation")
def criminal_without_authority(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        criminal = [c for c in act.categories if ctx.taxonomy.is_criminal(c)]
        if criminal and not act.criminal_data_authority:
            yield (("activities", i, "categories"),
                   f"activity {act.id!r} processes criminal convictions data "
                   f"({', '.join(criminal)}) without the Union or Member State law that "
                   "authorises it", "add criminal_data_authority: the authorising law")


@rule("automated-decision-without-exception", Severity.error, "GDPR Art. 22(1)-(2)",
      "Solely automated decision without an Art. 22(2) exception")
def automated_without_exception(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        for j, dec in enumerate(act.automated_decisions):
            if dec.exception is None:
                yield (("activities", i, "automated_decisions", j),
                       f"activity {act.id!r} takes a solely automated decision "
                       f"({dec.description!r}) with no Art. 22(2) exception",
                       "add exception: contract, law or explicit_consent; or add human review")


@rule("automated-decision-without-safeguards", Severity.warning, "GDPR Art. 22(3), 13(2)(f)",
      "Automated decision without human intervention or explained logic")
def automated_without_safeguards(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        for j, dec in enumerate(act.automated_decisions):
            if dec.exception in {"contract", "explicit_consent"} and not (
                    dec.human_review and dec.logic):
                yield (("activities", i, "automated_decisions", j),
                       f"automated decision {dec.description!r} of activity {act.id!r} must "
                       "offer human intervention and explain its logic",
                       "set human_review: true and describe logic and significance")


@rule("contract-basis-for-marketing", Severity.warning,
      "GDPR Art. 6(1)(b); EDPB Guidelines 2/2019", "Contract as the only basis for marketing")
def contract_for_marketing(ctx: Context) -> Iterator[Hit]:
    for i, act in _activities(ctx):
        marketing = act.marketing is not None or (act.data_use or "").startswith("marketing")
        if marketing and act.legal_bases and all(
                lb.basis is Basis.contract for lb in act.legal_bases):
            yield (("activities", i, "legal_bases"),
                   f"activity {act.id!r} is marketing but relies on contract alone; marketing "
                   "is not necessary to perform a contract",
                   "rely on consent, or on legitimate interests with the soft opt-in")
