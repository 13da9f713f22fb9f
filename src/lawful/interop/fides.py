"""fideslang datasets in and out: Ethyca's annotated data map <-> lawful's `systems:`.

A fideslang dataset file (`dataset:` followed by a list of datasets) describes, per database, its
collections (tables) and fields (columns) with data categories, the identities a request starts
from (`fides_meta.identity`), primary keys and references between fields. That is most of what a
lawful `System` says, so a company that already annotated its databases for Fides keeps its work.

Import (`import_fides`, `import_fides_text`)
  - The file is checked with fideslang's own `Dataset` model, so malformed input gets fideslang's
    errors, and also against its keys: fideslang ignores unknown keys, which would turn a misspelt
    `identiy:` into a silent loss of the identity. Every problem names the file, line and path.
  - dataset -> `System` (id = fides_key; url = `${<KEY>_DATABASE_URL}`: datasets carry no URL),
    collection -> `Table`, field with personal data categories -> `FieldDecl` (the first personal
    category), `fides_meta.identity` -> `identity` (email, phone_number -> phone, lawful's own
    identity names as they are, anything else -> other), `primary_key: true` -> `primary_key`.
  - A field whose only categories are `system.*`, or `user.unique_id` on a key column (a primary
    key or either end of a reference), is structure, not personal data: it becomes part of
    `primary_key`/`references` and no `FieldDecl`, unless it is an identity.
  - Erasure: a fides masking override is kept when lawful has the same strategy (null_rewrite ->
    null, string_rewrite -> fixed with its rewrite_value, hash/hmac/aes_encrypt -> hash, any other
    -> null; `read_only: true` -> keep; a collection's `{strategy: delete}` -> the table's
    `erase: delete_row`). Otherwise personal fields are erased with `null`, as Fides' default
    policy does. Primary keys get no strategy: a key cannot be nulled, the user chooses.
  - References. fideslang's `references` say that two fields hold the same values, like SQL's
    REFERENCES; `direction` only restricts which way Fides walks the edge. A lawful `Reference` is a
    foreign key: it sits on the table holding the referring column and points at the referenced
    key. So a reference is stored on the side that is *not* the primary key when exactly one side
    is one (`customer.id` referencing `orders.customer_id` becomes `orders: customer_id ->
    customer.id`), and on the declaring field otherwise. `direction` is dropped: lawful walks every
    reference both ways unless it is marked `other_person`.
  - Nested fields (documents, JSON) cannot be addressed by lawful's SQL engine: a nested field that
    holds personal data, an identity or a reference is a Problem; nested fields without personal
    data are skipped.
  - A collection without a declared primary key gets `["id"]` when it has an `id` field, else `[]`.
    Categories given for a whole collection or dataset are not spread onto its fields; only a
    field's own `data_categories` make it personal. `data_subjects` of the collection (else of the
    dataset) give the table's `subject` when the table holds personal data or references.

Export (`export_fides`)
  One dataset per system, accepted by fideslang's `Dataset` model. Every column lawful knows (the
  primary key, declared fields, reference columns) becomes a field with its data category,
  identity, `primary_key` and references (no `direction`: lawful walks them both ways, and a
  one-way `to` on `address.customer_id -> customer.id` would stop Fides from finding a customer's
  addresses). Erasure strategies Fides has are written as Fides' own masking overrides (null ->
  null_rewrite, hash -> hmac, fixed -> string_rewrite, keep -> read_only, a table's delete_row ->
  the collection's delete override). What fideslang cannot say is kept, machine-readable, under
  the dataset's free-form `meta: {lawful: ...}`: the URL, table subjects, retention rules,
  restricted columns, activities, mask/delete_row/match/provided per field, and references to
  another person (`other_person`), which are *not* written as fides references, because Fides
  would walk them and erase the other person. Importing lawful's own export therefore gives back
  exactly the systems exported; fides annotations edited since then win over `meta.lawful`.

`systems_yaml` prints systems as a manifest's `systems:` section, for pasting.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from fideslang.models import Dataset, DatasetCollection, DatasetField, FidesMeta
from fideslang.models import FidesopsMetaBackwardsCompat as _FidesopsCompat
from pydantic import BaseModel, ConfigDict, ValidationError

from lawful.manifest.errors import ManifestError, Problem, format_path
from lawful.manifest.errors import Path as DocPath
from lawful.manifest.load import read_source, unwrap_annotation
from lawful.manifest.model import FieldDecl, Id, Identity, Reference, Strategy, System, Table
from lawful.manifest.suggest import suggest
from lawful.manifest.yamlsource import Positions, SourceError, read_yaml

# --- vocabulary ------------------------------------------------------------------------------

_FIDES_IDENTITY: dict[str, Identity] = {
    **{i.value: i for i in Identity},
    "phone_number": Identity.phone,
}
_IDENTITY_FIDES: dict[Identity, str] = {i: i.value for i in Identity} | {
    Identity.phone: "phone_number"}

# The category an identity column holds when the dataset only says `system.*` about it.
_IDENTITY_CATEGORY: dict[Identity, str] = {
    Identity.email: "user.contact.email",
    Identity.phone: "user.contact.phone_number",
    Identity.customer_number: "user.unique_id",
    Identity.user_id: "user.unique_id",
    Identity.cookie_id: "user.device.cookie_id",
    Identity.national_id: "user.government_id.national_identification_number",
    Identity.ip_address: "user.device.ip_address",
    Identity.other: "user.unique_id",
}

_FIDES_MASKING: dict[str, Strategy] = {
    "null_rewrite": Strategy.null,
    "string_rewrite": Strategy.fixed,
    "hash": Strategy.hash,
    "hmac": Strategy.hash,
    "aes_encrypt": Strategy.hash,  # deterministic and keyed, like lawful's hash
}
_STRATEGY_MASKING: dict[Strategy, str] = {
    Strategy.null: "null_rewrite",
    Strategy.hash: "hmac",
    Strategy.fixed: "string_rewrite",
}

# Other fideslang resource types a file may hold beside `dataset:`; they are not read here.
_OTHER_RESOURCES = frozenset({
    "system", "data_category", "data_use", "data_subject", "data_qualifier", "organization",
    "policy", "registry", "evaluation",
})

_DEFAULT_ERASE = Strategy.null  # Fides' default erasure policy masks with null


def default_url(dataset_key: str) -> str:
    """`${POSTGRES_EXAMPLE_DATABASE_URL}` for dataset `postgres_example`: datasets hold no URL."""
    var = "".join(c if c.isalnum() else "_" for c in dataset_key.upper()).strip("_") or "DATASET"
    if var[0].isdigit():
        var = "DB_" + var
    return "${" + var + "_DATABASE_URL}"


# --- what lawful keeps under a dataset's `meta: {lawful: ...}` ---------------------------------


class _MetaModel(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class LawfulFieldMeta(_MetaModel):
    erase: Strategy | None = None
    fixed_value: str | None = None
    match: Literal["exact", "casefold"] | None = None
    provided: bool = True
    retention: Id | None = None


class LawfulReferenceMeta(_MetaModel):
    field: str
    to: str


class LawfulTableMeta(_MetaModel):
    subject: Id | None = None
    primary_key: list[str] | None = None  # only `[]`: a table without one, though it has `id`
    erase: Strategy | None = None
    retention: list[Id] = []
    restricted_column: str | None = None
    activities: list[Id] = []
    collected_at: str | None = None
    consent: list[dict[str, str]] = []
    fields: dict[str, LawfulFieldMeta] = {}
    other_person: list[LawfulReferenceMeta] = []


class LawfulDatasetMeta(_MetaModel):
    version: Literal[1] = 1
    url: str | None = None
    tables: dict[str, LawfulTableMeta] = {}


# --- problems pinned to the file ---------------------------------------------------------------


@dataclass
class _Problems:
    file: str
    positions: Positions = field(default_factory=Positions)
    items: list[Problem] = field(default_factory=list)

    def add(self, path: DocPath, message: str, hint: str | None = None,
            prefer_key: bool = False) -> None:
        line, col = self.positions.of(path, prefer_key)
        problem = Problem(self.file, line, col, format_path(path), message, hint)
        if problem not in self.items:
            self.items.append(problem)

    def raise_if_any(self) -> None:
        if self.items:
            raise ManifestError(self.items)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- import ----------------------------------------------------------------------------------


def import_fides(path: str | os.PathLike[str]) -> list[System]:
    """Read a fideslang dataset YAML file into lawful systems; ManifestError on any problem."""
    name = str(path)
    text = read_source(path, too_big_hint="split the datasets over several files")
    return import_fides_text(text, name)


def import_fides_text(text: str, name: str = "<fides>") -> list[System]:
    """`import_fides` on text already read; `name` is the file named in problems."""
    data, positions = _parse(text, name)
    problems = _Problems(name, positions)
    datasets = _validate(data, problems)
    problems.raise_if_any()
    systems = _Importer(datasets, problems).run()
    problems.raise_if_any()
    return systems


def _parse(text: str, name: str) -> tuple[dict[str, Any], Positions]:
    if not text.strip():
        raise ManifestError([Problem(name, 1, 1, "(document)", "the file is empty",
                                     "a fides dataset file starts with `dataset:` and a list "
                                     "of datasets")])
    try:
        return read_yaml(text)
    except SourceError as exc:
        raise ManifestError([Problem(name, exc.line, exc.column, format_path(exc.path),
                                     _fides_wording(exc.message))]) from None


def _fides_wording(message: str) -> str:
    """The YAML reader speaks of manifests; say what a fides file should be instead."""
    if message.startswith("the manifest must be a mapping"):
        return "a fides dataset file must be a mapping with `dataset:` at the top level"
    if message.startswith("the file holds no YAML document"):
        return "the file holds no YAML document; a fides dataset file starts with `dataset:`"
    if message.startswith("the file holds several YAML documents"):
        return ("the file holds several YAML documents (---); put every dataset in one "
                "`dataset:` list")
    return message


@dataclass
class _Loaded:
    index: int
    raw: dict[str, Any]
    model: Dataset


def _validate(data: dict[str, Any], problems: _Problems) -> list[_Loaded]:
    for key in data:
        if key != "dataset" and key not in _OTHER_RESOURCES:
            problems.add((key,), f"unknown key {key!r}",
                         suggest(key, ["dataset", *_OTHER_RESOURCES]) or
                         "a fides dataset file holds `dataset:` and a list of datasets",
                         prefer_key=True)
    if "dataset" not in data:
        others = sorted(k for k in data if k in _OTHER_RESOURCES)
        held = f" (it holds fides {', '.join(others)} resources)" if others else ""
        problems.add((), f"no `dataset:` list in the file{held}",
                     "a fides dataset file holds `dataset:` and a list of datasets")
        return []
    raw_list = data["dataset"]
    if not isinstance(raw_list, list):
        problems.add(("dataset",), f"`dataset:` must be a list of datasets, not "
                                   f"{type(raw_list).__name__} {_show(raw_list)}",
                     "write `- fides_key: ...` entries under `dataset:`")
        return []
    if not raw_list:
        problems.add(("dataset",), "the `dataset:` list is empty")
        return []
    loaded: list[_Loaded] = []
    for i, raw in enumerate(raw_list):
        base: DocPath = ("dataset", i)
        if not isinstance(raw, dict):
            problems.add(base, f"a dataset must be a mapping with fides_key and collections, "
                               f"not {_show(raw)}")
            continue
        before = len(problems.items)
        _check_keys(raw, Dataset, base, problems)
        try:
            model = Dataset.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                _add_pydantic(err, raw, base, problems)
            continue
        if len(problems.items) == before:
            loaded.append(_Loaded(i, raw, model))
    return loaded


def _check_keys(value: Any, annotation: Any, path: DocPath, problems: _Problems) -> None:
    """Unknown keys, which fideslang's models silently drop, at any depth."""
    kind = unwrap_annotation(annotation)
    if typing.get_origin(kind) is list:
        if isinstance(value, list):
            (item,) = typing.get_args(kind)
            for i, element in enumerate(value):
                _check_keys(element, item, (*path, i), problems)
        return
    if not (isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(value, dict)):
        return
    fields = kind.model_fields
    allowed = set(fields)
    if issubclass(kind, _FidesopsCompat):
        allowed.add("fidesops_meta")
    for key, sub in value.items():
        if key not in allowed:
            hint = suggest(str(key), allowed) or f"allowed keys: {', '.join(sorted(allowed))}"
            problems.add((*path, key), f"unknown key {key!r}", hint, prefer_key=True)
            continue
        target = "fides_meta" if key == "fidesops_meta" else key
        _check_keys(sub, fields[target].annotation, (*path, key), problems)


def _doc_path(raw: Any, base: DocPath, loc: Iterable[str | int]) -> DocPath:
    """A pydantic location as the document spells it (fides_meta may be written fidesops_meta)."""
    out: list[str | int] = list(base)
    current = raw
    for part in loc:
        if (part == "fides_meta" and isinstance(current, dict) and part not in current
                and "fidesops_meta" in current):
            part = "fidesops_meta"
        out.append(part)
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(out)


def _clean_loc(loc: Iterable[Any]) -> list[str | int]:
    return [p for p in loc if isinstance(p, int) or not (
        "[" in p or p.startswith(("function-", "lax-", "strict-")) or p in {"str", "int"})]


def _add_pydantic(err: Any, raw: Any, base: DocPath, problems: _Problems) -> None:
    loc = _clean_loc(err["loc"])
    path = _doc_path(raw, base, loc)
    kind: str = err["type"]
    message: str = err["msg"]
    if kind == "missing":
        message = f"missing required key {loc[-1]!r}" if loc else "missing required key"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"wrong type: {message[0].lower() + message[1:]} (got {_show(err.get('input'))})"
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif kind in {"enum", "literal_error"}:
        message = f"{_show(err.get('input'))} is not allowed: {message[0].lower() + message[1:]}"
    problems.add(path, message)


# --- fides models -> lawful systems ------------------------------------------------------------


Column = tuple[str, str, str]  # dataset, collection, field


def _meta(fld: DatasetField) -> FidesMeta:
    return fld.fides_meta or FidesMeta()


def _personal_parts(fld: DatasetField, prefix: str) -> Iterator[str]:
    """Nested paths under `fld` that hold personal data, an identity or a reference."""
    for child in fld.fields or []:
        path = f"{prefix}.{child.name}"
        meta = _meta(child)
        cats = [c for c in child.data_categories or [] if not c.startswith("system")]
        if cats or meta.identity or meta.references:
            yield path
        yield from _personal_parts(child, path)


@dataclass
class _Ref:
    order: tuple[int, int, int]
    reference: Reference


class _Importer:
    def __init__(self, datasets: list[_Loaded], problems: _Problems):
        self.datasets = datasets
        self.problems = problems
        self.by_key: dict[str, _Loaded] = {}
        self.metas: dict[str, LawfulDatasetMeta] = {}
        self.pks: dict[tuple[str, str], list[str]] = {}
        self.names: dict[tuple[str, str], list[str]] = {}
        self.keys: set[Column] = set()
        self.refs: dict[tuple[str, str], list[_Ref]] = {}

    # positions in the file, by raw index
    def _coll_path(self, ds: _Loaded, ci: int) -> DocPath:
        return ("dataset", ds.index, "collections", ci)

    def run(self) -> list[System]:
        for ds in self.datasets:
            key = ds.model.fides_key
            if key in self.by_key:
                first = self.by_key[key].index
                self.problems.add(("dataset", ds.index, "fides_key"),
                                  f"duplicate dataset fides_key {key!r} (also dataset {first})",
                                  "give each dataset its own fides_key")
                continue
            self.by_key[key] = ds
            self.metas[key] = self._lawful_meta(ds)
            for coll, _ci in self._collections(ds):
                fields = [f for f, _fi in self._fields(coll, ds)]
                names = [f.name for f in fields]
                pk = [f.name for f in fields if _meta(f).primary_key]
                table_meta = self.metas[key].tables.get(coll.name)
                if not pk and table_meta is not None and table_meta.primary_key is not None:
                    pk = table_meta.primary_key
                elif not pk and "id" in names:
                    pk = ["id"]  # no key declared: the usual one
                self.pks[(key, coll.name)] = pk
                self.names[(key, coll.name)] = names
                self.keys.update((key, coll.name, p) for p in self.pks[(key, coll.name)])
        for key in self.by_key:
            self._references(self.by_key[key])
        return [self._system(self.by_key[key]) for key in self.by_key]

    def _collections(self, ds: _Loaded) -> Iterator[tuple[DatasetCollection, int]]:
        """Collections in the file's order (fideslang sorts them by name)."""
        by_name = {c.name: c for c in ds.model.collections}
        for ci, raw in enumerate(ds.raw.get("collections") or []):
            yield by_name[raw["name"]], ci

    def _fields(self, coll: DatasetCollection, ds: _Loaded) -> Iterator[tuple[DatasetField, int]]:
        by_name = {f.name: f for f in coll.fields}
        raw_coll = next(c for c in ds.raw["collections"] if c["name"] == coll.name)
        for fi, raw in enumerate(raw_coll.get("fields") or []):
            yield by_name[raw["name"]], fi

    def _lawful_meta(self, ds: _Loaded) -> LawfulDatasetMeta:
        meta = ds.raw.get("meta")
        raw = meta.get("lawful") if isinstance(meta, dict) else None
        if raw is None:
            return LawfulDatasetMeta()
        base: DocPath = ("dataset", ds.index, "meta", "lawful")
        try:
            return LawfulDatasetMeta.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                if err["type"] == "extra_forbidden":
                    loc = _clean_loc(err["loc"])
                    self.problems.add((*base, *loc), f"unknown key {loc[-1]!r} in lawful's "
                                      "metadata", "meta.lawful is written by `lawful`; "
                                      "remove the key", prefer_key=True)
                else:
                    _add_pydantic(err, raw, base, self.problems)
            return LawfulDatasetMeta()

    # references ---------------------------------------------------------------------------

    def _references(self, ds: _Loaded) -> None:
        key = ds.model.fides_key
        for coll, ci in self._collections(ds):
            for fld, fi in self._fields(coll, ds):
                for j, ref in enumerate(_meta(fld).references or []):
                    path = self._ref_path(ds, ci, fi, j)
                    self._reference((key, coll.name, fld.name), (fi, j), ref.dataset, ref.field,
                                    path)
            table_meta = self.metas[key].tables.get(coll.name)
            for j, other in enumerate(table_meta.other_person if table_meta else []):
                names = self.names[(key, coll.name)]
                order = (names.index(other.field) if other.field in names else len(names), 1, j)
                self._place(key, coll.name, order,
                            Reference(field=other.field, to=other.to, other_person=True))

    def _ref_path(self, ds: _Loaded, ci: int, fi: int, j: int) -> DocPath:
        raw = ds.raw["collections"][ci]["fields"][fi]
        meta_key = "fides_meta" if "fides_meta" in raw else "fidesops_meta"
        return (*self._coll_path(ds, ci), "fields", fi, meta_key, "references", j)

    def _reference(self, this: Column, order: tuple[int, int], dataset: str, target: str,
                   path: DocPath) -> None:
        parts = target.split(".")
        if len(parts) != 2 or not all(parts):
            if len(parts) > 2:
                self.problems.add((*path, "field"), f"reference to the nested field {target!r}: "
                                  "lawful's SQL engine joins whole columns and does not support "
                                  "nested fields", "reference a top-level column")
            else:
                self.problems.add((*path, "field"), f"{target!r} is not 'collection.field'",
                                  "write the referenced field as collection.field")
            return
        other: Column = (dataset, parts[0], parts[1])
        if dataset in self.by_key:
            if (dataset, other[1]) not in self.names:
                known = [c for (d, c) in self.names if d == dataset]
                self.problems.add((*path, "field"),
                                  f"unknown collection {other[1]!r} in dataset {dataset!r}",
                                  suggest(other[1], known, list_if_few=True))
                return
            if other[2] not in self.names[(dataset, other[1])]:
                self.problems.add((*path, "field"),
                                  f"unknown field {other[2]!r} in {dataset}.{other[1]}",
                                  suggest(other[2], self.names[(dataset, other[1])],
                                          list_if_few=True))
                return
        self.keys.update({this, other})
        this_pk = this[2] in self.pks.get(this[:2], [])
        other_pk = other[2] in self.pks.get(other[:2], [])
        if this_pk and not other_pk and dataset in self.by_key:
            # Declared on the referenced key: the foreign key is the other column.
            names = self.names[other[:2]]
            self._place(dataset, other[1], (names.index(other[2]), 0, order[1]),
                        Reference(field=other[2], to=_target(dataset, this)))
        else:
            self._place(this[0], this[1], (order[0], 0, order[1]),
                        Reference(field=this[2], to=_target(this[0], other)))

    def _place(self, dataset: str, table: str, order: tuple[int, int, int],
               ref: Reference) -> None:
        held = self.refs.setdefault((dataset, table), [])
        for existing in held:
            if (existing.reference.field, existing.reference.to) == (ref.field, ref.to):
                existing.reference.other_person |= ref.other_person
                return
        held.append(_Ref(order, ref))

    # systems, tables, fields ----------------------------------------------------------------

    def _system(self, ds: _Loaded) -> System:
        key = ds.model.fides_key
        meta = self.metas[key]
        tables = [t for coll, ci in self._collections(ds)
                  if (t := self._table(ds, coll, ci)) is not None]
        data = {"id": key, "name": ds.model.name, "url": meta.url or default_url(key),
                "tables": tables}
        try:
            return System.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = _clean_loc(err["loc"])
                if loc[:1] == ["id"]:
                    self.problems.add(("dataset", ds.index, "fides_key"),
                                      f"fides_key {key!r} cannot be a lawful system id: "
                                      f"{err['msg'][0].lower() + err['msg'][1:]}",
                                      "use letters, digits and '.', '_' or '-', starting with "
                                      "a letter or digit")
                else:
                    self.problems.add(("dataset", ds.index), "not usable as a lawful system: "
                                      f"{format_path(tuple(loc))}: {err['msg']}")
            return System(id="invalid", url=data["url"])

    def _table(self, ds: _Loaded, coll: DatasetCollection, ci: int) -> Table | None:
        key = ds.model.fides_key
        tmeta = self.metas[key].tables.get(coll.name)
        coll_meta = coll.fides_meta
        native_delete = bool(coll_meta and coll_meta.masking_strategy_override)
        erase = Strategy.delete_row if native_delete else (tmeta.erase if tmeta else None)
        pk = self.pks[(key, coll.name)]
        fields: list[FieldDecl] = []
        for fld, fi in self._fields(coll, ds):
            path: DocPath = (*self._coll_path(ds, ci), "fields", fi)
            decl = self._field(key, coll.name, fld, path, tmeta, erase, pk)
            if decl is not None:
                fields.append(decl)
        refs = sorted(self.refs.get((key, coll.name), []), key=lambda r: r.order)
        if tmeta is not None:
            subject = tmeta.subject
        else:
            # A table of the person's data (or on the way to it) is about the dataset's subject;
            # a lookup table such as `product` is about nobody.
            subjects = coll.data_subjects or ds.model.data_subjects or []
            subject = subjects[0] if subjects and (fields or refs) else None
        data: dict[str, Any] = {
            "name": coll.name, "subject": subject, "primary_key": pk, "fields": fields,
            "references": [r.reference for r in refs], "erase": erase,
        }
        if tmeta is not None:
            data |= {"retention": tmeta.retention, "activities": tmeta.activities,
                     "restricted_column": tmeta.restricted_column,
                     "collected_at": tmeta.collected_at, "consent": tmeta.consent}
        try:
            return Table.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(_clean_loc(err["loc"]))
                self.problems.add((*self._coll_path(ds, ci), "name"),
                                  f"collection {coll.name!r} is not usable as a lawful table: "
                                  f"{format_path(loc)}: {err['msg']}")
            return None

    def _field(self, key: str, table: str, fld: DatasetField, path: DocPath,
               tmeta: LawfulTableMeta | None, table_erase: Strategy | None,
               pk: list[str]) -> FieldDecl | None:
        if fld.fields:
            nested = list(_personal_parts(fld, fld.name))
            if nested:
                shown = ", ".join(nested[:3]) + (", ..." if len(nested) > 3 else "")
                self.problems.add(
                    (*path, "fields"),
                    f"{table}.{fld.name} has nested fields holding personal data ({shown}): "
                    "lawful's SQL engine erases and exports whole columns, and does not support "
                    "nested fields",
                    f"annotate the column {fld.name!r} itself with the category of its most "
                    "sensitive part and drop its nested `fields:`, or leave this collection "
                    "to a document-store tool", prefer_key=True)
                return None
        meta = _meta(fld)
        identity = None if meta.identity is None else _FIDES_IDENTITY.get(
            meta.identity, Identity.other)
        categories = list(fld.data_categories or [])
        is_key = (key, table, fld.name) in self.keys
        personal = [c for c in categories if not (
            c.startswith("system") or (is_key and c.startswith("user.unique_id")))]
        fmeta = tmeta.fields.get(fld.name) if tmeta else None
        if fmeta is not None:
            category = categories[0] if categories else None
        elif identity is not None:
            category = personal[0] if personal else _IDENTITY_CATEGORY[identity]
        elif personal:
            category = personal[0]
        else:
            return None
        native, fixed_value = _native_erase(meta)
        if native is not None:
            erase: Strategy | None = native
        elif fmeta is not None:
            erase = fmeta.erase
        elif table_erase is not None or fld.name in pk:
            erase = None
        else:
            erase = _DEFAULT_ERASE
        data: dict[str, Any] = {"name": fld.name, "category": category, "identity": identity,
                                "erase": erase, "fixed_value": fixed_value}
        if fmeta is not None:
            data |= {"match": fmeta.match, "provided": fmeta.provided,
                     "retention": fmeta.retention}
            if fixed_value is None:
                data["fixed_value"] = fmeta.fixed_value
        return FieldDecl.model_validate(data)


def _target(holder_dataset: str, column: Column) -> str:
    dataset, table, name = column
    return f"{table}.{name}" if dataset == holder_dataset else f"{dataset}.{table}.{name}"


def _native_erase(meta: FidesMeta) -> tuple[Strategy | None, str | None]:
    if meta.read_only:
        return Strategy.keep, None
    override = meta.masking_strategy_override
    if override is None:
        return None, None
    if override.strategy == "string_rewrite":
        value = (override.configuration or {}).get("rewrite_value")
        return Strategy.fixed, (None if value is None else str(value))
    return _FIDES_MASKING.get(override.strategy, _DEFAULT_ERASE), None


# --- export ----------------------------------------------------------------------------------


def export_fides(systems: Sequence[System]) -> str:
    """The systems as a fideslang dataset YAML document (`dataset:` list)."""
    datasets = [_dataset(s) for s in systems]
    for data in datasets:
        Dataset.model_validate(data)  # ours to get right: fail loudly here, not in Fides
    return yaml.dump({"dataset": datasets}, Dumper=_Dumper, sort_keys=False,
                     allow_unicode=True, width=4096)


def _dataset(system: System) -> dict[str, Any]:
    out: dict[str, Any] = {"fides_key": system.id}
    if system.name:
        out["name"] = system.name
    tables: dict[str, Any] = {}
    collections = []
    for table in system.tables:
        collection, meta = _collection(system, table)
        collections.append(collection)
        if meta:
            tables[table.name] = meta
    lawful: dict[str, Any] = {"version": 1, "url": system.url}
    if tables:
        lawful["tables"] = tables
    out["collections"] = collections
    out["meta"] = {"lawful": lawful}
    return out


def _collection(system: System, table: Table) -> tuple[dict[str, Any], dict[str, Any]]:
    columns: dict[str, dict[str, Any]] = {}

    def column(name: str) -> dict[str, Any]:
        return columns.setdefault(name, {"categories": None, "meta": {}})

    for name in table.primary_key:
        column(name)["meta"]["primary_key"] = True
    field_meta: dict[str, Any] = {}
    for fld in table.fields:
        col = column(fld.name)
        if fld.category:
            col["categories"] = [fld.category]
        if fld.identity:
            col["meta"]["identity"] = _IDENTITY_FIDES[fld.identity]
        native, extra = _erase_out(fld)
        col["meta"] |= native
        field_meta[fld.name] = _Flow(extra)
    other_person: list[dict[str, str]] = []
    for ref in table.references:
        col = column(ref.field)
        if ref.other_person:
            other_person.append(_Flow(field=ref.field, to=ref.to))
            continue
        parts = ref.to.split(".")
        if len(parts) not in (2, 3):
            raise ValueError(f"{table.name}: reference to {ref.to!r} is not 'table.column' or "
                             "'system.table.column'")
        dataset = system.id if len(parts) == 2 else parts[0]
        col["meta"].setdefault("references", []).append(
            {"dataset": dataset, "field": ".".join(parts[-2:])})
    fields = []
    for name, col in columns.items():
        entry: dict[str, Any] = {"name": name}
        if col["categories"]:
            entry["data_categories"] = _FlowList(col["categories"])
        if col["meta"]:
            entry["fides_meta"] = col["meta"]
        fields.append(entry)
    collection: dict[str, Any] = {"name": table.name, "fields": fields}
    if table.erase is Strategy.delete_row:
        collection["fides_meta"] = {"masking_strategy_override": {"strategy": "delete"}}

    meta: dict[str, Any] = {}
    if table.subject:
        meta["subject"] = table.subject
    if not table.primary_key:
        meta["primary_key"] = _FlowList()
    if table.erase is not None and table.erase is not Strategy.delete_row:
        meta["erase"] = table.erase.value
    if table.retention:
        meta["retention"] = _FlowList(table.retention)
    if table.restricted_column:
        meta["restricted_column"] = table.restricted_column
    if table.activities:
        meta["activities"] = _FlowList(table.activities)
    if table.collected_at:
        meta["collected_at"] = table.collected_at
    if table.consent:
        meta["consent"] = [c.model_dump(exclude_none=True) for c in table.consent]
    if field_meta:
        meta["fields"] = field_meta
    if other_person:
        meta["other_person"] = other_person
    return collection, meta


def _erase_out(fld: FieldDecl) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fides_meta entries Fides understands, what only lawful's meta can hold)."""
    native: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    strategy = fld.erase
    if strategy is Strategy.keep:
        native["read_only"] = True
    elif strategy is Strategy.fixed and fld.fixed_value is not None:
        native["masking_strategy_override"] = {
            "strategy": "string_rewrite", "configuration": {"rewrite_value": fld.fixed_value}}
    elif strategy in _STRATEGY_MASKING and strategy is not Strategy.fixed:
        native["masking_strategy_override"] = {"strategy": _STRATEGY_MASKING[strategy]}
    elif strategy is not None:
        extra["erase"] = strategy.value  # mask, delete_row, fixed without a text
    if fld.fixed_value is not None and "masking_strategy_override" not in native:
        extra["fixed_value"] = fld.fixed_value
    if fld.match:
        extra["match"] = fld.match
    if not fld.provided:
        extra["provided"] = False
    if fld.retention:
        extra["retention"] = fld.retention
    return native, extra


# --- YAML out --------------------------------------------------------------------------------


class _Flow(dict[str, Any]):
    """A mapping written on one line: `{name: email, category: user.contact.email}`."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as the manifests in examples/ are written.
        super().increase_indent(flow, False)


class _FlowList(list[Any]):
    """A list written on one line: `[user.contact.email]`."""


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", dict(data), flow_style=True)


def _represent_flow_list(dumper: yaml.SafeDumper, data: _FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", list(data), flow_style=True)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowList, _represent_flow_list)


def systems_yaml(systems: Sequence[System]) -> str:
    """The systems as the YAML of a manifest's `systems:` section, defaults left out."""
    items: list[dict[str, Any]] = []
    for system in systems:
        data = system.model_dump(mode="json", exclude_defaults=True)
        for table in data.get("tables", []):
            for key in ("fields", "references"):
                if key in table:
                    table[key] = [_Flow(item) for item in table[key]]
        items.append(data)
    # No line wrapping: a field's flow mapping stays on one line, however long.
    return yaml.dump({"systems": items}, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=4096)
