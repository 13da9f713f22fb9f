"""Documents generated from the manifest: the Art. 30 record, the privacy notice, its changes.

Submodules load on first use: the spreadsheet writer is heavy, and `lawful check` or the
engine should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "notice_diff": "lawful.documents.diff",
    "render_notice": "lawful.documents.notice",
    "render_ropa": "lawful.documents.ropa",
    "ropa_rows": "lawful.documents.ropa",
    "describe_retention": "lawful.documents.words",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'lawful.documents' has no attribute {name!r}")
