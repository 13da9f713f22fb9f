"""Recipients: processors' contracts (Art. 28), joint controllers (Art. 26), the record."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from urllib.parse import urlsplit

from lawful.checks.base import Context, Hit, Severity, rule


@rule("processor-without-dpa", Severity.error, "GDPR Art. 28(3)",
      "Processor without a data processing agreement")
def processor_without_dpa(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if rec.role == "processor" and rec.dpa_date is None:
            yield (("recipients", i),
                   f"processor {rec.name!r} has no data processing agreement date",
                   "sign an Art. 28 agreement and record dpa_date: YYYY-MM-DD")


@rule("recipient-unused", Severity.warning, "GDPR Art. 30(1)(d), 5(1)(c)",
      "Recipient that no activity shares with")
def recipient_unused(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if not rec.activities:
            yield (("recipients", i, "id"),
                   f"recipient {rec.name!r} is declared but no activity shares data with it",
                   "list the activities in activities:, or remove the recipient")


@rule("joint-controller-without-arrangement", Severity.error, "GDPR Art. 26(1)-(2)",
      "Joint controllers without an arrangement")
def joint_without_arrangement(ctx: Context) -> Iterator[Hit]:
    org = ctx.manifest.organisation
    joint_recipients = [r.name for r in ctx.manifest.recipients if r.role == "joint_controller"]
    if (org.joint or joint_recipients) and not org.joint_arrangement:
        whom = [c.name for c in org.controllers] + joint_recipients
        yield (("organisation",),
               f"{', '.join(whom)} are joint controllers but the essence of their arrangement "
               "is not declared", "add organisation.joint_arrangement: who answers requests "
               "and who gives the notice")


@rule("recipient-without-purpose", Severity.warning, "GDPR Art. 13(1)(e), 30(1)(d)",
      "Recipient without a purpose or category")
def recipient_without_purpose(ctx: Context) -> Iterator[Hit]:
    for i, rec in enumerate(ctx.manifest.recipients):
        if not rec.purpose and not rec.category:
            yield (("recipients", i),
                   f"recipient {rec.name!r} has neither a purpose nor a category to tell "
                   "people why it receives their data", "add purpose: or category:")


@rule("recipient-category-not-collected", Severity.warning, "GDPR Art. 5(1)(c)",
      "Recipient receives a category its activities do not collect")
def recipient_category(ctx: Context) -> Iterator[Hit]:
    m = ctx.manifest
    for i, rec in enumerate(m.recipients):
        collected = [c for a in rec.activities if (act := m.activity(a)) for c in act.categories]
        for j, cat in enumerate(rec.categories):
            if rec.activities and not ctx.taxonomy.covered(cat, collected):
                yield (("recipients", i, "categories", j),
                       f"recipient {rec.name!r} receives {cat!r}, which none of its activities "
                       "collects", "add the category to the activity, or remove it here")


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


@rule("webhook-not-https", Severity.error, "GDPR Art. 32(1)",
      "Recipient told over plain HTTP")
def webhook_not_https(ctx: Context) -> Iterator[Hit]:
    # The notice names the person whose data was erased or changed: it must not cross a
    # network in clear. A webhook on this machine (tests, a local relay) is exempt.
    for i, rec in enumerate(ctx.manifest.recipients):
        url = rec.notify.webhook if rec.notify else None
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme != "https" and not _loopback(parts.hostname):
            yield (("recipients", i, "notify", "webhook"),
                   f"recipient {rec.name!r} would be told of erasures and corrections at "
                   f"{parts.scheme or 'an unknown scheme'}://{parts.hostname or ''}, in clear",
                   "use an https:// address")
