"""GDPR and ePrivacy checks over a manifest. One module per theme; each rule registers itself."""

from __future__ import annotations

from dataclasses import replace

from lawful.checks import (  # noqa: F401  (importing registers the rules)
    bases,
    consent,
    organisation,
    recipients,
    retention,
    systems,
    transfers,
)
from lawful.checks.base import RULES, Context, Finding, Rule, Severity
from lawful.manifest.model import Manifest
from lawful.manifest.taxonomy import Taxonomy
from lawful.manifest.yamlsource import Positions

_ORDER = {Severity.error: 0, Severity.warning: 1, Severity.info: 2}


def run_checks(manifest: Manifest, positions: Positions | None = None) -> list[Finding]:
    """Every finding of every rule, errors first, then by rule id and path.

    With the positions of a loaded file, each finding also carries its line and column.
    """
    ctx = Context(manifest, Taxonomy.of(manifest))
    findings = []
    for r in RULES.values():
        for hit in r.run(ctx):
            if positions is not None:
                line, column = positions.of(hit.location)
                hit = replace(hit, line=line, column=column)
            findings.append(hit)
    return sorted(findings, key=lambda f: (_ORDER[f.severity], f.rule, f.line or 0, f.path))


__all__ = ["RULES", "Finding", "Rule", "Severity", "run_checks"]
