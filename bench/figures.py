"""How a benchmark hands its figures to `run_all.py`: one `FIGURES {json}` line on standard output.

Each figure is a row of the one table `make bench` prints: what is measured, its value (already
formatted, with its unit), the target when there is one and whether it is met. Every figure is
printed with the machine's core count, since a ratio measured on 2 cores says little of 8.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Iterable, Optional

MARK = "FIGURES "


@dataclass(frozen=True)
class Figure:
    name: str
    value: str
    target: str = ""
    met: Optional[bool] = None
    note: str = ""


def cores() -> int:
    return os.cpu_count() or 1


def emit(bench: str, figures: Iterable[Figure]) -> None:
    """Print the figures for `run_all.py` (and for a reader of the script's own output)."""
    print(MARK + json.dumps({"bench": bench, "cores": cores(), "figures": [asdict(f) for f in figures]},
                            ensure_ascii=False), flush=True)


def parse(line: str) -> Optional[dict]:
    if not line.startswith(MARK):
        return None
    return json.loads(line[len(MARK):])


def table(results: list[dict]) -> str:
    """The one table of every benchmark's figures."""
    rows = [("benchmark", "figure", "value", "target", "")]
    for result in results:
        for figure in result["figures"]:
            met = figure.get("met")
            rows.append((result["bench"], figure["name"], figure["value"], figure.get("target") or "",
                         "" if met is None else ("met" if met else "NOT MET")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"  {result['bench']}: {figure['name']}: {figure['note']}" for result in results
             for figure in result["figures"] if figure.get("note")]
    core_counts = sorted({result["cores"] for result in results})
    head = f"machine: {', '.join(str(c) for c in core_counts)} core(s) (os.cpu_count()); ratios are measured within one run"
    return "\n".join([head, *lines, *(["notes:", *notes] if notes else [])])
