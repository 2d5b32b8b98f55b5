"""Benchmark: a big CSV ingested in batches, with its peak memory, beside pyarrow read_csv.

    python bench/stream.py [--n 5000000] [--batch-rows 250000]

Writes n synthetic requests (real Philadelphia intersections) as one CSV, a chunk at a
time, then in two fresh processes, one after the other: pyarrow's ``read_csv`` of the
whole file (the floor: the file in memory as Arrow), and
:func:`geo.ingest.stream.ingest_stream` into a new embedded store (two streaming passes,
one atomic snapshot). Prints each one's wall time and peak resident memory (the
process's own ``ru_maxrss``); the goal is a peak under 3 GB that does not grow with n.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]

_FLOOR = """
import resource, sys, time
import pyarrow.csv as pa_csv
t = time.perf_counter()
table = pa_csv.read_csv(sys.argv[1])
print(table.num_rows, time.perf_counter() - t,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""

_STREAM = """
import resource, sys, time
from pathlib import Path
from geo.ingest.stream import ingest_stream
from geo.store.embedded import EmbeddedStore
from layers.profile import load_profile
store = EmbeddedStore(Path(sys.argv[2]), load_profile("philadelphia"))
store.ensure_profile_layers()
t = time.perf_counter()
report = ingest_stream(sys.argv[1], store, batch_rows=int(sys.argv[3]))
seconds = time.perf_counter() - t
assert report.balanced, report
print(report.rows_read, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
      report.result.inserted, store.count())
"""


def write_big_csv(path: Path, n: int, chunk: int = 500_000) -> None:
    """``n`` synthetic requests as one CSV, written a chunk at a time (unique ids)."""
    from bench.common import city_requests

    done = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        while done < n:
            size = min(chunk, n - done)
            frame = city_requests(size, seed=31 + done // chunk)
            frame["service_request_id"] = [f"BIG-{done + i:09d}" for i in range(size)]
            frame.to_csv(out, index=False, header=done == 0)
            done += size


def run(script: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split()
    return [float(v) for v in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000_000)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        csv = Path(tmp) / "big.csv"
        t = time.perf_counter()
        write_big_csv(csv, args.n)
        print(f"wrote {args.n:,} rows ({csv.stat().st_size / 2**30:.2f} GiB) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        rows, seconds, peak = run(_FLOOR, str(csv))
        print(f"  floor: pyarrow read_csv of {int(rows):,} rows {seconds:8.1f} s   "
              f"peak {peak:5.2f} GiB", flush=True)
        got, s_seconds, s_peak, inserted, count = run(_STREAM, str(csv), str(Path(tmp) / "s"),
                                                      str(args.batch_rows))
        print(f"  ingest_stream (batches of {args.batch_rows:,}) {s_seconds:8.1f} s   "
              f"peak {s_peak:5.2f} GiB   ({int(inserted):,} inserted, {int(count):,} stored, "
              f"of {int(got):,} read)",
              flush=True)
        print("results (one run; the machine is shared with other work):")
        print(f"  peak memory: streaming ingest {s_peak:.2f} GiB (goal < 3 GB), "
              f"read_csv of the whole file {peak:.2f} GiB; "
              f"time ratio ingest/read_csv {s_seconds / seconds:.1f}x")


if __name__ == "__main__":
    main()
