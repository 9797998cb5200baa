"""Evaluation by execution accuracy: generate SQL for test questions, run it and the gold SQL on the real
databases, compare the results, and report.

Generation is batched (left-padded prompts decoded together). `num_samples > 1` samples several candidates
per question and keeps the one whose result most candidates agree on (execution-guided voting, skipping
candidates that fail; a tie goes to the result the earliest candidate gave). `fix_errors` shows the model its
SQLite error once and asks for a corrected query.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch
from tqdm import tqdm

from lit_sql.errors import LitSQLError
from lit_sql.generation import SamplingConfig, generate_batch
from lit_sql.sql.compare import MODES, ComparisonMode

if TYPE_CHECKING:
    from lit_sql.data.schema import Schema


@dataclass
class EvalConfig:
    # how results are compared: testsuite (bag of rows) or bird (set, strict columns)
    mode: ComparisonMode = "testsuite"
    num_samples: int = 1  # >1: sample candidates and vote by execution result
    # With num_samples > 1, the first candidate is the greedy answer: a tie (every result different) then goes to
    # the most likely query that runs, the rest are samples (execution-guided selection).
    greedy_first: bool = True
    # With num_samples > 1: sample the other candidates only for the questions whose greedy query fails to run
    # (execution-guided decoding at a fraction of the cost: see `candidates_for`).
    sample_on_error: bool = False
    temperature: float = 0.7  # for num_samples > 1 (greedy otherwise)
    top_p: float = 0.95
    max_new_tokens: int = 200
    batch_size: int = 16  # questions decoded together: on 2 CPU cores 16 gives ~15% more questions/minute than 8
    fix_errors: bool = False
    constrained: bool = True  # schema-grounded decoding (`lit_sql.sql.grounding`) where the database is known
    timeout_s: float = 10.0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LitSQLError(f"--mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.num_samples < 1 or self.batch_size < 1:
            raise LitSQLError("--num_samples and --batch_size must be >= 1")


# -------------------------------------------------------------------------------------------------------
# Generation
# -------------------------------------------------------------------------------------------------------
def prompt_of(example: dict, style) -> str:
    if example.get("prompt"):
        return example["prompt"]
    from lit_sql.data.prompt import build_prompt

    return build_prompt(style, example["question"], example["schema"], evidence=example.get("evidence"))


def plan_batches(encoded: Sequence[Sequence[int]], size: int) -> list[list[int]]:
    """Prompt indices in batches of at most `size`: questions on the same database together, so a batch's
    shared beginning (system prompt and schema, most of a text-to-SQL prompt) is computed once
    (`generate_batch`); prompts that share little with any other are batched by length, to pad little."""
    from lit_sql.generation import common_prefix_length

    groups: list[list[int]] = []  # runs, in sorted order, sharing at least half of the shorter prompt
    for i in sorted(range(len(encoded)), key=lambda i: list(encoded[i])):
        if groups:
            first = encoded[groups[-1][0]]
            if 2 * common_prefix_length([first, encoded[i]]) >= min(len(first), len(encoded[i])):
                groups[-1].append(i)
                continue
        groups.append([i])
    batches = []
    for g in (g for g in groups if len(g) > 1):
        # By length within a group: the rows' own parts (the questions) pad little, and similar questions tend
        # to have answers of similar length, so rows finish together. Chunks of even size: 17 questions on
        # one database make batches of 9 and 8, not 16 and a lone 1 that computes the schema again.
        g = sorted(g, key=lambda i: len(encoded[i]))
        chunks = -(-len(g) // size)
        bounds = [round(k * len(g) / chunks) for k in range(chunks + 1)]
        batches += [g[a:b] for a, b in zip(bounds, bounds[1:])]
    loners = sorted((g[0] for g in groups if len(g) == 1), key=lambda i: -len(encoded[i]))
    return batches + [loners[k:k + size] for k in range(0, len(loners), size)]


def generate_sql(model, tokenizer, style, prompts: Sequence[str], cfg: EvalConfig, seed: int = 1234,
                 desc: str = "generating", schemas: Optional[Sequence[Optional["Schema"]]] = None,
                 force_sampling: bool = False) -> list[list[str]]:
    """`num_samples` SQL candidates per prompt (greedy when 1, unless `force_sampling`; with `greedy_first` the
    first of several is greedy), in batches of similar length. With `schemas` (one per prompt, None where unknown)
    and `cfg.constrained`, names stay inside each prompt's database."""
    from lit_sql.sql.extract import extract_sql
    from lit_sql.sql.grounding import grounding_for

    if cfg.num_samples > 1 and cfg.greedy_first:
        greedy = generate_sql(model, tokenizer, style, prompts, replace(cfg, num_samples=1), seed, desc, schemas)
        rest = generate_sql(model, tokenizer, style, prompts, replace(cfg, num_samples=cfg.num_samples - 1,
                                                                       greedy_first=False),
                            seed, desc + " (samples)", schemas, force_sampling=True)
        return [g + r for g, r in zip(greedy, rest)]
    encoded = [tokenizer.encode(p) for p in prompts]
    sampled_decoding = cfg.num_samples > 1 or force_sampling
    sampling = SamplingConfig(cfg.temperature, None, cfg.top_p) if sampled_decoding else SamplingConfig()
    generator = torch.Generator().manual_seed(seed)
    stops = style.stop_tokens(tokenizer)
    ends = [s[0] for s in stops if len(s) == 1]
    per_batch = max(1, cfg.batch_size // cfg.num_samples)
    out: list[list[str]] = [[] for _ in prompts]
    with tqdm(total=len(prompts), desc=desc, unit="question", leave=False) as bar:
        for rows in plan_batches(encoded, per_batch):
            batch = [encoded[i] for i in rows for _ in range(cfg.num_samples)]
            grounding = None
            if cfg.constrained and schemas is not None:
                grounding = grounding_for(tokenizer, [schemas[i] for i in rows for _ in range(cfg.num_samples)], ends)
            texts = generate_batch(model, batch, cfg.max_new_tokens, pad_id=tokenizer.eos_id, sampling=sampling,
                                   stop_tokens=stops, generator=generator, grounding=grounding)
            for j, i in enumerate(rows):
                out[i] = [extract_sql(tokenizer.decode(t)) for t in texts[j * cfg.num_samples:(j + 1) * cfg.num_samples]]
            bar.update(len(rows))
    return out


def schemas_of(examples: Sequence[dict]) -> list[Optional["Schema"]]:
    """The full schema of each example's database (not the prompt's, which may be shortened), read once per
    database; from its CREATE TABLE text when it has no database file; None when neither can be read."""
    from lit_sql.data.schema import read_schema, schema_from_sql

    cache: dict[str, Optional["Schema"]] = {}
    out = []
    for ex in examples:
        key = str(ex.get("db_path") or "") or ex.get("schema") or ""
        if key not in cache:
            try:
                if ex.get("db_path") and Path(ex["db_path"]).is_file():
                    cache[key] = read_schema(ex["db_path"])
                else:
                    cache[key] = schema_from_sql(ex["schema"]) if ex.get("schema") else None
            except (LitSQLError, OSError, ValueError) as e:
                print(f"note: no grounded decoding for {key[:80]!r}: its schema could not be read ({e})",
                      file=sys.stderr)
                cache[key] = None
        out.append(cache[key])
    return out


def candidates_for(model, tokenizer, style, prompts: Sequence[str], examples: Sequence[dict], cfg: EvalConfig,
                   seed: int = 1234, desc: str = "generating",
                   schemas: Optional[Sequence[Optional["Schema"]]] = None) -> list[list[str]]:
    """The SQL candidates evaluation votes among: `generate_sql`'s, except with `cfg.sample_on_error`, where
    every question gets its greedy query and only those whose query fails to run on the example's database get
    `num_samples - 1` samples as well (Wang et al., 2018: execution-guided decoding). A question whose greedy
    answer runs costs one decode, and its answer is the greedy one; for the others the vote picks among samples
    that run."""
    if not (cfg.sample_on_error and cfg.num_samples > 1):
        return generate_sql(model, tokenizer, style, prompts, cfg, seed, desc, schemas)
    from lit_sql.sql.execute import execute_many

    candidates = generate_sql(model, tokenizer, style, prompts, replace(cfg, num_samples=1), seed, desc, schemas)
    runs = execute_many([(databases_of(ex)[0], c[0]) for ex, c in zip(examples, candidates)],
                        timeout_s=cfg.timeout_s, num_workers=cfg.workers)
    failing = [i for i, r in enumerate(runs) if not r.ok]
    if failing:
        more = generate_sql(model, tokenizer, style, [prompts[i] for i in failing],
                            replace(cfg, num_samples=cfg.num_samples - 1, greedy_first=False), seed,
                            desc + " (samples where it fails)", [schemas[i] for i in failing] if schemas else None,
                            force_sampling=True)
        for i, extra in zip(failing, more):
            candidates[i] = candidates[i] + extra
    return candidates


# -------------------------------------------------------------------------------------------------------
# Execution and comparison
# -------------------------------------------------------------------------------------------------------
def databases_of(example: dict) -> list[str]:
    """Where to run an example's SQL: its own database, or databases built from its CREATE TABLE context."""
    if example.get("db_path"):
        return [str(example["db_path"])]
    if example.get("db_paths"):
        return [str(p) for p in example["db_paths"]]
    from lit_sql.sql.build_db import build_databases

    return [str(p) for p in build_databases(example["schema"], example["sql"])]


def result_key(result) -> Optional[tuple]:
    """A hashable form of a result for voting (None for failures): rows as a sorted bag."""
    if not result.ok:
        return None
    return tuple(sorted((tuple(map(repr, row)) for row in result.rows)))


def evaluate_examples(examples: Sequence[dict], candidates: Sequence[Sequence[str]], cfg: EvalConfig) -> list[dict]:
    """Execute gold and candidate SQL on each example's database(s) and compare; one record per example."""
    from lit_sql.sql.compare import results_match
    from lit_sql.sql.execute import execute_many
    from lit_sql.sql.metrics import bleu, exact_match, parses, rouge_l

    dbs = [databases_of(ex) for ex in examples]
    jobs, index = [], []
    for i, (ex, cands) in enumerate(zip(examples, candidates)):
        for db in dbs[i]:
            jobs.append((db, ex["sql"]))
            index.append((i, db, None))
            for c, sql in enumerate(cands):
                jobs.append((db, sql))
                index.append((i, db, c))
    results = execute_many(jobs, timeout_s=cfg.timeout_s, num_workers=cfg.workers)
    gold: dict[tuple[int, str], Any] = {}
    pred: dict[tuple[int, str, int], Any] = {}
    for (i, db, c), r in zip(index, results):
        if c is None:
            gold[i, db] = r
        else:
            pred[i, db, c] = r

    records = []
    for i, (ex, cands) in enumerate(zip(examples, candidates)):
        first_db = dbs[i][0]
        # Voting on the first database's results; failures never win. most_common lists equal counts in the
        # order first seen, so a tie goes to the earliest candidate's result.
        keys = [result_key(pred[i, first_db, c]) for c in range(len(cands))]
        votes = Counter(k for k in keys if k is not None)
        chosen = keys.index(votes.most_common(1)[0][0]) if votes else 0
        sql = cands[chosen] if cands else ""
        gold_ok = all(gold[i, db].ok for db in dbs[i])
        match = {m: gold_ok and all(results_match(gold[i, db], pred[i, db, chosen], m, ex["sql"]) for db in dbs[i])
                 for m in MODES}
        p, g = pred[i, first_db, chosen], gold[i, first_db]
        records.append({
            "question": ex["question"], "gold": ex["sql"], "prediction": sql, "db_id": ex.get("db_id"),
            "difficulty": ex.get("difficulty") or "unknown",
            "match": match[cfg.mode], **{f"match_{m}": match[m] for m in MODES},
            "gold_error": g.error, "pred_error": p.error, "executes": p.ok, "parses": parses(sql),
            "exact_match": exact_match(sql, ex["sql"]), "bleu": bleu(sql, ex["sql"]), "rouge_l": rouge_l(sql, ex["sql"]),
            "gold_rows": _preview(g), "pred_rows": _preview(p), "candidates": list(cands) if len(cands) > 1 else None,
            "votes": votes.most_common(1)[0][1] if votes else 0,
            **({"few_shot": ex["few_shot"]} if "few_shot" in ex else {}),
        })
    return records


def _preview(result, limit: int = 5) -> Optional[list]:
    return [list(map(_jsonable, row)) for row in result.rows[:limit]] if result.ok else None


def _jsonable(v):
    return v if isinstance(v, (int, float, str)) or v is None else repr(v)


def fix_errors(model, tokenizer, style, examples, records, cfg: EvalConfig,
               system_prompt: Optional[str] = None) -> int:
    """Give each failing prediction's SQLite error back to the model once, as the next turn of the conversation
    it answered; returns how many were retried (a prediction with no SQL at all is not, nor one whose repair
    prompt leaves no room for `max_new_tokens` in the model's context). `system_prompt`: the system prompt the
    questions were asked with (the run's recipe; None: the default)."""
    failing = [i for i, r in enumerate(records) if not r["executes"] and r["prediction"]]
    if not failing:
        return 0
    from lit_sql.data.prompt import DEFAULT_SQL_SYSTEM_PROMPT, build_user_message

    prompts = []
    for i in failing:
        ex, r = examples[i], records[i]
        shots = [(s["question"], s["sql"]) for s in ex.get("few_shot") or []]
        first = build_user_message(ex["question"], ex["schema"], ex.get("evidence"), shots)
        prompts.append(style.apply(f"That query failed in SQLite with: {r['pred_error']}\nWrite a corrected query.",
                                   system=system_prompt or DEFAULT_SQL_SYSTEM_PROMPT, history=[(first, r["prediction"])]))
    # The repair turn makes a prompt longer than the question's: one that no longer fits keeps its first answer
    # instead of stopping the whole evaluation.
    room = model.config.block_size - cfg.max_new_tokens
    fits = [len(tokenizer.encode(p)) <= room for p in prompts]
    if not all(fits):
        print(f"fix_errors: {fits.count(False)} repair prompts do not fit the model's context with --max_new_tokens "
              f"{cfg.max_new_tokens}; their first answers stand", file=sys.stderr)
        failing, prompts = [i for i, ok in zip(failing, fits) if ok], [p for p, ok in zip(prompts, fits) if ok]
        if not failing:
            return 0
    greedy = EvalConfig(**{**asdict(cfg), "num_samples": 1})
    retried = generate_sql(model, tokenizer, style, prompts, greedy, desc="fixing errors",
                           schemas=schemas_of([examples[i] for i in failing]))
    new = evaluate_examples([examples[i] for i in failing], retried, greedy)
    for i, rec in zip(failing, new):
        rec["fixed_from"] = records[i]["prediction"]
        records[i] = rec
    return len(failing)


# -------------------------------------------------------------------------------------------------------
# Summaries and reports
# -------------------------------------------------------------------------------------------------------
def summarize(records: Sequence[dict], mode: str) -> dict:
    n = len(records)

    def rate(key: str, rows=records) -> float:
        return round(100.0 * sum(bool(r[key]) for r in rows) / max(1, len(rows)), 2)

    by = lambda field: {k: {"n": len(v), "accuracy": rate("match", v)}  # noqa: E731
                        for k, v in sorted(_group(records, field).items())}
    return {
        "n": n, "mode": mode, "execution_accuracy": rate("match"),
        **{f"execution_accuracy_{m}": rate(f"match_{m}") for m in MODES},
        "exact_match": rate("exact_match"), "parses": rate("parses"), "executes": rate("executes"),
        "bleu": round(100 * statistics.fmean([r["bleu"] for r in records]), 2) if records else 0.0,
        "rouge_l": round(100 * statistics.fmean([r["rouge_l"] for r in records]), 2) if records else 0.0,
        "gold_errors": sum(r["gold_error"] is not None for r in records),
        "by_difficulty": by("difficulty"), "by_database": by("db_id"),
    }


def _group(records, field) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for r in records:
        groups[str(r.get(field))].append(r)
    return groups


def write_reports(out_dir: Path, runs: dict[str, tuple[list[dict], dict]], title: str,
                  scope: Optional[str] = None) -> Path:
    """Per-run JSONL and summary JSON, one Markdown report for all runs, and a bar chart PNG. `scope` says which
    questions were evaluated (e.g. "200 of 687 test questions (seeded sample; --limit)"); default: how many."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (records, summary) in runs.items():
        with open(out_dir / f"{name}.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        (out_dir / f"{name}_summary.json").write_text(json.dumps(summary, indent=2))
    chart = plot_accuracy(runs, out_dir / "accuracy.png")
    lines = [f"# {title}", ""]
    first = next(iter(runs.values()))[1]
    lines += [f"Execution match mode: **{first['mode']}** (testsuite: bag of rows, order only when the gold query "
              f"has ORDER BY, columns may be permuted; bird: set of rows, column order strict). "
              f"{scope or str(first['n']) + ' questions'}.", ""]
    metrics = ["execution_accuracy", *(f"execution_accuracy_{m}" for m in MODES), "exact_match", "parses", "executes",
               "bleu", "rouge_l"]
    lines.append("| metric | " + " | ".join(runs) + " |")
    lines.append("|---|" + "---|" * len(runs))
    for m in metrics:
        lines.append(f"| {m} | " + " | ".join(f"{s[m]:.1f}" for _, s in runs.values()) + " |")
    lines += ["", "## By difficulty", "", "| difficulty | n | " + " | ".join(runs) + " |", "|---|---|" + "---|" * len(runs)]
    for level in sorted({k for _, s in runs.values() for k in s["by_difficulty"]}):
        n = next(s["by_difficulty"][level]["n"] for _, s in runs.values() if level in s["by_difficulty"])
        cells = [f"{s['by_difficulty'].get(level, {}).get('accuracy', 0):.1f}" for _, s in runs.values()]
        lines.append(f"| {level} | {n} | " + " | ".join(cells) + " |")
    if len(runs) == 2:
        (a_name, (a, _)), (b_name, (b, _)) = runs.items()
        fixed = [(x, y) for x, y in zip(a, b) if not x["match"] and y["match"]]
        broken = [(x, y) for x, y in zip(a, b) if x["match"] and not y["match"]]
        lines += ["", f"## Questions that changed ({len(fixed)} now right, {len(broken)} now wrong)", ""]
        for label, pairs in (("now right", fixed), ("now wrong", broken)):
            for x, y in pairs[:15]:
                lines += [f"- **{label}**: {x['question']}", f"  - gold: `{x['gold']}`",
                          f"  - {a_name}: `{x['prediction']}`", f"  - {b_name}: `{y['prediction']}`"]
    if chart:
        lines += ["", f"![accuracy]({chart.name})"]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def plot_accuracy(runs: dict[str, tuple[list[dict], dict]], path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    levels = sorted({k for _, s in runs.values() for k in s["by_difficulty"]})
    groups = ["all", *levels]
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 4))
    width = 0.8 / len(runs)
    for j, (name, (_, s)) in enumerate(runs.items()):
        values = [s["execution_accuracy"], *[s["by_difficulty"].get(g, {}).get("accuracy", 0) for g in levels]]
        bars = ax.bar([i + j * width for i in range(len(groups))], values, width, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(groups))], groups)
    ax.set_ylabel(f"execution accuracy (%), {next(iter(runs.values()))[1]['mode']}")
    ax.set_ylim(0, 105)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
