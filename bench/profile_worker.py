"""Profile envoi's worker on no-op jobs: N jobs added in bulk, then drained by one `envoi.worker.Worker`.

    py-spy record --format raw -o var/worker.txt -- .venv/bin/python bench/profile_worker.py [-n 20000]
    .venv/bin/python bench/profile_worker.py --summarize var/worker.txt

The summary gives, from py-spy's collapsed stacks, the functions with the largest share of samples
(own: the innermost frame; total: anywhere on the stack).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
import uuid
from pathlib import Path

from common import add_redis_argument, bench_environment
from envoi.db.migrate import upgrade
from throughput import drain_envoi

#: Stacks of the set-up (adding the jobs, imports, start and close), left out of the summary.
SETUP = ("fill (", "_find_and_load", "Worker.start (", "Worker.close (", "upgrade (")


def _frame(raw: str) -> str:
    """`function (package/module.py)`, without the line number."""
    name, _, where = raw.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})"


def summarize(path: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "_run_once (" not in stack or any(marker in stack for marker in SETUP):
            continue
        frames = [_frame(raw) for raw in stack.split(";")]
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    print(f"{samples} samples in the event loop, set-up left out")
    print("\n| own % | function |\n|---:|---|")
    for frame, n in own.most_common(top):
        print(f"| {100 * n / samples:.1f} | `{frame}` |")
    print("\n| total % | function |\n|---:|---|")
    for frame, n in total.most_common(top * 2):
        print(f"| {100 * n / samples:.1f} | `{frame}` |")
    print("\nenvoi's own code (total %):")
    for frame, n in total.most_common():
        if "envoi/" in frame and "fetch_next" not in frame:
            print(f"| {100 * n / samples:.1f} | `{frame}` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--summarize", type=Path, help="print the top of a py-spy raw profile and exit")
    parser.add_argument("--top", type=int, default=15)
    add_redis_argument(parser)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize, args.top)
        return
    with bench_environment(args.redis_url) as (url, db):
        upgrade(db)
        started = time.perf_counter()
        prefix = f"profile-{uuid.uuid4().hex[:8]}"
        rate = asyncio.run(drain_envoi(url, prefix, db, "noop", args.n, args.concurrency, fetch_next=True))
        print(f"{args.n} no-op jobs at {rate:.0f} jobs/s ({time.perf_counter() - started:.1f}s in all)")


if __name__ == "__main__":
    main()
