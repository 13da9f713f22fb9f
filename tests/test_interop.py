"""lawful.interop: fideslang datasets in and out, drafts reflected from databases, ${ENV} URLs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fideslang.models import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from lawful.interop import expand_url, export_fides, import_fides, reflect, systems_yaml
from lawful.interop.fides import import_fides_text
from lawful.interop.reflect import guess_column
from lawful.manifest import ManifestError, load_manifest, load_manifest_text
from lawful.manifest.model import FieldDecl, Identity, Reference, Strategy, System
from tests.conftest import KERF, service_url

DATA = Path(__file__).parent / "data" / "fides"
SAMPLE = DATA / "postgres_example.yml"

MINIMAL = """\
lawful: 1
organisation:
  name: Example
  controllers:
    - {id: example, name: Example Ltd, address: "1 Main Street, Utrecht", country: NL}
subjects:
  - {id: customer, name: Customers}
  - {id: visitor, name: Website visitors}
"""


@pytest.fixture(scope="module")
def kerf_systems() -> list[System]:
    return load_manifest(KERF).systems


def _table(system: System, name: str) -> Any:
    return next(t for t in system.tables if t.name == name)


def _field(system: System, table: str, name: str) -> FieldDecl:
    return next(f for f in _table(system, table).fields if f.name == name)


# --- export and round trip -------------------------------------------------------------------


def test_kerf_round_trip_is_exact(kerf_systems: list[System], tmp_path: Path) -> None:
    path = tmp_path / "kerf_dataset.yml"
    path.write_text(export_fides(kerf_systems), encoding="utf-8")
    assert import_fides(path) == kerf_systems


def test_export_is_a_fideslang_dataset(kerf_systems: list[System]) -> None:
    document = yaml.safe_load(export_fides(kerf_systems))
    assert list(document) == ["dataset"]
    (raw,) = document["dataset"]
    dataset = Dataset.model_validate(raw)
    (kerf,) = kerf_systems
    assert (dataset.fides_key, dataset.name) == (kerf.id, kerf.name)
    collections = {c.name: {f.name: f for f in c.fields} for c in dataset.collections}
    assert set(collections) == {t.name for t in kerf.tables}
    for table in kerf.tables:
        fields = collections[table.name]
        for key in table.primary_key:
            meta = fields[key].fides_meta
            assert meta is not None and meta.primary_key, (table.name, key)
        for decl in table.fields:
            exported = fields[decl.name]
            assert exported.data_categories == ([decl.category] if decl.category else None)
            identity = exported.fides_meta.identity if exported.fides_meta else None
            wanted = {None: None, Identity.phone: "phone_number"}.get(
                decl.identity, decl.identity.value if decl.identity else None)
            assert identity == wanted, (table.name, decl.name)
        for ref in table.references:
            meta = fields[ref.field].fides_meta
            refs = [(r.dataset, r.field, r.direction) for r in (meta.references or [])] if meta \
                else []
            if ref.other_person:
                # Somebody else's row: no fides reference, or Fides would walk into it and erase
                # the other person too.
                assert refs == [], (table.name, ref.field)
            else:
                assert (kerf.id, ref.to, None) in refs, (table.name, ref.field)
    # What fideslang cannot say is kept under meta.lawful.
    assert raw["meta"]["lawful"]["url"] == kerf.url


def test_export_maps_strategies_to_fides_masking() -> None:
    system = System(id="shop", name="Shop", url="${SHOP_DB}", tables=[
        {"name": "customer", "subject": "customer", "restricted_column": "restricted",
         "fields": [
             {"name": "email", "category": "user.contact.email", "identity": "email",
              "erase": "hash"},
             {"name": "first_name", "category": "user.name.first", "erase": "fixed",
              "fixed_value": "(erased)"},
             {"name": "phone", "category": "user.contact.phone_number", "identity": "phone",
              "erase": "null"},
             {"name": "iban", "category": "user.financial.bank_account", "erase": "mask"},
             {"name": "vat_id", "category": "user.financial", "erase": "keep",
              "retention": "invoices", "provided": False},
         ]},
        {"name": "address", "erase": "delete_row",
         "fields": [{"name": "street", "category": "user.contact.address.street"}],
         "references": [{"field": "customer_id", "to": "customer.id"}]},
        {"name": "orders", "references": [
            {"field": "customer_id", "to": "customer.id"},
            {"field": "partner_id", "to": "partner.id", "other_person": True}]},
        {"name": "partner"},
        {"name": "audit_log", "primary_key": [], "fields": [
            {"name": "id", "category": "user.unique_id.pseudonymous", "erase": "hash"}]},
    ])
    text = export_fides([system])
    (raw,) = yaml.safe_load(text)["dataset"]
    dataset = Dataset.model_validate(raw)
    collections = {c.name: c for c in dataset.collections}
    customer = {f.name: f.fides_meta for f in collections["customer"].fields}

    def override(name: str) -> tuple[str, dict[str, Any] | None] | None:
        meta = customer[name]
        assert meta is not None
        found = meta.masking_strategy_override
        return None if found is None else (found.strategy, found.configuration or None)

    assert override("email") == ("hmac", None)
    assert override("first_name") == ("string_rewrite", {"rewrite_value": "(erased)"})
    assert override("phone") == ("null_rewrite", None)
    assert customer["phone"] is not None and customer["phone"].identity == "phone_number"
    assert customer["iban"] is None  # mask: Fides has no such strategy
    assert customer["vat_id"] is not None and customer["vat_id"].read_only is True  # keep
    address_meta = collections["address"].fides_meta
    assert address_meta is not None and address_meta.masking_strategy_override is not None
    assert address_meta.masking_strategy_override.strategy.value == "delete"
    orders = {f.name: f.fides_meta for f in collections["orders"].fields}
    assert orders["partner_id"] is None
    assert orders["customer_id"] is not None and orders["customer_id"].references is not None
    (ref,) = orders["customer_id"].references
    assert (ref.dataset, ref.field, ref.direction) == ("shop", "customer.id", None)
    lawful = raw["meta"]["lawful"]["tables"]
    assert lawful["customer"]["fields"]["iban"] == {"erase": "mask"}
    assert lawful["customer"]["fields"]["vat_id"] == {"provided": False, "retention": "invoices"}
    assert lawful["customer"]["restricted_column"] == "restricted"
    assert lawful["orders"]["other_person"] == [{"field": "partner_id", "to": "partner.id"}]
    assert import_fides_text(text) == [system]


def test_round_trip_without_lawful_meta_keeps_the_data_map(kerf_systems: list[System]) -> None:
    """A consumer that drops meta.lawful still gets every table, field, category, identity
    and reference back; only lawful-only attributes are lost."""
    document = yaml.safe_load(export_fides(kerf_systems))
    for dataset in document["dataset"]:
        del dataset["meta"]
    (back,) = import_fides_text(yaml.safe_dump(document, sort_keys=False), "stripped.yml")
    (kerf,) = kerf_systems
    assert back.id == kerf.id
    assert back.url == "${SHOP_DATABASE_URL}"
    assert [t.name for t in back.tables] == [t.name for t in kerf.tables]
    for ours, theirs in zip(kerf.tables, back.tables, strict=True):
        assert theirs.primary_key == ours.primary_key
        assert [(f.name, f.category, f.identity) for f in theirs.fields] == [
            (f.name, f.category, f.identity) for f in ours.fields], ours.name
        assert [(r.field, r.to) for r in theirs.references] == [
            (r.field, r.to) for r in ours.references if not r.other_person], ours.name
        assert (theirs.erase is Strategy.delete_row) == (ours.erase is Strategy.delete_row)
    # Strategies with a Fides equivalent survive even without lawful's metadata.
    native = {Strategy.null, Strategy.hash, Strategy.keep, Strategy.fixed}
    for ours, theirs in zip(kerf.tables, back.tables, strict=True):
        for mine, got in zip(ours.fields, theirs.fields, strict=True):
            if mine.erase in native and (mine.erase is not Strategy.fixed or mine.fixed_value):
                assert (got.erase, got.fixed_value) == (mine.erase, mine.fixed_value), mine.name


def test_fides_edits_win_over_lawful_meta(kerf_systems: list[System]) -> None:
    document = yaml.safe_load(export_fides(kerf_systems))
    customer = next(c for c in document["dataset"][0]["collections"] if c["name"] == "customer")
    email = next(f for f in customer["fields"] if f["name"] == "email")
    email["fides_meta"]["masking_strategy_override"] = {"strategy": "null_rewrite"}
    customer["fields"].append({"name": "birthday",
                               "data_categories": ["user.demographic.date_of_birth"]})
    (back,) = import_fides_text(yaml.safe_dump(document, sort_keys=False))
    assert _field(back, "customer", "email").erase is Strategy.null
    birthday = _field(back, "customer", "birthday")
    assert (birthday.category, birthday.erase) == ("user.demographic.date_of_birth",
                                                   Strategy.null)


def test_export_of_other_person_reference_across_systems() -> None:
    systems = [
        System(id="shop", url="${SHOP_DB}", tables=[{
            "name": "orders", "fields": [{"name": "note", "category": "user.content.private"}],
            "references": [{"field": "crm_contact_id", "to": "crm.contact.id"},
                           {"field": "agent_id", "to": "crm.agent.id", "other_person": True}],
        }]),
        System(id="crm", url="${CRM_DB}", tables=[
            {"name": "contact", "fields": [{"name": "email", "category": "user.contact.email",
                                            "identity": "email", "erase": "mask",
                                            "match": "casefold"}]},
            {"name": "agent", "primary_key": ["agent_no", "team"]},
        ]),
    ]
    text = export_fides(systems)
    raw = yaml.safe_load(text)["dataset"][0]
    orders = raw["collections"][0]["fields"]
    ref = next(f for f in orders if f["name"] == "crm_contact_id")["fides_meta"]["references"]
    assert ref == [{"dataset": "crm", "field": "contact.id"}]
    assert import_fides_text(text) == systems


# --- import of a fides file ------------------------------------------------------------------


def test_sample_dataset_imports_into_a_valid_manifest() -> None:
    systems = import_fides(SAMPLE)
    assert [s.id for s in systems] == ["postgres_example", "helpdesk"]
    shop, helpdesk = systems
    assert shop.name == "Postgres example shop"
    assert shop.url == "${POSTGRES_EXAMPLE_DATABASE_URL}"
    assert helpdesk.url == "${HELPDESK_DATABASE_URL}"
    manifest = load_manifest_text(MINIMAL + systems_yaml(systems), "sample-manifest.yaml")
    assert manifest.systems == systems


def test_sample_dataset_mapping() -> None:
    shop, helpdesk = import_fides(SAMPLE)
    assert [t.name for t in shop.tables] == [
        "customer", "address", "orders", "payment_card", "login", "visit", "service_request",
        "product"]
    customer = _table(shop, "customer")
    assert customer.subject == "customer"
    assert customer.primary_key == ["id"]
    # id (user.unique_id, a key), address_id and created (system.operations) are structure.
    assert [(f.name, f.category, f.identity, f.erase) for f in customer.fields] == [
        ("email", "user.contact.email", Identity.email, Strategy.null),
        ("name", "user.name", None, Strategy.null),
        ("phone", "user.contact.phone_number", Identity.phone, Strategy.null),
    ]
    assert customer.references == [Reference(field="address_id", to="address.id")]
    # direction: from, declared on the referring column: stays there.
    assert _table(shop, "orders").references == [
        Reference(field="customer_id", to="customer.id"),
        Reference(field="shipping_address_id", to="address.id"),
    ]
    assert _table(shop, "orders").fields == []
    # Declared on customer.id (the key) towards payment_card.customer_id: stored on the
    # referring side, where the foreign key is.
    assert _table(shop, "payment_card").references == [
        Reference(field="billing_address_id", to="address.id"),
        Reference(field="customer_id", to="customer.id"),
    ]
    assert _field(shop, "payment_card", "ccn").erase is Strategy.hash
    zip_code = _field(shop, "address", "zip")
    assert (zip_code.erase, zip_code.fixed_value) == (Strategy.fixed, "00000")
    # fidesops_meta (the old spelling) is read, and a collection's delete override is delete_row.
    login = _table(shop, "login")
    assert login.primary_key == ["id"]
    assert login.erase is Strategy.delete_row
    assert login.references == [Reference(field="customer_id", to="customer.id")]
    assert [(f.name, f.category, f.erase) for f in login.fields] == [
        ("time", "user.sensor", None)]
    visit = _table(shop, "visit")
    assert visit.subject == "visitor"
    assert visit.primary_key == []  # no primary key and no id column
    cookie = _field(shop, "visit", "cookie")
    assert (cookie.category, cookie.identity) == ("user.device.cookie_id", Identity.other)
    # An identity the dataset calls system.operations is still personal data.
    email = _field(shop, "service_request", "email")
    assert (email.category, email.identity) == ("user.contact.email", Identity.email)
    assert _field(shop, "service_request", "notes").erase is Strategy.keep
    product = _table(shop, "product")
    assert (product.fields, product.references, product.subject) == ([], [], None)
    ticket = _table(helpdesk, "ticket")
    assert ticket.subject is None
    assert ticket.references == [Reference(field="customer_id", to="postgres_example.customer.id")]
    assert [f.name for f in ticket.fields] == ["requester_email", "body"]


def test_systems_yaml_is_a_pasteable_systems_section(kerf_data: dict[str, Any],
                                                     kerf_systems: list[System]) -> None:
    text = systems_yaml(kerf_systems)
    assert text.startswith("systems:\n")
    assert "primary_key" not in text  # defaults are left out
    assert "erase: 'null'" in text  # quoted: a bare null would be YAML's null
    kerf_data.pop("systems")
    document = yaml.safe_dump(kerf_data, sort_keys=False, allow_unicode=True) + text
    assert load_manifest_text(document).systems == kerf_systems


NESTED = """\
dataset:
  - fides_key: mongo_example
    collections:
      - name: customer_details
        fields:
          - name: _id
            fides_meta: {primary_key: true}
          - name: email
            data_categories: [user.contact.email]
            fides_meta: {identity: email}
          - name: audit
            fides_meta: {data_type: object}
            fields:
              - name: created
                data_categories: [system.operations]
{extra}
"""

NESTED_PERSONAL = """\
          - name: workplace_info
            fields:
              - name: employer
              - name: position
                data_categories: [user.job_title]
"""


def test_nested_fields_without_personal_data_are_skipped() -> None:
    (system,) = import_fides_text(NESTED.replace("{extra}", ""))
    table = system.tables[0]
    assert table.primary_key == ["_id"]
    assert [f.name for f in table.fields] == ["email"]


def test_nested_personal_fields_are_refused() -> None:
    with pytest.raises(ManifestError) as caught:
        import_fides_text(NESTED.replace("{extra}", NESTED_PERSONAL), "mongo.yml")
    (problem,) = caught.value.problems
    assert problem.file == "mongo.yml"
    assert (problem.line, problem.path) == (17, "dataset[0].collections[0].fields[3].fields")
    assert "workplace_info.position" in problem.message
    assert "nested fields" in problem.message and "SQL engine" in problem.message


# --- malformed fides files -------------------------------------------------------------------

SHOP = """\
dataset:
  - fides_key: shop
    collections:
      - name: customer
        fields:
"""

MALFORMED: list[tuple[str, str, int, list[str]]] = [
    ("unknown key", SHOP + "          - name: email\n            fides_meta:\n"
     "              identiy: email\n", 8, ["unknown key 'identiy'", "did you mean identity?"]),
    ("unknown field key", SHOP + "          - name: email\n            data_categorie: [x]\n", 7,
     ["unknown key 'data_categorie'", "did you mean data_categories?"]),
    ("unknown top key", "datasets:\n  - fides_key: shop\n", 1,
     ["unknown key 'datasets'", "did you mean dataset?"]),
    ("old spelling, wrong type", SHOP + "          - name: email\n            fidesops_meta:\n"
     "              identity: [email]\n", 8, ["fidesops_meta.identity", "wrong type",
                                               "valid string"]),
    ("categories not a list", SHOP + "          - name: email\n"
     "            data_categories: user.contact.email\n", 7, ["wrong type", "valid list"]),
    ("collections not a list", "dataset:\n  - fides_key: shop\n    collections: customer\n", 3,
     ["dataset[0].collections", "wrong type", "valid list"]),
    ("dataset not a list", "dataset:\n  fides_key: shop\n", 2, ["must be a list of datasets"]),
    ("missing fides_key", "dataset:\n  - name: Shop\n    collections: []\n", 2,
     ["missing required key 'fides_key'"]),
    ("bad fides key", "dataset:\n  - fides_key: my shop\n    collections: []\n", 2,
     ["FidesKeys must only contain"]),
    ("bad data type", SHOP + "          - name: email\n            fides_meta: {data_type: str}\n",
     7, ["data type str is not supported"]),
    ("duplicate collections", "dataset:\n  - fides_key: shop\n    collections:\n"
     "      - {name: customer, fields: []}\n      - {name: customer, fields: []}\n", 4,
     ["Duplicate entries found: [customer]"]),
    ("not YAML", "dataset:\n  - fides_key: shop\n    collections: [\n", 4, ["malformed YAML"]),
    ("duplicate key", "dataset: []\ndataset: []\n", 2, ["duplicate key 'dataset'"]),
    ("empty", "", 1, ["the file is empty"]),
    ("only comments", "# a dataset will go here\n", 1, ["holds no YAML document"]),
    ("a list", "- fides_key: shop\n", 1, ["must be a mapping with `dataset:`"]),
    ("no datasets", "dataset: []\n", 1, ["`dataset:` list is empty"]),
    ("only systems", "system:\n  - fides_key: shop\n", 1,
     ["no `dataset:` list", "fides system resources"]),
    ("lawful id", "dataset:\n  - fides_key: _shop\n    collections: []\n", 2,
     ["cannot be a lawful system id"]),
    ("duplicate datasets", "dataset:\n  - {fides_key: a, collections: []}\n"
     "  - {fides_key: a, collections: []}\n", 3, ["duplicate dataset fides_key 'a'"]),
    ("unknown collection", SHOP + "          - name: order_id\n            fides_meta:\n"
     "              references: [{dataset: shop, field: orders.id}]\n", 8,
     ["unknown collection 'orders'"]),
    ("not collection.field", SHOP + "          - name: order_id\n            fides_meta:\n"
     "              references: [{dataset: shop, field: id}]\n", 8,
     ["'id' is not 'collection.field'"]),
    ("nested reference", SHOP + "          - name: order_id\n            fides_meta:\n"
     "              references: [{dataset: shop, field: customer.a.b}]\n", 8,
     ["nested field 'customer.a.b'"]),
    ("bad direction", SHOP + "          - name: order_id\n            fides_meta:\n"
     "              references: [{dataset: shop, field: customer.id, direction: up}]\n", 8,
     ["'up' is not allowed"]),
    ("bad lawful meta", "dataset:\n  - fides_key: shop\n    collections: []\n    meta:\n"
     "      lawful: {tables: {customer: {erase: wipe}}}\n", 5,
     ["meta.lawful.tables.customer.erase", "'wipe' is not allowed"]),
]


@pytest.mark.parametrize(("text", "line", "expected"),
                         [pytest.param(t, n, e, id=name) for name, t, n, e in MALFORMED])
def test_malformed_fides_files(text: str, line: int, expected: list[str]) -> None:
    with pytest.raises(ManifestError) as caught:
        import_fides_text(text, "fides.yml")
    problems = caught.value.problems
    assert problems, "a ManifestError carries its problems"
    assert all(p.file == "fides.yml" for p in problems)
    matching = [p for p in problems if all(e in str(p) for e in expected)]
    assert matching, f"{expected} not in:\n{caught.value}"
    assert matching[0].line == line, str(matching[0])


def test_all_problems_of_a_file_are_reported_at_once() -> None:
    text = SHOP + ("          - name: email\n            fides_meta: {identiy: email}\n"
                   "          - name: phone\n            data_categories: user.contact.phone\n")
    with pytest.raises(ManifestError) as caught:
        import_fides_text(text, "fides.yml")
    assert [p.line for p in caught.value.problems] == [7, 9]


def test_import_from_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        import_fides(tmp_path / "missing.yml")
    latin = tmp_path / "latin.yml"
    latin.write_bytes("dataset:\n  - fides_key: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="not UTF-8"):
        import_fides(latin)
    good = tmp_path / "good.yml"
    good.write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert import_fides(str(good)) == import_fides(SAMPLE)


# --- reflect ---------------------------------------------------------------------------------

SCHEMA = [
    """CREATE TABLE customer (
        id INTEGER PRIMARY KEY,
        email VARCHAR(200) NOT NULL UNIQUE,
        first_name VARCHAR(100), last_name VARCHAR(100), full_name VARCHAR(200),
        phone VARCHAR(40), company VARCHAR(200), job_title VARCHAR(100),
        password_hash VARCHAR(200), date_of_birth DATE, bsn VARCHAR(20),
        email_verified BOOLEAN, created_at TIMESTAMP, status VARCHAR(20))""",
    """CREATE TABLE address (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customer(id),
        street VARCHAR(200), city VARCHAR(100), postal_code VARCHAR(20), country VARCHAR(2))""",
    """CREATE TABLE payment (
        id INTEGER PRIMARY KEY, address_id INTEGER REFERENCES address(id),
        iban VARCHAR(34), card_last4 VARCHAR(4), amount NUMERIC(10, 2))""",
    """CREATE TABLE web_visit (
        visitor_id VARCHAR(64) NOT NULL, customer_id INTEGER REFERENCES customer(id),
        ip_address VARCHAR(45), user_agent TEXT, mobile VARCHAR(40), path TEXT,
        PRIMARY KEY (visitor_id, path))""",
]
DROP = ["DROP TABLE IF EXISTS web_visit", "DROP TABLE IF EXISTS payment",
        "DROP TABLE IF EXISTS address", "DROP TABLE IF EXISTS customer"]


def _check_reflected(system: System) -> None:
    assert [t.name for t in system.tables] == ["address", "customer", "payment", "web_visit"]
    customer = _table(system, "customer")
    assert customer.primary_key == ["id"]
    assert [(f.name, f.category, f.identity) for f in customer.fields] == [
        ("email", "user.contact.email", Identity.email),
        ("first_name", "user.name.first", None),
        ("last_name", "user.name.last", None),
        ("full_name", "user.name", None),
        ("phone", "user.contact.phone_number", Identity.phone),
        ("company", "user.contact.organization", None),
        ("job_title", "user.job_title", None),
        ("password_hash", "user.authorization.password", None),
        ("date_of_birth", "user.demographic.date_of_birth", None),
        ("bsn", "user.government_id.national_identification_number", Identity.national_id),
    ]
    # NOT NULL: nulling would fail, so the draft leaves the strategy to the user.
    assert _field(system, "customer", "email").erase is None
    assert _field(system, "customer", "phone").erase is Strategy.null
    address = _table(system, "address")
    assert [(f.name, f.category) for f in address.fields] == [
        ("street", "user.contact.address.street"), ("city", "user.contact.address.city"),
        ("postal_code", "user.contact.address.postal_code"),
        ("country", "user.contact.address.country")]
    assert address.references == [Reference(field="customer_id", to="customer.id")]
    payment = _table(system, "payment")
    assert [(f.name, f.category) for f in payment.fields] == [
        ("iban", "user.financial.bank_account"), ("card_last4", "user.financial.credit_card")]
    assert payment.references == [Reference(field="address_id", to="address.id")]
    visit = _table(system, "web_visit")
    assert visit.primary_key == ["visitor_id", "path"]
    assert [(f.name, f.category, f.identity, f.erase) for f in visit.fields] == [
        ("visitor_id", "user.device.cookie_id", Identity.cookie_id, None),
        ("ip_address", "user.device.ip_address", None, Strategy.null),
        ("user_agent", "user.device", None, Strategy.null),
        ("mobile", "user.contact.phone_number", Identity.phone, Strategy.null),
    ]
    assert visit.references == [Reference(field="customer_id", to="customer.id")]
    # The draft is a valid systems section.
    load_manifest_text(MINIMAL + systems_yaml([system]), "reflected.yaml")


def test_reflect_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shop.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for statement in SCHEMA:
            conn.exec_driver_sql(statement)
    engine.dispose()
    monkeypatch.setenv("LAWFUL_TEST_SHOP_DIR", str(tmp_path))
    system = reflect("sqlite:///${LAWFUL_TEST_SHOP_DIR}/shop.db", "shop")
    assert system.id == "shop"
    assert system.url == "sqlite:///${LAWFUL_TEST_SHOP_DIR}/shop.db"  # as given, unexpanded
    _check_reflected(system)


@pytest.mark.postgres
def test_reflect_postgres() -> None:
    url = service_url("postgres")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS lawful_reflect_test")
        conn.exec_driver_sql("SET search_path TO lawful_reflect_test")
        for statement in [*DROP, *SCHEMA]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    system = reflect(url + "?options=-csearch_path%3Dlawful_reflect_test")
    assert system.id == "db"
    _check_reflected(system)


def test_reflect_down_database_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError) as caught:
        reflect("postgresql+psycopg://lawful:s3cret-pw@127.0.0.1:1/shop")
    message = str(caught.value)
    assert message.startswith("cannot connect to postgresql+psycopg://lawful:***@127.0.0.1:1/shop")
    assert "refused" in message.lower()
    assert "s3cret-pw" not in message
    assert "\n" not in message and "Traceback" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_reflect_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(ConnectionError, match="no SQLite database"):
        reflect(f"sqlite:///{path}")
    assert not path.exists()


def test_reflect_refuses_bad_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAWFUL_TEST_UNSET_URL", raising=False)
    with pytest.raises(ValueError, match="LAWFUL_TEST_UNSET_URL is not set"):
        reflect("${LAWFUL_TEST_UNSET_URL}")
    with pytest.raises(ValueError, match="cannot read the database URL"):
        reflect("not a url")


def test_reflected_url_never_carries_a_clear_password(tmp_path: Path) -> None:
    from lawful.interop.reflect import _safe_url

    assert _safe_url("postgresql://app:hunter2@db/shop", "shop") == (
        "postgresql://app:${SHOP_DB_PASSWORD}@db/shop")
    assert _safe_url("postgresql://app:${PW}@db/shop", "shop") == "postgresql://app:${PW}@db/shop"
    assert _safe_url("postgresql://app@db/shop", "shop") == "postgresql://app@db/shop"
    assert _safe_url("${SHOP_URL}", "shop") == "${SHOP_URL}"


@pytest.mark.parametrize(("name", "category", "identity"), [
    ("email", "user.contact.email", Identity.email),
    ("e_mail", "user.contact.email", Identity.email),
    ("mail", "user.contact.email", Identity.email),
    ("billingEmail", "user.contact.email", Identity.email),
    ("phone_number", "user.contact.phone_number", Identity.phone),
    ("tel", "user.contact.phone_number", Identity.phone),
    ("given_name", "user.name.first", None),
    ("surname", "user.name.last", None),
    ("name", "user.name", None),
    ("zip", "user.contact.address.postal_code", None),
    ("postcode", "user.contact.address.postal_code", None),
    ("bank_account", "user.financial.bank_account", None),
    ("ip", "user.device.ip_address", None),
    ("cookie_id", "user.device.cookie_id", Identity.cookie_id),
    ("device_id", "user.device.cookie_id", Identity.cookie_id),
    ("dob", "user.demographic.date_of_birth", None),
    ("ssn", "user.government_id.national_identification_number", Identity.national_id),
    ("national_id", "user.government_id.national_identification_number", Identity.national_id),
    ("personnummer", "user.government_id.national_identification_number", Identity.national_id),
    ("card", "user.financial.credit_card", None),
    ("password", "user.authorization.password", None),
    ("address", "user.contact.address.street", None),
])
def test_guess_column(name: str, category: str, identity: Identity | None) -> None:
    guess = guess_column(name)
    assert guess is not None and (guess.category, guess.identity) == (category, identity)


@pytest.mark.parametrize("name", ["id", "customer_id", "address_id", "email_id", "product_name",
                                  "status", "zipper", "hotel", "amount", "created_at"])
def test_guess_column_leaves_other_columns(name: str) -> None:
    assert guess_column(name) is None


def test_guess_column_uses_the_type() -> None:
    assert guess_column("email_verified", sa.Boolean()) is None
    assert guess_column("email_sent_at", sa.DateTime()) is None
    birth = guess_column("birth_date", sa.Date())
    assert birth is not None and birth.category == "user.demographic.date_of_birth"


# --- ${ENV} in URLs --------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
PLAIN = st.text(max_size=30).filter(lambda s: "${" not in s and not s.endswith("$"))


@settings(max_examples=200, deadline=None)
@given(prefix=PLAIN, name=NAMES, value=st.text(max_size=40), suffix=PLAIN)
def test_expand_url_inserts_values_literally(prefix: str, name: str, value: str,
                                             suffix: str) -> None:
    url = f"{prefix}${{{name}}}{suffix}"
    assert expand_url(url, {name: value}) == prefix + value + suffix


@settings(max_examples=200, deadline=None)
@given(name=NAMES, value=st.text(max_size=40),
       default=st.text(max_size=30).filter(lambda s: "}" not in s))
def test_expand_url_defaults(name: str, value: str, default: str) -> None:
    url = f"postgresql://${{{name}:-{default}}}/db"
    assert expand_url(url, {}) == f"postgresql://{default}/db"
    assert expand_url(url, {name: ""}) == f"postgresql://{default}/db"
    assert expand_url(url, {name: value}) == f"postgresql://{value or default}/db"


@settings(max_examples=100, deadline=None)
@given(name=NAMES, secret=st.text(min_size=8, max_size=30))
def test_expand_url_names_the_missing_variable_never_a_value(name: str, secret: str) -> None:
    other = name + "_SET"
    with pytest.raises(ValueError) as caught:
        expand_url(f"postgresql://app:${{{other}}}@db/${{{name}}}", {other: secret})
    message = str(caught.value)
    assert f"{name} is not set" in message
    assert secret not in message.replace(name, "")


def test_expand_url_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAWFUL_TEST_DB_HOST", "db.internal")
    monkeypatch.setenv("LAWFUL_TEST_NESTED", "${LAWFUL_TEST_DB_HOST}")
    monkeypatch.delenv("LAWFUL_TEST_DB_PORT", raising=False)
    url = "postgresql://app@${LAWFUL_TEST_DB_HOST}:${LAWFUL_TEST_DB_PORT:-5432}/shop"
    assert expand_url(url) == "postgresql://app@db.internal:5432/shop"
    # A value is never expanded again.
    assert expand_url("${LAWFUL_TEST_NESTED}") == "${LAWFUL_TEST_DB_HOST}"
    assert expand_url("sqlite:///plain.db") == "sqlite:///plain.db"
    assert expand_url("postgresql://app:pa$$word@db/x") == "postgresql://app:pa$$word@db/x"


@pytest.mark.parametrize("url", ["${1ABC}", "${}", "${NAME", "x${NA-ME}", "${NAME:default}"])
def test_expand_url_refuses_malformed_references(url: str) -> None:
    with pytest.raises(ValueError, match=re.escape("${NAME} or ${NAME:-default}")):
        expand_url(url, {"NAME": "v", "NA": "v"})
