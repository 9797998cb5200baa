"""Dataset sources, each read in its real field layout into one record type, `SQLExample`.

Every loader returns `(examples, rejects)`: a row that cannot be used (a missing or non-text field, invalid UTF-8,
an unknown database) becomes a reject with its reason instead of vanishing.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from lit_sql.data.schema import Schema, schema_from_sql
from lit_sql.errors import LitSQLError

SOURCES = ("generated", "spider", "bird", "sql-create-context", "synthetic-text-to-sql", "json")
HF_NAMES = {"sql-create-context": "b-mc2/sql-create-context", "synthetic-text-to-sql": "gretelai/synthetic_text_to_sql"}
SPIDER_TRAIN_FILES = ("train.json", "train_spider.json", "train_others.json")
DB_FOLDERS = ("database", "train_databases", "dev_databases")


@dataclass
class SQLExample:
    question: str
    sql: str
    source: str
    schema: Optional[Schema] = None  # for sources without a database: parsed from the dataset's own DDL
    db_id: Optional[str] = None
    db_path: Optional[str] = None  # absolute path of the SQLite file, where there is one
    evidence: Optional[str] = None
    difficulty: Optional[str] = None
    index: int = -1  # row number in the source, for rejects
    verified: bool = False  # the gold SQL already ran on its database (the generator checks its own)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """What --split_by database keeps together: the database, or the schema for sources without one."""
        if self.db_id is not None:
            return f"{self.source}/{self.db_id}"
        return self.schema.render("ddl") if self.schema is not None else ""


def reject(source: str, index: int, reason: str, row: Optional[dict] = None, **known: Any) -> dict:
    out = {"source": source, "index": index, "reason": reason}
    for key, value in {**(row or {}), **known}.items():
        if isinstance(value, str):
            out[key] = value.encode("utf-8", errors="backslashreplace").decode("utf-8")[:500]
    return out


class _Row:
    """Typed access to one raw record; each problem is reported once as the row's reject reason."""

    def __init__(self, row: Any):
        self.row = row if isinstance(row, dict) else {}
        self.problem: Optional[str] = None if isinstance(row, dict) else f"row is a {type(row).__name__}, not a record"

    def text(self, key: str, required: bool = True) -> Optional[str]:
        if self.problem:
            return None
        value = self.row.get(key)
        if value is None or (isinstance(value, float) and value != value):  # None or NaN (empty CSV cell)
            if required:
                self.problem = f"missing field {key!r}"
            return None
        if not isinstance(value, str):
            self.problem = f"field {key!r} is not text ({type(value).__name__})"
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.problem = f"invalid UTF-8 in field {key!r}"
            return None
        if required and not value.strip():
            self.problem = f"empty field {key!r}"
            return None
        return value.strip()


# ---- reading files -----------------------------------------------------------------------------------------
def _decode(data: bytes) -> str:
    # surrogateescape keeps invalid bytes as lone surrogates: the row that holds them is rejected, not the file
    return data.decode("utf-8-sig", errors="surrogateescape")


def read_records(path: Path) -> list[Any]:
    """Records of a JSON (a list, or {"data": [...]}), JSONL, CSV or Parquet file, or of every such file in a
    folder (a `datasets.save_to_disk` folder too)."""
    path = Path(path)
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return _records_from_disk(path)
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".json", ".jsonl", ".csv", ".parquet")
                       and p.name not in ("tables.json", "dataset_info.json", "state.json"))
        if not files:
            raise LitSQLError(f"{path} holds no .json, .jsonl, .csv or .parquet file: pass the data file itself "
                              f"with --data_path")
        return [r for f in files for r in read_records(f)]
    if not path.is_file():
        raise LitSQLError(f"{path} does not exist: pass an existing file or folder with --data_path")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import datasets

        return list(datasets.Dataset.from_parquet(str(path)))
    text = _decode(path.read_bytes())
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    if suffix == ".jsonl" or (suffix != ".json" and not text.lstrip().startswith(("[", "{"))):
        return _jsonl(text, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _jsonl(text, path)  # JSON Lines saved as .json
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise LitSQLError(f"{path} is a JSON object, not a list of records: pass a file whose top level is a "
                              f"list (or JSON Lines)")
        data = lists[0]
    return data


def _jsonl(text: str, path: Path) -> list[Any]:
    out = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            out.append(_BadLine(f"line {i + 1} of {path.name} is not valid JSON ({e.msg})"))
    return out


class _BadLine(dict):
    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason


def _records_from_disk(path: Path) -> list[Any]:
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        return [r for split in data.values() for r in split]
    return list(data)


def _load_hub(name: str) -> list[Any]:
    """All splits of a Hugging Face dataset, or one clear error when the Hub cannot be reached."""
    import datasets

    repo = HF_NAMES[name]
    try:
        data = datasets.load_dataset(repo)
    except Exception as e:  # no network, no such dataset, offline mode: all end the same way for the user
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise LitSQLError(f"could not load {repo} from the Hugging Face Hub ({first}). Download it where there is a "
                          f"network and pass the local copy (a JSON, JSONL or Parquet file, or a folder of them) with "
                          f"--data_path, or use --dataset generated, which needs no network") from None
    return [r for split in data.values() for r in split]


def _rows(name: str, data_path: Optional[Path]) -> list[Any]:
    return read_records(data_path) if data_path is not None else _load_hub(name)


# ---- the sources -------------------------------------------------------------------------------------------
def load_sql_create_context(data_path: Optional[Path] = None) -> tuple[list[SQLExample], list[dict]]:
    """b-mc2/sql-create-context: `question`, `context` (CREATE TABLE statements), `answer`."""
    examples, rejects = [], []
    for i, raw in enumerate(_rows("sql-create-context", data_path)):
        row = _Row(raw)
        question, context, sql = row.text("question"), row.text("context"), row.text("answer")
        if _bad(raw, row, "sql-create-context", i, rejects):
            continue
        examples.append(SQLExample(question, sql, "sql-create-context", schema=schema_from_sql(context), index=i))
    return examples, rejects


def load_synthetic_text_to_sql(data_path: Optional[Path] = None) -> tuple[list[SQLExample], list[dict]]:
    """gretelai/synthetic_text_to_sql: `sql_prompt`, `sql_context` (CREATE and INSERT statements), `sql`, with
    `sql_explanation`, `domain` and `sql_complexity` kept as extras."""
    examples, rejects = [], []
    for i, raw in enumerate(_rows("synthetic-text-to-sql", data_path)):
        row = _Row(raw)
        question, context, sql = row.text("sql_prompt"), row.text("sql_context"), row.text("sql")
        extra = {k: row.text(k, required=False) for k in ("sql_explanation", "domain", "sql_complexity")}
        if _bad(raw, row, "synthetic-text-to-sql", i, rejects):
            continue
        examples.append(SQLExample(question, sql, "synthetic-text-to-sql", schema=schema_from_sql(context), index=i,
                                   extra={k: v for k, v in extra.items() if v}))
    return examples, rejects


def find_database(root: Path, db_id: str) -> Optional[Path]:
    for folder in DB_FOLDERS:
        path = root / folder / db_id / f"{db_id}.sqlite"
        if path.is_file():
            return path.resolve()
    return None


def load_spider(data_path: Path, files: Optional[list[str]] = None,
                source: str = "spider") -> tuple[list[SQLExample], list[dict]]:
    """A Spider-layout folder: `train.json` (`question`, `query`, `db_id`) and `database/<db_id>/<db_id>.sqlite`.
    dev.json is read only when named in `files`: it is the held-out benchmark."""
    return _load_db_folder(data_path, files or [f for f in SPIDER_TRAIN_FILES if (Path(data_path) / f).is_file()],
                           source, sql_key="query", evidence_key=None)


def load_bird(data_path: Path, files: Optional[list[str]] = None) -> tuple[list[SQLExample], list[dict]]:
    """A BIRD-layout folder: `train.json` (`question`, `evidence`, `SQL`, `db_id`) and
    `train_databases/<db_id>/<db_id>.sqlite`. The evidence (external knowledge) goes into the prompt."""
    return _load_db_folder(data_path, files or ["train.json"], "bird", sql_key="SQL", evidence_key="evidence")


def _load_db_folder(data_path: Path, files: list[str], source: str, sql_key: str,
                    evidence_key: Optional[str]) -> tuple[list[SQLExample], list[dict]]:
    root = Path(data_path)
    if not files:
        raise LitSQLError(f"{root} has none of {', '.join(SPIDER_TRAIN_FILES)}: pass a {source} folder with "
                          f"--data_path, or name its files with --files")
    examples, rejects, databases = [], [], {}
    index = 0
    for name in files:
        if not (root / name).is_file():
            raise LitSQLError(f"{root / name} does not exist: pass a {source}-layout folder with --data_path "
                              f"(or the right names with --files)")
        for raw in read_records(root / name):
            row = _Row(raw)
            question, sql, db_id = row.text("question"), row.text(sql_key), row.text("db_id")
            evidence = row.text(evidence_key, required=False) if evidence_key else None
            if not _bad(raw, row, source, index, rejects):
                if db_id not in databases:
                    databases[db_id] = find_database(root, db_id)
                if databases[db_id] is None:
                    rejects.append(reject(source, index, f"unknown database {db_id!r} (no {DB_FOLDERS[0]}/{db_id}/"
                                          f"{db_id}.sqlite under {root})", raw))
                else:
                    examples.append(SQLExample(question, sql, source, db_id=db_id, db_path=str(databases[db_id]),
                                               evidence=evidence, index=index, extra={"file": name}))
            index += 1
    return examples, rejects


def load_json(data_path: Path, question_key: Optional[str] = None, context_key: Optional[str] = None,
              sql_key: Optional[str] = None) -> tuple[list[SQLExample], list[dict]]:
    """Local JSON, JSONL or CSV records: Alpaca (`instruction`, `input`, `output`), OpenAI-style `messages`,
    `question`/`context`/`answer` (or `query`/`sql`), or any columns named with the key flags."""
    examples, rejects = [], []
    mapped = question_key or context_key or sql_key
    for i, raw in enumerate(read_records(data_path)):
        row = _Row(raw)
        if mapped:
            question, sql = row.text(question_key or "question"), row.text(sql_key or "sql")
            context = row.text(context_key, required=False) if context_key else ""
        elif isinstance(raw, dict) and "messages" in raw:
            question, context, sql = _from_messages(raw["messages"], row)
        elif isinstance(raw, dict) and "instruction" in raw:
            question, context, sql = row.text("instruction"), row.text("input", required=False), row.text("output")
        else:
            question = row.text("question")
            sql = row.text(next((k for k in ("answer", "sql", "query", "SQL") if k in row.row), "sql"))
            context = row.text(next((k for k in ("context", "schema") if k in row.row), "context"), required=False)
        if _bad(raw, row, "json", i, rejects):
            continue
        schema, question = split_schema(context or "", question)
        examples.append(SQLExample(question, sql, "json", schema=schema, index=i))
    return examples, rejects


def _from_messages(messages: Any, row: _Row) -> tuple[Optional[str], str, Optional[str]]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        row.problem = "field 'messages' is not a list of {role, content} records"
        return None, "", None
    turns = {m.get("role"): _Row(m) for m in messages}  # the last user and assistant turns
    if "user" not in turns or "assistant" not in turns:
        row.problem = "messages hold no user turn and assistant turn"
        return None, "", None
    question, sql = turns["user"].text("content"), turns["assistant"].text("content")
    row.problem = turns["user"].problem or turns["assistant"].problem
    return question, "", sql


def split_schema(context: str, question: str) -> tuple[Optional[Schema], str]:
    """The CREATE TABLE statements of a context (or of a question that carries them) and the question text."""
    pattern = re.compile(r"(CREATE\s+TABLE\b.*?\)\s*;?)\s*(?=CREATE\s+TABLE\b|INSERT\b|$|\n\s*\n)", re.I | re.S)
    if context.strip() and re.search(r"CREATE\s+TABLE", context, re.I):
        return schema_from_sql(context), question
    if context.strip():  # a plain-text input: part of the question
        question = f"{question}\n{context.strip()}"
    statements = pattern.findall(question)
    if not statements:
        return None, question
    rest = pattern.sub("", question)
    rest = re.sub(r"(?im)^\s*(database\s+)?schema\s*:?\s*$", "", rest).strip()
    return schema_from_sql("\n".join(statements)), rest or question


def _bad(raw: Any, row: _Row, source: str, index: int, rejects: list[dict]) -> bool:
    reason = getattr(raw, "reason", None) or row.problem
    if reason:
        rejects.append(reject(source, index, reason, row.row))
    return reason is not None


def load_source(name: str, data_path: Optional[Path], **options: Any) -> tuple[list[SQLExample], list[dict]]:
    """One source by its --dataset name."""
    loaders: dict[str, Callable[..., tuple[list[SQLExample], list[dict]]]] = {
        "sql-create-context": lambda: load_sql_create_context(data_path),
        "synthetic-text-to-sql": lambda: load_synthetic_text_to_sql(data_path),
        "spider": lambda: load_spider(data_path, options.get("files")),
        "bird": lambda: load_bird(data_path, options.get("files")),
        "json": lambda: load_json(data_path, options.get("question_key"), options.get("context_key"),
                                  options.get("sql_key")),
    }
    return loaders[name]()
