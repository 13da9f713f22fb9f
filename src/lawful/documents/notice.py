"""The privacy notice (GDPR Art. 13 and 14), in plain language, generated from the manifest.

The wording is built here as plain strings, section by section; the Markdown and HTML templates
only lay the sections out (and escape), so both formats always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lawful.documents import words
from lawful.documents.render import render
from lawful.documents.words import describe_retention, join_words, sentence, upper_first
from lawful.manifest.duration import Duration
from lawful.manifest.model import (
    Activity,
    Basis,
    ConsentPurpose,
    Manifest,
    Recipient,
    RetentionRule,
    SupervisoryAuthority,
)

__all__ = ["Block", "Entry", "Section", "describe_retention", "notice_sections", "render_notice"]


@dataclass
class Entry:
    """One item of a list: an optional bold label, then text."""

    label: str
    text: str


@dataclass
class Block:
    """A run of paragraphs and a list, under an optional sub-heading."""

    heading: str = ""
    paragraphs: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block]


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       line-height: 1.6; max-width: 46rem; margin: 2rem auto; padding: 0 1.25rem; }
h1 { font-size: 2rem; line-height: 1.2; } h2 { margin-top: 2.5rem; font-size: 1.35rem;
  border-bottom: 1px solid #dde4ee; padding-bottom: .25rem; } h3 { font-size: 1.1rem; }
nav ol { columns: 2; padding-left: 1.25rem; } a { color: #0b5cad; }
ul { padding-left: 1.25rem; } li { margin: .3rem 0; } .meta { color: #5a6375; }
@media (max-width: 600px) { nav ol { columns: 1; } }
""".strip()


# --- entry point ----------------------------------------------------------------------------------


def render_notice(manifest: Manifest, fmt: str) -> str:
    """The notice as Markdown ("md") or a standalone HTML page ("html")."""
    if fmt not in ("md", "html"):
        raise ValueError(f"unknown notice format {fmt!r}; use md or html")
    context = {
        "title": manifest.notice.title or f"{manifest.organisation.name} privacy notice",
        "intro": _intro(manifest),
        "meta": _meta(manifest),
        "sections": notice_sections(manifest),
        "lang": manifest.notice.languages[0],
        "css": CSS,
    }
    return render(f"notice.{fmt}.j2", **context)


def notice_sections(manifest: Manifest) -> list[Section]:
    builders = [_who_we_are, _what_and_why, _legal_bases, _recipients, _transfers, _retention,
                _rights, _automated, _consent, _security, _complaints, _changes]
    sections = [build(manifest) for build in builders]
    sections += [Section(f"extra-{i}", title, [Block(paragraphs=[text])])
                 for i, (title, text) in enumerate(manifest.notice.extra_sections.items(), 1)]
    return sections


def _intro(manifest: Manifest) -> str:
    name = manifest.organisation.name
    return (f"This notice explains what personal data {name} collects about you, why, how long "
            f"we keep it and what rights you have. \u201cWe\u201d means {name}; \u201cyou\u201d "
            f"means the person the data is about.")


def _meta(manifest: Manifest) -> str:
    notice = manifest.notice
    text = f"Version {notice.version}"
    if notice.effective:
        text += f", in effect from {words.long_date(notice.effective)}"
    return text + "."


# --- who we are -----------------------------------------------------------------------------------


def _who_we_are(manifest: Manifest) -> Section:
    org = manifest.organisation
    names = join_words(c.name for c in org.controllers)
    if org.joint:
        lead = (f"{names} decide together why and how your personal data is used: they are "
                f"joint controllers.")
    else:
        lead = f"{names} is responsible for your personal data (the controller)."
    paragraphs = [lead]
    if org.joint and org.joint_arrangement:
        paragraphs.append("What the joint controllers agreed: "
                          + sentence(" ".join(org.joint_arrangement.split())))
    entries = [Entry(c.name, sentence(words.controller_contact(c))) for c in org.controllers]
    entries += _representative_and_dpo(manifest)
    after = [f"Questions about this notice or your data: {words.contact_address(manifest)}."]
    return Section("who-we-are", "Who we are", [Block("", paragraphs, entries, after)])


def _representative_and_dpo(manifest: Manifest) -> list[Entry]:
    org = manifest.organisation
    entries = []
    if org.representative:
        rep = org.representative
        text = ", ".join(p for p in (rep.name, words.with_country(rep.address, rep.country),
                                     rep.email) if p)
        entries.append(Entry("Our representative in the EU", sentence(text)))
    if org.dpo:
        dpo = org.dpo
        text = ", ".join(p for p in (dpo.name, dpo.email, dpo.phone, dpo.address) if p)
        entries.append(Entry("Our data protection officer", sentence(text or "appointed")))
    return entries


# --- what we collect and why ----------------------------------------------------------------------


def _what_and_why(manifest: Manifest) -> Section:
    ours = [a for a in manifest.activities if a.role == "controller"]
    blocks = [_activity_block(activity, manifest) for activity in ours]
    if manifest.notice.sources:
        blocks.append(Block("Where your data comes from",
                            entries=[Entry("", sentence(s)) for s in manifest.notice.sources]))
    on_behalf = [a for a in manifest.activities if a.role == "processor"]
    if on_behalf:
        blocks.append(_processor_block(on_behalf))
    if not ours:
        blocks.insert(0, Block(paragraphs=["We do not process personal data for our own "
                                           "purposes."]))
    return Section("what-we-collect", "What we collect and why", blocks)


def _activity_block(activity: Activity, manifest: Manifest) -> Block:
    entries = [
        Entry("Why", sentence(activity.purpose.strip())),
        Entry("What data", sentence(upper_first(
            join_words(words.data_names(activity.categories, manifest)) or "none declared"))),
        Entry("Whose data", sentence(upper_first(
            join_words(words.subject_names(activity.subjects, manifest)) or "not declared"))),
        Entry("Legal basis", " ".join(words.explain_basis(b, manifest)
                                      for b in activity.legal_bases)
              or "No legal basis is declared."),
    ]
    required = _required(activity)
    if required:
        entries.append(Entry("Required", required))
    entries.append(Entry("Source", sentence(
        "From " + join_words(words.source_words(activity.sources)))))
    recipients = [r.name for r in manifest.recipients_of(activity.id)]
    if recipients:
        entries.append(Entry("Who receives it", sentence(join_words(recipients))))
    entries.append(Entry("How long we keep it", _retention_summary(activity, manifest)))
    return Block(activity.name, entries=entries)


def _required(activity: Activity) -> str | None:
    """Art. 13(2)(e): whether the data must be provided; inferred from the basis if unsaid."""
    if activity.required:
        return sentence(activity.required.strip())
    bases = {b.basis for b in activity.legal_bases}
    if Basis.legal_obligation in bases:
        return "Yes: the law requires it."
    if Basis.contract in bases:
        return "Yes, for the contract: without it we cannot provide the service to you."
    if bases == {Basis.consent}:
        return "No. It is your choice; saying no has no other consequences for you."
    return None


def _retention_summary(activity: Activity, manifest: Manifest) -> str:
    rules = words.rules_for(activity, manifest)
    if not rules:
        return "No retention period is declared; see \u201cHow long we keep your data\u201d."
    return " ".join(sentence(upper_first(describe_retention(r, manifest))) for r in rules)


def _processor_block(activities: list[Activity]) -> Block:
    entries = [Entry(a.name, sentence(" ".join(
        f"{a.purpose.strip()} On behalf of: {a.on_behalf_of or 'our clients'}".split())))
        for a in activities]
    return Block("What we do on behalf of our clients",
                 ["For this processing our clients decide why and how the data is used; we act "
                  "only on their instructions (as a processor). To use your rights, please "
                  "contact the client concerned."], entries)


# --- legal bases ----------------------------------------------------------------------------------


def _legal_bases(manifest: Manifest) -> Section:
    used: dict[Basis, list[str]] = {}
    for activity in manifest.activities:
        for basis in activity.legal_bases:
            names = used.setdefault(basis.basis, [])
            if activity.name not in names:
                names.append(activity.name)
    entries = [Entry(f"{upper_first(words.BASIS_NAMES[b])} ({b.article} GDPR)",
                     f"{upper_first(words.explain_basis_kind(b))} We rely on it for: "
                     f"{sentence(join_words(used[b]))}")
               for b in Basis if b in used]
    paragraphs = ["The law lets us use personal data only when we have a legal basis for it. "
                  "We rely on these:" if entries else "No legal basis is declared yet."]
    blocks = [Block("", paragraphs, entries)]
    special = _special_conditions(manifest)
    if special:
        blocks.append(Block("Special categories of data", ["For sensitive data we also rely "
                                                            "on:"], special))
    return Section("legal-bases", "Legal bases", blocks)


def _special_conditions(manifest: Manifest) -> list[Entry]:
    entries = []
    for activity in manifest.activities:
        condition = activity.special_category_condition
        if condition:
            entries.append(Entry(activity.name, sentence(
                f"{upper_first(words.ART9_NAMES[condition])} ({condition.article} GDPR)")))
        if activity.criminal_data_authority:
            entries.append(Entry(activity.name, sentence(
                f"Data about criminal convictions, as allowed by "
                f"{activity.criminal_data_authority} (Art. 10 GDPR)")))
    return entries


# --- recipients and transfers ---------------------------------------------------------------------

ROLE_GROUPS: list[tuple[str, str]] = [
    ("processor", "Service providers who work for us and only on our instructions (processors):"),
    ("joint_controller", "Organisations that decide together with us (joint controllers):"),
    ("controller", "Organisations that use the data for their own purposes, under their own "
                   "privacy notice (independent controllers):"),
    ("public_authority", "Public authorities, when the law requires it:"),
]


def _recipients(manifest: Manifest) -> Section:
    blocks = []
    for role, lead in ROLE_GROUPS:
        group = [r for r in manifest.recipients if r.role == role]
        if group:
            blocks.append(Block("", [lead], [_recipient_entry(r, manifest) for r in group]))
    if not blocks:
        blocks.append(Block(paragraphs=[f"We do not share your personal data with anyone outside "
                                        f"{manifest.organisation.name}."]))
    return Section("recipients", "Who receives your data", blocks)


def _recipient_entry(recipient: Recipient, manifest: Manifest) -> Entry:
    label = f"{recipient.name} ({recipient.category})" if recipient.category else recipient.name
    parts = []
    if recipient.purpose:
        parts.append(sentence(recipient.purpose.strip()))
    if recipient.countries:
        parts.append(sentence(f"Location: {words.country_names(recipient.countries)}"))
    if recipient.activities:
        parts.append(sentence(f"For: {_served(recipient, manifest)}"))
    return Entry(label, " ".join(parts))


def _served(recipient: Recipient, manifest: Manifest) -> str:
    everything = {a.id for a in manifest.activities}
    if len(everything) > 2 and everything <= set(recipient.activities):
        return "all the processing described above"
    return join_words(words.activity_names(recipient.activities, manifest))


def _transfers(manifest: Manifest) -> Section:
    abroad = [(r, words.third_countries(r)) for r in manifest.recipients]
    entries = [Entry(r.name, f"Location: {words.country_names(countries)}. Safeguard: "
                             f"{sentence(upper_first(words.describe_safeguard(r)))}")
               for r, countries in abroad if countries]
    if not entries:
        text = ("We keep your personal data in the European Economic Area (EEA). We do not "
                "transfer it to other countries.")
        return Section("transfers", "Transfers outside the EEA", [Block(paragraphs=[text])])
    # Stated per recipient rather than as a blanket promise: a declared safeguard may be invalid
    # (Privacy Shield) or missing, and the notice must not claim otherwise.
    lead = ("Some recipients are outside the European Economic Area (EEA). This is where they "
            "are and what protects your data there:")
    after = [f"You can ask us for a copy of these safeguards: {words.contact_address(manifest)}."]
    return Section("transfers", "Transfers outside the EEA", [Block("", [lead], entries, after)])


# --- retention ------------------------------------------------------------------------------------


def _retention(manifest: Manifest) -> Section:
    lead = ("We keep your data only as long as we need it. After that we delete it or make it "
            "anonymous, so it can no longer be linked to you.")
    entries = [Entry(words.rule_title(rule, manifest), _rule_text(rule, manifest))
               for rule in manifest.retention]
    after = []
    latency = manifest.rights.backup_erasure_latency
    if latency:
        after.append(f"Copies in our backups are erased within {latency} after that.")
    if not entries:
        after.insert(0, "No retention periods are declared yet.")
    return Section("retention", "How long we keep your data", [Block("", [lead], entries, after)])


def _rule_text(rule: RetentionRule, manifest: Manifest) -> str:
    text = sentence(upper_first(describe_retention(rule, manifest)))
    if rule.law:
        text += f" The law requires this: {sentence(rule.law)}"
    return text


# --- rights ---------------------------------------------------------------------------------------


def _rights(manifest: Manifest) -> Section:
    rights = manifest.rights
    entries = [Entry(words.RIGHT_WORDS[r][0], upper_first(words.RIGHT_WORDS[r][1]))
               for r in rights.offered]
    how = [f"To use your rights, contact us at {words.contact_address(manifest)}."]
    if rights.verify_identity:
        how.append("Before we act on a request, we check that it comes from you, so that "
                   "nobody else gets or changes your data. We ask only for what we need to "
                   "confirm who you are.")
    how.append(_response_words(manifest))
    how.append(_fee_words(manifest))
    if rights.backup_erasure_latency:
        how.append(f"When we erase your data, copies in our backups are erased within "
                   f"{rights.backup_erasure_latency}.")
    how.append("If we cannot do what you ask, for example because the law requires us to keep "
               "the data, we tell you why and that you can complain to a supervisory authority.")
    return Section("rights", "Your rights and how to use them", [
        Block("", ["You have these rights over your personal data:"], entries),
        Block("How to use them", how),
    ])


def _response_words(manifest: Manifest) -> str:
    rights = manifest.rights
    text = f"We answer within {rights.response_time} of receiving your request."
    if rights.extension:
        text += (f" If a request is complex, or we receive many, we may take up to "
                 f"{rights.extension} longer; we then tell you why within the first "
                 f"{_first(rights.response_time)}.")
    return text


def _first(duration: Duration) -> str:
    """'the first month', 'the first 30 days'."""
    return str(duration).removeprefix("1 ") if duration.count == 1 else str(duration)


def _fee_words(manifest: Manifest) -> str:
    if manifest.rights.fee_for_unfounded:
        return ("Using your rights is free. Only if a request is manifestly unfounded or "
                "excessive may we charge a reasonable fee or refuse it. Withdrawing your consent "
                "is always free.")
    return "Using your rights is free, and so is withdrawing your consent."


# --- automated decisions, consent, security, complaints, changes ----------------------------------


def _automated(manifest: Manifest) -> Section:
    entries = [Entry(a.name, _decision_text(d.description, d.logic, d.significance,
                                            d.human_review))
               for a in manifest.activities for d in a.automated_decisions]
    profiled = [a.name for a in manifest.activities
                if a.profiling or (a.marketing and a.marketing.profiling)]
    paragraphs = []
    if not entries:
        paragraphs.append("We do not make decisions about you based only on automated "
                          "processing that have legal or similarly significant effects on you.")
    if profiled:
        paragraphs.append(sentence(f"We use profiling (analysing your data to assess personal "
                                   f"aspects such as your interests) for: {join_words(profiled)}"))
    else:
        paragraphs.append("We do not profile you.")
    lead = ["We make these decisions automatically:"] if entries else []
    return Section("automated-decisions", "Automated decisions and profiling",
                   [Block("", lead, entries, paragraphs)])


def _decision_text(description: str, logic: str | None, significance: str | None,
                   human_review: bool) -> str:
    parts = [sentence(description.strip())]
    if logic:
        parts.append(sentence(f"How it works: {logic.strip()}"))
    if significance:
        parts.append(sentence(f"What it means for you: {significance.strip()}"))
    if human_review:
        parts.append("You can ask for a person to review the decision and contest it.")
    return " ".join(parts)


def _consent(manifest: Manifest) -> Section:
    purposes = manifest.consent_purposes
    blocks = []
    if purposes:
        entries = [Entry(p.name, _consent_text(p, manifest)) for p in purposes]
        blocks.append(Block("", ["We ask for your consent before we use your data for:"],
                            entries, _consent_after(manifest)))
    else:
        blocks.append(Block(paragraphs=["We do not ask for your consent for any use of your "
                                        "data."]))
    soft = [a.name for a in manifest.activities if a.marketing and a.marketing.soft_opt_in]
    if soft:
        blocks.append(Block("Offers to existing customers", [sentence(
            f"We may send you offers for our own similar products without asking first, as you "
            f"are our customer ({join_words(soft)}). You can object at any time, free of "
            f"charge, with the link in every message")]))
    return Section("consent", "Cookies and consent", blocks)


def _consent_text(purpose: ConsentPurpose, manifest: Manifest) -> str:
    description = sentence(purpose.description.strip()) + " " if purpose.description else ""
    return f"{description}To withdraw: {_withdraw_words(purpose, manifest)}."


def _withdraw_words(purpose: ConsentPurpose, manifest: Manifest) -> str:
    contact = words.contact_address(manifest)
    if purpose.channel == "email":
        return f"use the unsubscribe link in every e-mail, or write to {contact}"
    if purpose.channel == "sms":
        return f"use the opt-out in every message, or write to {contact}"
    if purpose.channel == "cookie":
        url = manifest.notice.cookies_url
        where = f" ({url})" if url else ""
        return f"change your choices in the cookie settings on our website{where}"
    return f"write to {contact}"


def _consent_after(manifest: Manifest) -> list[str]:
    after = ["You can withdraw your consent at any time, as easily as you gave it. It is free, "
             "and it does not affect what we did before you withdrew it."]
    gpc = [p.name for p in manifest.consent_purposes if p.gpc_opt_out]
    if gpc:
        after.append(sentence(f"If your browser sends the Global Privacy Control signal, we "
                              f"treat it as a refusal of: {join_words(gpc)}"))
    if manifest.notice.cookies_url:
        after.append(f"More about our cookies: {manifest.notice.cookies_url}")
    return after


def _security(manifest: Manifest) -> Section:
    entries = [Entry(m.name, sentence(m.description.strip()) if m.description else "")
               for m in manifest.security]
    lead = ("We protect your data against loss, misuse and unauthorised access with these "
            "measures:" if entries else "We protect your data with technical and "
                                        "organisational measures.")
    return Section("security", "Security", [Block("", [lead], entries)])


def _complaints(manifest: Manifest) -> Section:
    authorities = manifest.organisation.supervisory_authorities
    first = (f"If you are unhappy with how we handle your data, please tell us first at "
             f"{words.contact_address(manifest)}.")
    if not authorities:
        return Section("complaints", "Complaints", [Block(paragraphs=[
            first, "You can also complain to the data protection authority of your country."])])
    entries = [_authority_entry(a) for a in authorities]
    after = ["You can also complain to the data protection authority of the EU country where "
             "you live or work, or where you think your rights were infringed."]
    return Section("complaints", "Complaints", [Block("", [
        first, "You have the right to complain to a supervisory authority:"], entries, after)])


def _authority_entry(authority: SupervisoryAuthority) -> Entry:
    label = f"{authority.name} ({words.country_name(authority.country)})"
    parts = [f"Complaints: {authority.complaint_url}" if authority.complaint_url else "",
             f"Website: {authority.url}" if authority.url else "",
             f"E-mail: {authority.email}" if authority.email else ""]
    return Entry(label, ". ".join(p for p in parts if p))


def _changes(manifest: Manifest) -> Section:
    notice = manifest.notice
    paragraphs = [f"This is version {notice.version} of this notice"
                  + (f", in effect from {words.long_date(notice.effective)}."
                     if notice.effective else ".")]
    if notice.change_notice_days:
        paragraphs.append(f"When we change this notice, we tell you at least "
                          f"{_days(notice.change_notice_days)} before the change takes effect.")
    else:
        paragraphs.append("When we change this notice, we publish the new version here with "
                          "its date.")
    return Section("changes", "Changes to this notice", [Block(paragraphs=paragraphs)])


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"
