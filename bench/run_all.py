"""Run every benchmark of this folder at its quick size and print their figures (`make bench`).

A benchmark is a `bench_*.py` script that prints its figures. It may declare, at module level,
`QUICK_ARGS = [...]`: the command-line arguments of its quick run (read without importing the
script). Each runs in its own process, one after the other, so their figures do not disturb
each other; the exit code is non-zero when one of them fails. The figures each one hands over
(`figures.emit`) are printed at the end in one table, with the machine's core count.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from figures import parse, table  # noqa: E402


def quick_args(script: Path) -> list[str]:
    """The script's `QUICK_ARGS` literal, or no arguments."""
    tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "QUICK_ARGS" for t in node.targets):
            value = ast.literal_eval(node.value)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{script.name}: QUICK_ARGS must be a list of strings")
            return list(value)
    return []


def benchmarks(only: list[str] | None = None) -> list[Path]:
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if s.stem in only or s.name in only]
    return scripts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="benchmark names to run (default: all)")
    args = parser.parse_args(argv)
    failures = []
    results: list[dict] = []
    for script in benchmarks(args.only):
        command = [sys.executable, str(script), *quick_args(script)]
        print(f"=== {script.stem} {' '.join(command[2:])}".rstrip(), flush=True)
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            found = parse(line.rstrip("\n"))
            if found is not None:
                results.append(found)
            else:
                print(line, end="", flush=True)
        returncode = process.wait()
        print(f"=== {script.stem}: exit {returncode} in {time.monotonic() - started:.1f} s\n", flush=True)
        if returncode != 0:
            failures.append(script.stem)
    if results:
        print(table(results))
    if failures:
        print(f"failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
