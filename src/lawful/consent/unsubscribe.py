"""One-click unsubscribe links (RFC 8058) for every marketing e-mail.

A token is the address, the purpose and the time it was made, encrypted and authenticated
(Fernet, with a key derived for this use only): it cannot be forged or altered, reveals
nothing, and is refused once older than TOKEN_DAYS.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken

from lawful.keys import derived_key
from lawful.requests.kinds import NotFound

TOKEN_DAYS = 400  # a newsletter kept for a year still unsubscribes


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derived_key("unsubscribe")))


@dataclass(frozen=True)
class Unsubscribe:
    email: str
    purpose: str


def token(email: str, purpose: str) -> str:
    return _fernet().encrypt(json.dumps({"e": email, "p": purpose}).encode()).decode()


def read(value: str, max_age_days: int = TOKEN_DAYS) -> Unsubscribe:
    try:
        data = json.loads(_fernet().decrypt(value.encode(), ttl=max_age_days * 86400))
        return Unsubscribe(str(data["e"]), str(data["p"]))
    except (InvalidToken, ValueError, KeyError, TypeError):
        raise NotFound("unsubscribe link (it is wrong or has expired)") from None


def headers(base_url: str, email: str, purpose: str) -> dict[str, str]:
    """The headers a marketing e-mail carries (RFC 2369 and RFC 8058)."""
    url = f"{base_url.rstrip('/')}/v1/unsubscribe?token={quote(token(email, purpose))}"
    return {"List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
