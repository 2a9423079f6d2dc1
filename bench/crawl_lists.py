"""Reading a Parquet crawl list of --rows rows written as ONE row group (pandas' and pyarrow's
default holds up to 1Mi rows per group), against reading the file once with pyarrow.

    .venv/bin/python bench/crawl_lists.py [--rows 1000000] [--repeats 2]

  limit     pyarrow.parquet.read_table of the url and caption columns: the file read once, no
            Python objects made (the physical limit of any reader of this file);
  to_pylist the same read, then its cells as Python strings (what any per-row parser needs);
  planning  what `faces` does before the first fetch: the JSON-lines copy (`plain_list`),
            `plan_units` (256 entries a unit) and `mark_repeats`;
  units     every unit's `read_unit`, one after the other: the list reading all workers do.
Times are wall and CPU seconds, of the best of --repeats runs (each on a fresh copy), and
their ratios to the limit (CPU seconds are the steadier on a shared machine). Writes
bench/out/crawl_lists.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dcgan_data.faces.crawl_list import mark_repeats, plan_units, read_unit
from dcgan_data.faces.plain_list import plain_list

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
COLUMNS = ["url", "caption"]


def write_list(path: Path, rows: int) -> None:
    """LAION-like rows: a URL of ~70 characters and a caption, 1% of the URLs repeated."""
    urls = [f"https://images.example.org/{j // 1000:06d}/photo-{j:09d}-large.jpg"
            for j in (i % (rows - rows // 100) for i in range(rows))]
    captions = [f"a photo of person {i % 5000} at event {i % 977}" for i in range(rows)]
    pq.write_table(pa.table({"url": urls, "caption": captions, "width": list(range(rows))}),
                   path, row_group_size=rows)


def best(run, repeats: int) -> tuple[tuple[float, float], object]:
    """(wall seconds, CPU seconds of this process) of the fastest run, and its result."""
    times, result = [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = run()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        crawl = Path(tmp) / "laion.parquet"
        write_list(crawl, args.rows)
        assert pq.ParquetFile(crawl).metadata.num_row_groups == 1
        limit, _ = best(lambda: pq.read_table(crawl, columns=COLUMNS), args.repeats)
        pylist, _ = best(lambda: [pq.read_table(crawl, columns=COLUMNS).column(c).to_pylist()
                                  for c in COLUMNS], args.repeats)

        def plan():
            work = Path(tmp) / "out"
            shutil.rmtree(work, ignore_errors=True)
            listing = plain_list(crawl, work)
            return listing, mark_repeats(listing, plan_units(listing, 256))

        planning, (listing, units) = best(plan, args.repeats)
        reading, entries = best(lambda: sum(len(read_unit(listing, u)[0]) for u in units),
                                args.repeats)
    assert entries == args.rows
    times = {"limit_read_table": limit, "read_table_to_pylist": pylist, "planning": planning,
             "all_units_read": reading}
    result = {
        "rows": args.rows, "row_groups": 1, "units": len(units),
        "repeated_lines": sum(len(u.repeats) for u in units),
        **{f"{clock}_seconds": {k: round(v[i], 3) for k, v in times.items()}
           for i, clock in enumerate(("wall", "cpu"))},
        **{f"{name}_over_limit_{clock}": round(times[name][i] / limit[i], 1)
           for name in ("planning", "all_units_read") for i, clock in enumerate(("wall", "cpu"))},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "crawl_lists.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
