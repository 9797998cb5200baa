"""The web demo, `lit-sql app`: ask a SQLite database questions in plain language and see the SQL stream in, then
its result as a table.

The page (Gradio) lets you pick a generated or local database or upload one, shows its schema, and keeps the chat
history; the model is the base checkpoint or any fine-tuned adapter, with retrieval on or off. What the model
writes runs only through the read-only sandbox of `lit_sql.sql.execute`, with a timeout and a row cap, so no
answer can change a database or hang the page. The server listens on 127.0.0.1 unless told otherwise.

`DemoApp` holds the logic and the handlers; `build_ui` turns it into a page. The model sits behind the small
`SQLGenerator` protocol, so tests drive the page with a stub that answers whatever SQL they want to try.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

from lit_sql.errors import LitSQLError

BASE_MODEL = "base"
RETRIEVAL_OFF = "off"
SQLITE_HEADER = b"SQLite format 3\x00"
MAX_TABLES = 500  # a schema longer than this says nothing a page (or a model's context) can hold
MAX_SCHEMA_CHARS = 20_000  # of schema text shown on the page
MAX_CELL_CHARS = 200  # of one value shown in the result table
MAX_QUESTION_CHARS = 2_000
MAX_LISTED_DATABASES = 500  # files listed from --db_dir
COUNT_TIMEOUT_S = 1.0  # per table, for the row counts beside the schema
COUNT_BUDGET_S = 3.0  # for all of them: tables past it show "?"


@dataclass
class Request:
    """One question to the model: what it is asked, about which database, with which weights."""

    question: str
    db_path: Path
    model: str = BASE_MODEL  # BASE_MODEL or the name of an adapter
    retrieval: bool = False


class SQLGenerator(Protocol):
    def stream(self, request: Request) -> Iterator[str]:
        """The model's answer so far, once per new piece of text (each value holds the whole answer so far)."""
        ...


# ---- the model ----------------------------------------------------------------------------------------------
class ModelGenerator:
    """The base checkpoint, or one of the fine-tuned runs, writing SQL with the project's prompt.

    One set of weights is kept in memory at a time: choosing another run loads it on the next question. Each run
    is loaded on the base it was trained on and asked exactly as in training (its run record, `lit_sql.run`),
    the schema shortened like there when the prompt would not fit the context; the base model is asked with
    --schema_format (default ddl, or the recipe of a merged checkpoint)."""

    def __init__(self, checkpoint_dir: Optional[Path] = None, adapters: Optional[dict[str, Path]] = None,
                 precision: str = "32-true", max_new_tokens: int = 128, schema_format: Optional[str] = None,
                 retriever: Any = None, constrained: bool = True) -> None:
        from lit_sql.generation import parse_precision
        from lit_sql.run import base_run, load_run

        parse_precision(precision)
        self.runs = {}
        for name, path in (adapters or {}).items():
            try:
                self.runs[name] = load_run(path)
            except LitSQLError as e:  # e.g. a run whose base model is not on this machine: the others still work
                print(f"warning: run {name} is not offered: {e}", file=sys.stderr)
        if checkpoint_dir is None and self.runs:  # the base of the first run, to compare it with
            checkpoint_dir = next(iter(self.runs.values())).checkpoint_dir
        self.runs = {BASE_MODEL: base_run(checkpoint_dir, schema_format=schema_format), **self.runs}
        self.precision, self.max_new_tokens = precision, max_new_tokens
        self.retriever, self.constrained = retriever, constrained
        for name, run in self.runs.items():
            if self._new_tokens(run) >= run.config.block_size:
                raise LitSQLError(f"--max_new_tokens {max_new_tokens} leaves no room for the prompt in the context of "
                                  f"{name} ({run.config.block_size} tokens)")
        self._loaded: tuple[Optional[str], Any] = (None, None)
        self._lock = threading.Lock()  # one generation at a time: the model holds one KV cache

    def _run(self, name: str):
        if name not in self.runs:
            raise LitSQLError(f"unknown model {name!r}: choose one of {sorted(self.runs)}")
        return self.runs[name]

    def _new_tokens(self, run) -> int:
        """The most tokens of one answer: --max_new_tokens of SQL, and a linked run's links line before it."""
        return run.recipe.answer_tokens(self.max_new_tokens)

    def _model(self, name: str):
        run = self._run(name)
        if self._loaded[0] != name:
            self._loaded = (None, None)  # free the old weights before loading the new ones
            self._loaded = (name, run.load_model(self.precision))
        return self._loaded[1]

    def prompt(self, request: Request) -> str:
        run = self._run(request.model)
        schema = run.read_schema(request.db_path, request.question)
        if request.retrieval:
            if self.retriever is None:
                raise LitSQLError("retrieval is off for this server: start it with --retrieval examples:3,schema "
                                  "--retrieval_index PATH (an index built by scripts/build_index.py)")
            return self.retriever.prompt(run.style, request.question, schema, recipe=run.recipe,
                                         count_tokens=run.count_tokens,
                                         max_tokens=run.prompt_budget(self._new_tokens(run))).text
        try:
            return run.prompt(request.question, schema, max_new_tokens=self._new_tokens(run))
        except LitSQLError:
            raise LitSQLError(f"the schema of {Path(request.db_path).name} is too long for the model's context of "
                              f"{run.config.block_size} tokens, even with only the tables the question names") from None

    def stream(self, request: Request) -> Iterator[str]:
        from lit_sql.generation import generate

        with self._lock:
            model = self._model(request.model)
            run = self._run(request.model)
            tokenizer = run.tokenizer
            ids = tokenizer.encode(self.prompt(request))
            stops = run.style.stop_tokens(tokenizer)
            grounding = None
            if self.constrained:  # names stay inside the chosen database's schema
                from lit_sql.sql.grounding import grounding_for

                grounding = grounding_for(tokenizer, [run.read_schema(request.db_path)],
                                          [s[0] for s in stops if len(s) == 1])
            tokens: list[int] = []
            for token in generate(model, ids, self._new_tokens(run), stop_tokens=stops, grounding=grounding):
                tokens.append(token)
                text = tokenizer.decode(tokens)
                if not text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    yield text
            yield tokenizer.decode(tokens)


# ---- databases ----------------------------------------------------------------------------------------------
@contextmanager
def sandboxed(path: Path):
    """A private sandboxed connection and its deadline: what the page reads to show a database never shares the
    connection (and the deadline) of a model's query that may be running at the same time."""
    from lit_sql.sql.execute import open_sandboxed

    conn, deadline = open_sandboxed(path)
    try:
        yield conn, deadline
    finally:
        conn.close()


def check_database(path: Path) -> int:
    """The number of tables of `path`; LitSQLError unless it is a SQLite database this demo can show and query."""
    path = Path(path)
    if not path.is_file():
        raise LitSQLError(f"{path}: no such file")
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise LitSQLError(f"{path.name} is not a SQLite database (a SQLite file starts with 'SQLite format 3'): "
                          f"choose a .sqlite or .db file")
    try:
        with sandboxed(path) as (conn, deadline):
            deadline.at = time.monotonic() + COUNT_TIMEOUT_S
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    except sqlite3.Error as e:
        raise LitSQLError(f"{path.name} cannot be read as a SQLite database ({e})") from None
    if tables == 0:
        raise LitSQLError(f"{path.name} holds no tables: there is nothing to ask about")
    if tables > MAX_TABLES:
        raise LitSQLError(f"{path.name} has {tables} tables; this demo shows databases of up to {MAX_TABLES} tables")
    return tables


def count_rows(path: Path, tables: list[str]) -> list[str]:
    """Each table's row count as text; counting reads rows, so each count and all of them are bounded in time."""
    from lit_sql.sql.lexer import quote_identifier

    counts, stop = [], time.monotonic() + COUNT_BUDGET_S
    with sandboxed(path) as (conn, deadline):
        for table in tables:
            if time.monotonic() > stop:
                counts.append("?")
                continue
            deadline.at = min(time.monotonic() + COUNT_TIMEOUT_S, stop)
            try:
                counts.append(f"{conn.execute(f'SELECT count(*) FROM {quote_identifier(table)}').fetchone()[0]:,}")
            except sqlite3.Error:  # stopped by the deadline, or a table SQLite cannot read
                counts.append("?")
    return counts


def find_databases(db_dir: Optional[Path] = None, generated_dir: Optional[Path] = None,
                   num_generated: int = 0) -> dict[str, Path]:
    """Databases to choose from, by name: `num_generated` databases of the embedded generator (built once into
    `generated_dir`), then the *.sqlite / *.db files under `db_dir`."""
    found: dict[str, Path] = {}
    if num_generated > 0 and generated_dir is not None:
        for path in generated_databases(Path(generated_dir), num_generated):
            found[path.stem] = path
    if db_dir is not None:
        if not Path(db_dir).is_dir():
            raise LitSQLError(f"--db_dir {db_dir}: no such folder")
        paths = sorted(p for pattern in ("*.sqlite", "*.db", "*.sqlite3") for p in Path(db_dir).rglob(pattern))
        for path in paths[:MAX_LISTED_DATABASES]:
            name = path.stem if path.stem not in found else str(path.relative_to(db_dir))
            found[name] = path.resolve()
    return found


def generated_databases(out_dir: Path, num_databases: int) -> list[Path]:
    """The first `num_databases` databases of the embedded generator (and questions about them), written to
    `out_dir` on first use (about a second)."""
    from lit_sql.data.generator import databases_plan, generate_dataset

    paths = [out_dir / "database" / db_id / f"{db_id}.sqlite" for db_id, _, _ in databases_plan(num_databases, 42)]
    if not all(p.is_file() for p in paths) or not (out_dir / "questions.json").is_file():
        print(f"generating {num_databases} example databases in {out_dir}", file=sys.stderr)
        generate_dataset(out_dir, num_databases=num_databases, num_questions=8 * num_databases)
    return [p.resolve() for p in paths]


def example_questions(db_path: Path, limit: int = 6) -> list[str]:
    """Questions the generator asked about this database (from the questions.json two folders up), if any."""
    questions = Path(db_path).parent.parent.parent / "questions.json"
    if not questions.is_file():
        return []
    try:
        records = json.loads(questions.read_text())
    except (OSError, ValueError):
        return []
    db_id = Path(db_path).stem
    return [r["question"] for r in records if r.get("db_id") == db_id][:limit]


def find_adapters(lora_dir: Optional[Path] = None, lora_path: Optional[Path] = None) -> dict[str, Path]:
    """Fine-tuned adapters by name: --lora_path, then every run folder under `lora_dir` that finished
    (adapter.pth beside hyperparameters.yaml)."""
    from lit_sql.lora import ADAPTER_FILE, HYPERPARAMETERS_FILE

    found: dict[str, Path] = {}
    if lora_path is not None:
        lora_path = Path(lora_path)
        if not (lora_path / ADAPTER_FILE).is_file() or not (lora_path / HYPERPARAMETERS_FILE).is_file():
            raise LitSQLError(f"--lora_path {lora_path}: expected {ADAPTER_FILE} and {HYPERPARAMETERS_FILE} there "
                              f"(the output folder of finetune/lora.py)")
        found[lora_path.name or str(lora_path)] = lora_path.resolve()
    if lora_dir is not None and Path(lora_dir).is_dir():
        for run in sorted(Path(lora_dir).iterdir()):
            if (run / ADAPTER_FILE).is_file() and (run / HYPERPARAMETERS_FILE).is_file():
                if run.resolve() not in found.values():
                    found[run.name if run.name not in found else str(run)] = run.resolve()
    if BASE_MODEL in found:
        found[f"{BASE_MODEL} (adapter)"] = found.pop(BASE_MODEL)
    return found


# ---- what the page shows ------------------------------------------------------------------------------------
@dataclass
class Grid:
    """A grid for the page: column names and rows of display strings."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def value(self) -> dict:
        return {"headers": self.headers, "data": self.rows}


def display_table(columns: list[str], rows: list[tuple]) -> Grid:
    """Values as text that a browser can show: blobs by size, long strings cut, repeated column names told apart."""
    headers, seen = [], {}
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        headers.append(name if seen[name] == 1 else f"{name} ({seen[name]})")

    def cell(v: object) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, (bytes, bytearray)):
            return f"<blob, {len(v)} bytes>"
        text = str(v)
        return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…"

    return Grid(headers or ["(no columns)"], [[cell(v) for v in row] for row in rows])


@dataclass
class DatabaseView:
    name: str
    schema: str  # CREATE TABLE statements, cut at MAX_SCHEMA_CHARS
    tables: Grid  # table, columns, rows
    summary: str  # one Markdown line
    examples: list[str]


@dataclass
class Turn:
    """One step of answering: the chat so far, the SQL so far, and once it ran, its result."""

    history: list[dict]
    sql: str
    result: Optional[Grid] = None
    status: str = ""
    done: bool = False


class DemoApp:
    """The demo's state and its handlers; `build_ui` wires them to a page."""

    def __init__(self, generator: SQLGenerator, databases: dict[str, Path], models: Optional[list[str]] = None,
                 retrieval: Optional[str] = None, query_timeout_s: float = 5.0, max_rows: int = 200) -> None:
        if query_timeout_s <= 0 or max_rows < 1:
            raise LitSQLError("--query_timeout_s must be > 0 and --max_rows >= 1")
        self.generator, self.databases = generator, dict(databases)
        self.models = models or [BASE_MODEL]
        self.retrieval = retrieval  # the --retrieval spec offered on the page, or None
        self.query_timeout_s, self.max_rows = query_timeout_s, max_rows
        # The sandbox keeps one connection (and one deadline) per database and process: the model's queries take
        # turns on it. Showing a database uses connections of its own (`sandboxed`).
        self._sql_lock = threading.Lock()

    @property
    def retrieval_choices(self) -> list[str]:
        return [RETRIEVAL_OFF] + ([self.retrieval] if self.retrieval else [])

    def run_sql(self, db_path: Path, sql: str):
        from lit_sql.sql.execute import execute_sql

        with self._sql_lock:
            return execute_sql(db_path, sql, timeout_s=self.query_timeout_s, max_rows=self.max_rows)

    def database_path(self, name: str) -> Path:
        if name not in self.databases:
            raise LitSQLError(f"unknown database {name!r}")
        return self.databases[name]

    def describe(self, db_path: Path, name: Optional[str] = None) -> DatabaseView:
        """Schema, tables with their sizes, and example questions; bounded for any size of file."""
        from lit_sql.data.schema import read_schema

        db_path = Path(db_path)
        check_database(db_path)
        parsed = read_schema(db_path)  # reads only the catalog, never the rows
        schema = parsed.render("ddl")
        if len(schema) > MAX_SCHEMA_CHARS:
            schema = schema[:MAX_SCHEMA_CHARS] + f"\n-- ... cut at {MAX_SCHEMA_CHARS:,} characters"
        counts = count_rows(db_path, [t.name for t in parsed.tables])
        rows = [[t.name, str(len(t.columns)), count] for t, count in zip(parsed.tables, counts)]
        size = db_path.stat().st_size
        shown = f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.0f} KB"
        summary = f"**{name or db_path.name}**: {len(rows)} tables, {shown}"
        return DatabaseView(name or db_path.name, schema, Grid(["table", "columns", "rows"], rows), summary,
                            example_questions(db_path))

    def ask(self, question: str, history: Optional[list[dict]], db_path: Optional[Path], model: str = BASE_MODEL,
            retrieval: str = RETRIEVAL_OFF) -> Iterator[Turn]:
        """Stream the answer to one question: the SQL as it is written, then its result."""
        from lit_sql.sql.extract import extract_sql

        history = list(history or [])
        question = (question or "").strip()
        if not question:
            yield Turn(history, "", status="Type a question first.", done=True)
            return
        if db_path is None:
            yield Turn(history, "", status="Choose or upload a database first.", done=True)
            return
        question = question[:MAX_QUESTION_CHARS]
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        request = Request(question, Path(db_path), model, retrieval not in (None, "", RETRIEVAL_OFF))
        answer, start = "", time.perf_counter()
        try:
            for answer in self.generator.stream(request):
                history[-1] = {"role": "assistant", "content": _fenced(answer + " ▌")}
                yield Turn(history, answer, status=f"writing SQL with {model} ...")
        except LitSQLError as e:
            history[-1] = {"role": "assistant", "content": f"error: {e}"}
            yield Turn(history, answer, status=f"error: {e}", done=True)
            return
        seconds = time.perf_counter() - start
        # The model's last query; an answer with no SELECT runs as written, so the sandbox (not the extraction)
        # is what keeps a DROP TABLE from doing anything.
        extracted = extract_sql(answer)
        sql = extracted or answer.strip()
        result = self.run_sql(request.db_path, sql)
        if result.ok:
            table = display_table(result.columns, result.rows)
            shown = f"{len(result.rows):,} rows" + (f" (the first {self.max_rows:,})" if result.truncated else "")
            status = f"{shown} in {result.seconds * 1000:.0f} ms; SQL written in {seconds:.1f} s"
        else:
            table = None
            hint = " (the demo only reads)" if "not authorized" in result.error or "readonly" in result.error else ""
            status = f"the query failed: {result.error}{hint}"
            if not extracted:
                status = f"no SELECT in the answer, so it ran as written; {status}"
        history[-1] = {"role": "assistant", "content": _fenced(sql) + "\n\n" + status}
        yield Turn(history, sql, table, status, done=True)


def _fenced(sql: str) -> str:
    return f"```sql\n{sql.strip()}\n```"


# ---- the page -----------------------------------------------------------------------------------------------
def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    try:
        import gradio as gr
    except ImportError:
        raise LitSQLError("the web demo needs gradio: pip install -e '.[demo]'") from None
    return gr


def build_ui(demo: DemoApp, title: str = "lit_sql: ask a database"):
    """The Gradio page for `demo`."""
    gr = _gradio()
    names = list(demo.databases)

    def show(db_path: Optional[str], name: Optional[str] = None):
        if not db_path:
            return None, "", None, "No database yet: choose one or upload a SQLite file.", gr.update(choices=[])
        view = demo.describe(Path(db_path), name)
        return (str(db_path), view.schema, view.tables.value(), view.summary,
                gr.update(choices=view.examples, value=None))

    def choose(name: str):
        try:
            return show(str(demo.database_path(name)), name)
        except LitSQLError as e:
            gr.Warning(str(e))
            return None, "", None, f"error: {e}", gr.update(choices=[])

    def upload(file: Optional[str]):
        if not file:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            return (*show(file, f"uploaded: {Path(file).name}"), gr.update(value=None))
        except LitSQLError as e:
            gr.Warning(str(e))  # the database shown before stays
            return gr.skip(), gr.skip(), gr.skip(), f"error: {e}", gr.skip(), gr.skip()

    def ask(question: str, history: list, db_path: Optional[str], model: str, retrieval: str):
        for turn in demo.ask(question, history, Path(db_path) if db_path else None, model, retrieval):
            result = turn.result.value() if turn.result is not None else (None if turn.done else gr.skip())
            yield turn.history, turn.sql, result, turn.status, ("" if turn.done else gr.skip())

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        db_state = gr.State(None)
        gr.Markdown(f"## {title}\nPick a database, ask in plain language; the model's SQL runs read-only.")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                database = gr.Dropdown(names, value=names[0] if names else None, label="Database",
                                       elem_id="database")
                uploaded = gr.UploadButton("... or upload a SQLite file", type="filepath", size="sm",
                                           elem_id="upload")
                info = gr.Markdown(elem_id="db-info")
                examples = gr.Dropdown([], label="Example questions", elem_id="examples", interactive=True)
                tables = gr.Dataframe(label="Tables", interactive=False, elem_id="tables", max_height=200)
                schema = gr.Code(label="Schema", language="sql", interactive=False, elem_id="schema", max_lines=14)
            with gr.Column(scale=3, min_width=420):
                with gr.Row():
                    model = gr.Dropdown(demo.models, value=demo.models[0], label="Model", elem_id="model")
                    retrieval = gr.Radio(demo.retrieval_choices, value=RETRIEVAL_OFF, label="Retrieval",
                                         elem_id="retrieval", interactive=len(demo.retrieval_choices) > 1)
                chat = gr.Chatbot(label="Chat", elem_id="chat", height=260)
                with gr.Row():
                    question = gr.Textbox(placeholder="e.g. How many books cost more than 30?", show_label=False,
                                          elem_id="question", scale=5)
                    ask_button = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                sql = gr.Code(label="SQL", language="sql", interactive=False, elem_id="sql", lines=2)
                result = gr.Dataframe(label="Result", interactive=False, elem_id="result", max_height=260)
                with gr.Row():
                    status = gr.Markdown(elem_id="status")
                    clear = gr.Button("Clear chat", size="sm", scale=0)

        view_outputs = [db_state, schema, tables, info, examples]
        if names:
            page.load(choose, database, view_outputs)
        database.input(choose, database, view_outputs)  # .input: only when the user picks, not when cleared
        uploaded.upload(upload, uploaded, view_outputs + [database])
        examples.input(lambda q: q, examples, question)
        ask_outputs = [chat, sql, result, status, question]
        ask_inputs = [question, chat, db_state, model, retrieval]
        ask_button.click(ask, ask_inputs, ask_outputs)
        question.submit(ask, ask_inputs, ask_outputs)
        clear.click(lambda: ([], "", None, ""), None, [chat, sql, result, status])
    return page


# ---- `lit-sql app` ------------------------------------------------------------------------------------------
def serve(
    db_dir: Optional[Path] = None,
    lora_path: Optional[Path] = None,
    lora_dir: Path = Path("out/lora"),
    checkpoint_dir: Optional[Path] = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    retrieval: Optional[str] = None,
    retrieval_index: Optional[Path] = None,
    retrieval_threshold: float = 0.8,
    num_generated: int = 8,
    generated_dir: Path = Path("out/app/databases"),
    precision: str = "32-true",
    max_new_tokens: int = 128,
    schema_format: Optional[str] = None,
    query_timeout_s: float = 5.0,
    max_rows: int = 200,
    max_upload_mb: int = 200,
    constrained: bool = True,
    block: bool = True,
):
    """Start the web demo: a chat page that turns questions about a SQLite database into SQL and runs it read-only.

    Args:
        db_dir: a folder whose *.sqlite / *.db files (searched recursively) are offered besides the generated ones.
        lora_path: a fine-tuned adapter (output folder of finetune/lora.py), chosen by default.
        lora_dir: every finished run under this folder is offered too.
        checkpoint_dir: the base model offered as "base" (default: the base of --lora_path, else the embedded
            SmolLM2-135M-Instruct, converted on first use). Each fine-tuned run loads on its own recorded base.
        host: the address to listen on. 127.0.0.1 keeps the page on this machine; anything else exposes a model
            that runs SQL on your files to the network.
        port: the port to listen on.
        retrieval: offer retrieval on the page with these settings (examples:K, schema, or both comma-separated);
            needs --retrieval_index.
        retrieval_index: an index built by scripts/build_index.py.
        retrieval_threshold: examples less similar than this (cosine) are not added to the prompt.
        num_generated: how many databases of the embedded generator to offer (0: only --db_dir's).
        generated_dir: where the generated databases are written (once).
        precision: 32-true, bf16-true or 16-true.
        max_new_tokens: most tokens of SQL per answer.
        schema_format: ddl or compact, for the base model (a fine-tuned run uses its training recipe).
        query_timeout_s: a query running longer than this is stopped.
        max_rows: most rows of a result shown.
        max_upload_mb: largest database that can be uploaded.
        constrained: schema-grounded decoding: every table and column name the model writes must exist in the
            chosen database; false: free decoding.
        block: keep serving until interrupted (False: return the page, for tests).
    """
    from lit_sql.data.schema import SCHEMA_FORMATS

    if not 0 < port < 65536:
        raise LitSQLError(f"--port {port}: must be between 1 and 65535")
    if schema_format is not None and schema_format not in SCHEMA_FORMATS:
        raise LitSQLError(f"--schema_format {schema_format!r}: one of {', '.join(SCHEMA_FORMATS)}")
    if max_upload_mb < 1 or num_generated < 0:
        raise LitSQLError("--max_upload_mb must be >= 1 and --num_generated >= 0")
    _gradio()  # fails now, not after loading the model, when gradio is missing
    retriever = None
    if retrieval is not None:
        from lit_sql.retrieval import Retriever

        retriever = Retriever.from_flags(retrieval, retrieval_index, retrieval_threshold)
    adapters = find_adapters(lora_dir, lora_path)
    if lora_path is not None:
        from lit_sql.run import load_run

        load_run(lora_path)  # the run asked for must load: fail now, with the reason, not with a warning later
    databases = find_databases(db_dir, generated_dir, num_generated)
    if not databases:
        print("note: no databases to choose from (--num_generated 0 and no --db_dir): upload one on the page",
              file=sys.stderr)
    generator = ModelGenerator(checkpoint_dir, adapters, precision, max_new_tokens, schema_format, retriever,
                               constrained)
    models = [BASE_MODEL] + list(adapters)
    if lora_path is not None:  # its adapter comes first in `adapters`; make it the default
        models.insert(0, models.pop(1))
    demo = DemoApp(generator, databases, models, retrieval, query_timeout_s, max_rows)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this machine can use the demo", file=sys.stderr)
    page = launch(build_ui(demo), host, port, max_upload_mb)
    print(f"lit_sql web demo on http://{host}:{port}  ({len(databases)} databases, models: {', '.join(models)})",
          file=sys.stderr, flush=True)
    if block:
        page.block_thread()  # until Ctrl-C
    return page


def launch(page, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: int = 200):
    """Serve `page` in a background thread: no share link, no server-side rendering (it would start Node), no
    fonts or scripts from other hosts."""
    gr = _gradio()
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=True, quiet=True,
                max_file_size=f"{max_upload_mb}mb", ssr_mode=False, footer_links=[], inbrowser=False,
                theme=gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                                        font_mono=["ui-monospace", "monospace"]))
    return page
