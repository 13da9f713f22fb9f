"""Transfers to third countries (Chapter V): adequacy, safeguards, invalid frameworks."""

from __future__ import annotations

from collections.abc import Iterator

from lawful.checks.base import Context, Hit, Severity, rule
from lawful.manifest.countries import ADEQUACY_AS_OF, ADEQUATE, EEA, free_to_receive
from lawful.manifest.model import Safeguard

_VALID = {Safeguard.sccs, Safeguard.bcrs, Safeguard.art49}


@rule("transfer-without-safeguard", Severity.error, "GDPR Art. 44, 46",
      "Transfer to a country without adequacy and without a safeguard")
def transfer_without_safeguard(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.safeguard in _VALID or rec.safeguard is Safeguard.privacy_shield:
            continue  # a valid safeguard, or the Privacy Shield, reported by its own rule
        exposed = [c for c in rec.countries if not free_to_receive(c, rec.dpf_certified)]
        if rec.outside_eea and not [c for c in rec.countries if c not in EEA]:
            exposed.append("an unnamed country outside the EEA")
        if exposed:
            yield (("recipients", i, "safeguard"),
                   f"recipient {rec.name!r} receives data in {', '.join(exposed)}, which has no "
                   f"adequacy decision (list of {ADEQUACY_AS_OF}), and no safeguard is declared",
                   "declare safeguard: sccs (with safeguard_reference), bcrs, or dpf for a "
                   "certified US organisation")


@rule("privacy-shield", Severity.error, "GDPR Art. 45; CJEU C-311/18 (16 July 2020)",
      "EU-U.S. Privacy Shield cited as a safeguard")
def privacy_shield(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.safeguard is Safeguard.privacy_shield:
            yield (("recipients", i, "safeguard"),
                   f"recipient {rec.name!r} relies on the EU-U.S. Privacy Shield, invalid since "
                   "16 July 2020 (CJEU C-311/18, Schrems II)",
                   "use the EU-U.S. Data Privacy Framework if the recipient is certified "
                   "(safeguard: dpf, dpf_certified: true), otherwise SCCs")


@rule("dpf-not-certified", Severity.error, "GDPR Art. 45(3); Decision (EU) 2023/1795",
      "Data Privacy Framework cited for a recipient not declared certified")
def dpf_not_certified(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.safeguard is Safeguard.dpf and not rec.dpf_certified:
            yield (("recipients", i, "dpf_certified"),
                   f"recipient {rec.name!r} cites the Data Privacy Framework but is not "
                   "declared certified; only certified US organisations are covered",
                   "check the DPF list and set dpf_certified: true, or use SCCs")


@rule("dpf-outside-us", Severity.error, "GDPR Art. 45; Decision (EU) 2023/1795",
      "Data Privacy Framework cited for processing outside the United States")
def dpf_outside_us(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.safeguard is not Safeguard.dpf:
            continue
        elsewhere = [c for c in rec.countries if c != "US" and not free_to_receive(c)]
        if elsewhere:
            yield (("recipients", i, "locations"),
                   f"recipient {rec.name!r} processes in {', '.join(elsewhere)}, which the "
                   "Data Privacy Framework does not cover",
                   "add SCCs for those locations, or keep processing in the US/EEA")


@rule("adequacy-claimed-wrongly", Severity.error, "GDPR Art. 45(1)",
      "Adequacy cited for a country without an adequacy decision")
def adequacy_wrong(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.safeguard is not Safeguard.adequacy:
            continue
        wrong = [c for c in rec.countries if c not in EEA and c not in ADEQUATE]
        if wrong:
            yield (("recipients", i, "safeguard"),
                   f"recipient {rec.name!r} cites adequacy, but {', '.join(wrong)} has no "
                   f"adequacy decision (list of {ADEQUACY_AS_OF})",
                   "use SCCs or BCRs, or dpf for a certified US organisation")


@rule("art49-for-regular-transfers", Severity.warning,
      "GDPR Art. 49(1); EDPB Guidelines 2/2018",
      "Art. 49 derogation for a processor's regular transfers")
def art49_regular(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.safeguard is not Safeguard.art49:
            continue
        if rec.role == "processor" or rec.derogation is None:
            yield (("recipients", i, "safeguard"),
                   f"recipient {rec.name!r} relies on an Art. 49 derogation"
                   + (" without naming which" if rec.derogation is None else "")
                   + "; derogations are for occasional transfers, not a processor's routine",
                   "use SCCs or BCRs; keep Art. 49 for occasional, necessary transfers")


@rule("bcrs-without-reference", Severity.warning, "GDPR Art. 46(2)(b), 47",
      "Binding corporate rules without the approval reference")
def bcrs_reference(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.safeguard is Safeguard.bcrs and not rec.safeguard_reference:
            yield (("recipients", i, "safeguard_reference"),
                   f"recipient {rec.name!r} relies on BCRs without the approving authority's "
                   "reference", "add safeguard_reference: the BCR approval decision")


@rule("recipient-country-missing", Severity.warning, "GDPR Art. 13(1)(f), 30(1)(e)",
      "Recipient without a country")
def country_missing(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if not rec.countries:
            yield (("recipients", i),
                   f"recipient {rec.name!r} has no country, so transfers cannot be checked",
                   "add country: (and locations: where it processes)")
