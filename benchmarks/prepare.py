"""How long `prepare_sql` takes for 100,000 examples on this machine.

The headline run prepares the embedded generated source (10,000 questions on 100 databases) repeated 10 times
with --mix generated:10: every one of the 100,000 examples is rendered, tokenized with the SmolLM2 tokenizer,
masked and saved. A second run, recorded in the settings, generates 100,000 distinct questions on 500
databases, so it also times the generator. Run: python benchmarks/prepare.py
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from lit_sql.data.prepare import prepare

CHECKPOINT = Path("checkpoints/HuggingFaceTB/SmolLM2-135M-Instruct")
RESULTS = Path(__file__).parent / "results" / "prepare.json"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def timed(**kwargs) -> float:
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
        start = time.perf_counter()
        prepare(checkpoint_dir=CHECKPOINT, out_dir=Path(tmp), **kwargs)
        return time.perf_counter() - start


def main(repeats: int = 3) -> dict:
    headline = dict(mix="generated:10", test_split_fraction=0.0, max_seq_length=1024, schema_format="ddl")
    distinct = dict(num_databases=500, num_questions=100_000, test_split_fraction=0.0, max_seq_length=1024)
    runs, distinct_runs = [], []
    for i in range(repeats):
        runs.append(round(timed(**headline), 2))
        print(f"run {i + 1}: {runs[-1]} s (generated x10)")
    distinct_runs.append(round(timed(**distinct), 2))
    print(f"100,000 distinct generated questions, generation included: {distinct_runs[-1]} s")
    result = {
        "name": "prepare", "date": datetime.date.today().isoformat(), "device": cpu_name(),
        "metric": "seconds to prepare 100,000 examples", "higher_is_better": False,
        "lit_sql": statistics.median(runs),
        "settings": {"source": "generated (10,000 questions, 100 databases) repeated 10 times: --mix generated:10",
                     "tokenizer": "SmolLM2-135M-Instruct", "prompt_style": "chatml", "schema_format": "ddl",
                     "max_seq_length": 1024, "mask_prompt": True, "includes": "generation, SQL check, prompts, "
                     "tokenization, masking, torch.save of train.pt",
                     "distinct_100k_with_generator_s": distinct_runs,
                     "distinct_100k_settings": "--num_databases 500 --num_questions 100000"},
        "runs": {"lit_sql": runs},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median {result['lit_sql']} s -> {RESULTS}\nrerun: python benchmarks/prepare.py")
    return result


if __name__ == "__main__":
    main()
