"""Sources -> validation -> duplicates -> split -> prompt -> tokens: `train.pt`, `test.pt`, `meta.json`,
`rejects.jsonl`. The logic behind `scripts/prepare_sql.py`.

Every prepared record keeps what evaluation needs besides the tokens: the question, the gold SQL, the schema text
the model saw, the prompt, and the absolute path of the database where there is one.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import torch
from tqdm import tqdm

from lit_sql.checkpoint import DEFAULT_CHECKPOINT
from lit_sql.data.prompt import DEFAULT_SQL_SYSTEM_PROMPT, QUESTION_HEADING, TARGET_FORMATS, PromptRecipe
from lit_sql.data.schema import SCHEMA_FORMATS, Schema, read_schema
from lit_sql.data.sources import SOURCES, SQLExample, load_source, reject
from lit_sql.errors import LitSQLError
from lit_sql.sql.lexer import squeeze_spaces
from lit_sql.sql.metrics import DIFFICULTY_LEVELS, is_statement, sql_difficulty

IGNORE_INDEX = -100  # the label of a token the loss skips (the prompt's); training reads it from here
DEFAULT_TEST_FRACTION = {"synthetic-text-to-sql": 0.2}  # the others: 0.1
NEEDS_PATH = ("spider", "bird", "json")
EXECUTION_TIMEOUT_S = 10.0


@dataclass
class MixEntry:
    name: str
    data_path: Optional[Path]
    weight: float


def parse_mix(mix: Optional[str], dataset: str, data_path: Optional[Path]) -> list[MixEntry]:
    """`--mix "spider@../shared/data/spider-train:1.0,generated:0.5"`: source[@path][:weight], comma-separated.

    A weight scales how many of that source's training examples go in (0.5 = a seeded half, 2 = every example
    twice); test examples are kept once each. Without --mix: the one --dataset with --data_path, weight 1."""
    if not mix:
        return [MixEntry(dataset, data_path, 1.0)]
    entries = []
    for part in filter(None, (p.strip() for p in mix.split(","))):
        weight = 1.0
        head, _, tail = part.rpartition(":")
        if head and re.fullmatch(r"\d+(\.\d*)?|\.\d+", tail):
            part, weight = head, float(tail)
        name, _, path = part.partition("@")
        if name not in SOURCES:
            raise LitSQLError(f"--mix: unknown source {name!r} in {mix!r}; choose from {', '.join(SOURCES)}")
        if weight <= 0:
            raise LitSQLError(f"--mix: the weight of {name} must be above 0, got {weight}")
        path = Path(path) if path else (data_path if name == dataset else None)
        entries.append(MixEntry(name, path, weight))
    if len({e.name for e in entries}) != len(entries):
        raise LitSQLError(f"--mix names a source twice: {mix!r}")
    return entries


def normalize_sql(sql: str) -> str:
    """One space between tokens outside literals, quoted names and comments, no trailing semicolon: the gold as
    trained on."""
    return squeeze_spaces(sql.strip()).strip().rstrip(";").strip()


def check_sql(examples: list[SQLExample], source: str) -> tuple[list[SQLExample], list[dict]]:
    """Gold SQL that does not parse (sqlglot, SQLite dialect) or does not run on its database (in the sandbox of
    `lit_sql.sql.execute`) is rejected. Sources without a database get a lenient parse: SQLite first, then
    sqlglot's generic dialect."""
    import sqlglot

    from lit_sql.sql.execute import execute_sql

    kept, rejects = [], []
    for ex in tqdm(examples, desc=f"checking {source} SQL", unit="query", mininterval=0.5, leave=False,
                   disable=not examples):
        if ex.verified:
            kept.append(ex)
            continue
        problem = _parse_problem(sqlglot, ex.sql, lenient=ex.db_path is None)
        if problem is None and ex.db_path is not None:
            result = execute_sql(ex.db_path, ex.sql, timeout_s=EXECUTION_TIMEOUT_S)
            problem = result.error and f"SQL does not execute on {ex.db_id}: {result.error}"
        if problem:
            rejects.append(reject(source, ex.index, problem, question=ex.question, sql=ex.sql, db_id=ex.db_id))
        else:
            kept.append(ex)
    return kept, rejects


def _parse_problem(sqlglot, sql: str, lenient: bool) -> Optional[str]:
    error = None
    for dialect in ("sqlite", None) if lenient else ("sqlite",):
        try:
            statements = sqlglot.parse(sql, read=dialect)
            if statements and is_statement(statements[0]):
                return None
            if statements and statements[0] is not None:  # "SELEC nope": no statement, only an expression
                error = error or (f"no query or statement, only a bare expression "
                                  f"({type(statements[0]).__name__})")
            else:
                error = error or "empty statement"
        except sqlglot.errors.SqlglotError as e:
            error = error or " ".join(str(e).split())[:200]
    return f"SQL does not parse: {error}"


def drop_duplicates(examples: list[SQLExample]) -> tuple[list[SQLExample], int]:
    """Exact duplicates (same schema or database, same question, same SQL up to spacing) are kept once."""
    seen, kept = set(), []
    for ex in examples:
        key = (ex.group, " ".join(ex.question.split()), ex.sql)
        if key not in seen:
            seen.add(key)
            kept.append(ex)
    return kept, len(examples) - len(kept)


def split(examples: list[SQLExample], fraction: float, by: str, seed: int) -> tuple[list[SQLExample], list[SQLExample]]:
    """A seeded train/test split, by example or by database (no test database is seen in training)."""
    rng = random.Random(seed)
    if by == "example":
        order = list(range(len(examples)))
        rng.shuffle(order)
        n_test = round(len(examples) * fraction)
        test_ids = set(order[:n_test])
        return ([ex for i, ex in enumerate(examples) if i not in test_ids],
                [ex for i, ex in enumerate(examples) if i in test_ids])
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.group].append(i)
    keys = sorted(groups)
    rng.shuffle(keys)
    target, test_ids = len(examples) * fraction, set()
    for key in keys:
        if len(test_ids) >= target or (test_ids and len(test_ids) + len(groups[key]) > 1.5 * target):
            continue
        test_ids.update(groups[key])
    return ([ex for i, ex in enumerate(examples) if i not in test_ids],
            [ex for i, ex in enumerate(examples) if i in test_ids])


def apply_weight(examples: list[SQLExample], weight: float, seed: int) -> list[SQLExample]:
    whole, part = int(weight), weight - int(weight)
    extra = random.Random(seed).sample(examples, round(len(examples) * part)) if part else []
    return examples * whole + extra


# ---- tokenization ------------------------------------------------------------------------------------------
def encode_prompts(tokenizer, prompts: list[str], desc: str = "tokenizing") -> list[list[int]]:
    """Token ids of many prompts. Prompts on the same database share their long head (system prompt and
    schema): it is encoded once, and only the question part of each prompt is encoded apart. That is used
    only after checking, on a sample, that it gives exactly the ids of encoding each prompt whole."""
    cuts = [p.rfind("\n\n" + QUESTION_HEADING) for p in prompts]
    if tokenizer.backend == "huggingface" and min(cuts, default=-1) >= 0:
        sample = random.Random(0).sample(range(len(prompts)), min(256, len(prompts)))
        whole = tokenizer.encode_batch([prompts[i] for i in sample], bos=None)
        for shift in (0, 2):  # where a tokenizer's pre-tokenizer always splits: before or after the blank line
            heads = [p[:c + shift] for p, c in zip(prompts, cuts)]
            unique = list(dict.fromkeys(heads))
            if len(unique) > 0.5 * len(prompts):
                break  # few prompts share a schema: nothing to gain
            sample_heads = tokenizer.encode_batch([heads[i] for i in sample], bos=None)
            sample_tails = tokenizer.encode_batch([prompts[i][cuts[i] + shift:] for i in sample], bos=False)
            if all(whole[j] == sample_heads[j] + sample_tails[j] for j in range(len(sample))):
                head_ids = dict(zip(unique, _batched(tokenizer, unique, bos=None, desc=f"{desc} schemas")))
                tail_ids = _batched(tokenizer, [p[c + shift:] for p, c in zip(prompts, cuts)], bos=False, desc=desc)
                return [head_ids[h] + t for h, t in zip(heads, tail_ids)]
    return _batched(tokenizer, prompts, bos=None, desc=desc)


def _batched(tokenizer, texts: list[str], bos: Optional[bool], eos: bool = False, desc: str = "",
             size: int = 4096) -> list[list[int]]:
    out: list[list[int]] = []
    with tqdm(total=len(texts), desc=desc, unit="text", mininterval=0.5, leave=False,
              disable=len(texts) < 2 * size) as bar:
        for start in range(0, len(texts), size):
            out.extend(tokenizer.encode_batch(texts[start:start + size], bos=bos, eos=eos))
            bar.update(min(size, len(texts) - start))
    return out


def length_stats(lengths: list[int]) -> dict:
    if not lengths:
        return {"n": 0}
    ordered = sorted(lengths)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(lengths), "mean": round(statistics.fmean(lengths), 1), "median": pct(0.5), "p90": pct(0.9),
            "p99": pct(0.99), "max": ordered[-1],
            "share_within": {str(n): round(sum(x <= n for x in lengths) / len(lengths), 4)
                             for n in (256, 512, 1024, 2048)}}


# ---- the whole pipeline --------------------------------------------------------------------------------------
def prepare(
    dataset: Literal["generated", "spider", "bird", "sql-create-context", "synthetic-text-to-sql", "json"] = "generated",
    checkpoint_dir: Path = DEFAULT_CHECKPOINT,
    out_dir: Optional[Path] = None,
    data_path: Optional[Path] = None,
    mix: Optional[str] = None,
    max_seq_length: int = 1024,
    schema_format: Literal["ddl", "compact"] = "ddl",
    sample_rows: int = 0,
    value_hints: bool = False,
    test_split_fraction: Optional[float] = None,
    split_by: Literal["example", "database"] = "example",
    seed: int = 42,
    mask_prompt: bool = True,
    system_prompt: Optional[str] = None,
    prompt_style: Optional[str] = None,
    files: Optional[list[str]] = None,
    question_key: Optional[str] = None,
    context_key: Optional[str] = None,
    sql_key: Optional[str] = None,
    num_databases: int = 100,
    num_questions: int = 10000,
    max_examples: Optional[int] = None,
    strict: bool = False,
    target_format: Literal["sql", "linked"] = "sql",
) -> Path:
    """Prepare text-to-SQL data for fine-tuning and evaluation: writes train.pt, test.pt, meta.json, rejects.jsonl.

    Args:
        dataset: the source: generated (built here, no network), spider, bird, sql-create-context,
            synthetic-text-to-sql or json.
        checkpoint_dir: the model whose tokenizer and prompt style to use.
        out_dir: where to write; default data/<dataset> (data/mix for --mix).
        data_path: the source's folder or file. spider/bird: the dataset folder; json: a .json/.jsonl/.csv file;
            sql-create-context / synthetic-text-to-sql: a local copy instead of the Hugging Face Hub; generated:
            where the generated databases go (default: out_dir).
        mix: several sources with weights, "source[@path][:weight],...", e.g.
            "spider@../shared/data/spider-train:1.0,generated:0.5". A weight scales that source's training
            examples (0.5 = a seeded half, 2 = each twice); its test examples are kept once.
        max_seq_length: the most tokens of prompt + SQL + EOS. Longer examples get a shorter schema, else
            are rejected.
        schema_format: ddl (CREATE TABLE statements) or compact (one line per table).
        sample_rows: rows of each table shown as INSERT statements (sources with databases).
        value_hints: show, beside their columns, the cells of the question's database that the question
            mentions (sources with databases; `lit_sql.data.values`). Generation, evaluation and the app add
            them the same way for a run trained on such data.
        test_split_fraction: share of examples held out for test; default 0.2 for synthetic-text-to-sql,
            0.1 otherwise. 1: every example is test (an evaluation set, e.g. `lit_sql.data.real`).
        split_by: example, or database (no test database is seen in training).
        seed: seed of the split, the mix sampling and the generator.
        mask_prompt: labels of the prompt tokens are IGNORE_INDEX (-100), so only the SQL is learned.
        system_prompt: the system prompt; default asks for only the SQL query.
        prompt_style: override the checkpoint's prompt style.
        files: spider/bird: the JSON files to read (default: train.json; dev.json only when named).
        question_key: json: the field holding the question.
        context_key: json: the field holding the schema (CREATE TABLE statements).
        sql_key: json: the field holding the gold SQL.
        num_databases: generated: how many databases.
        num_questions: generated: how many questions.
        max_examples: keep at most this many examples of each source (seeded), for quick runs.
        strict: any rejected row is an error.
        target_format: what each answer holds: sql (the gold query), or linked (the tables and columns the gold
            query uses, derived from it with sqlglot, on one line "Links: singer(name, country), concert(year)",
            then "SQL: " and the query). Evaluation, generation and the app read the SQL out of either. The
            records' "sql" stays the plain gold query; a linked record's answer text is its "target".
    """
    from lit_sql.prompts import load_prompt_style
    from lit_sql.tokenizer import Tokenizer

    started = time.perf_counter()
    # ---- every flag is checked before any work starts
    entries = parse_mix(mix, dataset, data_path)
    if schema_format not in SCHEMA_FORMATS:
        raise LitSQLError(f"--schema_format must be one of {', '.join(SCHEMA_FORMATS)}, got {schema_format!r}")
    if target_format not in TARGET_FORMATS:
        raise LitSQLError(f"--target_format must be one of {', '.join(TARGET_FORMATS)}, got {target_format!r}")
    if split_by not in ("example", "database"):
        raise LitSQLError(f"--split_by must be example or database, got {split_by!r}")
    if test_split_fraction is not None and not 0 <= test_split_fraction <= 1:
        raise LitSQLError(f"--test_split_fraction must be in [0, 1], got {test_split_fraction}")
    if max_seq_length < 16:
        raise LitSQLError(f"--max_seq_length must be at least 16, got {max_seq_length}")
    if sample_rows < 0 or num_databases < 1 or num_questions < 1:
        raise LitSQLError("--sample_rows must be >= 0, --num_databases and --num_questions >= 1")
    for e in entries:
        if e.name in NEEDS_PATH and e.data_path is None:
            raise LitSQLError(f"{e.name} needs its data: pass --data_path (or source@path in --mix)")
        if e.data_path is not None and e.name != "generated" and not Path(e.data_path).exists():
            raise LitSQLError(f"{e.data_path} does not exist: pass the {e.name} folder or file with --data_path")
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / "tokenizer.json").is_file() and not (checkpoint_dir / "tokenizer.model").is_file():
        from lit_sql.checkpoint import ensure_checkpoint

        ensure_checkpoint(checkpoint_dir)  # converts the embedded default model on first use
    tokenizer = Tokenizer(checkpoint_dir)
    style = load_prompt_style(checkpoint_dir, prompt_style)
    try:
        from lit_sql.config import Config

        block_size = Config.from_checkpoint(checkpoint_dir).block_size
    except (LitSQLError, OSError):
        block_size = None
    if block_size and max_seq_length > block_size:
        raise LitSQLError(f"--max_seq_length {max_seq_length} is longer than the model's context ({block_size}): "
                          f"pass --max_seq_length {block_size} or less")
    name = dataset if not mix else "mix"
    out_dir = Path(out_dir) if out_dir is not None else Path("data") / name
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = PromptRecipe(prompt_style=style.name, system_prompt=system_prompt or DEFAULT_SQL_SYSTEM_PROMPT,
                          schema_format=schema_format, sample_rows=sample_rows, value_hints=value_hints,
                          max_seq_length=max_seq_length, target_format=target_format)

    # ---- load, check, deduplicate and split each source
    all_rejects: list[dict] = []
    train: list[SQLExample] = []
    test: list[SQLExample] = []
    per_source: dict[str, dict] = {}
    for e in entries:
        if e.name == "generated":
            from lit_sql.data.generator import generate_dataset

            root = Path(e.data_path) if e.data_path is not None else out_dir
            examples, rejects = generate_dataset(root, num_databases, num_questions, seed=seed), []
        else:
            examples, rejects = load_source(e.name, e.data_path, files=files, question_key=question_key,
                                            context_key=context_key, sql_key=sql_key)
        loaded = len(examples) + len(rejects)
        if max_examples is not None and len(examples) > max_examples:
            examples = sorted(random.Random(seed).sample(examples, max_examples), key=lambda x: x.index)
        for ex in examples:
            ex.question, ex.sql = " ".join(ex.question.split()), normalize_sql(ex.sql)
        examples, bad_sql = check_sql(examples, e.name)
        rejects += bad_sql
        examples, duplicates = drop_duplicates(examples)
        if not examples:  # an empty or wholly unusable file would otherwise give empty train.pt and test.pt
            raise LitSQLError(_nothing_usable(e, loaded, rejects))
        fraction = test_split_fraction if test_split_fraction is not None else DEFAULT_TEST_FRACTION.get(e.name, 0.1)
        source_train, source_test = split(examples, fraction, split_by, seed)
        train += apply_weight(source_train, e.weight, seed)
        test += source_test
        all_rejects += rejects
        per_source[e.name] = {"data_path": str(Path(e.data_path).resolve()) if e.data_path else None,
                              "weight": e.weight, "rows": loaded, "rejected": len(rejects),
                              "duplicates": duplicates, "train": len(source_train), "test": len(source_test)}
        if e.name == "generated":
            per_source[e.name]["data_path"] = str(root.resolve())
    random.Random(seed).shuffle(train)  # interleave the sources of a mix

    # ---- prompts and tokens
    # prompt lengths with the whole schema and as stored; the steps each shortened schema took
    stats: dict[str, list[int]] = {"full": [], "stored": [], "shortened": []}
    records, shortened = {}, Counter()
    for split_name, examples in (("train", train), ("test", test)):
        records[split_name], rejects = _tokenize(examples, tokenizer, style, recipe, mask_prompt, stats, shortened,
                                                 split_name)
        all_rejects += rejects

    reasons = Counter(_reason_kind(r["reason"]) for r in all_rejects)
    with open(out_dir / "rejects.jsonl", "w", encoding="utf-8") as f:
        for r in all_rejects:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    # Nothing to train on is an error, unless every example was asked to be test (--test_split_fraction 1: an
    # evaluation set); nothing at all always is.
    unusable = (("training ", train) if train and not records["train"] else
                ("", train + test) if not records["train"] and not records["test"] else None)
    if unusable is not None:
        raise LitSQLError(f"none of the {len(unusable[1])} {unusable[0]}examples could be prepared "
                          f"({_format_counts(reasons)}): see {out_dir / 'rejects.jsonl'}")
    if strict and all_rejects:
        first = all_rejects[0]
        raise LitSQLError(f"--strict: {len(all_rejects)} rows rejected ({_format_counts(reasons)}); the first, "
                          f"{first['source']} row {first['index']}: {first['reason']}. All are listed in "
                          f"{out_dir / 'rejects.jsonl'}")

    meta = {
        "source": name, "sources": per_source, "checkpoint_dir": str(checkpoint_dir),
        "tokenizer": tokenizer.name, **recipe.to_dict(),
        "mask_prompt": mask_prompt, "split_by": split_by, "test_split_fraction": test_split_fraction, "seed": seed,
        "counts": {"train": len(records["train"]), "test": len(records["test"]), "rejected": len(all_rejects),
                   "duplicates": sum(s["duplicates"] for s in per_source.values()),
                   "shortened": len(stats["shortened"])},
        "rejects_by_reason": dict(reasons), "shortened_by_step": dict(shortened),
        "difficulty": {s: dict(Counter(r["difficulty"] for r in records[s])) for s in records},
        "prompt_tokens": length_stats(stats["stored"]),
        "prompt_tokens_full_schema": length_stats(stats["full"]),
        "sample_tokens": length_stats([len(r["input_ids"]) for s in records.values() for r in s]),
        "seconds": None,
    }
    for split_name in ("train", "test"):
        torch.save(records[split_name], out_dir / f"{split_name}.pt", pickle_protocol=4)
    meta["seconds"] = round(time.perf_counter() - started, 2)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    _report(meta, out_dir, reasons)
    return out_dir


def _tokenize(examples, tokenizer, style, recipe: PromptRecipe, mask_prompt, stats, shortened, split_name):
    if not examples:
        return [], []
    schemas: dict[int, Schema] = {}
    texts: dict[int, str] = {}

    def schema_of(ex: SQLExample) -> Schema:
        schema = ex.schema if ex.schema is not None else read_schema(ex.db_path, recipe.sample_rows)
        return recipe.with_value_hints(schema, ex.question, ex.db_path)

    def text_of(schema: Schema) -> str:
        key = id(schema)
        if key not in texts:
            schemas[key] = schema  # keeps the object alive, so its id stays unique
            texts[key] = recipe.render_schema(schema)
        return texts[key]

    answers, usable, rejects = [], [], []
    for ex in examples:
        try:
            answers.append(recipe.answer(ex.sql, schema_of(ex)))
            usable.append(ex)
        except LitSQLError as e:  # linked answers only: the plain SQL is the answer as it is
            rejects.append(reject(ex.source, ex.index, f"schema links not derived (--target_format linked): {e}",
                                  question=ex.question, sql=ex.sql, db_id=ex.db_id))
    examples = usable
    prompts, schema_texts = [], []
    for ex in tqdm(examples, desc=f"{split_name} prompts", unit="example", mininterval=0.5, leave=False):
        schema_text = text_of(schema_of(ex))
        schema_texts.append(schema_text)
        prompts.append(recipe.build(style, ex.question, schema_text, ex.evidence))
    prompt_ids = encode_prompts(tokenizer, prompts, desc=f"{split_name} tokens")
    answer_ids = _batched(tokenizer, answers, bos=False, eos=True, desc=f"{split_name} answers")

    kept = []
    answer_kind = "SQL" if recipe.target_format == "sql" else "answer"
    for ex, answer, prompt, schema_text, p_ids, a_ids in zip(examples, answers, prompts, schema_texts, prompt_ids,
                                                             answer_ids):
        stats["full"].append(len(p_ids))
        if len(p_ids) + len(a_ids) > recipe.max_seq_length:
            budget = recipe.max_seq_length - len(a_ids)
            prompt, schema_text, steps = (recipe.fit(style, ex.question, schema_of(ex), budget,
                                                     lambda t: len(tokenizer.encode(t)), ex.evidence)
                                          if budget > 0 else (None, None, []))
            if prompt is None:
                rejects.append(reject(ex.source, ex.index, f"too long: {len(p_ids)} prompt + {len(a_ids)} "
                                      f"{answer_kind} tokens > --max_seq_length {recipe.max_seq_length}, even with a "
                                      f"shortened schema", question=ex.question, sql=ex.sql, db_id=ex.db_id))
                continue
            p_ids = tokenizer.encode(prompt)
            shortened.update(steps)
            stats["shortened"].append(len(steps))
        stats["stored"].append(len(p_ids))
        kept.append((ex, answer, prompt, schema_text, p_ids, a_ids))

    # All samples are views into two long tensors: saving and loading 100,000 of them is several times faster
    # than 200,000 separate storages. (Copy a sample before writing into it.)
    flat = torch.tensor([i for *_, p, a in kept for i in (*p, *a)], dtype=torch.long)
    flat_labels = flat.clone()
    records, start = [], 0
    for ex, answer, prompt, schema_text, p_ids, a_ids in kept:
        end = start + len(p_ids) + len(a_ids)
        if mask_prompt:
            flat_labels[start:start + len(p_ids)] = IGNORE_INDEX
        records.append({
            "input_ids": flat[start:end], "labels": flat_labels[start:end], "prompt": prompt,
            "question": ex.question, "sql": ex.sql, "schema": schema_text, "evidence": ex.evidence, "db_id": ex.db_id,
            "db_path": ex.db_path, "difficulty": ex.difficulty or sql_difficulty(ex.sql), "source": ex.source,
            "prompt_length": len(p_ids), **({"extra": ex.extra} if ex.extra else {}),
            **({"target": answer} if answer != ex.sql else {}),
        })
        start = end
    return records, rejects


def _nothing_usable(entry: MixEntry, rows: int, rejects: list[dict]) -> str:
    """Why a source gave no example to prepare, naming its file."""
    where = entry.data_path if entry.data_path is not None else f"{entry.name} (from the Hugging Face Hub)"
    if not rejects:
        return f"{where} holds no examples ({rows} rows read): pass a file with questions and their SQL"
    reasons = Counter(_reason_kind(r["reason"]) for r in rejects)
    first = rejects[0]
    return (f"{where} holds no usable examples: all {len(rejects)} rows were rejected ({_format_counts(reasons)}); "
            f"the first, row {first['index']}: {first['reason']}")


def _reason_kind(reason: str) -> str:
    """Rejects counted by kind: the reason up to its first detail."""
    for kind in ("schema links not derived", "SQL does not parse", "SQL does not execute", "too long",
                 "unknown database", "missing field", "empty field", "invalid UTF-8", "is not text", "not valid JSON"):
        if kind in reason:
            return kind
    return reason.split(":")[0]


def _format_counts(counts: Counter) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.most_common())


def _format_shares(levels: Counter) -> str:
    """"easy 25.2%, medium 40.4%, hard 17.2%, extra 17.2% (of 10,000)"; a query the labeller cannot read
    counts as "unlabelled"."""
    total = sum(levels.values())
    order = [lv for lv in DIFFICULTY_LEVELS if lv in levels] + [k for k in levels if k not in DIFFICULTY_LEVELS]
    return ", ".join(f"{k or 'unlabelled'} {100 * levels[k] / total:.1f}%" for k in order) + f" (of {total:,})"


def _report(meta: dict, out_dir: Path, reasons: Counter) -> None:
    c, p = meta["counts"], meta["prompt_tokens"]
    print(f"{meta['source']}: {c['train']:,} train, {c['test']:,} test, {c['rejected']:,} rejected"
          f"{' (' + _format_counts(reasons) + ')' if reasons else ''}, {c['duplicates']:,} duplicates removed, "
          f"{c['shortened']:,} schemas shortened", file=sys.stderr)
    if p.get("n"):
        print(f"prompt tokens: mean {p['mean']}, median {p['median']}, p90 {p['p90']}, max {p['max']} "
              f"({meta['schema_format']} schema)", file=sys.stderr)
    levels = Counter()
    for counts in meta["difficulty"].values():
        levels.update(counts)
    if sum(levels.values()):
        print(f"difficulty: {_format_shares(levels)}", file=sys.stderr)
    if c["rejected"]:
        print(f"rejected rows and their reasons: {out_dir / 'rejects.jsonl'}", file=sys.stderr)
    print(f"wrote {out_dir}/train.pt, test.pt, meta.json in {meta['seconds']} s", file=sys.stderr)
