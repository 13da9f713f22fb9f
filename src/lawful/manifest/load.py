"""Load a manifest file: YAML -> typed model, with every problem pinned to file:line:column."""

from __future__ import annotations

import copy
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from lawful.manifest.errors import ManifestError, Path, Problem, format_path
from lawful.manifest.model import Manifest
from lawful.manifest.references import check_references
from lawful.manifest.suggest import suggest
from lawful.manifest.yamlsource import MAX_BYTES, Positions, SourceError, read_yaml

DEFAULT_FILE = "lawful.yaml"


def find_manifest(explicit: str | None) -> FsPath:
    """--manifest, then LAWFUL_MANIFEST, then ./lawful.yaml (DESIGN.md's contract)."""
    chosen = explicit or os.environ.get("LAWFUL_MANIFEST") or DEFAULT_FILE
    return FsPath(chosen)


@dataclass(frozen=True)
class Located:
    """A loaded manifest with where each of its values sits in the file."""

    manifest: Manifest
    positions: Positions
    file: str


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    return load_located(path).manifest


def load_manifest_text(text: str, name: str = "<manifest>") -> Manifest:
    return located_from_text(text, name).manifest


def read_source(path: str | os.PathLike[str], missing_hint: str | None = None,
                too_big_hint: str | None = None) -> str:
    """A YAML source file's text, or ManifestError: missing, unreadable, too large (refused
    before reading: a 10 MB file is never a manifest), or not UTF-8."""
    file = FsPath(path)
    name = str(path)

    def problem(message: str, hint: str | None = None) -> ManifestError:
        return ManifestError([Problem(name, 1, 1, "(document)", message, hint)])

    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise problem("no such file", missing_hint) from None
    except OSError as exc:
        raise problem(f"cannot read: {exc}") from None
    if size > MAX_BYTES:
        raise problem(f"the file is {size / 1024 / 1024:.1f} MB; refused above "
                      f"{MAX_BYTES // (1024 * 1024)} MB", too_big_hint)
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise problem(f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8") from None
    except OSError as exc:
        raise problem(f"cannot read: {exc}") from None


def load_located(path: str | os.PathLike[str]) -> Located:
    text = read_source(path, missing_hint="pass --manifest FILE or set LAWFUL_MANIFEST")
    return located_from_text(text, str(path))


def located_from_text(text: str, name: str = "<manifest>") -> Located:
    try:
        data, positions = read_yaml(text)
    except SourceError as exc:
        raise ManifestError([Problem(name, exc.line, exc.column, format_path(exc.path),
                                     exc.message)]) from None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = _shape_problems(exc, positions, name)
        # Report reference problems too: validate what remains once the broken items are set
        # aside, and map its paths back to the document.
        salvaged = _salvage(data, exc)
        if salvaged is not None:
            partial, renumber = salvaged
            problems += [_problem(name, positions, renumber(path), message, hint, prefer_key)
                         for path, message, hint, prefer_key in check_references(partial)]
        raise ManifestError(problems) from None
    problems = [
        _problem(name, positions, path, message, hint, prefer_key)
        for path, message, hint, prefer_key in check_references(manifest)
    ]
    if problems:
        raise ManifestError(problems)
    return Located(manifest, positions, name)


def _salvage(data: Any, exc: ValidationError, rounds: int = 4
             ) -> tuple[Manifest, Callable[[Path], Path]] | None:
    """The manifest without the list items (or optional keys) that failed validation.

    Returns it with a function that turns a path in it into the path in the original document
    (removing list items shifts the indices after them), or None when nothing usable remains.
    """
    current = copy.deepcopy(data)
    removed: dict[Path, list[int]] = {}  # list path (original) -> removed original indices
    for _ in range(rounds):
        for err in sorted(exc.errors(), key=lambda e: _clean_loc(e["loc"]), reverse=True):
            loc = _clean_loc(err["loc"])
            # First remove just the bad value (most keys are optional); when the key is
            # required, remove the list item holding it; outside lists, stand in an empty text.
            if err["type"] != "missing" and _delete_leaf(current, loc, removed):
                continue
            if not _drop(current, loc, removed):
                parent = _walk(current, loc[:-1], removed)
                if not isinstance(parent, dict):
                    return None
                parent[loc[-1]] = ""
        try:
            return Manifest.model_validate(current), lambda p: _original(p, removed)
        except ValidationError as again:
            exc = again
    return None


def _original(path: Path, removed: dict[Path, list[int]]) -> Path:
    out: list[str | int] = []
    for part in path:
        if isinstance(part, int):
            gone = sorted(removed.get(tuple(out), []))
            index = part
            for g in gone:
                if g <= index:
                    index += 1
            part = index
        out.append(part)
    return tuple(out)


def _delete_leaf(data: Any, loc: Path, removed: dict[Path, list[int]]) -> bool:
    if not loc or isinstance(loc[-1], int):
        return False
    parent = _walk(data, loc[:-1], removed)
    if isinstance(parent, dict) and loc[-1] in parent:
        del parent[loc[-1]]
        return True
    return False


def _drop(data: Any, loc: Path, removed: dict[Path, list[int]]) -> bool:
    """Remove the innermost list item holding `loc`; False when `loc` is in no list."""
    ints = [i for i, part in enumerate(loc) if isinstance(part, int)]
    if not ints:
        return False
    cut = loc[:ints[-1] + 1]
    parent = _walk(data, cut[:-1], removed)
    key = cut[-1]
    assert isinstance(key, int)
    if isinstance(parent, list):
        original = _original(cut[:-1], removed)
        if key in removed.get(original, []):
            return True  # removed already, for another error in the same item
        shifted = key - sum(1 for g in removed.get(original, []) if g < key)
        if 0 <= shifted < len(parent):
            parent.pop(shifted)
            removed.setdefault(original, []).append(key)
    return True


def _walk(data: Any, path: Path, removed: dict[Path, list[int]]) -> Any:
    node = data
    for depth, part in enumerate(path):
        if isinstance(part, int):
            gone = removed.get(_original(path[:depth], removed), [])
            part -= sum(1 for g in gone if g < part)
            if not isinstance(node, list) or not 0 <= part < len(node):
                return None
        elif not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _problem(name: str, positions: Positions, path: Path, message: str, hint: str | None,
             prefer_key: bool = False) -> Problem:
    line, col = positions.of(path, prefer_key)
    return Problem(name, line, col, format_path(path), message, hint)


# --- pydantic errors into plain words ----------------------------------------------------------


def _shape_problems(exc: ValidationError, positions: Positions, name: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[Path, str]] = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        kind = err["type"]
        hint: str | None = None
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _fields_at(loc[:-1])
            message = f"unknown key {key!r}"
            hint = suggest(key, allowed) or (
                f"allowed keys: {', '.join(sorted(allowed))}" if allowed else None)
            problem = _problem(name, positions, loc, message, hint, prefer_key=True)
        elif kind == "missing":
            message = f"missing required key {loc[-1]!r}"
            problem = _problem(name, positions, loc, message, None)
        else:
            message = err["msg"]
            value = err.get("input")
            if kind in {"enum", "literal_error"} and isinstance(value, str):
                expected = _expected(err.get("ctx", {}).get("expected", ""))
                hint = suggest(value, expected)
                message = f"{value!r} is not allowed: {message.lower()}"
            elif kind == "string_pattern_mismatch" and loc and loc[-1] in {"id", "parent"}:
                message = (f"{_show(value)} is not a valid id: use letters, digits and "
                           "'.', '_' or '-', starting with a letter or digit")
            elif kind.endswith("_type") or kind.endswith("_parsing"):
                message = f"wrong type: {message.lower()} (got {_show(value)})"
            problem = _problem(name, positions, loc, message, hint)
        if (loc, problem.message) not in seen:
            seen.add((loc, problem.message))
            problems.append(problem)
    return problems


def _clean_loc(loc: tuple[Any, ...]) -> Path:
    # Union branches and validators add labels that are not in the document; drop them.
    return tuple(p for p in loc if isinstance(p, int) or not (
        "[" in p or p.startswith(("function-", "lax-", "strict-")) or p in {"str", "int"}))


def _expected(text: str) -> list[str]:
    return [part.strip(" '\"") for part in text.replace(" or ", ",").split(",") if part.strip()]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def unwrap_annotation(annotation: Any) -> Any:
    """Strip Annotated/Optional to the model class or list inside."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _fields_at(path: Path) -> list[str]:
    """The keys a model accepts at `path` of the document, for suggestions."""
    current: Any = Manifest
    for part in path:
        current = unwrap_annotation(current)
        if isinstance(part, int):
            if typing.get_origin(current) is not list:
                return []
            current = typing.get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            if info is None:
                return []
            current = info.annotation
        else:
            return []
    current = unwrap_annotation(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []
