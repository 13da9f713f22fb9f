"""Read YAML into plain data while remembering where every value came from.

PyYAML's composer gives nodes with positions; we build Python values from them ourselves so that
(1) each path in the document maps to its line and column, (2) duplicate keys are errors instead
of silently keeping the last, and (3) aliases are expanded against a budget, which defuses
"billion laughs" documents that expand a few hundred bytes into gigabytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lawful.manifest.errors import Path, format_path

MAX_BYTES = 4 * 1024 * 1024  # a large company's manifest is well under 1 MB
MAX_NODES = 200_000  # values after alias expansion
MAX_DEPTH = 64


class SourceError(Exception):
    def __init__(self, message: str, line: int = 1, column: int = 1, path: Path = ()):
        super().__init__(message)
        self.message, self.line, self.column, self.path = message, line, column, path


@dataclass
class Positions:
    """Where each path's value (and, for mapping entries, its key) starts: 1-based line, col."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Path, prefer_key: bool = False) -> tuple[int, int]:
        """Position of `path`, or of its nearest existing ancestor."""
        path = tuple(path)
        while True:
            if prefer_key and path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if path in self.keys:
                return self.keys[path]
            if not path:
                return (1, 1)
            path = path[:-1]


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self) -> None:
        self.positions = Positions()
        self.count = 0
        self.constructor = yaml.SafeLoader("")  # only used to type plain scalars safely

    def build(self, node: Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            line, col = _mark(node)
            raise SourceError(
                f"the document expands to more than {MAX_NODES} values; refusing it (a YAML "
                "alias bomb, or a manifest far larger than any real one)", line, col, path)
        if depth > MAX_DEPTH:
            line, col = _mark(node)
            raise SourceError(f"nesting deeper than {MAX_DEPTH} levels", line, col, path)
        self.positions.values.setdefault(path, _mark(node))
        if isinstance(node, MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    line, col = _mark(key_node)
                    raise SourceError("merge keys (<<) are not supported; write the keys out",
                                      line, col, path)
                key = self.build(key_node, (*path, "<key>"), depth + 1)
                if not isinstance(key, str | int | bool) or key is None:
                    line, col = _mark(key_node)
                    raise SourceError("mapping keys must be plain text", line, col, path)
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    line, col = _mark(key_node)
                    first = self.positions.keys[(*path, key)]
                    raise SourceError(
                        f"duplicate key {key!r} (first at line {first[0]}); remove one",
                        line, col, (*path, key))
                self.positions.keys[(*path, key)] = _mark(key_node)
                out[key] = self.build(value_node, (*path, key), depth + 1)
            self.positions.values.pop((*path, "<key>"), None)
            return out
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            try:
                return self.constructor.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                line, col = _mark(node)
                raise SourceError(f"cannot read value: {getattr(exc, 'problem', exc)}",
                                  line, col, path) from None
        raise SourceError("unsupported YAML node", *_mark(node), path)  # pragma: no cover


def read_yaml(text: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain data and positions; raise SourceError on any refusal."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise SourceError(
            f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB; a manifest never needs "
            "to be: split systems out or remove generated content")
    if not text.strip():
        raise SourceError("the file is empty; start from examples/kerf/lawful.yaml")
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SourceError(f"malformed YAML: {exc.problem or exc.context}", line, col) from None
    except yaml.YAMLError as exc:
        raise SourceError(f"malformed YAML: {exc}") from None
    except RecursionError:
        raise SourceError(f"nesting deeper than {MAX_DEPTH} levels") from None
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        raise SourceError("the file holds no YAML document; start from examples/kerf/lawful.yaml")
    if len(nodes) > 1:
        raise SourceError("the file holds several YAML documents (---); a manifest is one",
                          *_mark(nodes[1]))
    builder = _Builder()
    data = builder.build(nodes[0], (), 0)
    if not isinstance(data, dict):
        raise SourceError("the manifest must be a mapping with `organisation:` at the top level")
    return data, builder.positions


__all__ = ["MAX_BYTES", "Positions", "SourceError", "format_path", "read_yaml"]
