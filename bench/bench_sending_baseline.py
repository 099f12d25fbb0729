"""This tree's sending engine against an earlier commit's, in the same run.

The engine of `--baseline` (a git ref; default: the last commit before sender leases)
is checked out in a worktree under var/ and given this tree's bench files (the same
seeding, sink and timing). Each tree's `bench_sending.py --serve` seeds its own database
once and keeps its process warm; the engines then run in alternating rounds (A B, B A,
...), the queue reset to Pending between runs, so both see the same minutes of this
noisy shared machine. Printed: each round's rates, the medians, and this engine's rate
as a share of the baseline's (goal >= 95%).

    .venv/bin/python bench/bench_sending_baseline.py [--baseline 515c34c] [--rounds 10]
        [--items 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE_LEASES = "515c34c"  # main just before "Sending: liveness by lease" (f7ed0b1)
SHARED_BENCH_FILES = ("bench_sending.py", "benchdb.py", "fast_sink.py", "sending_settings.py")


def baseline_tree(ref: str) -> Path:
    """A worktree of `ref` with this tree's bench files; made once, reused."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = ROOT / "var" / f"bench-baseline-{sha}"
    if not (tree / "manage.py").exists():
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), sha],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    for name in SHARED_BENCH_FILES:
        shutil.copy(ROOT / "bench" / name, tree / "bench" / name)
    return tree


class Contender:
    """A tree's bench_sending.py --serve: seeded once, one engine run per request."""

    def __init__(self, name: str, tree: Path, database: str, items: int) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "bench/bench_sending.py", "--serve", "--items", str(items)],
            cwd=tree,
            env={**_environ(), "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.runs: list[dict] = []

    def wait_ready(self) -> None:
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"the {self.name} bench did not start: {line!r}")

    def run(self) -> dict:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line.startswith("{"):
            raise SystemExit(f"the {self.name} bench failed: {line!r}")
        return json.loads(line)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _environ() -> dict[str, str]:
    # The bench picks its own var dir and settings; a caller's must not leak in.
    drop = ("DATABASE_URL", "MASSMAIL_VAR_DIR", "DJANGO_SETTINGS_MODULE")
    return {key: value for key, value in os.environ.items() if key not in drop}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default=BEFORE_LEASES, help="git ref of the baseline")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    baseline = Contender(
        "baseline", baseline_tree(args.baseline), "massmail_bench_sending_baseline", args.items
    )
    this = Contender("this tree", ROOT, "massmail_bench_sending", args.items)
    contenders = [baseline, this]
    try:
        for contender in contenders:
            contender.wait_ready()
        print(
            f"2 worker processes, {args.items:,} messages per run, a warm-up run each, then"
            f" {args.rounds} rounds in alternating order; baseline {args.baseline}"
        )
        for contender in contenders:
            warm = contender.run()
            print(
                f"{contender.name}: raw smtplib ceiling {warm['raw']:,.0f} msg/s;"
                f" warm-up {warm['engine']:,.0f} msg/s"
            )
        for round_number in range(args.rounds):
            order = contenders if round_number % 2 == 0 else contenders[::-1]
            figures = []
            for contender in order:
                result = contender.run()
                contender.runs.append(result)
                figures.append(f"{contender.name} {result['engine']:,.0f} msg/s")
            print(f"round {round_number + 1}: " + ", ".join(figures))
    finally:
        for contender in contenders:
            contender.stop()
    medians = {c.name: statistics.median(r["engine"] for r in c.runs) for c in contenders}
    for name, rate in medians.items():
        print(f"{name}: median {rate:,.0f} msg/s")
    # Each round's pair ran back to back: its ratio cancels the machine's slower minutes.
    pairs = [t["engine"] / b["engine"] for t, b in zip(this.runs, baseline.runs, strict=True)]
    print(
        f"ratio: this tree's engine = {100 * medians['this tree'] / medians['baseline']:.1f}%"
        f" of the baseline's median rate; median of the rounds' ratios"
        f" {100 * statistics.median(pairs):.1f}% (goal >= 95%)"
    )


if __name__ == "__main__":
    main()
