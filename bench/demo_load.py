"""Load the Kerf demo database at scale and print rows per table, seconds and rows/s.

    python bench/demo_load.py [CUSTOMERS] [--url URL] [--seed S]

CUSTOMERS defaults to 1,000,000. The default URL is $LAWFUL_TEST_POSTGRES_URL; on PostgreSQL the
tables go into schema `lawful_bench`, on MySQL/MariaDB into database `lawful_bench` (both made if
missing), so the benchmark never touches other tests' tables. A SQLite URL is used as given,
e.g. `--url sqlite:////tmp/kerf-bench.db`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lawful.demo.generate import generate

SCHEMA = "lawful_bench"


def bench_url(url: str) -> str:
    """The URL with the benchmark's own schema (PostgreSQL) or database (MySQL)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return url
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if backend == "postgresql":
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            elif backend in ("mysql", "mariadb"):
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    finally:
        engine.dispose()
    if backend == "postgresql":
        return parsed.update_query_dict({"options": f"-csearch_path={SCHEMA}"}).render_as_string(
            hide_password=False
        )
    return parsed.set(database=SCHEMA).render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("customers", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--url", default=os.environ.get("LAWFUL_TEST_POSTGRES_URL"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give --url or set LAWFUL_TEST_POSTGRES_URL")
    url = bench_url(args.url)
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"loading {args.customers:,} customers into {shown}", file=sys.stderr)

    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        print(f"  {done:>10,} / {total:,} customers  {elapsed:8.1f} s", file=sys.stderr)

    counts = generate(url, args.customers, seed=args.seed, progress=progress)
    seconds = time.perf_counter() - start
    total = sum(counts.values())

    width = max(len(name) for name in counts)
    print(f"demo-data load: {args.customers:,} customers, {make_url(url).get_backend_name()}, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    for name, n in counts.items():
        print(f"  {name:<{width}}  {n:>12,}")
    print(f"  {'total':<{width}}  {total:>12,}")
    print(f"seconds: {seconds:.1f}")
    print(f"rows/s:  {total / seconds:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
