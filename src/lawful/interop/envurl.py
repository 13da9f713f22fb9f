"""Environment references in database URLs: `${VAR}` and `${VAR:-default}`.

The manifest never holds a password: a system's URL names environment variables instead
(`url: ${SHOP_DB_URL}` or `postgresql://app:${SHOP_DB_PASSWORD}@db/shop`). `expand_url` fills them
in, with the shell's meaning:

- `${VAR}`: the value of VAR; an error naming VAR when it is unset (set but empty gives "").
- `${VAR:-default}`: the value of VAR, or `default` when VAR is unset or empty.

Values are inserted as they are, never expanded again, so a password holding `${` or `}` is safe.
Error messages name the variable, never a value (values are secrets).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# A reference: ${NAME} or ${NAME:-default}; the default runs to the first closing brace.
_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<dflt>:-(?P<default>[^}]*))?\}")


def expand_url(url: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every `${VAR}` / `${VAR:-default}` in `url` from `environ` (os.environ by default).

    Raises ValueError naming the variable when one is unset and has no default, or when a `${`
    does not start a well-formed reference.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    out: list[str] = []
    pos = 0
    while True:
        start = url.find("${", pos)
        if start < 0:
            out.append(url[pos:])
            return "".join(out)
        match = _REFERENCE.match(url, start)
        if match is None:
            raise ValueError(
                f"malformed variable reference at character {start + 1} of the URL: write "
                "${NAME} or ${NAME:-default}, NAME being letters, digits and '_'")
        out.append(url[pos:start])
        name = match.group("name")
        value = env.get(name)
        if match.group("dflt") is not None:
            out.append(value if value else match.group("default"))
        elif value is None:
            raise ValueError(
                f"environment variable {name} is not set; the database URL needs it "
                f"(set it, or write ${{{name}:-default}} in the URL)")
        else:
            out.append(value)
        pos = match.end()


def references(url: str) -> list[str]:
    """The variable names a URL refers to, in order."""
    return [m.group("name") for m in _REFERENCE.finditer(url)]
