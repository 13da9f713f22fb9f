"""The Kerf demo database: schema as the manifest declares it, deterministic, realistic, loaded
the same on SQLite, PostgreSQL and MySQL/MariaDB (the servers through LAWFUL_TEST_*_URL)."""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from lawful.demo import generate as gen
from lawful.demo.generate import default_url, describe, generate
from lawful.demo.schema import (
    DATE_COLUMNS,
    EMAIL_COLUMNS,
    IDENTITY_COLUMNS,
    TABLES,
    metadata,
)
from tests.conftest import service_url

N = 2000
# A schema (PostgreSQL) or database (MySQL) of our own on the shared test servers, one per test
# process: other test runs on the same servers can load Kerf data at the same time.
SCHEMA = f"lawful_demo_test_{os.getpid()}"

# Rows per customer, with the tolerance the test allows for N = 2000.
PROPORTIONS: dict[str, tuple[float, float]] = {
    "address": (1.2, 0.08),
    "quote": (2.0, 0.15),
    "orders": (1.5, 0.12),
    "invoice": (1.5, 0.12),
    "payment": (1.5, 0.12),
    "support_ticket": (0.55, 0.08),
    "call_recording": (0.2, 0.05),
    "newsletter_subscriber": (1.0, 0.1),
    "web_visit": (5.0, 0.4),
    "job_applicant": (0.02, 0.01),
    "testimonial": (0.05, 0.015),
    "id_document": (0.1, 0.025),
}


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a schema of this test process's own, dropped afterwards."""
    url = service_url("postgres")
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{SCHEMA}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        admin.dispose()


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    """A URL on a database of this test process's own, dropped afterwards."""
    url = service_url("mysql")
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
        yield make_url(url).set(database=SCHEMA).render_as_string(hide_password=False)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {SCHEMA}")
    finally:
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mysql"])
def kerf(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, dict[str, int]]]:
    """A Kerf database of N customers on each backend: (engine, rows per table)."""
    backend: str = request.param
    if backend == "sqlite":
        url = _sqlite_url(tmp_path_factory.mktemp("kerf") / "kerf.db")
    else:
        url = request.getfixturevalue(f"{backend}_url")
    seen: list[tuple[int, int]] = []
    counts = generate(url, N, seed=1, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (N, N)
    engine = sa.create_engine(url)
    try:
        yield engine, counts
    finally:
        engine.dispose()


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


def _all(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every Kerf row, typed by SQLAlchemy, in id order."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.id))] for t in TABLES
        }


# -- the schema is the one the manifest declares ----------------------------------------------


def test_schema_has_every_table_field_and_reference_of_the_manifest(
    kerf_data: dict[str, Any],
) -> None:
    (shop,) = [s for s in kerf_data["systems"] if s["id"] == "shop"]
    tables = {t.name: t for t in TABLES}
    assert set(tables) == {t["name"] for t in shop["tables"]}
    for decl in shop["tables"]:
        table = tables[decl["name"]]
        for f in decl.get("fields", []):
            assert f["name"] in table.c, f"{table.name}.{f['name']}"
            assert table.c[f["name"]].nullable or f.get("erase") in (None, "hash", "keep"), (
                f"{table.name}.{f['name']} is erased to {f.get('erase')} but NOT NULL"
            )
        if "restricted_column" in decl:
            assert decl["restricted_column"] in table.c
        for ref in decl.get("references", []):
            column = table.c[ref["field"]]
            target_table, target_column = ref["to"].split(".")
            targets = {(fk.column.table.name, fk.column.name) for fk in column.foreign_keys}
            assert targets == {(target_table, target_column)}, f"{table.name}.{ref['field']}"
    retention_columns = {
        col
        for rule in kerf_data.get("retention", [])
        for col in (
            rule.get("columns", [])
            if isinstance(rule.get("columns", []), list)
            else [rule["columns"]]
        )
    }
    for qualified in retention_columns:
        table_name, column = qualified.split(".")
        assert column in tables[table_name].c, qualified


def test_database_matches_the_schema(kerf: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = kerf
    inspector = sa.inspect(engine)
    names = set(inspector.get_table_names())
    for table in TABLES:
        assert table.name in names
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == set(table.c.keys()), table.name
        fks = {
            (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
            for fk in inspector.get_foreign_keys(table.name)
        }
        expected = {
            ((fk.parent.name,), fk.column.table.name, (fk.column.name,))
            for fk in table.foreign_keys
        }
        assert fks == expected, table.name


def test_indexes_on_references_identities_and_retention_dates(
    kerf: tuple[Engine, dict[str, int]],
) -> None:
    engine, _ = kerf
    inspector = sa.inspect(engine)
    for table in TABLES:
        with warnings.catch_warnings():  # SQLite does not reflect expression indexes
            warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
            indexes = inspector.get_indexes(table.name)
        leading = {ix["column_names"][0] for ix in indexes if ix["column_names"][0]}
        wanted = [c.name for c in table.columns if c.foreign_keys]
        wanted += IDENTITY_COLUMNS.get(table.name, ())
        wanted += DATE_COLUMNS.get(table.name, ())
        for column in wanted:
            assert column in leading, f"no index on {table.name}.{column}"
        names = {ix["name"] for ix in indexes}
        if engine.dialect.name == "sqlite":
            names = {
                r[0]
                for r in _all(
                    engine,
                    "SELECT name FROM sqlite_master "
                    f"WHERE type = 'index' AND tbl_name = '{table.name}'",
                )
            }
        for column in EMAIL_COLUMNS.get(table.name, ()):
            lower = f"ix_{table.name}_{column}_lower"
            if engine.dialect.name in ("postgresql", "sqlite"):
                assert lower in names, lower
            else:
                assert lower not in names  # case-insensitive collation: the plain index serves
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(
                r[0]
                for r in conn.exec_driver_sql(
                    "EXPLAIN SELECT id FROM support_ticket "
                    "WHERE lower(customer_email) = 'jane.doe@example.com'"
                )
            )
        assert "ix_support_ticket_customer_email_lower" in plan, plan


# -- counts and proportions -------------------------------------------------------------------


def test_counts_are_the_rows_in_the_database(kerf: tuple[Engine, dict[str, int]]) -> None:
    engine, counts = kerf
    assert list(counts) == [t.name for t in TABLES]
    for name, n in counts.items():
        assert _scalar(engine, f"SELECT count(*) FROM {name}") == n, name


def test_proportions(kerf: tuple[Engine, dict[str, int]]) -> None:
    engine, counts = kerf
    assert counts["customer"] == N
    assert counts["partner"] == max(5, N // 200)
    for name, (per_customer, tolerance) in PROPORTIONS.items():
        ratio = counts[name] / N
        assert abs(ratio - per_customer) <= tolerance, f"{name}: {ratio:.3f} per customer"
    assert counts["invoice"] == counts["orders"] == counts["payment"]
    delivered = _scalar(engine, "SELECT count(*) FROM orders WHERE delivered_at IS NOT NULL")
    assert 0.75 <= delivered / counts["orders"] <= 0.85
    ended = _scalar(engine, "SELECT count(*) FROM customer WHERE contract_ended_at IS NOT NULL")
    assert 0.07 <= ended / N <= 0.13
    subscribed = _scalar(
        engine,
        "SELECT count(*) FROM newsletter_subscriber n JOIN customer c ON c.email = n.email",
    )
    assert 0.45 <= subscribed / N <= 0.55  # half the customers; the rest are prospects
    assert subscribed < counts["newsletter_subscriber"] * 0.6


def test_every_reference_points_at_a_row(kerf: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = kerf
    for table in TABLES:
        for fk in table.foreign_keys:
            child, parent = table.name, fk.column.table.name
            col = fk.parent.name
            total = _scalar(engine, f"SELECT count(*) FROM {child} WHERE {col} IS NOT NULL")
            joined = _scalar(
                engine,
                f"SELECT count(*) FROM {child} c JOIN {parent} p ON p.id = c.{col}",
            )
            assert total == joined, f"{child}.{col} -> {parent}"
            if child != "web_visit":
                assert _scalar(engine, f"SELECT count(*) FROM {child} WHERE {col} IS NULL") == 0
    # Orders point at their own customer's quote and address; invoices at their order's customer.
    assert _scalar(
        engine,
        "SELECT count(*) FROM orders o JOIN quote q ON q.id = o.quote_id "
        "JOIN address a ON a.id = o.shipping_address_id "
        "WHERE q.customer_id <> o.customer_id OR a.customer_id <> o.customer_id",
    ) == 0
    assert _scalar(
        engine,
        "SELECT count(*) FROM invoice i JOIN orders o ON o.id = i.order_id "
        "WHERE i.customer_id <> o.customer_id",
    ) == 0
    assert _scalar(
        engine, "SELECT count(*) FROM invoice i JOIN orders o ON o.id = i.id"
    ) == 0, "invoice ids must not run in step with order ids"


# -- one person, several identities -----------------------------------------------------------


def test_customers_appear_under_other_identities(kerf: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = kerf
    pairs = _all(
        engine,
        "SELECT c.email, t.customer_email FROM customer c "
        "JOIN support_ticket t ON lower(t.customer_email) = c.email",
    )
    assert pairs
    other_case = [p for p in pairs if p[0] != p[1]]
    assert 0.2 <= len(other_case) / len(pairs) <= 0.4, "about 30% typed in another case"
    strangers = _scalar(
        engine,
        "SELECT count(*) FROM support_ticket t WHERE NOT EXISTS "
        "(SELECT 1 FROM customer c WHERE c.email = lower(t.customer_email))",
    )
    assert strangers > 0, "some tickets come from non-customers"

    by_phone = _scalar(
        engine,
        "SELECT count(DISTINCT c.id) FROM customer c JOIN call_recording r ON r.phone = c.phone",
    )
    assert by_phone > 0
    unknown = _scalar(
        engine,
        "SELECT count(*) FROM call_recording r WHERE NOT EXISTS "
        "(SELECT 1 FROM customer c WHERE c.phone = r.phone)",
    )
    assert unknown > 0, "some calls come from numbers that are no customer's"

    # A cookie seen logged in (customer_id set) also carries anonymous visits.
    linked = _scalar(
        engine,
        "SELECT count(DISTINCT v.visitor_id) FROM web_visit v "
        "JOIN web_visit a ON a.visitor_id = v.visitor_id AND a.customer_id IS NULL "
        "WHERE v.customer_id IS NOT NULL",
    )
    assert linked > N * 0.2
    assert _scalar(
        engine,
        "SELECT count(*) FROM (SELECT visitor_id FROM web_visit WHERE customer_id IS NOT NULL "
        "GROUP BY visitor_id HAVING count(DISTINCT customer_id) > 1) x",
    ) == 0, "a cookie belongs to one customer"

    other_case_ids = {
        r[0]
        for r in _all(
            engine,
            "SELECT c.id, c.email, t.customer_email FROM customer c "
            "JOIN support_ticket t ON lower(t.customer_email) = c.email",
        )
        if r[1] != r[2]  # compared here: MySQL's collation would call them equal
    }
    found_all_ways = _all(
        engine,
        "SELECT c.id FROM customer c "
        "WHERE EXISTS (SELECT 1 FROM call_recording r WHERE r.phone = c.phone) "
        "AND EXISTS (SELECT 1 FROM web_visit v JOIN web_visit a ON a.visitor_id = v.visitor_id "
        "  WHERE v.customer_id = c.id AND a.customer_id IS NULL) "
        "ORDER BY c.id",
    )
    one = [r[0] for r in found_all_ways if r[0] in other_case_ids]
    assert one, "a customer found by e-mail in any case, by phone and by cookie"


def test_values_look_real(kerf: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = kerf
    emails = [r[0] for r in _all(engine, "SELECT email FROM customer")]
    assert len(set(emails)) == len(emails) == N
    assert all(e == e.lower() and re.fullmatch(r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]+", e)
               for e in emails)
    assert all(e.endswith((".example", "example.com", "example.net", "example.org"))
               for e in emails), "reserved domains only"
    e164 = re.compile(r"\+[1-9]\d{9,14}")
    for table, column in [("customer", "phone"), ("partner", "phone"),
                          ("call_recording", "phone"), ("job_applicant", "phone")]:
        values = [r[0] for r in _all(engine, f"SELECT {column} FROM {table}") if r[0]]
        assert values and all(e164.fullmatch(v) for v in values), f"{table}.{column}"
    phones = [r[0] for r in _all(engine, "SELECT phone FROM customer WHERE phone IS NOT NULL")]
    assert len(set(phones)) == len(phones)
    for (iban,) in _all(engine, "SELECT iban FROM partner"):
        assert re.fullmatch(r"NL\d{2}[A-Z]{4}\d{10}", iban)
        digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
        assert int(digits) % 97 == 1, iban
    for (bsn,) in _all(engine, "SELECT national_id_number FROM id_document"):
        weights = [9, 8, 7, 6, 5, 4, 3, 2, -1]
        assert sum(int(d) * w for d, w in zip(bsn, weights, strict=True)) % 11 == 0, bsn
    cookies = [r[0] for r in _all(engine, "SELECT DISTINCT visitor_id FROM web_visit")]
    assert all(re.fullmatch(r"[0-9a-f]{32}", c) for c in cookies)
    kinds = {r[0] for r in _all(engine, "SELECT DISTINCT kind FROM address")}
    assert kinds == {"billing", "shipping"}
    countries = {r[0] for r in _all(engine, "SELECT DISTINCT country FROM address")}
    assert countries == {"NL", "DE", "BE"}


def test_dates_lie_between_2018_and_the_anchor(kerf: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = kerf
    low, high = dt.datetime(2017, 10, 1), dt.datetime(2026, 7, 1)
    with engine.connect() as conn:
        for table in TABLES:
            for column in table.columns:
                if not isinstance(column.type, sa.DateTime):
                    continue
                bounds = sa.select(sa.func.min(column), sa.func.max(column))
                first, last = conn.execute(bounds).one()
                if first is None:
                    continue
                assert low <= first <= last < high, f"{table.name}.{column.name}"
        first, last = conn.execute(
            sa.select(sa.func.min(TABLES[0].c.created_at), sa.func.max(TABLES[0].c.created_at))
        ).one()
    assert first.year == 2018 and last.year == 2026, "spread over 2018-2026"
    # Comparisons with bound datetimes work (SQLite stores them as SQLAlchemy does).
    customer = metadata.tables["customer"]
    with engine.connect() as conn:
        before = conn.execute(
            sa.select(sa.func.count()).where(customer.c.created_at < dt.datetime(2022, 1, 1))
        ).scalar_one()
    assert 0 < before < N


# -- deterministic ----------------------------------------------------------------------------


def test_same_seed_same_rows_different_seed_other_rows(tmp_path: Path) -> None:
    dumps = []
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        url = _sqlite_url(tmp_path / f"{name}.db")
        generate(url, 500, seed=seed)
        engine = sa.create_engine(url)
        dumps.append(_dump(engine))
        engine.dispose()
    assert dumps[0] == dumps[1]
    assert dumps[0]["customer"] != dumps[2]["customer"]
    assert dumps[0]["web_visit"] != dumps[2]["web_visit"]


def test_rows_do_not_depend_on_the_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _sqlite_url(tmp_path / "whole.db")
    generate(whole, 400, seed=3)
    monkeypatch.setattr(gen, "CHUNK", 150)
    seen: list[tuple[int, int]] = []
    chunked = _sqlite_url(tmp_path / "chunked.db")
    generate(chunked, 400, seed=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(150, 400), (300, 400), (400, 400)]
    engines = [sa.create_engine(whole), sa.create_engine(chunked)]
    try:
        assert _dump(engines[0]) == _dump(engines[1])
    finally:
        for e in engines:
            e.dispose()


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_servers_hold_the_same_rows_as_sqlite(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    reference = _sqlite_url(tmp_path / "ref.db")
    generate(reference, 300, seed=5)
    generate(url, 300, seed=5)
    engines = [sa.create_engine(reference), sa.create_engine(url)]
    try:
        want, got = _dump(engines[0]), _dump(engines[1])
    finally:
        for e in engines:
            e.dispose()
    for name in want:
        assert _normal(got[name]) == _normal(want[name]), name


def _normal(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Decimals compared by value (SQLite hands back floats turned Decimal)."""
    return [
        tuple(round(v, 2) if isinstance(v, Decimal) else v for v in row) for row in rows
    ]


# -- the rest of the contract -----------------------------------------------------------------


def test_regeneration_replaces_only_the_kerf_tables(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path / "shared.db")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE keep_me (id INTEGER PRIMARY KEY, note TEXT)")
            conn.exec_driver_sql("INSERT INTO keep_me VALUES (1, 'mine')")
        first = generate(url, 100)
        second = generate(url, 50)
        assert first["customer"] == 100 and second["customer"] == 50
        assert _scalar(engine, "SELECT count(*) FROM customer") == 50
        assert _all(engine, "SELECT id, note FROM keep_me") == [(1, "mine")]
        assert _scalar(engine, "PRAGMA journal_mode") == "delete", "the file is left as found"
    finally:
        engine.dispose()


def test_zero_customers_still_makes_the_tables(tmp_path: Path) -> None:
    counts = generate(_sqlite_url(tmp_path / "empty.db"), 0)
    assert counts["customer"] == 0 and counts["partner"] == 5
    assert sum(counts.values()) == 5


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="0 or more"):
        generate(_sqlite_url(tmp_path / "x.db"), -1)
    with pytest.raises(ValueError, match="SQLite, PostgreSQL or MySQL"):
        generate("oracle+oracledb://u@localhost/x", 1)


def test_describe_lists_rows_per_table_and_the_total() -> None:
    text = describe({"customer": 1000, "web_visit": 5000})
    assert text.splitlines() == [
        "customer          1,000",
        "web_visit         5,000",
        "total             6,000",
    ]


def test_default_url_is_kerf_db_in_the_current_directory() -> None:
    assert default_url() == "sqlite:///kerf.db"
    assert make_url(default_url()).database == "kerf.db"
