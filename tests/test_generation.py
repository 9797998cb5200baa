"""Decoding: the KV-cache loop against a plain argmax loop, stop sequences, batching and sampling."""

from __future__ import annotations

import pytest
import torch

from lit_sql.errors import LitSQLError
from lit_sql.generation import SamplingConfig, generate, generate_batch, sample
from tests.test_model import LLAMA3_STYLE, random_model


def greedy_without_cache(model, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


def test_greedy_generate_matches_full_recompute():
    model = random_model(LLAMA3_STYLE)
    prompt = torch.randint(0, 101, (9,)).tolist()
    assert list(generate(model, prompt, 20)) == greedy_without_cache(model, prompt, 20)


def test_stop_sequences_end_generation_and_are_not_returned():
    model = random_model(LLAMA3_STYLE)
    prompt = [5, 6, 7]
    full = greedy_without_cache(model, prompt, 12)
    # Stop on a pair of tokens: generation ends where the pair first appears, without it.
    stop = full[4:6]
    first = next(i for i in range(len(full)) if full[i:i + 2] == stop)
    assert list(generate(model, prompt, 12, stop_tokens=[stop])) == full[:first]
    assert list(generate(model, prompt, 12, stop_tokens=[[full[0]]])) == []


def test_batch_generation_equals_one_by_one(monkeypatch):
    model = random_model(LLAMA3_STYLE)
    prompts = [torch.randint(3, 101, (n,)).tolist() for n in (11, 4, 7)]
    single = [list(generate(model, p, 10)) for p in prompts]
    stop = [[single[1][3]]]
    batched = generate_batch(model, prompts, 10, pad_id=0)
    assert batched == single
    rows = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx, *a, **k: rows.append(idx.shape[0]) or forward(idx, *a, **k))
    with_stop = generate_batch(model, prompts, 10, pad_id=0, stop_tokens=stop)
    monkeypatch.undo()
    assert with_stop == [list(generate(model, p, 10, stop_tokens=stop)) for p in prompts]
    # a finished row leaves the batch: each decode step runs only the rows still going
    sampled = [len(out) + 1 if out != full else len(full) for out, full in zip(with_stop, single)]  # + the stop
    assert rows[1:] == [sum(n > step + 1 for n in sampled) for step in range(len(rows) - 1)]
    assert min(rows) < len(prompts)


def test_batch_generation_computes_a_shared_beginning_once_with_the_same_tokens(monkeypatch):
    """Prompts that begin alike (one schema, several questions; one prompt sampled several times) prefill the
    shared part once: the tokens are still those of each prompt alone."""
    model = random_model(LLAMA3_STYLE)
    schema = torch.randint(3, 101, (24,)).tolist()
    prompts = [schema + torch.randint(3, 101, (n,)).tolist() for n in (5, 1, 9)] + [list(schema)]
    single = [list(generate(model, p, 10)) for p in prompts]
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx, *a, **k: calls.append(tuple(idx.shape)) or forward(idx, *a, **k))
    assert generate_batch(model, prompts, 10, pad_id=0) == single
    assert calls[0] == (1, 23)  # the shared beginning once (the shortest prompt keeps its last token)
    assert calls[1] == (4, 10)  # then every row from there on: 24 + 9 - 23 tokens
    calls.clear()
    unrelated = [p[::-1] for p in prompts]  # no shared beginning: one left-padded prefill
    assert generate_batch(model, unrelated, 10, pad_id=0) == [list(generate(model, p, 10)) for p in unrelated]
    assert calls[0] == (4, 33)


def test_sampling_filters():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5]])
    g = torch.Generator().manual_seed(0)
    assert sample(logits, SamplingConfig(temperature=1.0, top_k=1), g).item() == 1
    assert sample(logits, SamplingConfig(temperature=1.0, top_p=0.1), g).item() == 1
    draws = {sample(logits, SamplingConfig(temperature=1.0, top_k=2), g).item() for _ in range(200)}
    assert draws == {1, 2}
    draws = {sample(logits, SamplingConfig(temperature=5.0), g).item() for _ in range(400)}
    assert draws == {0, 1, 2, 3}
    with pytest.raises(LitSQLError, match="--top_p"):
        SamplingConfig(temperature=1.0, top_p=0.0)


def test_prompt_longer_than_context_is_refused():
    model = random_model(LLAMA3_STYLE)
    with pytest.raises(LitSQLError, match="context of 128 tokens"):
        list(generate(model, [1] * 120, 20))


def test_evaluation_batches_questions_on_the_same_database_together():
    from lit_sql.evaluate import plan_batches

    schema_a, schema_b = list(range(100, 140)), list(range(200, 230))
    prompts = [schema_a + [1, 2], [7, 8, 9], schema_b + [5], schema_a + [3], [4] * 12, schema_b + [6, 6],
               schema_a + [9, 9, 9], [50, 51]]
    batches = plan_batches(prompts, 2)
    assert sorted(i for b in batches for i in b) == list(range(len(prompts)))  # every question once
    assert all(len(b) <= 2 for b in batches)
    # Same-database batches first, never mixing databases, each database's questions shortest first and split
    # evenly (schema_a's three: 2 and 1); the rest: longest first.
    assert batches == [[3, 0], [6], [2, 5], [4, 1], [7]]
    # five questions on one database in batches of up to 4: 2 and 3 (not 4 and 1; the split point round(5 / 2)
    # rounds half to even), shortest questions together
    same_db = [schema_a + [1] * n for n in (5, 1, 4, 2, 3)]
    assert plan_batches(same_db, 4) == [[1, 3], [4, 2, 0]]
