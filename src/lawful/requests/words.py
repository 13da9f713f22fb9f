"""What lawful writes to requesters: plain, short, with the facts the GDPR requires."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lawful.manifest.model import Manifest

if TYPE_CHECKING:
    from lawful.store.models import Request

KINDS = {
    "access": "access to your personal data (Art. 15 GDPR)",
    "portability": "a copy of your data to take elsewhere (Art. 20 GDPR)",
    "rectification": "correction of your personal data (Art. 16 GDPR)",
    "erasure": "erasure of your personal data (Art. 17 GDPR)",
    "restriction": "restriction of processing (Art. 18 GDPR)",
    "objection": "your objection to processing (Art. 21 GDPR)",
    "consent_withdrawal": "withdrawal of your consent (Art. 7(3) GDPR)",
}


def _org(manifest: Manifest) -> str:
    return manifest.organisation.name


def code_subject(manifest: Manifest) -> str:
    return f"{_org(manifest)}: your verification code"


def code_body(manifest: Manifest, request: Request, code: str) -> str:
    return (f"You asked {_org(manifest)} for {KINDS[request.type]}.\n\n"
            f"Your verification code is {code}. It is valid for 15 minutes.\n\n"
            f"Request {request.id}, received {request.received_at:%Y-%m-%d}; we answer by "
            f"{request.due_on:%d %B %Y}.\n"
            "If you did not ask for this, ignore this message: nothing happens without "
            "the code.\n")


def extension_subject(manifest: Manifest) -> str:
    return f"{_org(manifest)}: we need more time for your request"


def extension_body(manifest: Manifest, request: Request, reason: str) -> str:
    return (f"We received your request for {KINDS[request.type]} on "
            f"{request.received_at:%d %B %Y}. We need more time to answer it, because:\n\n"
            f"{reason}\n\n"
            f"We will answer by {request.due_on:%d %B %Y} (Art. 12(3) GDPR allows two further "
            "months where requests are complex or numerous).\n" + _complaint(manifest))


def refusal_subject(manifest: Manifest) -> str:
    return f"{_org(manifest)}: we cannot act on your request"


def refusal_body(manifest: Manifest, request: Request) -> str:
    return (f"We received your request for {KINDS[request.type]} on "
            f"{request.received_at:%d %B %Y}. We will not act on it, because:\n\n"
            f"{request.refusal_reason}\n\n" + _complaint(manifest)
            + "You may also seek a judicial remedy (Art. 12(4) GDPR).\n")


def fee_subject(manifest: Manifest) -> str:
    return f"{_org(manifest)}: a fee for your request"


def fee_body(manifest: Manifest, request: Request) -> str:
    contact = manifest.rights.contact or manifest.organisation.controllers[0].email or ""
    return (f"We received your request for {KINDS[request.type]} on "
            f"{request.received_at:%d %B %Y}. We consider it manifestly unfounded or "
            f"excessive, because:\n\n{request.fee_reason}\n\n"
            f"Art. 12(5)(a) GDPR allows us to charge a reasonable fee for it: {request.fee}. "
            "We will act on your request once it is paid"
            + (f"; write to {contact} to arrange payment" if contact else "") + ".\n"
            + _complaint(manifest))


def _complaint(manifest: Manifest) -> str:
    authorities = manifest.organisation.supervisory_authorities
    if not authorities:
        return ("You have the right to lodge a complaint with a data protection supervisory "
                "authority (Art. 77 GDPR).\n")
    lines = [f"- {a.name}" + (f": {a.complaint_url or a.url}" if a.complaint_url or a.url
                              else "") for a in authorities]
    return ("You have the right to lodge a complaint with the supervisory authority "
            "(Art. 77 GDPR):\n" + "\n".join(lines) + "\n")


def done_subject(manifest: Manifest, request: Request) -> str:
    return f"{_org(manifest)}: your request for {request.type.replace('_', ' ')} is done"


def done_body(manifest: Manifest, request: Request, result: dict[str, Any],
              link: str | None) -> str:
    lines = [f"We have completed your request for {KINDS[request.type]}, received on "
             f"{request.received_at:%d %B %Y}.", ""]
    if link:
        lines += ["Download your data (a zip with JSON, CSV and a readable page) here; the "
                  "link works for 7 days:", link, ""]
    for line in result.get("summary", []):
        lines.append(f"- {line}")
    return "\n".join(lines) + "\n"
