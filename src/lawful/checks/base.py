"""What a check is: a rule with an id, a severity and an article, yielding findings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from lawful.manifest.errors import Path, format_path
from lawful.manifest.model import Manifest
from lawful.manifest.taxonomy import Taxonomy


class Severity(StrEnum):
    error = "error"  # unlawful as declared: `lawful check` exits 1
    warning = "warning"  # likely a problem, or a gap a regulator would ask about
    info = "info"


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    article: str
    path: str
    message: str
    fix: str
    line: int | None = None
    column: int | None = None
    location: Path = field(default=(), compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "severity": self.severity.value, "article": self.article,
                "path": self.path, "line": self.line, "column": self.column,
                "message": self.message, "fix": self.fix}


@dataclass
class Context:
    manifest: Manifest
    taxonomy: Taxonomy


# A rule body yields (path in the document, message naming the element, fix).
Hit = tuple[Path, str, str]
Body = Callable[[Context], Iterator[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    article: str
    title: str
    theme: str
    body: Body

    def run(self, ctx: Context) -> list[Finding]:
        return [Finding(self.id, self.severity, self.article, format_path(path), message, fix,
                        location=tuple(path))
                for path, message, fix in self.body(ctx)]


RULES: dict[str, Rule] = {}


def rule(id: str, severity: Severity, article: str, title: str) -> Callable[[Body], Body]:
    """Register a check; the theme is the module it lives in."""

    def register(body: Body) -> Body:
        if id in RULES:
            raise RuntimeError(f"rule id {id} registered twice")
        theme = body.__module__.rsplit(".", 1)[-1]
        RULES[id] = Rule(id, severity, article, title, theme, body)
        return body

    return register
