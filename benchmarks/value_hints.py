"""Value hints against the gold SQL: how many of the gold queries' string literals are among the hints a question
gets (recall), and how many hints are gold literals (precision), on a seeded sample of Spider train questions.

    .venv/bin/python benchmarks/value_hints.py [--questions 1500]   # writes benchmarks/results/value_hints.json

A literal counts when the exact cell text is hinted (`lit_sql.data.values`); numbers written without quotes are
not literals here (they are free for the model to write). Also reports the seconds spent, index building included.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from datetime import date
from pathlib import Path

from _common import cpu_name

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/value_hints.py"
_LITERAL = re.compile(r"'((?:[^']|'')*)'|\"([^\"]*)\"")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spider", type=Path, default=ROOT.parent / "shared" / "data" / "spider-train")
    p.add_argument("--questions", type=int, default=1500)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "value_hints.json")
    args = p.parse_args()
    from lit_sql.data.values import value_index

    data = json.loads((args.spider / "train.json").read_text())
    random.Random(0).shuffle(data)
    data = data[:args.questions]
    gold_literals = found = hints = true_hints = with_hints = 0
    start = time.perf_counter()
    for ex in data:
        db = args.spider / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite"
        hinted = {v for values in value_index(db).hints(ex["question"]).values() for v in values}
        literals = {(a or b).replace("''", "'") for a, b in _LITERAL.findall(ex["query"])}
        gold_literals += len(literals)
        found += len(literals & hinted)
        hints += len(hinted)
        true_hints += len(hinted & literals)
        with_hints += bool(hinted)
    seconds = time.perf_counter() - start
    report = {
        "name": "value_hints", "date": date.today().isoformat(), "device": cpu_name(),
        "questions": len(data), "databases": len({ex["db_id"] for ex in data}),
        "gold_literals": gold_literals, "recall": round(found / max(1, gold_literals), 3),
        "hints": hints, "precision": round(true_hints / max(1, hints), 3),
        "questions_with_hints": with_hints, "seconds": round(seconds, 2), "rerun": RERUN,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
