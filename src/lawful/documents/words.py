"""The plain words every document shares: the ROPA, the notice and the notice diff.

Each declaration is turned into words in exactly one place here, so that the record a regulator
reads and the notice the public reads cannot say different things about the same rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pycountry

from lawful.manifest.countries import ADEQUATE, EEA, US_DPF
from lawful.manifest.duration import Duration
from lawful.manifest.model import (
    Activity,
    Art9Condition,
    Basis,
    Clock,
    Controller,
    LegalBasis,
    Manifest,
    Recipient,
    RetentionRule,
    Right,
    Safeguard,
)
from lawful.manifest.taxonomy import Taxonomy

# fideslang's names are Title Case labels for engineers ("User Contact Email"); a notice needs
# the words a reader uses. Keys not listed fall back to the fideslang name, lower-cased.
PLAIN_DATA: dict[str, str] = {
    "user.contact": "contact details",
    "user.contact.email": "e-mail address",
    "user.contact.phone_number": "phone number",
    "user.contact.address": "postal address",
    "user.contact.address.street": "street address",
    "user.contact.address.city": "city",
    "user.contact.address.postal_code": "postal code",
    "user.contact.address.state": "state or province",
    "user.contact.address.country": "country",
    "user.contact.organization": "company name",
    "user.contact.url": "website address",
    "user.name": "name",
    "user.name.first": "first name",
    "user.name.last": "last name",
    "user.job_title": "job title",
    "user.account.username": "username",
    "user.authorization.password": "password",
    "user.authorization.credentials": "login credentials",
    "user.financial": "financial data",
    "user.financial.credit_card": "payment card details",
    "user.financial.bank_account": "bank account details",
    "user.device": "device information (browser, operating system)",
    "user.device.cookie_id": "cookie identifier",
    "user.device.ip_address": "IP address",
    "user.device.device_id": "device identifier",
    "user.behavior.browsing_history": "browsing history (pages visited)",
    "user.behavior.purchase_history": "order history",
    "user.content.private": "messages and other content sent to us",
    "user.content.public": "published content",
    "user.content.self_image": "photograph",
    "user.government_id": "government identification",
    "user.government_id.national_identification_number": "national identification number",
    "user.demographic.date_of_birth": "date of birth",
    "user.location.precise": "precise location",
    "user.location.imprecise": "approximate location",
}

BASIS_NAMES: dict[Basis, str] = {
    Basis.consent: "consent",
    Basis.contract: "contract",
    Basis.legal_obligation: "legal obligation",
    Basis.vital_interests: "vital interests",
    Basis.public_task: "public task",
    Basis.legitimate_interests: "legitimate interests",
}

ART9_NAMES: dict[Art9Condition, str] = {
    Art9Condition.explicit_consent: "explicit consent",
    Art9Condition.employment: "employment and social security law",
    Art9Condition.vital_interests: "vital interests of a person unable to consent",
    Art9Condition.not_for_profit: "activities of a not-for-profit body",
    Art9Condition.made_public: "data made public by the person",
    Art9Condition.legal_claims: "legal claims",
    Art9Condition.substantial_public_interest: "substantial public interest",
    Art9Condition.health_care: "health or social care",
    Art9Condition.public_health: "public health",
    Art9Condition.archiving: "archiving, research or statistics",
}

# Art. 49(1), first subparagraph, points (a)-(g), as a reader understands them.
DEROGATIONS: dict[str, str] = {
    "a": "you explicitly agreed to the transfer after being told of its risks",
    "b": "it is necessary for the contract between you and us",
    "c": "it is necessary for a contract concluded in your interest",
    "d": "it is necessary for important reasons of public interest",
    "e": "it is necessary for legal claims",
    "f": "it is necessary to protect someone's vital interests",
    "g": "the data comes from a public register",
}

ROLE_NAMES: dict[str, str] = {
    "processor": "processor",
    "controller": "independent controller",
    "joint_controller": "joint controller",
    "public_authority": "public authority",
}

RIGHT_WORDS: dict[Right, tuple[str, str]] = {
    "access": ("Access", "ask whether we hold data about you and get a copy of it."),
    "portability": ("Portability", "get the data you gave us in a machine-readable format, "
                                   "or have us send it to another organisation."),
    "rectification": ("Correction", "have wrong data corrected and incomplete data completed."),
    "erasure": ("Erasure", "have your data deleted when we no longer need it, when you withdraw "
                           "your consent or object, or when we used it unlawfully."),
    "restriction": ("Restriction", "ask us to stop using your data but keep it, for example "
                                   "while we check whether it is correct."),
    "objection": ("Objection", "object to uses based on our legitimate interests. If you "
                               "object to direct marketing, we always stop."),
    "consent_withdrawal": ("Withdrawing consent", "withdraw any consent at any time, as easily "
                                                  "as you gave it. This does not affect what we "
                                                  "did before."),
    "automated_decision": ("No automated decisions", "not be subject to a decision made only by "
                                                     "a computer that significantly affects you, "
                                                     "and ask for a person to review it."),
}

SAFEGUARD_NAMES: dict[Safeguard, str] = {
    Safeguard.adequacy: "an adequacy decision",
    Safeguard.sccs: "standard contractual clauses",
    Safeguard.bcrs: "binding corporate rules",
    Safeguard.dpf: "the EU-U.S. Data Privacy Framework",
    Safeguard.privacy_shield: "the EU-U.S. Privacy Shield",
    Safeguard.art49: "a derogation of Art. 49 GDPR",
    Safeguard.none: "no safeguard",
}

SOURCE_NAMES: dict[str, str] = {
    "data_subject": "you",
    "third_party": "third parties",
    "public": "public sources",
    "public_registers": "public registers",
}


# --- small text helpers ---------------------------------------------------------------------------


def join_words(items: Iterable[str], last: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = [item for item in items if item]
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


def lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym or a brand (HotJar)."""
    first = text.split(" ", 1)[0]
    if len(first) > 1 and any(ch.isupper() for ch in first[1:]):
        return text
    return text[:1].lower() + text[1:]


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def sentence(text: str) -> str:
    """End a fragment with a full stop, unless it already ends a sentence."""
    stripped = text.rstrip()
    return stripped if stripped.endswith((".", "!", "?", ".\"", ".”", ".)")) else stripped + "."


def long_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return str(getattr(country, "common_name", None) or country.name)


def with_country(address: str, code: str | None) -> str:
    """An address ending with its country, unless the address already names it."""
    if code is None:
        return address
    name = country_name(code)
    if address.rstrip(" .").lower().endswith(name.lower()):
        return address
    return f"{address}, {name}"


def country_names(codes: Iterable[str]) -> str:
    return ", ".join(country_name(code) for code in codes)


# --- names of declared things ---------------------------------------------------------------------


def data_name(key: str, taxonomy: Taxonomy, custom: set[str]) -> str:
    """A data category in the reader's words."""
    if key in custom:
        return lower_first(taxonomy.name(key))
    if key in PLAIN_DATA:
        return PLAIN_DATA[key]
    name = taxonomy.name(key)
    if name.startswith("User "):
        name = name[len("User "):]
    # Keep acronyms (ID, IP) as they are; lower-case the Title Case words.
    return " ".join(w if len(w) > 1 and w.isupper() else w.lower() for w in name.split(" "))


def data_names(keys: Iterable[str], manifest: Manifest) -> list[str]:
    taxonomy = Taxonomy.of(manifest)
    custom = {c.id for c in manifest.categories}
    return [data_name(key, taxonomy, custom) for key in keys]


def subject_names(keys: Iterable[str], manifest: Manifest) -> list[str]:
    names = []
    for key in keys:
        subject = manifest.subject(key)
        names.append(lower_first(subject.name) if subject else key.replace("_", " "))
    return names


def activity_names(keys: Iterable[str], manifest: Manifest) -> list[str]:
    return [(a.name if (a := manifest.activity(key)) else key) for key in keys]


def consent_name(key: str | None, manifest: Manifest) -> str:
    if key is None:
        return "the purpose you agreed to"
    purpose = manifest.consent_purpose(key)
    return lower_first(purpose.name) if purpose else key


def source_words(sources: Iterable[str], person: str = "you") -> list[str]:
    """Where data comes from; `person` names the data subject ("you", "the data subject")."""
    names = {**SOURCE_NAMES, "data_subject": person}
    return [names.get(source, source.replace("_", " ") if " " not in source else source)
            for source in sources]


def controller_contact(controller: Controller) -> str:
    """Address and ways to reach a controller (Art. 30(1)(a), Art. 13(1)(a))."""
    parts = [with_country(controller.address, controller.country)]
    parts += [v for v in (controller.email, controller.phone, controller.website) if v]
    if controller.registration:
        parts.append(f"registration {controller.registration}")
    return "; ".join(parts)


def contact_address(manifest: Manifest) -> str:
    """Where a person writes about their data: the rights contact, the DPO, the controller."""
    org = manifest.organisation
    dpo_email = org.dpo.email if org.dpo else None
    candidates = [manifest.rights.contact, dpo_email, *(c.email for c in org.controllers)]
    return next((c for c in candidates if c), org.website or org.controllers[0].address)


# --- legal bases ----------------------------------------------------------------------------------


def basis_label(basis: LegalBasis, manifest: Manifest) -> str:
    """The basis as a record states it: article, name and what it rests on."""
    label = f"{basis.basis.article} {BASIS_NAMES[basis.basis]}"
    grounds = {
        Basis.consent: consent_name(basis.consent_purpose, manifest) if basis.consent_purpose
        else None,
        Basis.legal_obligation: basis.law or "law not stated",
        Basis.legitimate_interests: basis.interest or "interest not stated",
    }.get(basis.basis)
    if grounds:
        label += f": {grounds}"
    if basis.detail:
        label += f" ({basis.detail.strip()})"
    return label


def explain_basis(basis: LegalBasis, manifest: Manifest) -> str:
    """The basis in plain words, with the interest, the law or the consent it rests on."""
    article = f"({basis.basis.article} GDPR)"
    match basis.basis:
        case Basis.consent:
            text = (f"You gave your consent to the {consent_name(basis.consent_purpose, manifest)}"
                    f" {article}. You can withdraw it at any time.")
        case Basis.contract:
            text = (f"We need it to carry out our contract with you, or to take steps you asked "
                    f"for before entering into one {article}.")
        case Basis.legal_obligation:
            law = f": {basis.law}" if basis.law else ""
            text = sentence(f"The law requires it {article}{law}")
        case Basis.vital_interests:
            text = f"It is needed to protect your life or health, or someone else's {article}."
        case Basis.public_task:
            text = (f"It is needed for a task in the public interest or in the exercise of "
                    f"official authority {article}.")
        case _:
            interest = f": {lower_first(basis.interest.strip())}" if basis.interest else ""
            text = (sentence(f"We have a legitimate interest in it {article}{interest}")
                    + " You can object to it.")
    return f"{text} {sentence(basis.detail.strip())}" if basis.detail else text


def explain_basis_kind(basis: Basis) -> str:
    """What a basis means, for the notice's section on legal bases."""
    return {
        Basis.consent: "you agreed to a specific use of your data; you can withdraw at any time.",
        Basis.contract: "we need the data to carry out a contract with you, or to take steps "
                        "you asked for before entering into one.",
        Basis.legal_obligation: "a law obliges us to process the data.",
        Basis.vital_interests: "the data is needed to protect your life or someone else's.",
        Basis.public_task: "the data is needed for a task in the public interest.",
        Basis.legitimate_interests: "we have a legitimate interest that is not outweighed by "
                                    "your rights; you can object to it.",
    }[basis]


# --- recipients and transfers ---------------------------------------------------------------------


def third_countries(recipient: Recipient) -> list[str]:
    """Countries outside the EEA where a recipient receives or stores the data."""
    return [code for code in recipient.countries if code not in EEA]


def describe_safeguard(recipient: Recipient) -> str:
    """What makes a transfer lawful, in plain words with the article it rests on."""
    reference = f" ({recipient.safeguard_reference})" if recipient.safeguard_reference else ""
    match recipient.safeguard:
        case Safeguard.adequacy:
            text = ("the European Commission has decided that the country protects personal data "
                    "adequately (adequacy decision, Art. 45 GDPR)")
        case Safeguard.sccs:
            text = ("we signed the European Commission's standard contractual clauses with them "
                    "(Art. 46(2)(c) GDPR)")
        case Safeguard.bcrs:
            text = ("they follow binding corporate rules approved by a data protection authority "
                    "(Art. 47 GDPR)")
        case Safeguard.dpf:
            text = ("they are certified under the EU-U.S. Data Privacy Framework, which the "
                    "European Commission found adequate on 10 July 2023 (Art. 45 GDPR)")
        case Safeguard.privacy_shield:
            text = ("the EU-U.S. Privacy Shield, which the Court of Justice of the EU declared "
                    "invalid on 16 July 2020 (C-311/18); it is no longer a valid safeguard")
        case Safeguard.art49:
            text = _derogation_words(recipient.derogation)
        case _:
            text = "no safeguard is in place"
    return text + reference


def safeguard_label(recipient: Recipient) -> str:
    """The safeguard as a record documents it (Art. 30(1)(e)): instrument and article."""
    reference = f"; {recipient.safeguard_reference}" if recipient.safeguard_reference else ""
    match recipient.safeguard:
        case Safeguard.adequacy:
            decisions = [ADEQUATE[c] for c in third_countries(recipient) if c in ADEQUATE]
            text = f"Adequacy decision (Art. 45): {'; '.join(decisions) or 'decision not named'}"
        case Safeguard.sccs:
            text = "Standard contractual clauses (Art. 46(2)(c))"
        case Safeguard.bcrs:
            text = "Binding corporate rules (Art. 47)"
        case Safeguard.dpf:
            certified = "certified" if recipient.dpf_certified else "certification NOT declared"
            text = f"EU-U.S. Data Privacy Framework, {certified} (Art. 45; {US_DPF})"
        case Safeguard.privacy_shield:
            text = ("EU-U.S. Privacy Shield: INVALID since 16 July 2020 (CJEU C-311/18), "
                    "no valid safeguard")
        case Safeguard.art49:
            point = recipient.derogation
            text = (f"Derogation, Art. 49(1)({point}): {DEROGATIONS[point]}" if point
                    else "Derogation, Art. 49(1) (point not stated)")
        case _:
            text = "No safeguard declared"
    return text + reference


def _derogation_words(point: str | None) -> str:
    if point is None:
        return "a derogation for specific situations (Art. 49(1) GDPR, point not stated)"
    return (f"no adequacy decision or safeguard applies; the transfer relies on the derogation "
            f"of Art. 49(1)({point}) GDPR: {DEROGATIONS[point]}")


def safeguard_name(safeguard: Safeguard | None) -> str:
    return SAFEGUARD_NAMES[safeguard or Safeguard.none]


def recipient_label(recipient: Recipient) -> str:
    """'Adyen N.V. (processor; payment; Netherlands)'."""
    facts = [ROLE_NAMES[recipient.role], recipient.category, country_names(recipient.countries)]
    return f"{recipient.name} ({'; '.join(f for f in facts if f)})"


# --- retention ------------------------------------------------------------------------------------


def describe_retention(rule: RetentionRule, manifest: Manifest) -> str:
    """How long data is kept, in the notice's words.

    The rule's own `description` wins: it is the promise as the company wrote it. Otherwise the
    words are built from keep/after/event/maximum/extension, e.g. "4 weeks after the decision
    on the application, or 1 year if you agree to the talent pool".
    """
    if rule.description:
        return " ".join(rule.description.split())
    words = _clock_words(rule, manifest)
    if rule.extension:
        words += (f", or {rule.extension.keep} if you agree to the "
                  f"{consent_name(rule.extension.consent_purpose, manifest)}")
    if rule.maximum:
        words += f", and never longer than {rule.maximum} in all"
    if rule.action.value != "delete" and rule.after is not Clock.processing:
        words += f", then {_action_words(rule)}"
    return words


def _action_words(rule: RetentionRule) -> str:
    return {"delete": "deleted", "anonymise": "anonymised",
            "pseudonymise": "pseudonymised"}[rule.action.value]


def _clock_words(rule: RetentionRule, manifest: Manifest) -> str:
    keep = rule.keep if rule.keep and rule.keep.count else None
    match rule.after:
        case Clock.financial_year_end:
            return _span(keep, _financial_year_words(rule, manifest))
        case Clock.contract_end:
            if keep is None:
                return "as long as the contract runs"
            return _span(keep, rule.event or "the end of the contract")
        case Clock.consent_withdrawal:
            withdrawal = f"you withdraw your consent to the " \
                         f"{consent_name(rule.consent_purpose, manifest)}"
            return _span(keep, withdrawal) if keep else f"until {withdrawal}"
        case Clock.processing:
            if keep is None:
                until = rule.event or "it has been processed"
                return f"only until {until}, then {_action_words(rule)}"
            return _span(keep, rule.event or "processing")
        case Clock.decision:
            return _span(keep, rule.event or "the decision")
        case Clock.last_event:
            return _span(keep, rule.event or "the last activity")
        case Clock.event:
            return _span(keep, rule.event or "the event")
        case _:
            return _span(keep, rule.event or "collection")


def _span(keep: Duration | None, start: str) -> str:
    return f"{keep} after {start}" if keep else "no time limit declared"


def _financial_year_words(rule: RetentionRule, manifest: Manifest) -> str:
    event = rule.event or ""
    if event.startswith("the financial year"):
        words = f"the end of {event}"
    elif event:
        words = f"the end of the financial year of {event}"
    else:
        words = "the end of the financial year"
    year_end = _year_end(rule, manifest)
    return f"{words} (the financial year ends on {year_end})" if year_end else words


def _year_end(rule: RetentionRule, manifest: Manifest) -> str | None:
    """The year end, said only when it is not 31 December and all controllers agree on it."""
    activities = [a for key in rule.activities if (a := manifest.activity(key))]
    controllers = ([c for a in activities for c in manifest.controllers_of(a)] if activities
                   else manifest.organisation.controllers)
    ends = {c.financial_year_end for c in controllers}
    if len(ends) != 1 or ends == {"12-31"}:
        return None
    month, day = (int(part) for part in next(iter(ends)).split("-"))
    return f"{day} {dt.date(2000, month, 1):%B}"


def rules_for(activity: Activity, manifest: Manifest) -> list[RetentionRule]:
    """The retention rules that apply to an activity: named for it, or for its data/subjects."""
    taxonomy = Taxonomy.of(manifest)
    return [rule for rule in manifest.retention if _applies(rule, activity, taxonomy)]


def _applies(rule: RetentionRule, activity: Activity, taxonomy: Taxonomy) -> bool:
    if rule.activities:
        return activity.id in rule.activities
    if rule.categories:
        return any(taxonomy.covered(key, activity.categories) for key in rule.categories)
    return bool(set(rule.subjects) & set(activity.subjects))


def rule_title(rule: RetentionRule, manifest: Manifest) -> str:
    """A rule's name, or the activities it covers when it has none."""
    if rule.name:
        return rule.name
    names = activity_names(rule.activities, manifest) or data_names(rule.categories, manifest)
    return join_words(names) or rule.id
