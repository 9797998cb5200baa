"""Schema links (`lit_sql.sql.links`) read from hand-written SQL, the one line they are written as, and the linked
training answer a `PromptRecipe` builds from them."""

from __future__ import annotations

import pytest

from lit_sql.data.prompt import PromptRecipe
from lit_sql.data.schema import schema_from_sql
from lit_sql.errors import LitSQLError
from lit_sql.sql.extract import extract_sql
from lit_sql.sql.links import LINKS_LABEL, render_links, schema_links

SCHEMA = schema_from_sql(
    "CREATE TABLE singer (Singer_ID INTEGER PRIMARY KEY, Name TEXT, Country TEXT, Age INTEGER);\n"
    "CREATE TABLE concert (concert_ID INTEGER PRIMARY KEY, concert_Name TEXT, Singer_ID INTEGER, Year INTEGER);\n"
    'CREATE TABLE "Song List" ("Song Name" TEXT, Singer_ID INTEGER);')


@pytest.mark.parametrize("sql, links", [
    # aliases resolve to their tables; Singer_ID is a column of both, each use counted where its alias points
    ("SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = 2014",
     [("singer", ["Name", "Singer_ID"]), ("concert", ["Singer_ID", "Year"])]),
    # unqualified columns go to the table in scope that has them
    ("SELECT name, year FROM singer JOIN concert ON singer.singer_id = concert.singer_id",
     [("singer", ["Name", "Singer_ID"]), ("concert", ["Year", "Singer_ID"])]),
    ("SELECT singer_id FROM concert", [("concert", ["Singer_ID"])]),  # not singer's, which is not in scope
    # subqueries: their tables count, they are no table themselves
    ("SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM concert)",
     [("singer", ["Name", "Singer_ID"]), ("concert", ["Singer_ID"])]),
    ("SELECT count(*) FROM (SELECT country FROM singer GROUP BY country) AS t", [("singer", ["Country"])]),
    ("SELECT name FROM singer AS s WHERE EXISTS (SELECT 1 FROM concert AS c WHERE c.singer_id = s.singer_id)",
     [("singer", ["Name", "Singer_ID"]), ("concert", ["Singer_ID"])]),  # a correlated subquery
    # set operations
    ("SELECT name FROM singer UNION SELECT concert_name FROM concert",
     [("singer", ["Name"]), ("concert", ["concert_Name"])]),
    ("SELECT country FROM singer WHERE age > 40 INTERSECT SELECT country FROM singer WHERE age < 30",
     [("singer", ["Country", "Age"])]),
    ("SELECT name FROM singer EXCEPT SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = "
     "T2.singer_id", [("singer", ["Name", "Singer_ID"]), ("concert", ["Singer_ID"])]),
    # * adds no column
    ("SELECT count(*) FROM concert", [("concert", [])]),
    ("SELECT T1.* FROM singer AS T1 WHERE T1.age > 30", [("singer", ["Age"])]),
    # quoted and mixed-case names, spelled as the schema spells them; "France" is a string to SQLite here
    ('SELECT "Song Name" FROM "Song List" WHERE SINGER_ID = 3', [("Song List", ["Song Name", "Singer_ID"])]),
    ('select NAME from SINGER where COUNTRY = "France"', [("singer", ["Name", "Country"])]),
    # a common table expression is not a table; the tables it reads are, in order of first appearance
    ("WITH big AS (SELECT singer_id FROM concert WHERE year > 2000) "
     "SELECT name FROM singer JOIN big ON big.singer_id = singer.singer_id",
     [("concert", ["Singer_ID", "Year"]), ("singer", ["Name", "Singer_ID"])]),
    # a select alias, and names the schema does not have, are left out (never invented)
    ("SELECT country, count(*) AS n FROM singer GROUP BY country ORDER BY n DESC", [("singer", ["Country"])]),
    ("SELECT nickname FROM singer JOIN band ON band.id = singer.singer_id", [("singer", ["Singer_ID"])]),
    ("SELECT a FROM nowhere", []),
    ("SELECT singer_id FROM singer JOIN concert USING (singer_id)",  # USING names a column of both
     [("singer", ["Singer_ID"]), ("concert", ["Singer_ID"])]),
])
def test_schema_links(sql, links):
    assert schema_links(sql, SCHEMA) == links


def test_render_links_is_one_short_line():
    line = render_links([("singer", ["Name", "Country"]), ("concert", ["Year"])])
    assert line == "Links: singer(Name, Country), concert(Year)"
    assert line.startswith(LINKS_LABEL)
    # names are quoted as the schema renders them; a table without named columns stands alone
    assert render_links([("Song List", ["Song Name"]), ("order", [])]) == 'Links: "Song List"("Song Name"), "order"'
    assert render_links([]) == "Links:"


def test_sql_that_does_not_parse_is_an_error():
    with pytest.raises(LitSQLError, match="sqlglot cannot parse the SQL"):
        schema_links("SELEC name FROM singer WHERE", SCHEMA)


def test_recipe_answer_and_target_format():
    sql = "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = 2014"
    assert PromptRecipe().answer(sql, SCHEMA) == sql  # the default: the SQL itself
    linked = PromptRecipe(target_format="linked").answer(sql, SCHEMA)
    assert linked == f"Links: singer(Name, Singer_ID), concert(Singer_ID, Year)\nSQL: {sql}"
    assert extract_sql(linked) == sql
    with pytest.raises(LitSQLError, match="target format 'links': one of sql, linked"):
        PromptRecipe(target_format="links")
    # It travels in records, and a record written before it existed loads as plain SQL.
    assert PromptRecipe.from_dict(PromptRecipe(target_format="linked").to_dict()).target_format == "linked"
    assert PromptRecipe.from_dict({"schema_format": "compact"}).target_format == "sql"
    assert PromptRecipe().answer_tokens(200) == 200 and PromptRecipe(target_format="linked").answer_tokens(200) > 200
