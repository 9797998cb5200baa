"""The web demo (`lit-sql app`): the handlers with a real tiny model and with a stub that writes hostile SQL, the
server's address, and one end-to-end run in headless Chromium that leaves its screenshot in docs/app.png."""

from __future__ import annotations

import json
import re
import os
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from lit_sql.app import (BASE_MODEL, DemoApp, ModelGenerator, Request, build_ui, check_database, find_adapters,
                         find_databases, launch, serve)
from lit_sql.errors import LitSQLError
from lit_sql.data.prompt import PromptRecipe
from lit_sql.sql.execute import close_connections, execute_sql
from tests.conftest import REPO_ROOT, make_fake_run, make_tiny_checkpoint

import gradio as gr  # noqa: E402  (the demo extra; installed by make test)

SHOP = REPO_ROOT / "tests" / "fixtures" / "data" / "spider" / "database" / "shop" / "shop.sqlite"


class Scripted:
    """A stand-in for the model: answers every question with the same text, a few characters at a time."""

    def __init__(self, answer: str, delay_s: float = 0.0) -> None:
        self.answer, self.delay_s = answer, delay_s
        self.requests: list[Request] = []

    def stream(self, request: Request):
        self.requests.append(request)
        for end in range(4, len(self.answer) + 4, 4):
            time.sleep(self.delay_s)
            yield self.answer[:end]


@pytest.fixture
def shop(tmp_path) -> Path:
    path = tmp_path / "shop.sqlite"
    shutil.copy(SHOP, path)
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    return find_databases(generated_dir=tmp_path_factory.mktemp("generated"), num_generated=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last(turns) -> object:
    turns = list(turns)
    assert turns[-1].done
    return turns[-1]


# ---- the real model path --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random model with room for a real schema in its context."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("app_checkpoint"), block_size=2048)


def fake_adapter(tmp_path: Path, checkpoint: Path, schema_format: str) -> Path:
    """A finished run folder whose run record says its training data rendered schemas in `schema_format`."""
    return make_fake_run(tmp_path / "out" / "lora" / "sql", checkpoint, PromptRecipe(schema_format=schema_format))


def test_tiny_model_streams_its_answer_and_the_answer_runs_read_only(checkpoint, shop):
    demo = DemoApp(ModelGenerator(checkpoint, max_new_tokens=24), {"shop": shop})
    before = shop.read_bytes()
    turns = list(demo.ask("How many customers are there?", [], shop))
    streamed = [t for t in turns if not t.done]
    assert len(streamed) >= 2, "the answer should arrive piece by piece"
    assert all(len(a.sql) <= len(b.sql) for a, b in zip(streamed, streamed[1:]))  # each piece extends the last
    final = turns[-1]
    assert final.done
    ran = execute_sql(shop, final.sql)  # the page reports what its SQL does on the database
    assert not ran.ok and final.result is None  # a random model writes no valid SQL: the page says why it failed
    assert final.status.endswith(f"the query failed: {ran.error}")
    assert [m["role"] for m in final.history] == ["user", "assistant"]
    assert final.history[0]["content"] == "How many customers are there?"
    close_connections()
    assert shop.read_bytes() == before


def test_adapter_is_loaded_and_prompted_like_its_training_data(checkpoint, shop, tmp_path):
    run = fake_adapter(tmp_path, checkpoint, "compact")
    adapters = find_adapters(tmp_path / "out" / "lora")
    assert adapters == {"sql": run.resolve()}
    generator = ModelGenerator(checkpoint, adapters, max_new_tokens=8)
    base_prompt = generator.prompt(Request("How many customers?", shop, BASE_MODEL))
    tuned_prompt = generator.prompt(Request("How many customers?", shop, "sql"))
    assert "CREATE TABLE customer" in base_prompt
    assert "CREATE TABLE" not in tuned_prompt and "customer(" in tuned_prompt
    base = list(generator.stream(Request("How many customers?", shop, BASE_MODEL)))[-1]
    tuned = list(generator.stream(Request("How many customers?", shop, "sql")))[-1]
    assert generator._loaded[0] == "sql"
    assert base != tuned  # the adapter's weights changed what the model writes
    with pytest.raises(LitSQLError, match="unknown model"):
        list(generator.stream(Request("How many customers?", shop, "nope")))


def test_schema_too_long_for_the_context_is_a_clear_message(tmp_path):
    small = make_tiny_checkpoint(tmp_path / "small", block_size=128)
    db = tmp_path / "wide.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE wide ({', '.join(f'column_{i} INTEGER' for i in range(60))})")
    turn = last(DemoApp(ModelGenerator(small, max_new_tokens=16), {"wide": db}).ask("How many rows?", [], db))
    assert "too long for the model's context" in turn.status


def test_retrieval_puts_similar_solved_examples_in_the_prompt(checkpoint, shop, tmp_path):
    from lit_sql.data.prompt import EXAMPLES_HEADING
    from lit_sql.retrieval import Retriever, build_index
    from tests.conftest import write_prepared_data

    data = write_prepared_data(tmp_path / "data", checkpoint, n_train=12, n_test=2)
    index = build_index(data_dir=data, out=tmp_path / "index")
    retriever = Retriever.from_flags("examples:2", index, threshold=-1.0)
    demo = DemoApp(ModelGenerator(checkpoint, max_new_tokens=8, retriever=retriever), {"shop": shop},
                   retrieval="examples:2")
    assert demo.retrieval_choices == ["off", "examples:2"]
    question = "How many rows are in singer with age > 30?"
    with_examples = demo.generator.prompt(Request(question, shop, retrieval=True))
    assert EXAMPLES_HEADING in with_examples and "SELECT count(*) FROM" in with_examples
    assert EXAMPLES_HEADING not in demo.generator.prompt(Request(question, shop))
    asked = []  # the prompt the model gets when the question is asked with retrieval on
    prompt = demo.generator.prompt
    demo.generator.prompt = lambda request: asked.append(prompt(request)) or asked[-1]
    last(demo.ask(question, [], shop, retrieval="examples:2"))
    assert asked == [with_examples]
    without = DemoApp(ModelGenerator(checkpoint, max_new_tokens=8), {"shop": shop})
    assert "retrieval is off" in last(without.ask(question, [], shop, retrieval="examples:2")).status


# ---- hostile answers and files --------------------------------------------------------------------------------
HOSTILE = [
    "DROP TABLE customer",
    "DELETE FROM customer",
    "UPDATE customer SET name = 'x'",
    "INSERT INTO customer (customer_id) VALUES (999)",
    "CREATE TABLE pwned (x)",
    "ALTER TABLE customer RENAME TO gone",
    "PRAGMA journal_mode = WAL",
    "PRAGMA writable_schema = 1",
    "VACUUM",
    "VACUUM INTO 'copy.sqlite'",
    "ATTACH DATABASE 'other.sqlite' AS other",
    "BEGIN IMMEDIATE",
]


@pytest.mark.parametrize("answer", HOSTILE)
def test_nothing_the_model_writes_changes_the_database(answer, shop):
    before, files = shop.read_bytes(), sorted(os.listdir(shop.parent))
    demo = DemoApp(Scripted(answer), {"shop": shop})
    cwd = os.getcwd()
    os.chdir(shop.parent)  # relative file names in the SQL would land here
    try:
        turn = last(demo.ask("Please clean up the database.", [], shop))
    finally:
        os.chdir(cwd)
    assert turn.result is None and "the query failed" in turn.status, turn.status
    close_connections()
    assert shop.read_bytes() == before
    assert sorted(os.listdir(shop.parent)) == files
    with sqlite3.connect(shop) as conn:
        assert conn.execute("SELECT count(*) FROM customer").fetchone()[0] == 2


def test_drop_table_answer_is_shown_refused_and_the_chat_goes_on(shop):
    demo = DemoApp(Scripted("DROP TABLE customer;"), {"shop": shop})
    turn = last(demo.ask("Drop the customer table", [], shop))
    assert "not authorized" in turn.status and "the demo only reads" in turn.status
    assert "DROP TABLE customer" in turn.history[-1]["content"]
    demo.generator = Scripted("SELECT name FROM customer ORDER BY customer_id")
    turn = last(demo.ask("Who are the customers?", turn.history, shop))
    assert turn.result.headers == ["name"] and turn.result.rows == [["Omar Rossi"], ["Lara Kim"]]
    assert len(turn.history) == 4
    assert "one statement at a time" in demo.run_sql(shop, "SELECT 1; DROP TABLE customer").error


def test_upload_that_is_not_a_database_gets_a_clear_message(tmp_path, shop):
    text = tmp_path / "notes.sqlite"
    text.write_text("CREATE TABLE looks_like_sql (x);\n")
    with pytest.raises(LitSQLError, match="is not a SQLite database"):
        check_database(text)
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(shop.read_bytes()[:100] + b"\x00" * 50)  # a real header, then nothing readable
    with pytest.raises(LitSQLError, match=rf"^broken.sqlite cannot be read as a SQLite database "
                                          rf"\({re.escape(str(broken))}: database disk image is malformed\)$"):
        check_database(broken)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("PRAGMA user_version = 1").connection.close()
    with pytest.raises(LitSQLError, match="holds no tables"):
        check_database(empty)
    with pytest.raises(LitSQLError, match="not a SQLite database"):
        DemoApp(Scripted("SELECT 1"), {}).describe(text)


def test_questions_without_a_database_or_text_are_answered_politely(shop):
    demo = DemoApp(Scripted("SELECT 1"), {"shop": shop})
    assert "Type a question" in last(demo.ask("   ", [], shop)).status
    assert "Choose or upload" in last(demo.ask("How many?", [], None)).status
    assert demo.generator.requests == []


def make_big_database(path: Path, megabytes: int = 50) -> Path:
    """About `megabytes` MB of rows, written in one transaction."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("CREATE TABLE sale (sale_id INTEGER PRIMARY KEY, city TEXT, amount REAL, note TEXT)")
    conn.execute("CREATE TABLE city (name TEXT PRIMARY KEY, country TEXT)")
    note = "x" * 90
    rows = ((i, f"city {i % 97}", i * 0.5, note) for i in range(megabytes * 2**20 // 110))
    conn.executemany("INSERT INTO sale VALUES (?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO city VALUES (?, ?)", ((f"city {i}", "Chile") for i in range(97)))
    conn.commit()
    conn.close()
    return path


def test_a_50_mb_database_stays_quick_and_bounded(tmp_path):
    db = make_big_database(tmp_path / "big.sqlite")
    assert db.stat().st_size > 45 * 2**20
    demo = DemoApp(Scripted("SELECT * FROM sale"), {"big": db}, query_timeout_s=1.0, max_rows=100)
    start = time.perf_counter()
    view = demo.describe(db, "big")
    assert time.perf_counter() - start < 5.0
    assert "CREATE TABLE sale" in view.schema and view.tables.rows[0][0] == "sale"
    assert view.summary == f"**big**: 2 tables, {db.stat().st_size / 2**20:.1f} MB"

    start = time.perf_counter()
    turn = last(demo.ask("Show all sales", [], db))
    assert time.perf_counter() - start < 5.0
    assert len(turn.result.rows) == 100 and "the first 100" in turn.status

    # A query that would run for minutes stops at the timeout, and meanwhile the schema view loads at once.
    demo.query_timeout_s = 3.0
    demo.generator = Scripted("SELECT count(*) FROM sale AS a, sale AS b WHERE a.amount < b.amount")
    finished = {}
    worker = threading.Thread(target=lambda: finished.update(turn=last(demo.ask("Slow?", [], db))))
    start = time.perf_counter()
    worker.start()
    time.sleep(0.2)
    assert "CREATE TABLE city" in demo.describe(db).schema
    assert worker.is_alive(), "the schema view waited for the query"
    worker.join(10)
    assert 3.0 <= time.perf_counter() - start < 6.0
    assert "timed out after 3 s" in finished["turn"].status


def test_find_databases_lists_generated_and_local_files(generated, tmp_path, shop):
    assert len(generated) == 3 and all(p.is_file() for p in generated.values())
    (tmp_path / "nested").mkdir()
    shutil.copy(shop, tmp_path / "nested" / "other.db")
    found = find_databases(tmp_path)
    assert set(found) == {"shop", "other"}
    with pytest.raises(LitSQLError, match="--db_dir"):
        find_databases(tmp_path / "missing")
    with pytest.raises(LitSQLError, match="--lora_path"):
        find_adapters(lora_path=tmp_path)


# ---- the server -----------------------------------------------------------------------------------------------
def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).is_file():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_lit_sql_app_listens_on_localhost_only(checkpoint, tmp_path):
    import urllib.request

    port = free_port()
    page = serve(checkpoint_dir=checkpoint, port=port, num_generated=1, generated_dir=tmp_path / "generated",
                 lora_dir=tmp_path / "none", block=False)
    try:
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).status == 200
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, little-endian hex
    finally:
        page.close()
    with pytest.raises(LitSQLError, match="--port"):
        serve(checkpoint_dir=checkpoint, port=70000, block=False)


# ---- the browser ----------------------------------------------------------------------------------------------
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


class Oracle:
    """Streams the generator's own SQL for the questions it asked (the browser test checks the page, not a
    model), word by word so that the page shows the SQL arriving."""

    def __init__(self, questions: Path) -> None:
        self.sql = {r["question"]: r["query"] for r in json.loads(questions.read_text())}

    def stream(self, request: Request):
        words = self.sql.get(request.question, "SELECT 'no scripted answer'").split(" ")
        for i in range(1, len(words) + 1):
            time.sleep(0.03)
            yield " ".join(words[:i])


def chromium_offline():
    """Headless Chromium that can reach 127.0.0.1 and nothing else."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox",  # CI runs as root
                 "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1150", "--no-proxy-server",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions", "--no-first-run",
                 "--disable-features=OptimizationHints,MediaRouter,Translate"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_browser_asks_a_question_and_sees_sql_and_a_table(generated, tmp_path):
    assert CHROMIUM and CHROMEDRIVER, "needs Debian's chromium and chromium-driver: `make test` installs them"
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from lit_sql.data.schema import read_schema

    library = generated["library_1"]
    questions = library.parents[2] / "questions.json"
    # one of the generator's questions on the first database, asked of one table, with a few rows to show (some
    # rows rather than one, for the screenshot)
    with sqlite3.connect(library) as conn:
        asked = []
        for r in json.loads(questions.read_text()):
            if r["db_id"] == "library_1" and " JOIN " not in r["query"]:
                cursor = conn.execute(r["query"])
                asked.append((r["question"], r["query"], cursor.description[0][0], cursor.fetchall()))
    question, query, header, expected = min((a for a in asked if 0 < len(a[3]) <= 12), key=lambda a: len(a[3]) < 2)
    assert question in Oracle(questions).sql
    first_table = read_schema(library).tables[0].name
    port = free_port()
    page = launch(build_ui(DemoApp(Oracle(questions), generated)), port=port)
    driver = chromium_offline()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(f"http://127.0.0.1:{port}/")

        def text_of(css: str, wanted: str):
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), wanted))
            return driver.find_element(By.CSS_SELECTOR, css).text

        text_of("#schema", f"CREATE TABLE {first_table}")  # the first database's schema is shown on load
        assert "library_1" in text_of("#db-info", "tables")

        box = driver.find_element(By.CSS_SELECTOR, "#question textarea, #question input")
        box.send_keys(question)
        driver.find_element(By.CSS_SELECTOR, "#ask").click()
        tail = " ".join(query.split()[-3:])  # the end of the SQL: it has streamed in whole
        assert tail in text_of("#sql", tail)
        result = text_of("#result", header)
        assert all(str(row[0]) in result for row in expected)
        assert question in text_of("#chat", "rows in")
        text_of("#status", "rows in")
        driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        time.sleep(0.3)  # let the last repaint settle before the screenshot
        docs = REPO_ROOT / "docs"
        docs.mkdir(exist_ok=True)
        driver.save_screenshot(str(docs / "app.png"))

        def upload(path: Path) -> None:
            driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))

        junk = tmp_path / "notes.sqlite"
        junk.write_text("not a database\n")
        upload(junk)
        text_of("#db-info", "is not a SQLite database")
        assert f"CREATE TABLE {first_table}" in driver.find_element(By.CSS_SELECTOR, "#schema").text  # still shown
        shop = tmp_path / "shop.sqlite"
        shutil.copy(SHOP, shop)
        upload(shop)
        assert "uploaded: shop.sqlite" in text_of("#db-info", "2 tables")
        text_of("#tables", "purchase")

        urls = {json.loads(entry["message"])["message"].get("params", {}).get("request", {}).get("url", "")
                for entry in driver.get_log("performance")}
        outside = {u for u in urls if u and not u.startswith((f"http://127.0.0.1:{port}", "data:", "blob:"))}
        assert not outside, f"the page asked other hosts for {sorted(outside)}"
    finally:
        driver.quit()
        page.close()
