"""What changed between two manifest versions, in sentences the people concerned understand.

A company that promises to announce changes before they take effect (Fabconnect: 30 days)
needs to say *what* changed, not that a YAML file did. Things are compared by id, so a renamed
activity is a rename, not a removal plus an addition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from lawful.documents import words
from lawful.documents.words import join_words, lower_first, sentence
from lawful.manifest.duration import Duration
from lawful.manifest.model import (
    Activity,
    Basis,
    ConsentPurpose,
    LegalBasis,
    Manifest,
    Recipient,
    RetentionRule,
    Right,
)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)
K = TypeVar("K")


def notice_diff(old: Manifest, new: Manifest) -> list[str]:
    """Sentences for every change a reader of the notice cares about; [] when none."""
    comparisons: list[Callable[[Manifest, Manifest], list[str]]] = [
        _organisation, _controllers, _authorities, _activities, _recipients, _retention,
        _consent_purposes, _rights, _security, _notice,
    ]
    return [line for compare in comparisons for line in compare(old, new)]


def _by_id(items: Iterable[T]) -> dict[str, T]:
    return {item.id: item for item in items}


def _pairs(old: Iterable[T], new: Iterable[T]) -> tuple[list[T], list[T], list[tuple[T, T]]]:
    """(added, removed, kept as (old, new)), each in manifest order."""
    before, after = _by_id(old), _by_id(new)
    added = [item for key, item in after.items() if key not in before]
    removed = [item for key, item in before.items() if key not in after]
    kept = [(before[key], item) for key, item in after.items() if key in before]
    return added, removed, kept


def _added_removed(before: Iterable[K], after: Iterable[K]) -> tuple[list[K], list[K]]:
    old, new = list(before), list(after)
    return [x for x in new if x not in old], [x for x in old if x not in new]


def _duration(value: Duration | None) -> str:
    return str(value) if value else "none"


# --- organisation ---------------------------------------------------------------------------------


def _organisation(old: Manifest, new: Manifest) -> list[str]:
    before, after = old.organisation, new.organisation
    lines = []
    if before.name != after.name:
        lines.append(_renamed(before.name, after.name))
    if before.joint_arrangement != after.joint_arrangement and after.joint_arrangement:
        lines.append("The arrangement between the joint controllers changed: "
                     + sentence(" ".join(after.joint_arrangement.split())))
    lines += _representative(old, new) + _dpo(old, new)
    return lines


def _representative(old: Manifest, new: Manifest) -> list[str]:
    before, after = old.organisation.representative, new.organisation.representative
    if before == after:
        return []
    if after is None:
        return ["We no longer have a representative in the EU."]
    where = words.with_country(after.address, after.country)
    return [f"Our representative in the EU is now {after.name}, {where}."]


def _dpo(old: Manifest, new: Manifest) -> list[str]:
    before, after = old.organisation.dpo, new.organisation.dpo
    if before == after:
        return []
    if after is None:
        return ["We no longer have a data protection officer."]
    who = ", ".join(p for p in (after.name, after.email, after.phone) if p) or "appointed"
    verb = "We have appointed a data protection officer" if before is None \
        else "Our data protection officer is now"
    return [f"{verb}: {who}."]


def _controllers(old: Manifest, new: Manifest) -> list[str]:
    added, removed, kept = _pairs(old.organisation.controllers, new.organisation.controllers)
    lines = [f"{c.name} ({words.with_country(c.address, c.country)}) is now a controller of "
             f"your data." for c in added]
    lines += [f"{c.name} is no longer a controller of your data." for c in removed]
    for before, after in kept:
        if before.name != after.name:
            lines.append(_renamed(before.name, after.name))
        if (before.address, before.country) != (after.address, after.country):
            lines.append(f"The address of {after.name} is now "
                         f"{words.with_country(after.address, after.country)}.")
        if before.email != after.email and after.email:
            lines.append(f"You can now reach {after.name} at {after.email}.")
    return lines


def _authorities(old: Manifest, new: Manifest) -> list[str]:
    added, removed, _ = _pairs(old.organisation.supervisory_authorities,
                               new.organisation.supervisory_authorities)
    lines = [f"You can now also complain to {a.name} ({words.country_name(a.country)})."
             for a in added]
    lines += [f"{a.name} ({words.country_name(a.country)}) is no longer named as a supervisory "
              f"authority you can complain to." for a in removed]
    return lines


# --- activities -----------------------------------------------------------------------------------


def _activities(old: Manifest, new: Manifest) -> list[str]:
    added, removed, kept = _pairs(old.activities, new.activities)
    lines = [f"We now carry out: {a.name}. {sentence(' '.join(a.purpose.split()))}"
             for a in added]
    lines += [f"We no longer carry out: {a.name}." for a in removed]
    for before, after in kept:
        lines += _activity_changes(before, after, old, new)
    return lines


def _activity_changes(before: Activity, after: Activity, old: Manifest,
                      new: Manifest) -> list[str]:
    name = after.name
    lines = []
    if before.name != after.name:
        lines.append(_renamed(before.name, after.name))
    if " ".join(before.purpose.split()) != " ".join(after.purpose.split()):
        lines.append(f"The purpose of {name} changed: {sentence(' '.join(after.purpose.split()))}")
    lines += _data_changes(before, after, old, new)
    lines += _basis_changes(before, after, new)
    lines += _practice_changes(before, after)
    return lines


def _data_changes(before: Activity, after: Activity, old: Manifest, new: Manifest) -> list[str]:
    name, lines = after.name, []
    more, fewer = _added_removed(before.categories, after.categories)
    if more:
        lines.append(f"New data collected for {name}: {join_words(words.data_names(more, new))}.")
    if fewer:
        lines.append(f"We no longer collect for {name}: "
                     f"{join_words(words.data_names(fewer, old))}.")
    more, fewer = _added_removed(before.subjects, after.subjects)
    if more:
        lines.append(f"{name} now also concerns {join_words(words.subject_names(more, new))}.")
    if fewer:
        lines.append(f"{name} no longer concerns {join_words(words.subject_names(fewer, old))}.")
    more, _ = _added_removed(before.sources, after.sources)
    if more:
        lines.append(f"We now also get data for {name} from "
                     f"{join_words(words.source_words(more))}.")
    return lines


def _basis_changes(before: Activity, after: Activity, new: Manifest) -> list[str]:
    old_kinds = list(dict.fromkeys(b.basis for b in before.legal_bases))
    new_kinds = list(dict.fromkeys(b.basis for b in after.legal_bases))
    if set(old_kinds) != set(new_kinds):
        return [f"The legal basis for {after.name} changed from {_basis_words(old_kinds)} to "
                f"{_basis_words(new_kinds)}."]
    old_by_kind = {b.basis: b for b in before.legal_bases}
    return [line for basis in after.legal_bases
            if (line := _grounds_change(old_by_kind[basis.basis], basis, after.name, new))]


def _basis_words(kinds: list[Basis]) -> str:
    return join_words(words.BASIS_NAMES[k] for k in kinds) or "none"


def _grounds_change(before: LegalBasis, after: LegalBasis, name: str,
                    new: Manifest) -> str | None:
    """The interest, the law or the consent behind an unchanged basis."""
    if after.basis is Basis.legitimate_interests and before.interest != after.interest:
        interest = lower_first(" ".join((after.interest or "not stated").split()))
        return sentence(f"The legitimate interest we rely on for {name} is now: {interest}")
    if after.basis is Basis.legal_obligation and before.law != after.law:
        return sentence(f"The law that requires {name} is now: {after.law or 'not stated'}")
    if after.basis is Basis.consent and before.consent_purpose != after.consent_purpose:
        return (f"{name} now relies on your consent to the "
                f"{words.consent_name(after.consent_purpose, new)}.")
    return None


def _practice_changes(before: Activity, after: Activity) -> list[str]:
    name, lines = after.name, []
    if after.marketing and not before.marketing:
        lines.append(f"{name} now includes direct marketing by {after.marketing.channel}.")
    if before.marketing and not after.marketing:
        lines.append(f"{name} no longer includes direct marketing.")
    was = before.profiling or bool(before.marketing and before.marketing.profiling)
    now = after.profiling or bool(after.marketing and after.marketing.profiling)
    if now != was:
        lines.append(f"We now use profiling for {name}." if now
                     else f"We no longer use profiling for {name}.")
    more, fewer = _added_removed((d.description for d in before.automated_decisions),
                                 (d.description for d in after.automated_decisions))
    lines += [sentence(f"We now make an automated decision for {name}: {d}") for d in more]
    lines += [sentence(f"We no longer make this automated decision for {name}: {d}")
              for d in fewer]
    if before.role != after.role:
        lines.append(f"We now carry out {name} as a {after.role} (was: {before.role}).")
    return lines


# --- recipients -----------------------------------------------------------------------------------


def _recipients(old: Manifest, new: Manifest) -> list[str]:
    added, removed, kept = _pairs(old.recipients, new.recipients)
    lines = [_new_recipient(r, new) for r in added]
    lines += [f"We no longer share your data with {r.name}." for r in removed]
    for before, after in kept:
        lines += _recipient_changes(before, after, old, new)
    return lines


def _where(recipient: Recipient) -> str:
    return f" ({words.country_names(recipient.countries)})" if recipient.countries else ""


def _new_recipient(recipient: Recipient, new: Manifest) -> str:
    text = f"We now share your data with {recipient.name}{_where(recipient)}"
    if recipient.activities:
        text += f" for: {join_words(words.activity_names(recipient.activities, new))}"
    return sentence(text)


def _recipient_changes(before: Recipient, after: Recipient, old: Manifest,
                       new: Manifest) -> list[str]:
    name, lines = after.name, []
    if before.name != after.name:
        lines.append(_renamed(before.name, after.name))
    more, fewer = _added_removed(before.activities, after.activities)
    if more:
        lines.append(f"We now also share your data with {name} for: "
                     f"{join_words(words.activity_names(more, new))}.")
    if fewer:
        lines.append(f"We no longer share your data with {name} for: "
                     f"{join_words(words.activity_names(fewer, old))}.")
    if before.countries != after.countries:
        lines.append(f"{name} now processes your data in: "
                     f"{words.country_names(after.countries) or 'no country stated'} "
                     f"(was: {words.country_names(before.countries) or 'no country stated'}).")
    if before.safeguard != after.safeguard:
        lines.append(f"The safeguard for transfers to {name} changed from "
                     f"{words.safeguard_name(before.safeguard)} to "
                     f"{words.safeguard_name(after.safeguard)}.")
    if before.role != after.role:
        lines.append(f"{name} is now a {words.ROLE_NAMES[after.role]} "
                     f"(was: {words.ROLE_NAMES[before.role]}).")
    return lines


# --- retention ------------------------------------------------------------------------------------


def _retention(old: Manifest, new: Manifest) -> list[str]:
    added, removed, kept = _pairs(old.retention, new.retention)
    lines = [f"New retention period for {_what(r, new)}: {words.describe_retention(r, new)}."
             for r in added]
    lines += [f"The retention period for {_what(r, old)} "
              f"({words.describe_retention(r, old)}) no longer applies." for r in removed]
    for before, after in kept:
        line = _retention_change(before, after, old, new)
        if line:
            lines.append(line)
    return lines


def _what(rule: RetentionRule, manifest: Manifest) -> str:
    return lower_first(words.rule_title(rule, manifest))


def _retention_change(before: RetentionRule, after: RetentionRule, old: Manifest,
                      new: Manifest) -> str | None:
    was, now = words.describe_retention(before, old), words.describe_retention(after, new)
    if was == now:
        return None
    what = _what(after, new)
    only_keep = (before.keep and after.keep and not after.description
                 and before.model_copy(update={"keep": after.keep}) == after)
    if only_keep:
        return f"We now keep {what} for {now} (was {before.keep})."
    return f"We changed how long we keep {what}: now {now} (was: {was})."


# --- consent, rights, security, the notice itself -------------------------------------------------


def _consent_purposes(old: Manifest, new: Manifest) -> list[str]:
    added, removed, kept = _pairs(old.consent_purposes, new.consent_purposes)
    lines = [f"We now ask for your consent to: {p.name}." for p in added]
    lines += [f"We no longer ask for your consent to: {p.name}." for p in removed]
    for before, after in kept:
        lines += _consent_changes(before, after)
    return lines


def _consent_changes(before: ConsentPurpose, after: ConsentPurpose) -> list[str]:
    lines = []
    if before.name != after.name:
        lines.append(f"The consent \u201c{before.name}\u201d is now called "
                     f"\u201c{after.name}\u201d.")
    old_version = max((v.version for v in before.versions), default=0)
    new_version = max((v.version for v in after.versions), default=0)
    if new_version > old_version:
        lines.append(f"The consent text for {after.name} changed (version {new_version}).")
    return lines


def _rights(old: Manifest, new: Manifest) -> list[str]:
    before, after = old.rights, new.rights
    lines = []
    more, fewer = _added_removed(before.offered, after.offered)
    if more:
        lines.append(f"You can now also use these rights: {_right_names(more)}.")
    if fewer:
        lines.append(f"This notice no longer lists these rights: {_right_names(fewer)}.")
    if before.contact != after.contact and after.contact:
        lines.append(f"Contact us about your rights at {after.contact}.")
    if before.response_time != after.response_time:
        lines.append(f"We now answer your requests within {after.response_time} "
                     f"(was {before.response_time}).")
    if before.extension != after.extension:
        lines.append(f"For complex requests we may now take up to {_duration(after.extension)} "
                     f"longer (was {_duration(before.extension)}).")
    if before.fee_for_unfounded != after.fee_for_unfounded:
        lines.append("We may now charge a reasonable fee for manifestly unfounded or excessive "
                     "requests." if after.fee_for_unfounded
                     else "We no longer charge a fee for any request.")
    if before.verify_identity != after.verify_identity:
        lines.append("We now check your identity before we act on a request."
                     if after.verify_identity
                     else "We no longer ask you to prove your identity before we act.")
    if before.backup_erasure_latency != after.backup_erasure_latency:
        lines.append(f"Copies in our backups are now erased within "
                     f"{_duration(after.backup_erasure_latency)} "
                     f"(was {_duration(before.backup_erasure_latency)}).")
    return lines


def _right_names(rights: Iterable[Right]) -> str:
    return join_words(lower_first(words.RIGHT_WORDS[r][0]) for r in rights)


def _security(old: Manifest, new: Manifest) -> list[str]:
    more, fewer = _added_removed((m.name for m in old.security), (m.name for m in new.security))
    lines = [f"New security measure: {name}." for name in more]
    lines += [f"We no longer list this security measure: {name}." for name in fewer]
    return lines


def _notice(old: Manifest, new: Manifest) -> list[str]:
    before, after = old.notice, new.notice
    lines = []
    if before.change_notice_days != after.change_notice_days:
        lines.append(f"We now tell you about changes to this notice "
                     f"{after.change_notice_days or 0} days before they take effect "
                     f"(was {before.change_notice_days or 0}).")
    more, fewer = _added_removed(before.extra_sections, after.extra_sections)
    lines += [f"New section in this notice: {title}." for title in more]
    lines += [f"Removed section from this notice: {title}." for title in fewer]
    if before.cookies_url != after.cookies_url and after.cookies_url:
        lines.append(f"Our cookie settings are now at {after.cookies_url}.")
    return lines


def _renamed(before: str, after: str) -> str:
    # A name may end in a full stop ("Zendesk, Inc."): do not end the sentence with two.
    return f"{before} is now called {after}" + ("" if after.endswith(".") else ".")
