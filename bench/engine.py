"""Engine benchmark: access, erasure and batch erasure against hand-written SQL, same rows.

    python bench/engine.py --url "$LAWFUL_TEST_POSTGRES_URL" --schema lawful_bench \\
        --customers 1000000
    python bench/engine.py --url sqlite:///bench.db --customers 100000

Loads the Kerf world when the database does not already hold `--customers` customers, then
prints, for the engine and for hand-written SQL doing the same reads and writes in the same run:
access for one person (p50/p95 over --persons random persons), erasure of one person (p50/p95),
and erasure of --batch persons in one run (persons per second). Ratios are engine / hand.

The hand-written erasure is what a careful engineer would write for Kerf: find the person's
rows, change them in one transaction, then read back to check. Each run erases different
persons (erasure is not repeatable on the same person), drawn from the same distribution.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lawful.demo.generate import generate  # noqa: E402
from lawful.engine.access import access  # noqa: E402
from lawful.engine.erase import erase  # noqa: E402
from lawful.engine.identities import Identities  # noqa: E402
from lawful.engine.plan import Plan, build_plan  # noqa: E402
from lawful.keys import keyed_hash  # noqa: E402
from lawful.manifest import load_manifest  # noqa: E402
from lawful.manifest.model import Identity  # noqa: E402


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Hand:
    """Hand-written SQL on a raw DBAPI connection, no SQLAlchemy in the way."""

    def __init__(self, engine: sa.Engine):
        self.dialect = engine.dialect.name
        self.raw = engine.raw_connection()
        self.mark = "?" if self.dialect == "sqlite" else "%s"
        self.statements = 0

    def q(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cur = self.raw.cursor()
        cur.execute(sql.replace("?", self.mark), params)
        self.statements += 1
        rows = list(cur.fetchall()) if cur.description else []
        cur.close()
        return rows

    def many(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column IN (…)` for a list: the same expansion a careful engineer would write."""
        if not values:
            return "1 = 0", []
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def find(self, emails: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the persons, in the fewest statements a person would write."""
        rows: dict[str, list[tuple[Any, ...]]] = {}
        where, params = self.many("lower(email)", [e.lower() for e in emails])
        rows["customer"] = self.q(f"SELECT * FROM customer WHERE {where}", *params)
        ids = [r[0] for r in rows["customer"]]
        phones = [r[4] for r in rows["customer"] if r[4]]
        cid, cparams = self.many("customer_id", ids)
        for table in ("address", "quote", "orders", "invoice", "testimonial", "id_document"):
            rows[table] = self.q(f"SELECT * FROM {table} WHERE {cid}", *cparams)
        inv, iparams = self.many("invoice_id", [r[0] for r in rows["invoice"]])
        rows["payment"] = self.q(f"SELECT * FROM payment WHERE {inv}", *iparams)
        visitors = self.q(f"SELECT DISTINCT visitor_id FROM web_visit WHERE {cid}", *cparams)
        vis, vparams = self.many("visitor_id", [v[0] for v in visitors])
        # Visits of the customers, and anonymous visits of their browsers. Not written as
        # "OR (customer_id IS NULL AND visitor_id IN …)": SQLite plans that as a walk over every
        # anonymous visit (the IS NULL as index key), 15 to 60 ms a person. Both indexes, then
        # the visits of other customers on a shared browser dropped here: the same rows.
        # (Without visitor ids, no "OR 1 = 0": SQLite would scan the table for it.)
        wanted = set(ids)
        where = f"{cid} OR {vis}" if vparams else cid
        rows["web_visit"] = [r for r in self.q(f"SELECT * FROM web_visit WHERE {where}",
                                               *cparams, *vparams)
                             if r[2] is None or r[2] in wanted]
        lowered = [e.lower() for e in emails]
        tick, tparams = self.many("lower(customer_email)", lowered)
        rows["support_ticket"] = self.q(f"SELECT * FROM support_ticket WHERE {tick}", *tparams)
        news, nparams = self.many("lower(email)", lowered)
        rows["newsletter_subscriber"] = self.q(
            f"SELECT * FROM newsletter_subscriber WHERE {news}", *nparams)
        ph, pparams = self.many("phone", phones)
        rows["call_recording"] = self.q(f"SELECT * FROM call_recording WHERE {ph}", *pparams)
        rows["job_applicant"] = self.q(
            f"SELECT * FROM job_applicant WHERE {news} OR {ph}" if pparams else
            f"SELECT * FROM job_applicant WHERE {news}", *nparams, *pparams)
        return rows

    def erase(self, emails: Sequence[str], reread: bool = False) -> None:
        """The same changes the engine makes for Kerf, in one transaction, then a check: a
        count of the e-mails, or (reread) the find again, reading the rows the engine's
        verification reads."""
        rows = self.find(emails)
        ids = [r[0] for r in rows["customer"]]
        cid, cparams = self.many("customer_id", ids)
        for table in ("web_visit", "support_ticket", "newsletter_subscriber", "call_recording",
                      "job_applicant", "testimonial", "id_document"):
            pks, params = self.many("id", [r[0] for r in rows[table]])
            self.q(f"DELETE FROM {table} WHERE {pks}", *params)
        self.q(f"UPDATE quote SET cad_file_name = 'erased.dxf' WHERE {cid}", *cparams)
        used = self.q(f"SELECT DISTINCT shipping_address_id FROM orders WHERE {cid}", *cparams)
        keep = {u[0] for u in used}
        gone = [r[0] for r in rows["address"] if r[0] not in keep]
        pks, params = self.many("id", gone)
        self.q(f"DELETE FROM address WHERE {pks}", *params)
        pks, params = self.many("id", sorted(keep - {None}))
        self.q("UPDATE address SET name = NULL, street = NULL, city = NULL, postal_code = NULL, "
               f"country = NULL WHERE {pks}", *params)
        cur = self.raw.cursor()  # executemany: psycopg pipelines it, PyMySQL batches it
        cur.executemany(("UPDATE customer SET email = ?, first_name = '(erased)', last_name = "
                         "'(erased)', phone = NULL, company = NULL, job_title = NULL, "
                         "password_hash = NULL WHERE id = ?").replace("?", self.mark),
                        [(keyed_hash(row[1].lower()), row[0]) for row in rows["customer"]])
        cur.close()
        self.statements += 1
        self.raw.commit()
        where, params = self.many("lower(email)", [e.lower() for e in emails])
        left = self.q(f"SELECT count(*) FROM customer WHERE {where}", *params)
        assert left[0][0] == 0
        if reread:
            self.find(emails)
            self.raw.rollback()


def load(url: str, customers: int) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            have = conn.execute(sa.text("SELECT count(*) FROM customer")).scalar()
    except sa.exc.DBAPIError:
        have = None
    engine.dispose()
    if have == customers:
        print(f"using the {customers:,} customers already loaded")
        return
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(f"  loaded {done:,}/{total:,} customers", flush=True)

    counts = generate(url, customers, seed=1, progress=progress)
    print(f"loaded {sum(counts.values()):,} rows for {customers:,} customers in "
          f"{time.perf_counter() - started:.0f} s")
    engine = sa.create_engine(url)
    if engine.dialect.name == "postgresql":
        # A database in use has been vacuumed: freshly loaded pages would have their hint bits
        # set (and be written again) by whichever run reads them first.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in counts:
                conn.execute(sa.text(f'VACUUM ANALYZE "{table}"'))
    engine.dispose()


def prewarm(engine: sa.Engine) -> None:
    """Read the schema's tables and indexes into PostgreSQL's buffers (pg_prewarm), so that
    whichever side runs first does not pay for the cold pages the other then finds warm: a
    first batch on a freshly loaded database took 30 to 40 % longer on both sides."""
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
            blocks = conn.execute(sa.text(
                "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                "AND c.relkind IN ('r', 'i')")).scalar()
        print(f"prewarmed {blocks or 0:,} blocks")
    except sa.exc.DBAPIError as exc:  # no extension, or not allowed: measure as it is
        print(f"not prewarmed ({type(exc.orig).__name__})")


def sample(url: str, n: int, rng: random.Random) -> list[str]:
    """Distinct random persons who are still whole (never erased by an earlier phase)."""
    engine = sa.create_engine(url)
    emails: set[str] = set()
    tried: set[int] = set()
    with engine.connect() as conn:
        top = conn.execute(sa.text("SELECT max(id) FROM customer")).scalar() or 0
        while len(emails) < n and len(tried) < top:
            fresh = {rng.randint(1, top) for _ in range(n - len(emails))} - tried
            tried |= fresh
            ids = sorted(fresh)
            for start in range(0, len(ids), 1000):
                chunk = ids[start:start + 1000]
                emails.update(conn.execute(sa.select(sa.column("email")).select_from(
                    sa.table("customer")).where(sa.column("id").in_(chunk)).where(
                    sa.column("email").like("%@%"))).scalars().all())
    engine.dispose()
    picked = sorted(emails)
    rng.shuffle(picked)
    return picked


def timed(func: Callable[[], Any]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--schema", help="PostgreSQL schema to use (created if missing)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--persons", type=int, default=200)
    parser.add_argument("--erasures", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    url = args.url
    if args.schema:
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{args.schema}"'))
        url += ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={args.schema}")
    os.environ["KERF_DATABASE_URL"] = url
    os.environ.setdefault("LAWFUL_SECRET_KEY", "benchmark-secret-key")
    # A fresh store for lawful's own records each run: its suppression list grows by every
    # identity erased, and runs of this bench would otherwise measure their own history
    # (docs/benchmarks.md gives what a list of a million hashes costs).
    os.environ.setdefault("LAWFUL_STATE_DIR", tempfile.mkdtemp(prefix="lawful-bench-state-"))
    load(url, args.customers)
    engine = sa.create_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
        prewarm(engine)
    plan: Plan = build_plan(load_manifest(ROOT / "examples" / "kerf" / "lawful.yaml"))
    hand = Hand(engine)
    rng = random.Random(42)
    region = "NL"

    def ids(emails: Sequence[str]) -> Identities:
        return Identities.of({Identity.email: list(emails)}, region)

    print(f"\n{engine.dialect.name}, {args.customers:,} customers\n")
    people = sample(url, args.persons + 20, rng)
    for email in people[:20]:  # warm caches and pools for both
        access(plan, ids([email]))
        hand.find([email])
    engine_t, hand_t, rows = [], [], []
    for n, email in enumerate(people[20:]):
        # Whoever reads a person first pays for the cold pages: alternate who goes first.
        if n % 2:
            hand_t.append(timed(lambda e=email: hand.find([e])))
        report = access(plan, ids([email]))
        engine_t.append(report.seconds)
        rows.append(report.row_count)
        if not n % 2:
            hand_t.append(timed(lambda e=email: hand.find([e])))
    print(f"access, one person ({args.persons} persons, {statistics.mean(rows):.1f} rows and "
          f"{report.statements} statements each; hand-written: 12 statements)")
    for label, q in (("p50", 0.5), ("p95", 0.95)):
        e, h = pct(engine_t, q), pct(hand_t, q)
        print(f"  {label}: engine {ms(e)}   hand-written {ms(h)}   ratio {e / h:5.2f}")

    n = args.erasures
    victims = sample(url, 3 * n, rng)
    engine_t, hand_t, reread_t = [], [], []
    for i in range(n):  # interleaved, so all three see the same state of the caches
        result = erase(plan, ids([victims[i]]))
        assert result.verified, result.leftovers
        engine_t.append(result.seconds)
        hand_t.append(timed(lambda e=victims[n + i]: hand.erase([e])))
        reread_t.append(timed(lambda e=victims[2 * n + i]: hand.erase([e], reread=True)))
    print(f"\nerasure, one person ({n} persons each; the engine journals, keeps the legal "
          "holds and verifies by searching again; 'reread' is hand-written that also reads "
          "the rows again to check)")
    for label, q in (("p50", 0.5), ("p95", 0.95)):
        e, h, r = pct(engine_t, q), pct(hand_t, q), pct(reread_t, q)
        print(f"  {label}: engine {ms(e)}   hand-written {ms(h)} (ratio {e / h:4.2f})   "
              f"reread {ms(r)} (ratio {e / r:4.2f})")

    batch = sample(url, 3 * args.batch, rng)
    b = args.batch
    result = erase(plan, ids(batch[:b]), persons=b)
    assert result.verified, result.leftovers[:5]
    hand_s = timed(lambda: hand.erase(batch[b:2 * b]))
    reread_s = timed(lambda: hand.erase(batch[2 * b:], reread=True))
    print(f"\nbatch erasure of {b:,} persons in one run ({result.statements} statements)")
    for label, secs in (("engine", result.seconds), ("hand-written", hand_s),
                        ("reread", reread_s)):
        ratio = "" if label == "engine" else f"   ratio {result.seconds / secs:4.2f}"
        print(f"  {label:<12} {secs:8.2f} s   {b / secs:9,.0f} persons/s{ratio}")


if __name__ == "__main__":
    main()
