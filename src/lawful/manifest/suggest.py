"""'Did you mean …?' for misspelt keys and references."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(word: str, choices: Iterable[str], list_if_few: bool = False) -> str | None:
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        # "email" should find "user.contact.email": also match on the last dotted segment.
        tails = {c.rsplit(".", 1)[-1]: c for c in options}
        tail = difflib.get_close_matches(word.rsplit(".", 1)[-1], list(tails), n=1, cutoff=0.75)
        close = [tails[tail[0]]] if tail else []
    if close:
        return f"did you mean {close[0]}?"
    if list_if_few and 0 < len(options) <= 12:
        return f"declared: {', '.join(options)}"
    return None
