"""Retention benchmark: `retention run` against one hand-written statement, same rows.

    python bench/retention.py --url "$LAWFUL_TEST_POSTGRES_URL" --rows 100000 1000000

For each row count, in schema --schema (default lawful_ret_bench): loads that many expired
`web_visit` rows (a third as many visitors, all last seen in 2020), then
1. deletes them with `lawful retention run` (Kerf's rule "1 year after the last visit"),
   measured in a child process (its own time and peak RSS);
2. reloads the same rows and deletes them with one hand-written statement (same conditions:
   the visitor's last visit, restricted customers skipped);
3. the same two for anonymisation (the rule's action set to anonymise).
Prints times, the ratio lawful / hand-written and lawful's peak RSS, for each --workers (batches
in flight at once on PostgreSQL, each on its own connection; 1 is one batch after another).
With --repeat N each pair (lawful, then hand-written, each on freshly loaded rows) runs N times
and the medians are printed: the ratio is the median of the N pairs' ratios (on a shared, noisy
machine a pair run back to back sees the same load), with the lowest and highest pair's ratio
beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from urllib.parse import quote

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lawful.demo.schema import customer, metadata, web_visit  # noqa: E402
from lawful.engine.plan import build_plan  # noqa: E402
from lawful.manifest import load_manifest  # noqa: E402
from lawful.manifest.model import Action  # noqa: E402

TODAY = "2026-11-22"
CUTOFF = "2025-11-22"  # visits up to 2025-11-21 are more than a year old
WHERE = (f"w.visited_at < '{CUTOFF}' AND NOT EXISTS (SELECT 1 FROM web_visit o WHERE "
         f"o.visitor_id = w.visitor_id AND o.visited_at >= '{CUTOFF}') AND NOT EXISTS (SELECT 1 "
         "FROM customer c WHERE c.id = w.customer_id AND c.restricted)")
HAND = {
    "delete": f"DELETE FROM web_visit w WHERE {WHERE}",
    "anonymise": "UPDATE web_visit w SET visitor_id = NULL, ip_address = NULL, "
                 f"user_agent = NULL, path = NULL WHERE {WHERE}",
}


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def load(base: str, schema: str, rows: int) -> str:
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = schema_url(base, schema)
    engine = sa.create_engine(url)
    metadata.create_all(engine, tables=[customer, web_visit])
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO customer (email, created_at) SELECT 'c' || i || '@example.com', "
            "timestamp '2019-01-01' FROM generate_series(1, 1000) i"))
        conn.execute(sa.text(
            "INSERT INTO web_visit (visitor_id, customer_id, ip_address, user_agent, path, "
            "visited_at) SELECT md5('v' || (i % :visitors)), CASE WHEN i % 10 = 0 THEN "
            "1 + i % 1000 END, '192.0.2.' || (i % 250), 'Mozilla/5.0 (X11; Linux x86_64)', "
            "'/parts/' || (i % 5000), timestamp '2020-01-01' + (i % 8000) * interval '1 hour' "
            "FROM generate_series(1, :rows) i"), {"rows": rows, "visitors": max(1, rows // 3)})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE web_visit"))
        conn.execute(sa.text("VACUUM ANALYZE customer"))
    engine.dispose()
    return url


def manifest_file(url: str, action: str, directory: Path) -> Path:
    import yaml

    manifest = load_manifest(ROOT / "examples" / "kerf" / "lawful.yaml")
    system = manifest.systems[0]
    system.url = url
    system.tables = [t for t in system.tables if t.name in ("customer", "web_visit")]
    rule = next(r for r in manifest.retention if r.id == "web-visits")
    rule.action = Action(action)
    manifest.retention = [r for r in manifest.retention if r.id in ("web-visits", "account")]
    path = directory / f"bench-{action}.yaml"
    path.write_text(yaml.safe_dump(manifest.model_dump(mode="json", exclude_defaults=True),
                                   sort_keys=False))
    return path


def child(manifest: str, batch: int, workers: int) -> None:
    """Run retention in this process; print seconds and peak RSS as JSON."""
    import datetime as dt

    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

    from lawful.manifest import load_manifest as load
    from lawful.retention.sweep import run

    # The driver is imported before the clock starts (0.1 to 0.2 s of a fresh process's
    # start-up, which the hand-written side, in this process, never pays either); connecting
    # is timed on both sides.
    plan = build_plan(load(Path(manifest)))
    started = time.perf_counter()
    result = run(plan, dt.date.fromisoformat(TODAY), batch_size=batch, workers=workers)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "rows": result.done, "rss_mb": rss}))


def lawful_run(manifest: Path, batch: int, workers: int, state: Path) -> dict[str, float]:
    env = {**os.environ, "LAWFUL_STATE_DIR": str(state), "LAWFUL_SECRET_KEY": "bench-key"}
    done = subprocess.run([sys.executable, __file__, "--child", str(manifest), "--batch",
                           str(batch), "--workers", str(workers)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def hand_run(url: str, action: str) -> tuple[float, int]:
    engine = sa.create_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        count = conn.execute(sa.text(HAND[action])).rowcount
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("LAWFUL_TEST_POSTGRES_URL"))
    parser.add_argument("--schema", default="lawful_ret_bench")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--actions", nargs="+", default=["delete", "anonymise"],
                        choices=["delete", "anonymise"])
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batch, args.workers[0])
        return
    if not args.url or not args.url.startswith("postgresql"):
        sys.exit("give --url of a PostgreSQL database (or set LAWFUL_TEST_POSTGRES_URL)")
    print("| rows | action | batch | workers | lawful | hand-written | ratio | (pairs: min–max) "
          "| lawful peak RSS |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            for action, workers in [(a, w) for a in args.actions for w in args.workers]:
                pairs = []
                for i in range(args.repeat):
                    url = load(args.url, args.schema, rows)
                    manifest = manifest_file(url, action, Path(tmp))
                    mine = lawful_run(manifest, args.batch, workers,
                                      Path(tmp) / f"state-{rows}-{action}-{workers}-{i}")
                    url = load(args.url, args.schema, rows)
                    hand, count = hand_run(url, action)
                    assert count == mine["rows"] == rows, (count, mine["rows"], rows)
                    pairs.append((mine["seconds"], hand, mine["rss_mb"]))
                ratios = sorted(m / h for m, h, _ in pairs)
                print(f"| {rows:,} | {action} | {args.batch:,} | {workers} | "
                      f"{median(m for m, _, _ in pairs):.2f} s | "
                      f"{median(h for _, h, _ in pairs):.2f} s | {median(ratios):.2f} | "
                      f"{ratios[0]:.2f}–{ratios[-1]:.2f} ({len(pairs)}) | "
                      f"{max(r for _, _, r in pairs):.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
