"""Schema-grounded decoding (`lit_sql.sql.grounding`): the state machine on hand-written SQL, and the decoding
rules: an already valid choice is never changed, a failing one is replaced by the best passing candidate, and
decoding never stalls."""

from __future__ import annotations

import pytest
import torch

from lit_sql.sql.grounding import GroundedDecoding, SchemaNames, SQLState

NAMES = SchemaNames({
    "singer": ["Singer_ID", "Name", "Country", "Age"],
    "concert": ["concert_ID", "concert_Name", "Singer_ID", "Year"],
    "Addresses": ["zip_postcode", "city", "line 1"],
})


def written(sql: str) -> bool:
    """Whether every name in `sql` passes, and the answer may end after it."""
    state = SQLState().feed(sql, NAMES)
    return state is not None and state.end(NAMES)


@pytest.mark.parametrize("sql", [
    "SELECT name FROM singer",
    "select NAME from SINGER where AGE > 30",  # names in any case
    "SELECT count(*) FROM singer WHERE age > 30 AND country = 'France'",
    # aliases used before FROM defines them, then checked against their tables
    "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = 2014",
    "SELECT s.name FROM singer s WHERE s.age > 3",  # an alias without AS
    "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert WHERE year = 2014)",  # subquery
    "SELECT count(*) FROM (SELECT country FROM singer GROUP BY country) AS t",
    "SELECT name FROM singer UNION SELECT concert_name FROM concert",  # set operations: each SELECT its own FROM
    "SELECT name FROM singer EXCEPT SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id",
    "SELECT country, count(*) AS cnt FROM singer GROUP BY country ORDER BY cnt DESC LIMIT 3",  # a column alias
    "SELECT name FROM singer WHERE name LIKE '%select zip_code from nowhere%'",  # keywords inside a string
    "SELECT name FROM singer WHERE country = \"United States\"",  # double quotes: a string to SQLite here
    "SELECT `zip_postcode`, [line 1] FROM `Addresses`",  # quoted names, with a space
    "SELECT T1.* FROM singer AS T1",
    "SELECT name FROM singer, concert WHERE singer.singer_id = concert.singer_id",  # a FROM list
    "SELECT max(age), min(age), avg(age) FROM singer WHERE age BETWEEN 20 AND 30.5",
    "SELECT name FROM singer; DROP TABLE zzz",  # after the statement ends nothing is checked
    "```sql\nSELECT name FROM singer\n```",  # a code fence around it
    "I am not sure which table holds that.",  # prose: left alone
])
def test_valid_sql_passes(sql):
    assert written(sql)


@pytest.mark.parametrize("sql, why", [
    ("SELECT zip_code FROM addresses", "a column no table has"),
    ("SELECT name FROM singers", "a table that does not exist"),
    ("SELECT T2.zip_code FROM singer AS T1 JOIN addresses AS T2", "no such column anywhere"),
    ("SELECT name FROM singer AS T1 WHERE T1.year = 2014", "a column of another table on T1"),
    ("SELECT name FROM singer WHERE zip_postcode = 1", "a column of a table not in FROM"),
    ("SELECT name FROM singe", "a table name left half-written at the end"),
    ("SELECT `zip code` FROM Addresses", "a quoted name that is not the column's"),
    ("SELECT song_name FROM singer", "a plausible name that is not in the schema"),
])
def test_names_outside_the_schema_fail(sql, why):
    assert not written(sql), why


def test_a_prefix_of_a_real_name_may_go_on_and_a_dead_end_may_not():
    state = SQLState().feed("SELECT zip", NAMES)
    assert state is not None  # zip_postcode begins so
    assert state.feed("_post", NAMES) is not None
    assert state.feed("_code", NAMES) is None
    assert state.feed(" FROM", NAMES) is None  # "zip" alone is no column


def test_feed_is_incremental_and_leaves_the_state_unchanged():
    sql = "SELECT T1.name FROM singer AS T1 WHERE T1.age > 3"
    whole = SQLState().feed(sql, NAMES)
    state = SQLState()
    for piece in ["SEL", "ECT", " T", "1", ".", "name", " FROM", " sing", "er AS", " T1 WHERE T", "1.age", " > 3"]:
        before = state
        state = state.feed(piece, NAMES)
        assert state is not None
        assert before.feed(piece, NAMES) == state  # a state is never changed by checking a candidate
    assert state == whole


class Vocab:
    """A tiny vocabulary: token id -> the text it adds."""

    TEXTS = ["SELECT", " name", " zip_code", " zip", "_postcode", " FROM", " Addresses", " singer", " ", "<end>",
             " Hello", " city", " *", " sing", "er", " songs"]
    END = 9

    @classmethod
    def id(cls, text: str) -> int:
        return cls.TEXTS.index(text)

    @classmethod
    def decoding(cls, rows: int = 1) -> GroundedDecoding:
        texts = [t if i != cls.END else "" for i, t in enumerate(cls.TEXTS)]
        return GroundedDecoding([NAMES] * rows, texts, frozenset({cls.END}))


def logits_for(*ranked: str) -> torch.Tensor:
    """(1, V) scores with `ranked` tokens best first; the rest far below."""
    scores = torch.full((1, len(Vocab.TEXTS)), -10.0)
    for rank, text in enumerate(ranked):
        scores[0, Vocab.id(text)] = 5.0 - rank
    return scores


def step(decoding: GroundedDecoding, *ranked: str, greedy: bool = True) -> str:
    logits = logits_for(*ranked)
    chosen = decoding.choose([0], logits, logits.argmax(-1), greedy)
    return Vocab.TEXTS[int(chosen[0])]


def test_a_valid_choice_is_never_changed_and_an_invalid_one_takes_the_best_valid():
    d = Vocab.decoding()
    assert step(d, "SELECT", " zip_code") == "SELECT"
    assert step(d, " zip_code", " zip", " name") == " zip"  # zip_code fails; " zip" may still become zip_postcode
    assert step(d, " FROM", "_postcode") == "_postcode"  # "zip" alone is no column: the only way on
    assert step(d, " FROM", " city") == " FROM"
    assert step(d, " songs", " Addresses", " singer") == " Addresses"  # the most likely table that exists
    assert d.replaced == 3 and d.unconstrained == 0


def test_the_end_token_waits_for_a_complete_name():
    d = Vocab.decoding()
    for piece in ("SELECT", " name", " FROM", " sing"):
        assert step(d, piece) == piece
    assert step(d, "<end>", "er") == "er"  # "sing" is no table: the answer may not end there
    assert step(d, "<end>", " songs") == "<end>"  # "singer" is


def test_decoding_never_stalls_when_nothing_passes():
    d = Vocab.decoding()
    d.candidates = 2  # only the two most likely are tried
    step(d, "SELECT")
    # Every candidate fails: the row takes its own choice unconstrained and is no longer checked.
    assert step(d, " Hello", " zip_code") == " Hello"
    assert d.unconstrained == 1 and d.states[0].off
    assert step(d, " zip_code") == " zip_code"


def test_sampling_picks_only_among_passing_candidates():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    picks = set()
    for _ in range(30):
        d = Vocab.decoding()
        d.states[0] = SQLState().feed("SELECT", NAMES)
        logits = logits_for(" zip_code", " name", " city", " zip")
        chosen = d.choose([0], logits, torch.tensor([Vocab.id(" zip_code")]), greedy=False, generator=g)
        picks.add(Vocab.TEXTS[int(chosen[0])])
    assert picks <= {" name", " city", " zip"} and len(picks) >= 2


def test_rows_without_a_database_and_prose_are_left_alone():
    d = GroundedDecoding([None, NAMES], Vocab.decoding().texts, frozenset({Vocab.END}))
    logits = torch.cat([logits_for(" zip_code"), logits_for(" Hello")])
    tokens = logits.argmax(-1)
    assert torch.equal(d.choose([0, 1], logits, tokens, True), tokens)  # row 1 began with prose
    assert d.states[1].off and d.replaced == 0


def test_generate_batch_with_grounding_keeps_an_unconstrained_greedy_answer(tiny_checkpoint_dir):
    """A random tiny model writes no SQL: grounded decoding must give exactly the free tokens."""
    from lit_sql.checkpoint import load_model
    from lit_sql.data.schema import schema_from_sql
    from lit_sql.generation import generate_batch
    from lit_sql.sql.grounding import grounding_for
    from lit_sql.tokenizer import Tokenizer

    tokenizer = Tokenizer(tiny_checkpoint_dir)
    model = load_model(tiny_checkpoint_dir).eval()
    prompts = [tokenizer.encode("How many singers are there?"), tokenizer.encode("SELECT name FROM")]
    free = generate_batch(model, prompts, 12, pad_id=tokenizer.eos_id)
    schema = schema_from_sql("CREATE TABLE singer (name TEXT, age INT)")
    grounding = grounding_for(tokenizer, [schema, schema])
    assert generate_batch(model, prompts, 12, pad_id=tokenizer.eos_id, grounding=grounding) == free
    assert grounding.replaced == 0


def test_generate_batch_grounds_a_random_model_in_mid_query(tiny_checkpoint_dir):
    """The answer so far is "SELECT name FROM ": whatever a random model prefers, what it writes next must be
    (the beginning of) the one table, and whatever follows must pass the checks too."""
    from lit_sql.checkpoint import load_model
    from lit_sql.data.schema import schema_from_sql
    from lit_sql.generation import generate_batch
    from lit_sql.sql.grounding import grounding_for
    from lit_sql.tokenizer import Tokenizer

    tokenizer = Tokenizer(tiny_checkpoint_dir)
    model = load_model(tiny_checkpoint_dir).eval()

    class PreferWord(torch.nn.Module):  # the model's favourite next token is " department", which is no table
        def forward(self, x):
            bias = torch.zeros(x.shape[-1])
            bias[tokenizer.encode(" department")[0]] = 50.0
            return x + bias

    model.lm_head = torch.nn.Sequential(model.lm_head, PreferWord())
    prompt = [tokenizer.encode("List the names. SELECT name FROM ")]
    grounding = grounding_for(tokenizer, [schema_from_sql("CREATE TABLE singer (name TEXT, age INT)")])
    grounding.states[0] = SQLState().feed("SELECT name FROM ", grounding.names[0])
    free = tokenizer.decode(generate_batch(model, prompt, 16, pad_id=tokenizer.eos_id)[0])
    grounded = tokenizer.decode(generate_batch(model, prompt, 16, pad_id=tokenizer.eos_id, grounding=grounding)[0])
    names = grounding.names[0]
    assert SQLState().feed("SELECT name FROM " + free, names) is None, free  # the random model's own names fail
    assert SQLState().feed("SELECT name FROM " + grounded, names) is not None, grounded
    assert grounding.replaced >= 1 and grounding.unconstrained == 0


def test_unusual_names_and_huge_schemas():
    names = SchemaNames({"Größe": ["Maß", "naïve col"], "t": [f"c{i}" for i in range(5000)]})
    assert SQLState().feed("SELECT Maß FROM Größe", names).end(names)
    assert SQLState().feed("SELECT [naïve col] FROM Größe", names).end(names)
    assert SQLState().feed("SELECT c4999, c17 FROM t WHERE c0 > 1", names).end(names)
    assert SQLState().feed("SELECT c5000 FROM t", names) is None
    # Half of a multi-byte letter (a byte-level token alone decodes to U+FFFD) is never held against a name.
    assert SQLState().feed("SELECT M\ufffd", names) is not None


# ---- linked answers (prepare --target_format linked) -----------------------------------------------------------
@pytest.mark.parametrize("answer", [
    "Links: singer(Name, Country), concert(Year)\nSQL: SELECT name FROM singer WHERE country = 'France'",
    "Links: singer\nSQL: SELECT count(*) FROM singer",
    'Links: Addresses("line 1", city)\nSQL: SELECT city FROM Addresses',  # a quoted name with a space
    "Links: SINGER(name), concert(singer_id)\nSQL: SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON "
    "T1.singer_id = T2.singer_id",
    "Links:\nSQL: SELECT 1",
    "Links: singer(Name)\nSELECT name FROM singer",  # the label left out
    "Links: singer(Na",  # an answer may end anywhere in its links line: that line is never a dead end
])
def test_a_linked_answer_with_valid_names_passes(answer):
    assert written(answer)


@pytest.mark.parametrize("answer, why", [
    ("Links: singer(Name)\nSQL: SELECT nme FROM singer", "a wrong column after the label"),
    ("Links: singer(Name)\nSQL: SELECT name FROM singers", "a wrong table after the label"),
    ("Links: singers(Name)", "a table the schema lacks in the links"),
    ("Links: singer(Year)", "a column of another table in the links"),
    ("Links: singer(Name), concert(Name)", "a column of the table before"),
])
def test_names_of_a_linked_answer_are_checked(answer, why):
    assert not written(answer), why


def linked_decoding(*texts: str, candidates: int = 64) -> tuple[GroundedDecoding, list[str]]:
    vocab = list(texts) + ["<end>"]
    d = GroundedDecoding([NAMES], [t if t != "<end>" else "" for t in vocab], frozenset({len(vocab) - 1}),
                         candidates=candidates)
    return d, vocab


def linked_step(d: GroundedDecoding, vocab: list[str], *ranked: str) -> str:
    scores = torch.full((1, len(vocab)), -10.0)
    for rank, text in enumerate(ranked):
        scores[0, vocab.index(text)] = 5.0 - rank
    return vocab[int(d.choose([0], scores, scores.argmax(-1), greedy=True)[0])]


LINKED_TOKENS = ("Links:", " singers", " singer", "(Year", "(Name", ")", "\n", "SQL:", " SELECT", " song", " name",
                 " FROM", " zzz)\n")


def test_a_valid_linked_answer_is_unchanged_and_a_wrong_name_after_the_label_is_corrected():
    d, vocab = linked_decoding(*LINKED_TOKENS)
    answer = ["Links:", " singer", "(Name", ")", "\n", "SQL:", " SELECT", " name", " FROM", " singer", "<end>"]
    for token in answer:
        assert linked_step(d, vocab, token) == token
    assert d.replaced == 0 and d.unconstrained == 0

    d, vocab = linked_decoding(*LINKED_TOKENS)
    for token in ["Links:", " singer", "(Name", ")", "\n", "SQL:", " SELECT"]:
        linked_step(d, vocab, token)
    assert linked_step(d, vocab, " song", " name") == " name"  # the SQL after the label is checked
    assert linked_step(d, vocab, " FROM") == " FROM"
    assert linked_step(d, vocab, " singers", " singer") == " singer"
    assert d.replaced == 2


def test_the_links_line_is_constrained_but_never_blocked():
    d, vocab = linked_decoding(*LINKED_TOKENS)
    assert linked_step(d, vocab, "Links:") == "Links:"
    assert linked_step(d, vocab, " singers", " singer") == " singer"  # names of the schema where one passes
    assert linked_step(d, vocab, "(Year", "(Name") == "(Name"
    assert d.replaced == 2

    d, vocab = linked_decoding(*LINKED_TOKENS, candidates=1)  # only the model's own choice is tried
    linked_step(d, vocab, "Links:")
    linked_step(d, vocab, " singer")
    # Nothing passes: the token is taken unconstrained, and its newline still ends the links line ...
    assert linked_step(d, vocab, " zzz)\n") == " zzz)\n"
    assert d.unconstrained == 1 and not d.states[0].off
    d.candidates = 64
    # ... so the SQL after the label is still checked.
    for token in ["SQL:", " SELECT"]:
        assert linked_step(d, vocab, token) == token
    assert linked_step(d, vocab, " song", " name") == " name"
