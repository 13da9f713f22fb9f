"""Who we are, rights and how they are answered (Art. 12-22, 27, 32, 37, 77)."""

from __future__ import annotations

from collections.abc import Iterator

from lawful.checks.base import Context, Hit, Severity, rule
from lawful.manifest.countries import EEA
from lawful.manifest.model import ALL_RIGHTS, Basis

_MONTH_DAYS = 31  # the longest a "one month" answer can last (Art. 12(3))


@rule("authority-missing", Severity.error, "GDPR Art. 13(2)(d), 77",
      "No supervisory authority named")
def authority_missing(ctx: Context) -> Iterator[Hit]:
    if not ctx.manifest.organisation.supervisory_authorities:
        yield (("organisation",),
               "no supervisory authority is named: people must be told where to complain, and "
               "refusals must point there", "add organisation.supervisory_authorities")


@rule("response-too-long", Severity.error, "GDPR Art. 12(3)",
      "Response deadline longer than one month")
def response_too_long(ctx: Context) -> Iterator[Hit]:
    rights = ctx.manifest.rights
    if rights.response_time.approx_days > _MONTH_DAYS:
        yield (("rights", "response_time"),
               f"requests are answered within {rights.response_time}; the law allows one month",
               "set response_time: 1 month (extensions are declared separately)")
    if rights.extension and rights.extension.approx_days > 2 * _MONTH_DAYS:
        yield (("rights", "extension"),
               f"an extension of {rights.extension} exceeds the two further months allowed",
               "set extension: 2 months at most")


@rule("right-not-offered", Severity.error, "GDPR Art. 12(2), 15-22",
      "A data subject right left out")
def right_not_offered(ctx: Context) -> Iterator[Hit]:
    decides = any(a.automated_decisions for a in ctx.manifest.activities)
    for right in ALL_RIGHTS:
        # Art. 22 is a right not to be subject to decisions that, when none are made, has no
        # object; the notice says so instead.
        if right == "automated_decision" and not decides:
            continue
        if right not in ctx.manifest.rights.offered:
            yield (("rights", "offered"),
                   f"the right {right!r} is not offered; it may be limited case by case, "
                   "never removed", f"add {right} to rights.offered")


@rule("portability-wrong-basis", Severity.error, "GDPR Art. 20(1)(a)",
      "Portability promised for data not processed on consent or contract")
def portability_wrong_basis(ctx: Context) -> Iterator[Hit]:
    for i, act in enumerate(ctx.manifest.activities):
        if act.portability and not act.has_basis(Basis.consent, Basis.contract):
            bases = ", ".join(lb.basis.value for lb in act.legal_bases) or "no basis"
            yield (("activities", i, "portability"),
                   f"portability is promised for activity {act.id!r}, processed on {bases}; "
                   "Art. 20 covers consent and contract only, so the engine would export data "
                   "the law does not require", "remove portability: true, or correct the basis")


@rule("controller-contact-missing", Severity.error, "GDPR Art. 13(1)(a)",
      "Controller without contact details")
def controller_contact(ctx: Context) -> Iterator[Hit]:
    for i, ctrl in enumerate(ctx.manifest.organisation.controllers):
        if not (ctrl.email or ctrl.phone or ctx.manifest.rights.contact):
            yield (("organisation", "controllers", i),
                   f"controller {ctrl.name!r} gives no e-mail or phone, and rights.contact is "
                   "unset", "add email: to the controller or rights.contact:")


@rule("controller-country-missing", Severity.warning, "GDPR Art. 13(1)(a), 30(1)(a)",
      "Controller without a country")
def controller_country(ctx: Context) -> Iterator[Hit]:
    for i, ctrl in enumerate(ctx.manifest.organisation.controllers):
        if ctrl.country is None:
            yield (("organisation", "controllers", i),
                   f"controller {ctrl.name!r} has no country: where it is established decides "
                   "which authority leads and whether a representative is needed",
                   "add country: the ISO code of its establishment")


@rule("representative-missing", Severity.warning, "GDPR Art. 27(1)",
      "No EU representative for a controller outside the EEA")
def representative_missing(ctx: Context) -> Iterator[Hit]:
    org = ctx.manifest.organisation
    known = [c.country for c in org.controllers]
    if None in known:
        return  # a controller's country is unknown: reported by controller-country-missing
    if org.representative is None and not any(c in EEA for c in known):
        yield (("organisation",),
               "no controller is established in the EEA and no representative is named; one is "
               "required when you offer goods or services to people in the Union",
               "add organisation.representative (name, address, country in the EEA)")


@rule("dpo-contact-missing", Severity.error, "GDPR Art. 37(7), 13(1)(b)",
      "DPO named without contact details")
def dpo_contact(ctx: Context) -> Iterator[Hit]:
    dpo = ctx.manifest.organisation.dpo
    if dpo is not None and not (dpo.email or dpo.phone or dpo.address):
        yield (("organisation", "dpo"),
               "the data protection officer has no contact details; they must be published",
               "add dpo.email (a role address such as dpo@… is fine)")


@rule("security-missing", Severity.warning, "GDPR Art. 32, 30(1)(g)",
      "No security measures described")
def security_missing(ctx: Context) -> Iterator[Hit]:
    if not ctx.manifest.security:
        yield (("security",) if "security" in ctx.manifest.model_fields_set else (),
               "no technical or organisational security measure is described; the record of "
               "processing must describe them", "add security: a list of measures")


@rule("children-data", Severity.warning, "GDPR Art. 8(1)",
      "Children's data without verified parental consent")
def children_data(ctx: Context) -> Iterator[Hit]:
    for i, act in enumerate(ctx.manifest.activities):
        if any(ctx.taxonomy.is_within(c, "user.childrens") for c in act.categories):
            yield (("activities", i, "categories"),
                   f"activity {act.id!r} processes children's data; consent for information "
                   "society services under 16 needs the holder of parental responsibility",
                   "describe how parental consent is verified, or stop collecting it")


@rule("notice-undated", Severity.warning, "GDPR Art. 12(1), 13(3)",
      "Notice without an effective date")
def notice_undated(ctx: Context) -> Iterator[Hit]:
    if ctx.manifest.notice.effective is None:
        yield (("notice",), "the notice has no effective date, so readers cannot tell which "
               "version applied when", "add notice.effective: YYYY-MM-DD")
