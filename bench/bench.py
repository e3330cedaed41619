#!/usr/bin/env python3
"""The measuring half of bench/run (which builds, starts PostgreSQL and calls this).

For each catalog size: generate the files (cached), then R times
  parse baseline   pugixml parses import.xml + offers.xml whole, no processing
  COPY baseline    psql \\copy of the same rows (products, offers, prices, stock) into plain tables
                   with primary keys, one transaction
  full import      obmenctl import import.xml offers.xml into a fresh database (`obmenctl migrate`)
  re-import        the same again, nothing changed
  partial          obmenctl import offers_delta.xml (СодержитТолькоИзменения="true", 1% of offers)
(the re-import and the partial each after VACUUM (ANALYZE) and CHECKPOINT, untimed: see settle())
and print medians as Markdown. Wall time and peak RSS come from /usr/bin/time; rows written from
pg_stat_database (the whole database, temp staging tables included) and pg_stat_all_tables
(schemas portal and obmen only), read once no session is left on the database.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME = "/usr/bin/time"


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def with_database(url, name):
    """The same server URL with another database name."""
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{name}" + (f"?{query}" if query else "")


def psql(url, sql, *extra):
    r = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *extra, "-c", sql],
                       check=True, capture_output=True, text=True)
    return r.stdout.strip()


def timed(cmd, env=None, stdout=None):
    """Runs cmd under /usr/bin/time; returns (wall seconds, peak RSS MiB, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        r = subprocess.run([TIME, "-f", "%e %M", "-o", t.name, *cmd], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise SystemExit(f"bench: {' '.join(map(str, cmd))} failed ({r.returncode})")
        wall, rss_kb = t.read().split()[-2:]
    return float(wall), int(rss_kb) / 1024, r.stdout


class Server:
    def __init__(self, url, db):
        self.admin = with_database(url, "postgres")
        self.db = db
        self.url = with_database(url, db)

    def recreate(self):
        psql(self.admin, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        psql(self.admin, f"CREATE DATABASE {self.db}")

    def drop(self):
        psql(self.admin, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")

    def quiet(self):
        """Waits until no session is connected to the database: a backend flushes its statistics
        when it exits, so counters read after this include everything the last client did."""
        for _ in range(600):
            if psql(self.admin, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{self.db}'") == "0":
                return
            time.sleep(0.05)
        raise SystemExit(f"bench: sessions on {self.db} did not end")

    def settle(self):
        """VACUUM (ANALYZE) and, where allowed, CHECKPOINT: a fresh load of a million rows sets
        autovacuum and the checkpointer to work within the next minute, and when that lands inside
        the next measurement it takes a core from it at random (re-import medians of 2.0 to 3.2 s
        for the same code). A portal's catalog re-imported hours later has settled the same way."""
        psql(self.url, "VACUUM (ANALYZE)")
        try:
            psql(self.url, "CHECKPOINT")
        except subprocess.CalledProcessError:
            pass  # not a superuser (or pg_checkpoint member): the checkpointer keeps its own pace
        self.quiet()

    def written(self):
        """(rows inserted+updated+deleted in the whole database, … in schemas portal and obmen)."""
        self.quiet()
        db = psql(self.admin, "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                              f"WHERE datname = '{self.db}'")
        ours = psql(self.url, "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_all_tables "
                              "WHERE schemaname IN ('portal', 'obmen')")
        self.quiet()
        return int(db), int(ours)


def generate(build, data, n):
    out = data / f"catalog-{n}"
    meta = out / "meta.json"
    gen = build / "bench" / "generate_catalog"
    if meta.exists() and meta.stat().st_mtime > gen.stat().st_mtime:
        return out, json.loads(meta.read_text())
    log(f"generating {n} products into {out}")
    r = subprocess.run([str(gen), "--products", str(n), "--out", str(out)], check=True, capture_output=True, text=True)
    info = {k: int(v) for k, v in (line.split("=", 1) for line in r.stdout.split())}
    meta.write_text(json.dumps(info))
    return out, info


COPY_TABLES = """
DROP TABLE IF EXISTS b_stock, b_prices, b_offers, b_products;
CREATE TABLE b_products (
  external_id text PRIMARY KEY, sku text, name text NOT NULL, full_name text, description text,
  category_external_id text, unit text, unit_code text, barcode text, code text, manufacturer text,
  vat_rate text, attributes jsonb NOT NULL, requisites jsonb NOT NULL, version text, active boolean NOT NULL);
CREATE TABLE b_offers (
  external_id text PRIMARY KEY, product_external_id text, characteristic_id text, name text NOT NULL,
  sku text, barcode text, characteristics jsonb NOT NULL, quantity numeric, version text, active boolean NOT NULL);
CREATE TABLE b_prices (
  offer_external_id text, price_type_external_id text, value numeric(18,4), currency text, unit text,
  coefficient numeric, PRIMARY KEY (offer_external_id, price_type_external_id));
CREATE TABLE b_stock (
  offer_external_id text, warehouse_external_id text, quantity numeric,
  PRIMARY KEY (offer_external_id, warehouse_external_id));
"""


def copy_baseline(server, files):
    psql(server.url, COPY_TABLES)
    script = "BEGIN;\n" + "".join(
        f"\\copy b_{t} FROM '{files / (t + '.tsv')}'\n" for t in ("products", "offers", "prices", "stock")) + "COMMIT;\n"
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(script)
        f.flush()
        result = timed(["psql", server.url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", f.name])
    counts = psql(server.url, "SELECT (SELECT count(*) FROM b_products) + (SELECT count(*) FROM b_offers) + "
                              "(SELECT count(*) FROM b_prices) + (SELECT count(*) FROM b_stock)")
    return result, int(counts)


def write_config(path, url):
    path.write_text(f"""database:
  url: {url}
http:
  address: 127.0.0.1
  port: 18099
spool:
  dir: {path.parent / 'spool'}
sources:
  onec:
    type: onec
    path: /1c_exchange
    username: site
    password: {{ env: OBMEN_BENCH_PASSWORD }}
""")


def import_counts(stdout):
    """Sum of inserted/updated/unchanged per entity over the files of one obmenctl --json run."""
    total = {}
    for file, c in json.loads(stdout).items():
        if "error" in c:
            raise SystemExit(f"bench: {file}: {c['error']}")
        for entity, v in c.items():
            if isinstance(v, dict):
                t = total.setdefault(entity, {"inserted": 0, "updated": 0, "unchanged": 0, "deactivated": 0})
                for k in t:
                    t[k] += v[k]
    return total


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // (1024 * 1024)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem} GiB RAM, Linux {platform.release()}"


def fmt_rate(rows, secs):
    return f"{rows / secs:,.0f}" if secs > 0 else "—"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--products", default="100000", help="catalog sizes, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db", default="obmen_bench")
    ap.add_argument("--obmenctl", type=Path, help="another obmenctl binary to measure (e.g. an older build)")
    a = ap.parse_args()

    obmenctl = a.obmenctl or a.build / "ctl" / "obmenctl"
    parse = a.build / "bench" / "parse_baseline"
    server = Server(a.url, a.db)
    env = dict(os.environ, OBMEN_BENCH_PASSWORD="bench")
    env.pop("OBMEN_DATABASE_URL", None)
    a.data.mkdir(parents=True, exist_ok=True)
    config = a.data / "obmen.yaml"
    write_config(config, server.url)
    pg_version = psql(server.admin, "SHOW server_version")

    results = []
    for n in [int(x) for x in a.products.split(",")]:
        files, info = generate(a.build, a.data, n)
        full_rows = info["products"] + info["offers"] + info["prices"] + info["stock"]
        delta_rows = info["delta_offers"] + info["delta_prices"] + info["delta_stock"]
        xml = [str(files / "import.xml"), str(files / "offers.xml")]
        m = {k: [] for k in ("parse", "copy", "full", "re", "partial")}
        written = {k: [] for k in ("full", "re", "partial")}
        counts = {}
        for rep in range(a.repeat):
            log(f"{n} products, run {rep + 1}/{a.repeat}: parse baseline")
            m["parse"].append(timed([str(parse), *xml])[:2])
            log(f"{n} products, run {rep + 1}/{a.repeat}: COPY baseline")
            server.recreate()
            result, copied = copy_baseline(server, files)
            if copied != full_rows:
                raise SystemExit(f"bench: COPY baseline stored {copied} rows, expected {full_rows}")
            m["copy"].append(result[:2])
            server.recreate()
            subprocess.run([str(obmenctl), "--config", str(config), "migrate"], env=env, check=True,
                           capture_output=True)
            for step, args in (("full", xml), ("re", xml), ("partial", [str(files / "offers_delta.xml")])):
                log(f"{n} products, run {rep + 1}/{a.repeat}: obmenctl import ({step})")
                if step != "full":
                    server.settle()
                before = server.written()
                wall, rss, out = timed([str(obmenctl), "--config", str(config), "import", "--json", *args], env=env)
                after = server.written()
                m[step].append((wall, rss))
                written[step].append((after[0] - before[0], after[1] - before[1]))
                counts[step] = import_counts(out)
        server.drop()
        results.append((n, info, full_rows, delta_rows, m, written, counts))

    # ── report ──
    print(f"Machine: {machine()}; PostgreSQL {pg_version}. Medians of {a.repeat} runs.\n")
    for n, info, full_rows, delta_rows, m, written, counts in results:
        med = {k: (statistics.median(w for w, _ in v), max(r for _, r in v)) for k, v in m.items()}
        wmed = {k: (statistics.median(d for d, _ in v), statistics.median(p for _, p in v)) for k, v in written.items()}
        mb = (info["import_bytes"] + info["offers_bytes"]) / 1e6
        print(f"### {n:,} products: {info['offers']:,} offers, {info['prices']:,} prices, {info['stock']:,} stock rows "
              f"({full_rows:,} rows); import.xml + offers.xml = {mb:,.0f} MB; partial: {info['delta_offers']:,} offers "
              f"({delta_rows:,} rows, {info['delta_bytes'] / 1e6:,.1f} MB)\n")
        print("| step | wall, s | rows | rows/s | peak RSS, MB | rows written: database / portal+obmen |")
        print("|---|---:|---:|---:|---:|---:|")
        rows = [("parse baseline (pugixml, both files whole)", "parse", full_rows),
                ("COPY baseline (4 tables with PKs, 1 transaction)", "copy", full_rows),
                ("obmen full import (fresh schema)", "full", full_rows),
                ("obmen re-import (nothing changed)", "re", full_rows),
                ("obmen partial (1% of offers changed)", "partial", delta_rows)]
        for label, k, r in rows:
            wall, rss = med[k]
            w = f"{wmed[k][0]:,.0f} / {wmed[k][1]:,.0f}" if k in wmed else "—"
            rss_text = f"{rss:,.0f}" if k != "copy" else f"({rss:,.0f} psql)"
            print(f"| {label} | {wall:,.2f} | {r:,} | {fmt_rate(r, wall)} | {rss_text} | {w} |")
        base = med["parse"][0] + med["copy"][0]
        full, re_, part = med["full"][0], med["re"][0], med["partial"][0]
        ok = lambda b: "met" if b else "**not met**"
        print()
        print("| target | measured | |")
        print("|---|---|---|")
        print(f"| full ≤ 1.0 × (parse + COPY) | {full:,.2f} s / {base:,.2f} s = {full / base:.2f} × | {ok(full <= base)} |")
        print(f"| re-import ≤ 0.5 × full | {re_ / full:.2f} × | {ok(re_ <= 0.5 * full)} |")
        print(f"| re-import writes zero rows | portal+obmen: {wmed['re'][1]:,.0f}; whole database (temp staging "
              f"included): {wmed['re'][0]:,.0f} | {ok(wmed['re'][1] == 0)} |")
        print(f"| partial ≤ 0.05 × full | {part / full:.3f} × | {ok(part <= 0.05 * full)} |")
        peak = max(med[k][1] for k in ("full", "re", "partial"))
        print(f"| peak RSS ≤ 256 MB | {peak:,.0f} MB | {ok(peak <= 256)} |")
        c = counts
        print(f"\nobmen's own counts — full: products {c['full']['products']['inserted']:,} new, offers "
              f"{c['full']['offers']['inserted']:,} new, prices {c['full']['prices']['inserted']:,} new, stock "
              f"{c['full']['stock']['inserted']:,} new; re-import: "
              f"{sum(v['inserted'] + v['updated'] + v['deactivated'] for v in c['re'].values()):,} changed; partial: "
              f"prices {c['partial']['prices']['updated']:,} updated, stock {c['partial']['stock']['updated']:,} "
              f"updated, offers {c['partial']['offers']['updated']:,} updated.\n")
    if len(results) > 1:
        print("| products | full import peak RSS, MB | re-import | partial |")
        print("|---:|---:|---:|---:|")
        for n, _, _, _, m, _, _ in results:
            print(f"| {n:,} | " + " | ".join(f"{max(r for _, r in m[k]):,.0f}" for k in ("full", "re", "partial")) + " |")
        print()


if __name__ == "__main__":
    main()
