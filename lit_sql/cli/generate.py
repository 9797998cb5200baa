"""`generate/base.py`: answer one prompt with a base or chat checkpoint."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Literal, Optional

import torch

from lit_sql.checkpoint import DEFAULT_CHECKPOINT, ensure_checkpoint
from lit_sql.generation import SamplingConfig, TokenPrinter, generate, load_for_inference
from lit_sql.prompts import load_prompt_style
from lit_sql.tokenizer import Tokenizer


def base(
    prompt: str,
    checkpoint_dir: Path = DEFAULT_CHECKPOINT,
    system: Optional[str] = None,
    prompt_style: Optional[str] = None,
    raw: bool = False,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    top_p: float = 1.0,
    num_samples: int = 1,
    seed: int = 1234,
    precision: str = "32-true",
    stream: bool = True,
    fast_decoding: bool = True,
) -> list[str]:
    """Generate an answer to --prompt; prints only the model's answer (timings go to stderr).

    Args:
        prompt: the user's message.
        checkpoint_dir: a converted checkpoint (the embedded SmolLM2 is converted on first use).
        system: system prompt; default: the prompt style's own.
        prompt_style: override the style saved with the checkpoint (alpaca, chatml, llama2-chat, llama3, ...).
        raw: feed --prompt to the model as is, without any prompt style.
        max_new_tokens: most tokens to generate per sample.
        temperature: 0 is greedy decoding; higher samples more freely.
        top_k: sample among the k most likely tokens only.
        top_p: nucleus sampling: the smallest set of tokens holding this much probability.
        num_samples: how many answers to generate.
        seed: random seed for sampling.
        precision: 32-true, bf16-true or 16-true.
        stream: print tokens as they are generated.
        fast_decoding: decode with lit_sql.fast_inference (float32 on the CPU: the same tokens, faster); false:
            the plain model.
    """
    sampling = SamplingConfig(temperature, top_k, top_p)
    checkpoint_dir = ensure_checkpoint(checkpoint_dir)
    style = load_prompt_style(checkpoint_dir, prompt_style)
    tokenizer = Tokenizer(checkpoint_dir)
    model = load_for_inference(checkpoint_dir, precision, fast_decoding=fast_decoding)
    text = prompt if raw else style.apply(prompt, system=system)
    prompt_ids = tokenizer.encode(text)
    stops = style.stop_tokens(tokenizer)
    generator = torch.Generator().manual_seed(seed)
    answers = []
    for i in range(num_samples):
        if num_samples > 1:
            print(f"--- sample {i + 1}", file=sys.stderr)
        printer = TokenPrinter(tokenizer) if stream else None
        start = time.perf_counter()
        tokens = []
        for token in generate(model, prompt_ids, max_new_tokens, sampling, stops, generator):
            tokens.append(token)
            if printer:
                printer(token)
        seconds = time.perf_counter() - start
        answer = tokenizer.decode(tokens)
        if printer:
            sys.stdout.write(answer[len(printer.printed):] + "\n")
        else:
            print(answer)
        answers.append(answer)
        print(f"{len(tokens)} tokens in {seconds:.2f} s: {len(tokens) / seconds:.1f} tokens/s "
              f"(prompt {len(prompt_ids)} tokens)", file=sys.stderr)
    return answers


def lora(
    prompt: str,
    lora_path: Optional[Path] = None,
    checkpoint_dir: Optional[Path] = None,
    schema: Optional[str] = None,
    db: Optional[Path] = None,
    evidence: Optional[str] = None,
    quantize: Optional[str] = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    top_p: float = 1.0,
    seed: int = 1234,
    precision: str = "32-true",
    show_prompt: bool = False,
    retrieval: Optional[str] = None,
    retrieval_index: Optional[Path] = None,
    retrieval_threshold: float = 0.8,
    fast_decoding: bool = True,
    prompt_style: Optional[str] = None,
    system_prompt: Optional[str] = None,
    schema_format: Optional[Literal["ddl", "compact"]] = None,
    sample_rows: Optional[int] = None,
    constrained: bool = True,
) -> str:
    """Write the SQL for a question with a fine-tuned adapter; prints the SQL only.

    The run record in --lora_path says which base model to load and how to write the prompt (prompt style,
    system prompt, schema format, sample rows), exactly as in training: no other flag is needed.

    Args:
        prompt: the question, e.g. "How many heads of the departments are older than 56?".
        lora_path: output folder of finetune/lora.py. Without it the base model answers (for comparison).
        checkpoint_dir: the base checkpoint; default: the one the run was trained on (without --lora_path: the
            embedded SmolLM2). Another model than the run's is an error.
        schema: CREATE TABLE statements of the database (used as given).
        db: a SQLite file; its schema is rendered as the run's training data rendered schemas.
        evidence: external knowledge for the question (BIRD-style hints).
        quantize: load the frozen base quantized (bnb.nf4, ...); default: as it was trained.
        max_new_tokens: most tokens of SQL to generate; a run trained on linked answers (prepare --target_format
            linked) is given room for its links line on top, and prints only the SQL.
        temperature: 0 is greedy decoding.
        top_k: sample among the k most likely tokens only.
        top_p: nucleus sampling threshold.
        seed: random seed for sampling.
        precision: 32-true, bf16-true or 16-true.
        show_prompt: print the full prompt to stderr first.
        retrieval: off by default. examples:K puts the K most similar solved examples of the index into the
            prompt; schema leaves out the tables least similar to the question when the whole schema would not
            fit (schema:N: within N prompt tokens); both: examples:3,schema.
        retrieval_index: the index built by scripts/build_index.py.
        retrieval_threshold: examples less similar than this (cosine) are not added.
        fast_decoding: decode with lit_sql.fast_inference (float32 on the CPU: the same tokens, faster); false:
            the plain model.
        prompt_style: the chat format (alpaca, chatml, ...). With --lora_path: must match the run's.
        system_prompt: the system prompt. With --lora_path: must match the run's.
        schema_format: ddl or compact, for --db. With --lora_path: must match the run's.
        sample_rows: rows of each table shown with --db's schema. With --lora_path: must match the run's.
        constrained: schema-grounded decoding: every table and column name written must exist in the database
            (--db, or the tables of --schema); false: free decoding.
    """
    from lit_sql.errors import LitSQLError
    from lit_sql.retrieval import Retriever
    from lit_sql.run import base_run, load_run
    from lit_sql.sql.extract import extract_sql

    if (schema is None) == (db is None):
        raise LitSQLError("pass the database's schema with exactly one of --schema \"CREATE TABLE ...\" or --db file.sqlite")
    if db is not None and not Path(db).is_file():
        raise LitSQLError(f"--db {db}: no such file")
    flags = dict(prompt_style=prompt_style, system_prompt=system_prompt, schema_format=schema_format,
                 sample_rows=sample_rows)
    run = load_run(lora_path, checkpoint_dir, **flags) if lora_path is not None else base_run(checkpoint_dir, **flags)
    max_new_tokens = run.recipe.answer_tokens(max_new_tokens)
    tables = run.read_schema(db, prompt) if db is not None else schema
    retriever = Retriever.from_flags(retrieval, retrieval_index, retrieval_threshold)
    sampling = SamplingConfig(temperature, top_k, top_p)
    tokenizer = run.tokenizer
    model = run.load_model(precision, quantize=quantize, fast_decoding=fast_decoding)
    if retriever is None:
        text = run.prompt(prompt, tables, evidence=evidence, max_new_tokens=max_new_tokens)
    else:
        found = retriever.prompt(run.style, prompt, tables, evidence=evidence, recipe=run.recipe,
                                 count_tokens=run.count_tokens, max_tokens=run.prompt_budget(max_new_tokens))
        text = found.text
        print(f"retrieval: {len(found.examples)} examples (similarity "
              f"{', '.join(f'{s.score:.2f}' for s in found.examples) or '-'})"
              f"{', schema pruned' if found.pruned else ''}", file=sys.stderr)
    if show_prompt:
        print(text, file=sys.stderr)
    prompt_ids = tokenizer.encode(text)
    start = time.perf_counter()
    stops = run.style.stop_tokens(tokenizer)
    grounding = None
    if constrained:
        from lit_sql.data.schema import schema_from_sql
        from lit_sql.sql.grounding import grounding_for

        grounding = grounding_for(tokenizer, [tables if db is not None else schema_from_sql(schema)],
                                  [s[0] for s in stops if len(s) == 1])
    tokens = list(generate(model, prompt_ids, max_new_tokens, sampling, stops, torch.Generator().manual_seed(seed),
                           grounding=grounding))
    sql = extract_sql(tokenizer.decode(tokens))
    print(sql)
    print(f"{len(tokens)} tokens in {time.perf_counter() - start:.2f} s", file=sys.stderr)
    return sql
