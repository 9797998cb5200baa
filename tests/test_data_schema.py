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
