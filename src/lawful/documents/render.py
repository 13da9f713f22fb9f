"""Jinja2 environments for the Markdown and HTML documents, and the filters that make them safe.

Every string that reaches a template came from a manifest and may hold `<script>` or a Markdown
table pipe: HTML templates autoescape, Markdown templates escape through `md`/`md_cell`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"

# Characters that would start Markdown syntax (or raw HTML) inside a line of text.
_MD_INLINE = re.compile(r"([\\`*\[\]<>|])")
# At the start of a line these would turn text into a heading, list, quote or rule.
_MD_LINE_START = re.compile(r"^([#+\-=>])")
_MD_ORDERED = re.compile(r"^(\d+)([.)])")
# Links are found in already-escaped text, so they can hold no quote or angle bracket.
_LINK = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:)!?]"
                   r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")


def md(text: object) -> str:
    """Escape text for use inside a line of Markdown (after a label, in a heading or cell)."""
    return _MD_INLINE.sub(r"\\\1", " ".join(str(text).split()))


def md_block(text: object) -> str:
    """Escape text that starts a line: a paragraph, or a list item without a label."""
    # A backslash escapes punctuation only: "1." becomes "1\." rather than "\1.".
    return _MD_ORDERED.sub(r"\1\\\2", _MD_LINE_START.sub(r"\\\1", md(text)))


def md_cell(text: object) -> str:
    """Escape text for a Markdown table cell; its lines become <br>."""
    return "<br>".join(md(line) for line in str(text).split("\n"))


def html_lines(text: object) -> Markup:
    """Escape text for HTML; its lines become <br>."""
    return Markup("<br>").join(escape(line) for line in str(text).split("\n"))


def linkify(text: object) -> Markup:
    """Escape text for HTML and turn its web addresses and e-mail addresses into links."""
    escaped = str(escape(str(text)))
    return Markup(_LINK.sub(_anchor, escaped))


def _anchor(match: re.Match[str]) -> str:
    target = match.group(0)
    href = target if target.startswith("http") else f"mailto:{target}"
    return f'<a href="{href}">{target}</a>'


@cache
def environment(kind: Literal["md", "html"]) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=kind == "html",
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=md, md_block=md_block, md_cell=md_cell, lines=html_lines, linkify=linkify)
    return env


def render(template: str, **context: object) -> str:
    kind: Literal["md", "html"] = "html" if template.endswith(".html.j2") else "md"
    return environment(kind).get_template(template).render(**context)
