"""Schema rendering (ddl, compact, sample rows), parsing a dataset's own DDL, shortening, prompts."""

from pathlib import Path

from lit_sql.data.prompt import DEFAULT_SQL_SYSTEM_PROMPT, build_prompt, build_user_message
from lit_sql.data.schema import read_schema, render_schema, schema_from_sql, shorten_schema
from lit_sql.prompts import PromptStyle

FIXTURES = Path(__file__).parent / "fixtures" / "data"
SCHOOL = FIXTURES / "spider" / "database" / "school" / "school.sqlite"
SHOP = FIXTURES / "spider" / "database" / "shop" / "shop.sqlite"


def test_ddl_is_normalised_with_foreign_keys():
    ddl = render_schema(SCHOOL)
    assert ddl == ("CREATE TABLE teacher (\n  teacher_id INTEGER PRIMARY KEY,\n  name TEXT,\n  age INTEGER,\n"
                   "  city TEXT\n);\nCREATE TABLE course (\n  course_id INTEGER PRIMARY KEY,\n  title TEXT,\n"
                   "  teacher_id INTEGER,\n  FOREIGN KEY (teacher_id) REFERENCES teacher(teacher_id)\n);")
    # quoted identifiers, lower-case types and a table-level primary key in the original DDL all normalise
    assert render_schema(SHOP).startswith("CREATE TABLE customer (\n  customer_id INT PRIMARY KEY,\n  name TEXT,")


def test_compact_and_sample_rows():
    compact = render_schema(SCHOOL, format="compact")
    assert compact.splitlines() == [
        "teacher(teacher_id INTEGER PK, name TEXT, age INTEGER, city TEXT)",
        "course(course_id INTEGER PK, title TEXT, teacher_id INTEGER -> teacher(teacher_id))"]
    with_rows = render_schema(SCHOOL, sample_rows=2)
    assert "INSERT INTO teacher VALUES (1, 'Ana Silva', 41, 'Lyon');" in with_rows
    assert "(3, 'Mei Chen'" not in with_rows
    assert "rows: (1, 'Ana Silva', 41, 'Lyon')" in render_schema(SCHOOL, format="compact", sample_rows=1)


def test_schema_from_dataset_ddl():
    schema = schema_from_sql("CREATE TABLE sales (id INT, amount DECIMAL(10,2)); INSERT INTO sales VALUES (1, 2.5);"
                             " CREATE TABLE x (a ENUM('p','q') WEIRD SYNTAX (;")
    ddl = schema.render("ddl")
    assert ddl.startswith("CREATE TABLE sales (id INT, amount DECIMAL(10,2));\nINSERT INTO sales VALUES (1, 2.5);")
    compact = schema.render("compact").splitlines()
    assert compact[0] == "sales(id INT, amount DECIMAL(10,2))"
    assert len(schema.tables) == 2


def test_shortening_drops_unrelated_tables_first_and_never_reads_the_sql():
    schema = read_schema(SCHOOL, sample_rows=3)
    budget = len(schema.without_rows().keep(["teacher"]).render("ddl"))
    # a budget that only one table fits in: rows go first, then the table the question does not name
    small, steps = shorten_schema(schema, "How many teachers live in Lyon?",
                                  lambda s: len(s.render("ddl", 3)) <= budget)
    assert steps == ["dropped sample rows", "dropped tables"]
    assert [t.name for t in small.tables] == ["teacher"]
    none, _ = shorten_schema(schema, "How many teachers live in Lyon?", lambda s: False)
    assert none is None


def test_prompt_layout():
    user = build_user_message("How many teachers?", "CREATE TABLE teacher (age INT);", evidence="teacher = staff")
    assert user == ("Database schema:\nCREATE TABLE teacher (age INT);\n\nQuestion: How many teachers?\n"
                    "Hint: teacher = staff")
    prompt = build_prompt(PromptStyle.from_name("chatml"), "How many teachers?", "CREATE TABLE teacher (age INT);")
    assert prompt.startswith(f"<|im_start|>system\n{DEFAULT_SQL_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith("Question: How many teachers?<|im_end|>\n<|im_start|>assistant\n")


def make_keyword_db(path: Path) -> Path:
    """A database whose table and column names are SQLite keywords: `transaction`, `order`, `key`."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.executescript('''
        CREATE TABLE "transaction" (id INTEGER PRIMARY KEY, "order" TEXT, "key" TEXT, amount INTEGER);
        CREATE TABLE refund (id INTEGER, transaction_id INTEGER REFERENCES "transaction"(id));
        INSERT INTO "transaction" VALUES (1, 'pending', 'k1', 10), (2, 'shipped', 'k2', 20);
    ''')
    conn.commit()
    conn.close()
    return path


def test_every_sqlite_keyword_is_quoted_in_the_schema_shown_to_the_model():
    import ctypes
    import ctypes.util
    import _sqlite3

    from lit_sql.data.schema import SQLITE_KEYWORDS, quote

    assert len(SQLITE_KEYWORDS) == 147
    assert quote("transaction") == '"transaction"' and quote("Order") == '"Order"' and quote("singer") == "singer"
    assert quote('odd "name"') == '"odd ""name"""'
    # The list matches the one the SQLite library Python runs on gives through its C API, when it says.
    lib = ctypes.CDLL(_sqlite3.__file__)
    if not hasattr(lib, "sqlite3_keyword_count"):
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    names = set()
    for i in range(lib.sqlite3_keyword_count()):
        text, length = ctypes.c_char_p(), ctypes.c_int()
        lib.sqlite3_keyword_name(i, ctypes.byref(text), ctypes.byref(length))
        names.add(ctypes.string_at(text, length.value).decode().lower())
    assert names <= SQLITE_KEYWORDS, names - SQLITE_KEYWORDS  # a newer SQLite may add some: then add them here


def test_a_database_whose_names_are_keywords_reads_renders_and_runs(tmp_path):
    import sqlite3

    db = make_keyword_db(tmp_path / "shop.sqlite")
    schema = read_schema(db, sample_rows=1)  # PRAGMA table_info(transaction) would be a syntax error
    assert [c.name for c in schema.tables[0].columns] == ["id", "order", "key", "amount"]
    assert schema.tables[1].foreign_keys == [(["transaction_id"], "transaction", ["id"])]
    ddl = schema.render("ddl", sample_rows=1)
    assert ddl.startswith('CREATE TABLE "transaction" (\n  id INTEGER PRIMARY KEY,\n  "order" TEXT,\n  "key" TEXT,')
    assert 'REFERENCES "transaction"(id)' in ddl
    assert """INSERT INTO "transaction" VALUES (1, 'pending', 'k1', 10);""" in ddl
    assert schema.render("compact").splitlines()[0] == \
        '"transaction"(id INTEGER PK, "order" TEXT, "key" TEXT, amount INTEGER)'
    sqlite3.connect(":memory:").executescript(ddl)  # what the model sees is SQL SQLite runs as written


def test_generate_with_a_database_whose_names_are_keywords(tmp_path):
    """generate/lora.py --db reads the schema (with sample rows and value hints, as the run's recipe asks) of a
    database with a table `transaction` and a column `order`."""
    import subprocess
    import sys

    from lit_sql.data.prompt import PromptRecipe
    from tests.conftest import REPO_ROOT, make_fake_run, make_tiny_checkpoint

    db = make_keyword_db(tmp_path / "shop.sqlite")
    checkpoint = make_tiny_checkpoint(tmp_path / "checkpoint", block_size=1024)  # room for the whole schema
    run = make_fake_run(tmp_path / "run", checkpoint,
                        PromptRecipe(schema_format="compact", sample_rows=1, value_hints=True))
    result = subprocess.run([sys.executable, "generate/lora.py", "--lora_path", str(run), "--db", str(db), "--prompt",
                             "Which transactions are pending?", "--max_new_tokens", "4", "--show_prompt", "true"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert """"transaction"(id INTEGER PK, "order" TEXT ['pending'], "key" TEXT, amount INTEGER)""" in result.stderr
