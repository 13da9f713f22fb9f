"""Consent purposes (Art. 7) and electronic direct marketing (ePrivacy Directive Art. 13)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from lawful.checks.base import Context, Hit, Severity, rule
from lawful.manifest.model import Basis

ELECTRONIC = {"email", "sms"}  # ePrivacy Art. 13 covers electronic mail, which includes SMS


@rule("consent-purpose-without-text", Severity.error, "GDPR Art. 7(1)",
      "Consent purpose without the text shown")
def purpose_without_text(ctx: Context) -> Iterator[Hit]:
    for i, purpose in enumerate(ctx.manifest.consent_purposes):
        if not purpose.versions:
            yield (("consent_purposes", i, "versions"),
                   f"consent purpose {purpose.id!r} has no versioned text, so you cannot "
                   "prove what a person agreed to",
                   "add versions: [{version: 1, effective: YYYY-MM-DD, text: {en: ...}}]")


@rule("consent-version-duplicate", Severity.error, "GDPR Art. 7(1)",
      "Two consent texts with the same version")
def version_duplicate(ctx: Context) -> Iterator[Hit]:
    for i, purpose in enumerate(ctx.manifest.consent_purposes):
        seen: set[int] = set()
        for j, version in enumerate(purpose.versions):
            if version.version in seen:
                yield (("consent_purposes", i, "versions", j, "version"),
                       f"consent purpose {purpose.id!r} has version {version.version} twice; "
                       "a recorded consent could point at either text",
                       "number each text once; a changed text is a new version")
            seen.add(version.version)


@rule("consent-no-current-text", Severity.warning, "GDPR Art. 7(1)",
      "Consent purpose whose texts all take effect in the future")
def no_current_text(ctx: Context) -> Iterator[Hit]:
    for i, purpose in enumerate(ctx.manifest.consent_purposes):
        if purpose.versions and purpose.current(dt.date.today()) is None:
            yield (("consent_purposes", i, "versions"),
                   f"no text of consent purpose {purpose.id!r} is in effect yet",
                   "give the first version an effective date that has passed")


@rule("consent-text-language-missing", Severity.warning, "GDPR Art. 7(2), 12(1)",
      "Consent text missing in a notice language")
def language_missing(ctx: Context) -> Iterator[Hit]:
    languages = ctx.manifest.notice.languages
    for i, purpose in enumerate(ctx.manifest.consent_purposes):
        current = purpose.current() or (purpose.versions[-1] if purpose.versions else None)
        if current is None:
            continue
        missing = [lang for lang in languages if lang not in current.text]
        if missing:
            j = purpose.versions.index(current)
            yield (("consent_purposes", i, "versions", j, "text"),
                   f"consent purpose {purpose.id!r} version {current.version} has no text in "
                   f"{', '.join(missing)}, a language the notice is published in",
                   "add the translation: a request must be in clear and plain language")


@rule("consent-purpose-unused", Severity.warning, "GDPR Art. 5(1)(b)",
      "Consent purpose that no activity relies on")
def purpose_unused(ctx: Context) -> Iterator[Hit]:
    m = ctx.manifest
    used = {lb.consent_purpose for a in m.activities for lb in a.legal_bases}
    used |= {r.consent_purpose for r in m.retention}
    used |= {r.extension.consent_purpose for r in m.retention if r.extension}
    for i, purpose in enumerate(m.consent_purposes):
        if purpose.id not in used:
            yield (("consent_purposes", i, "id"),
                   f"consent purpose {purpose.id!r} is asked for but no activity relies on it",
                   "link it from an activity's legal_bases, or remove it")


@rule("marketing-without-consent", Severity.error, "ePrivacy Directive Art. 13(1)-(2)",
      "Electronic marketing to non-customers without consent")
def marketing_without_consent(ctx: Context) -> Iterator[Hit]:
    m = ctx.manifest
    for i, act in enumerate(m.activities):
        if act.marketing is None or act.marketing.channel not in ELECTRONIC:
            continue
        if act.has_basis(Basis.consent):
            continue
        if not act.marketing.soft_opt_in:
            yield (("activities", i, "marketing"),
                   f"activity {act.id!r} sends marketing by {act.marketing.channel} without "
                   "consent and without the soft opt-in",
                   "rely on consent, or declare soft_opt_in: true for existing customers only")
            continue
        others = [s for s in act.subjects if not (m.subject(s) and m.subject(s).is_customer)]
        if others or not act.subjects:
            whom = ", ".join(others) or "unspecified subjects"
            yield (("activities", i, "subjects"),
                   f"activity {act.id!r} uses the soft opt-in for {whom}; it covers existing "
                   "customers only",
                   "restrict the activity to customers, or ask the others for consent")


@rule("marketing-without-opt-out", Severity.error,
      "ePrivacy Directive Art. 13(2); GDPR Art. 21(2)-(3)",
      "Direct marketing without an opt-out in every message")
def marketing_without_opt_out(ctx: Context) -> Iterator[Hit]:
    for i, act in enumerate(ctx.manifest.activities):
        if act.marketing is not None and not act.marketing.opt_out:
            yield (("activities", i, "marketing", "opt_out"),
                   f"activity {act.id!r} sends direct marketing without an opt-out; the "
                   "objection to direct marketing is absolute",
                   "offer an unsubscribe link in every message and set opt_out: true")


# Reading or storing on a visitor's device (cookies, pixels, device ids) needs consent unless it
# is strictly necessary for a service the visitor asked for.
_DEVICE = ("user.device.cookie", "user.device.cookie_id", "user.device.device_id")
_STRICTLY_NECESSARY = ("essential", "functional")


@rule("cookies-without-consent", Severity.error, "ePrivacy Directive Art. 5(3)",
      "Cookies or device identifiers without consent")
def cookies_without_consent(ctx: Context) -> Iterator[Hit]:
    for i, act in enumerate(ctx.manifest.activities):
        device = [c for c in act.categories
                  if any(ctx.taxonomy.is_within(c, d) for d in _DEVICE)]
        necessary = (act.data_use or "").startswith(_STRICTLY_NECESSARY)
        if device and not necessary and not act.has_basis(Basis.consent):
            yield (("activities", i, "categories"),
                   f"activity {act.id!r} reads {', '.join(device)} from people's devices "
                   "without consent; only strictly necessary storage is exempt",
                   "rely on consent (a consent purpose for the cookie), or declare a "
                   "strictly necessary data_use (essential.*)")
