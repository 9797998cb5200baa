"""Questions about one generated database: the SQL shapes Spider asks, each in several wordings.

An `Asker` draws one question of a named shape (`Asker.ask`): it picks tables, columns and values of its
database, writes the gold SQL in Spider's style (upper-case keywords, lower-case aggregates, T1/T2/... aliases in
joins) and says it in English from the phrase tables below, with a column's synonyms and a value quoted or not.
A shape that does not fit the database returns None. Which shapes are asked, and how often, is the generator's
business (`lit_sql.data.generator.LEVEL_PLAN`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

from lit_sql.data import domains as D

if TYPE_CHECKING:
    from lit_sql.data.generator import Col, Database, Tab

NAME_KINDS = ("unique", "person", "title", "company")
CATEGORY_KINDS = {"pick", "city", "country"}
NUMBER_KINDS = {"int", "qty", "money", "real"}
ADDITIVE_KINDS = {"qty", "money"}
TIME_KINDS = {"year", "date"}
ORDERABLE = NUMBER_KINDS | TIME_KINDS

# ---- phrase tables: {x} is a noun phrase ("the names of the students from Lyon") -----------------------------
LIST = ("List {x}.", "Show {x}.", "Give me {x}.", "Find {x}.", "Return {x}.", "Display {x}.", "Tell me {x}.",
        "Show me {x}.", "What are {x}?", "Get {x}.", "I want to know {x}.")
ONE = ("What is {x}?", "Find {x}.", "Return {x}.", "Give {x}.", "Show {x}.", "Tell me {x}.", "Give me {x}.")
EACH = ("What is {x}?", "List {x}.", "Show {x}.", "Give {x}.", "Return {x}.", "Find {x}.")  # "the name of each ..."
COUNT = ("How many {x} are there?", "Count the {x}.", "What is the number of {x}?", "Find the number of {x}.",
         "Return the number of {x}.", "Give me the number of {x}.", "What is the total number of {x}?",
         "How many {x} do we have?", "Count the number of {x}.", "Tell me how many {x} there are.")
THEIR = ("Give their {x}.", "List their {x}.", "Show their {x}.", "Return their {x}.", "What are their {x}?",
         "Find their {x}.")
ITS = ("Give its {x}.", "Show its {x}.", "Return its {x}.", "What is its {x}?", "Find its {x}.")
# the usual word is listed twice where it should come up more often than its synonyms
AGGREGATE_WORDS = {"avg": ("average", "mean", "average"), "max": ("maximum", "highest", "largest"),
                   "min": ("minimum", "lowest", "smallest"), "sum": ("total", "combined", "total")}
HIGH, LOW = ("highest", "largest", "greatest", "biggest"), ("lowest", "smallest", "least")
GREATER = ("greater than {v}", "more than {v}", "above {v}", "higher than {v}", "over {v}", "bigger than {v}")
LESS = ("less than {v}", "below {v}", "lower than {v}", "under {v}", "smaller than {v}")
AT_LEAST = ("at least {v}", "{v} or more", "no less than {v}")
AT_MOST = ("at most {v}", "{v} or less", "no more than {v}")
AFTER = ("after {v}", "later than {v}")
BEFORE = ("before {v}", "earlier than {v}")
DESCENDING = ("in descending order of {m}", "from the highest {m} to the lowest", "sorted by {m} from high to low",
              "ordered by {m} in descending order", "by {m}, largest first", "sorted by {m} in descending order")
ASCENDING = ("in ascending order of {m}", "sorted by {m}", "ordered by {m}", "from the lowest {m} to the highest",
             "by {m}, smallest first", "sorted by {m} in ascending order")
IRREGULAR_PLURALS = {"species": "species", "aircraft": "aircraft", "spacecraft": "spacecraft", "person": "people",
                     "child": "children", "series": "series", "staff": "staff"}
PARTICIPLES = {"sold", "built", "held", "won", "paid", "given", "taken", "active", "driven"}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 10: "ten"}
# how a question says a text value: mostly bare, sometimes quoted as people type it
QUOTES = (("{v}", 0.62), ("'{v}'", 0.23), ('"{v}"', 0.15))


# ---- English words -----------------------------------------------------------------------------------------------
def plural(label: str) -> str:
    """"price" -> "prices", "weight in kilograms" -> "weights in kilograms", "years of experience" stays,
    "date shipped" -> "dates shipped"."""
    head, sep, tail = (re.split(r"( in | of | per )", label, maxsplit=1) + ["", ""])[:3]
    words = head.split()
    if len(words) > 1 and _is_participle(words[-1]):  # the noun is the word before: "copies sold"
        return f"{plural(' '.join(words[:-1]))} {words[-1]}{sep}{tail}"
    if _is_plural(words[-1]):
        return label
    return " ".join(words[:-1] + [_plural_word(words[-1])]) + sep + tail


def _is_participle(word: str) -> bool:
    return (word.endswith("ed") and len(word) > 4 and not word.endswith("eed")) or word in PARTICIPLES


def _is_plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith(("ss", "us", "is"))


def _plural_word(word: str) -> str:
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    if re.search(r"(s|x|ch|sh)$", word):
        return word + "es"
    return word + "s"


def a(label: str) -> str:
    """The label with its article: "a price", "an age", "goals" (plural labels take none)."""
    if _is_plural(label.split()[0]) or _is_plural(re.split(r" (?:in|of|per) ", label)[0].split()[-1]):
        return label
    return ("an " if label[0].lower() in "aeiou" else "a ") + label


def and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def sql_value(v: Union[str, int, float]) -> str:
    return "'" + v.replace("'", "''") + "'" if isinstance(v, str) else _num(v)


def _num(v: Union[int, float]) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}".rstrip("0")


def say(v: Union[str, int, float]) -> str:
    return v if isinstance(v, str) else _num(v)


# ---- pieces of a question ----------------------------------------------------------------------------------------
@dataclass
class Cond:
    """A condition on one column: its SQL, a phrase after a noun ("from Lyon", "whose age is above 30") and a
    verb phrase for a plural subject ("live in Lyon", "have an age above 30")."""
    sql: str
    np: str
    vp: str
    col: "Col"


@dataclass
class Step:
    """One step of a join path from `src` to `dst`: up a foreign key (child to parent), down one (parent to
    child), or across a bridge table (`via`, whose keys point at both)."""
    kind: str  # "up", "down" or "bridge"
    src: "Tab"
    dst: "Tab"
    fk: "Col"  # up/down: the key joining them; bridge: the bridge's key to dst
    via: Optional["Tab"] = None
    via_fk: Optional["Col"] = None  # bridge: the bridge's key to src


class Path:
    """Tables T1..Tn joined along steps, the SQL of the joins and the words linking T1 to Tn."""

    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.tables = [steps[0].src]
        self.ons: list[str] = []
        for s in steps:
            if s.kind == "bridge":
                self._add(s.via, s.via_fk, child_is_new=True)
                self._add(s.dst, s.fk, child_is_new=False)
            else:
                self._add(s.dst, s.fk, child_is_new=s.kind == "down")

    def _add(self, table: "Tab", fk: "Col", child_is_new: bool) -> None:
        prev, prev_tab, new = f"T{len(self.tables)}", self.tables[-1], f"T{len(self.tables) + 1}"
        on = (f"{prev}.{prev_tab.pk} = {new}.{fk.sql}" if child_is_new else f"{prev}.{fk.sql} = {new}.{table.pk}")
        self.tables.append(table)
        self.ons.append(f"JOIN {table.sql} AS {new} ON {on}")

    @property
    def sql(self) -> str:
        return f"{self.tables[0].sql} AS T1 " + " ".join(self.ons)

    @property
    def last(self) -> str:
        return f"T{len(self.tables)}"

    @property
    def tail(self) -> "Tab":
        return self.tables[-1]


class Asker:
    """Asks one question of a database in a named shape; None when the shape does not fit."""

    def __init__(self, db: "Database", rng: random.Random):
        self.db, self.rng = db, rng
        self.links = [(t, c) for t in db.tables for c in t.cols if c.kind == "fk"]
        self.paths = self._paths()

    def ask(self, shape: str) -> Optional[tuple[str, str]]:
        made = getattr(self, shape)()
        if made is None:
            return None
        question, sql = made
        question = re.sub(r"\s+", " ", question).strip()
        return question[0].upper() + question[1:], sql

    # ---- helpers ----------------------------------------------------------------------------------------------
    def run(self, sql: str) -> list[tuple]:
        return self.db.conn.execute(sql).fetchall()

    def pick(self, seq):
        seq = list(seq)
        return self.rng.choice(seq) if seq else None

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def frame(self, frames: tuple[str, ...], **slots) -> str:
        return self.pick(frames).format(**slots)

    def cols(self, t: "Tab", kinds) -> list["Col"]:
        return [c for c in t.cols if c.kind in kinds]

    def tables_with(self, kinds) -> list["Tab"]:
        return [t for t in self.db.tables if self.cols(t, kinds)]

    def name_col(self, t: "Tab") -> Optional["Col"]:
        """The column that names a row: "Ana Silva", "The Silent River", "Physics"."""
        for kind in NAME_KINDS:
            for c in t.cols:
                if c.kind == kind:
                    return c
        return next((c for c in t.cols if c.name == "name"), None)  # a table of countries

    def shown(self, t: "Tab", avoid=()) -> Optional["Col"]:
        """A column to list: the table's name column mostly, sometimes another."""
        name = self.name_col(t)
        others = [c for c in t.cols if c.kind != "fk" and c not in avoid and c is not name]
        if name is not None and name not in avoid and (self.chance(0.7) or not others):
            return name
        return self.pick(others)

    def word(self, c: "Col") -> str:
        """What the question calls a column this time: its label or a synonym."""
        return self.pick(c.labels) if self.chance(0.45) else c.labels[0]

    def values(self, t: "Tab", c: "Col") -> list:
        return [r[c.name] for r in self.db.rows[t.name] if r[c.name] is not None]

    def say_value(self, v) -> str:
        if not isinstance(v, str):
            return say(v)
        form = self.rng.choices([f for f, _ in QUOTES], [w for _, w in QUOTES])[0]
        return form.format(v=v)

    def threshold(self, t: "Tab", c: "Col"):
        """A value of the column between its quartiles, rounded as a person would say it."""
        vals = sorted(self.values(t, c))
        v = vals[self.rng.randint(len(vals) // 4, max(len(vals) // 4, 3 * len(vals) // 4 - 1))]
        if c.kind in ("money", "qty") and v >= 100:
            digits = len(str(int(v))) - 2
            v = int(round(v, -digits))
        elif c.kind == "money":
            v = int(v)
        return v

    def number(self, n: int) -> str:
        return NUMBER_WORDS[n] if n in NUMBER_WORDS and self.chance(0.4) else str(n)

    @staticmethod
    def ref(c: "Col", alias: str = "") -> str:
        return f"{alias}.{c.sql}" if alias else c.sql

    # ---- noun phrases --------------------------------------------------------------------------------------------
    def things(self, words: list[str], t: "Tab", restriction: str = "", every: bool = True) -> tuple[str, bool]:
        """("the names and ages of the students from Lyon", plural?) in one of several forms."""
        r = f" {restriction}" if restriction else ""
        every = every and not restriction.startswith(("that ", "who "))  # "each band that have" disagrees
        forms = [(f"the {and_list([plural(w) for w in words])} of the {t.plural}{r}", True),
                 (f"the {and_list([plural(w) for w in words])} of {t.plural}{r}", True)]
        if every:
            forms += [(f"the {and_list([plural(w) for w in words])} of all {t.plural}{r}", True),
                      (f"the {and_list(words)} of each {t.singular}{r}", False),
                      (f"the {and_list(words)} of every {t.singular}{r}", False)]
        if not r and len(words) == 1:
            forms.append((f"all {t.singular} {plural(words[0])}", True))
        return self.pick(forms)

    def list_question(self, words: list[str], t: "Tab", restriction: str = "", which_vp: str = "") -> str:
        """A question asking for columns of the rows of t that pass a restriction."""
        if which_vp and self.chance(0.3):
            return f"Which {t.plural} {which_vp}? " + self.frame(THEIR, x=and_list([plural(w) for w in words]))
        np_, many = self.things(words, t, restriction)
        return self.frame(LIST if many else EACH, x=np_)

    def count_question(self, t: "Tab", restriction: str = "") -> str:
        return self.frame(COUNT, x=f"{t.plural} {restriction}".strip())

    # ---- conditions ----------------------------------------------------------------------------------------------
    def condition(self, t: "Tab", alias: str = "", exclude=(), kinds=None) -> Optional[Cond]:
        """A random condition on one column of t."""
        kinds = kinds or (CATEGORY_KINDS | ORDERABLE | set(NAME_KINDS) | {"flag"})
        c = self.pick([c for c in t.cols if c.kind in kinds and c not in exclude])
        if c is None:
            return None
        col, w = self.ref(c, alias), self.word(c)
        if c.kind in CATEGORY_KINDS or c.kind in NAME_KINDS or c.kind == "flag":
            v = self.pick(self.values(t, c))
            if v is None:
                return None
            sv = self.say_value(v)
            if c.kind in CATEGORY_KINDS and self.chance(0.08):
                return Cond(f"{col} != {sql_value(v)}",
                            self.pick([f"whose {w} is not {sv}", f"with {a(w)} other than {sv}"]),
                            f"do not have the {w} {sv}", c)
            if c.kind == "flag":
                np_, vp = [f"whose {w} is {sv}", f"with {w} {sv}"], [f"have {w} {sv}"]
            elif c.kind == "city" and t.person:
                np_, vp = [f"from {sv}", f"living in {sv}", f"whose {w} is {sv}"], \
                    [f"live in {sv}", f"are from {sv}"]
            elif c.kind == "city":
                np_, vp = [f"in {sv}", f"located in {sv}", f"whose {w} is {sv}"], \
                    [f"are located in {sv}", f"are in {sv}"]
            elif c.kind == "country" and c.name in ("country", "nationality"):
                np_, vp = [f"from {sv}", f"whose {w} is {sv}"], [f"are from {sv}", f"come from {sv}"]
            elif c.kind in NAME_KINDS and c is self.name_col(t):
                np_, vp = [f"named {sv}", f"called {sv}", f"whose {w} is {sv}", f"with the {w} {sv}"], \
                    [f"are named {sv}", f"are called {sv}"]
            else:
                np_ = [f"whose {w} is {sv}", f"with the {w} {sv}", f"with {sv} as {w}", f"with {w} {sv}"]
                vp = [f"have the {w} {sv}", f"have {sv} as their {w}", f"have {sv} as {w}"]
            return Cond(f"{col} = {sql_value(v)}", self.pick(np_), self.pick(vp), c)
        if c.kind == "year" and self.chance(0.3):
            v = self.pick(self.values(t, c))
            return Cond(f"{col} = {v}", self.pick([f"whose {w} is {v}", f"with the {w} {v}"]),
                        f"have the {w} {v}", c)
        v = self.threshold(t, c)
        op = self.pick([">", "<", ">", "<", ">=", "<="])
        if c.kind in TIME_KINDS:
            op = op[0]
            words = AFTER if op == ">" else BEFORE
        else:
            words = {">": GREATER, "<": LESS, ">=": AT_LEAST, "<=": AT_MOST}[op]
        cmp = self.frame(words, v=say(v))
        return Cond(f"{col} {op} {sql_value(v)}", self.pick([f"whose {w} is {cmp}", f"with {a(w)} {cmp}"]),
                    f"have {a(w)} {cmp}", c)

    def named(self, t: "Tab", alias: str = "") -> Optional[tuple[str, str]]:
        """(SQL, words) picking one row of t by its name: "the department Physics", "Ana Silva"."""
        c = self.name_col(t)
        if c is None:
            return None
        v = self.pick(self.values(t, c))
        sv = self.say_value(v)
        if t.person or c.kind == "person" or t.plain_names:
            words = sv
        else:
            words = self.pick([f"the {t.singular} {sv}", f"the {t.singular} named {sv}",
                               f"the {t.singular} called {sv}", f"the {t.singular} with the {self.word(c)} {sv}"])
        return f"{self.ref(c, alias)} = {sql_value(v)}", words

    def tail_np(self, t: "Tab", alias: str, exclude=()) -> Optional[tuple[str, str]]:
        """(SQL, words) restricting the last table of a path: by a name, or by a condition."""
        if self.chance(0.45) or len(t.cols) == 1:  # a lookup table is only ever named: "the genre Fantasy"
            found = self.named(t, alias)
            if found is not None:
                return found
        cond = self.condition(t, alias, exclude=exclude)
        return (cond.sql, f"{t.plural} {cond.np}") if cond else None

    # ---- join paths ----------------------------------------------------------------------------------------------
    def _paths(self) -> list[Path]:
        """Every path of one to three steps the questions use: up to a parent (and on up), down to a child,
        across a bridge (and then up)."""
        ups = {t.name: [(c, self.db.table(c.ref)) for c in t.cols if c.kind == "fk"] for t in self.db.tables}
        downs = {t.name: [(child, c) for child, c in self.links if c.ref == t.name] for t in self.db.tables}
        paths = []

        def grow(steps: list[Step], seen: list[str]):
            here = steps[-1].dst
            if len(paths) > 400 or len(seen) >= 4:
                return
            for fk, parent in ups[here.name]:
                if parent.name not in seen:
                    nxt = steps + [Step("up", here, parent, fk)]
                    paths.append(Path(nxt))
                    grow(nxt, seen + [parent.name])

        for t in self.db.tables:
            for fk, parent in ups[t.name]:
                first = [Step("up", t, parent, fk)]
                paths.append(Path(first))
                grow(first, [t.name, parent.name])
            for child, fk in downs[t.name]:
                paths.append(Path([Step("down", t, child, fk)]))
                for fk2, other in ups[child.name]:
                    if fk2 is not fk and other.name != t.name:
                        bridge = [Step("bridge", t, other, fk2, via=child, via_fk=fk)]
                        paths.append(Path(bridge))
                        grow(bridge, [t.name, child.name, other.name])
        return paths

    def path(self, min_tables: int = 2, max_tables: int = 4, kinds=("up", "down", "bridge")) -> Optional[Path]:
        fit = [p for p in self.paths if min_tables <= len(p.tables) <= max_tables and p.steps[0].kind in kinds]
        return self.pick(fit)

    def link_words(self, path: Path, tail_words: str) -> str:
        """How the first table's rows relate to the tail: "written by authors from Peru", "who borrowed books
        whose genre is Fantasy", "with employees named Ana Silva"."""
        parts = []
        for i, s in enumerate(path.steps):
            last = i == len(path.steps) - 1
            if s.kind == "up":
                link = self.pick(s.fk.rels)
            elif s.kind == "down":
                link = self.pick(["with", "with", "having"])
            else:
                verbs = s.via.verbs.get((s.src.name, s.dst.name))
                link = self.pick(verbs) if verbs else f"with {s.via.plural} {self.pick(s.fk.rels)}"
            parts.append(f"{link} {tail_words if last else s.dst.plural}")
        return " ".join(parts)

    def link(self, min_tables=2, max_tables=4, kinds=("up", "down", "bridge")):
        """A path and a restriction on its tail: (path, WHERE condition, words after the head noun)."""
        p = self.path(min_tables, max_tables, kinds)
        if p is None:
            return None
        tail = self.tail_np(p.tail, p.last)
        if tail is None:
            return None
        return p, tail[0], self.link_words(p, tail[1])

    # ================================================================================================================
    # shapes on one table
    # ================================================================================================================
    def count_all(self):
        t = self.pick(self.db.tables)
        return self.count_question(t), f"SELECT count(*) FROM {t.sql}"

    def list_column(self):
        t = self.pick(self.db.tables)
        c = self.shown(t)
        if c is None:
            return None
        return self.list_question([self.word(c)], t), f"SELECT {c.sql} FROM {t.sql}"

    def list_columns(self):
        t = self.pick(self.db.tables)
        shown = []
        for _ in range(self.pick([2, 2, 2, 3])):
            c = self.shown(t, avoid=shown)
            if c is None or c in shown:
                return None
            shown.append(c)
        cond = self.condition(t, exclude=shown) if self.chance(0.35) else None
        q = self.list_question([self.word(c) for c in shown], t, cond.np if cond else "",
                               cond.vp if cond else "")
        where = f" WHERE {cond.sql}" if cond else ""
        return q, f"SELECT {', '.join(c.sql for c in shown)} FROM {t.sql}{where}"

    def distinct_values(self):
        t, c = self._group_table()
        if t is None:
            return None
        w = plural(self.word(c))
        cond = self.condition(t, exclude=[c]) if self.chance(0.3) else None
        r = f" {cond.np}" if cond else ""
        q = self.pick([f"What are the distinct {w} of the {t.plural}{r}?", f"List the different {w} of {t.plural}{r}.",
                       f"Which {w} do the {t.plural}{r} have?", f"Show all distinct {w} of {t.plural}{r}.",
                       f"Find the different {w} of all {t.plural}{r}.",
                       f"Give me the unique {w} of the {t.plural}{r}."])
        return q, f"SELECT DISTINCT {c.sql} FROM {t.sql}" + (f" WHERE {cond.sql}" if cond else "")

    def count_distinct(self):
        t, c = self._group_table()
        if t is None:
            return None
        w = plural(self.word(c))
        q = self.pick([f"How many different {w} are there among the {t.plural}?",
                       f"Count the number of distinct {w} of the {t.plural}.",
                       f"How many distinct {w} do the {t.plural} have?",
                       f"What is the number of different {w} of {t.plural}?",
                       f"Find the number of unique {w} among all {t.plural}."])
        return q, f"SELECT count(DISTINCT {c.sql}) FROM {t.sql}"

    def filtered(self):
        t = self.pick(self.db.tables)
        cond = self.condition(t)
        c = self.shown(t, avoid=[cond.col]) if cond else None
        if c is None:
            return None
        return self.list_question([self.word(c)], t, cond.np, cond.vp), \
            f"SELECT {c.sql} FROM {t.sql} WHERE {cond.sql}"

    def filtered_count(self):
        t = self.pick(self.db.tables)
        cond = self.condition(t)
        if cond is None:
            return None
        q = self.pick([self.count_question(t, cond.np), f"How many {t.plural} {cond.vp}?"])
        return q, f"SELECT count(*) FROM {t.sql} WHERE {cond.sql}"

    def filtered_two(self):
        t = self.pick(self.db.tables)
        first = self.condition(t)
        second = self.condition(t, exclude=[first.col]) if first else None
        if second is None:
            return None
        joiner = self.pick(["AND", "AND", "OR"])
        if joiner == "AND":
            np_ = self.pick([f"{first.np} and {second.np}", f"that {first.vp} and {second.vp}"])
        else:
            np_ = self.pick([f"{first.np} or {second.np}", f"that {first.vp} or {second.vp}"])
        where = f"{first.sql} {joiner} {second.sql}"
        if self.chance(0.35):
            return self.count_question(t, np_), f"SELECT count(*) FROM {t.sql} WHERE {where}"
        c = self.shown(t, avoid=[first.col, second.col])
        if c is None:
            return None
        vp = f"{first.vp} {joiner.lower()} {second.vp}"
        return self.list_question([self.word(c)], t, np_, vp), f"SELECT {c.sql} FROM {t.sql} WHERE {where}"

    def between(self):
        t = self.pick(self.tables_with(NUMBER_KINDS | {"year"}))
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS | {"year"}))
        lo, hi = sorted([self.threshold(t, m), self.threshold(t, m)])
        if lo == hi:
            return None
        w, lo_s, hi_s = self.word(m), say(lo), say(hi)
        between = f" BETWEEN {sql_value(lo)} AND {sql_value(hi)}"
        r = self.pick([f"whose {w} is between {lo_s} and {hi_s}", f"with {a(w)} between {lo_s} and {hi_s}",
                       f"with {a(w)} from {lo_s} to {hi_s}", f"whose {w} ranges between {lo_s} and {hi_s}"])
        if self.chance(0.3):
            return self.count_question(t, r), f"SELECT count(*) FROM {t.sql} WHERE {m.sql}{between}"
        c = self.shown(t, avoid=[m])
        if c is None:
            return None
        return self.list_question([self.word(c)], t, r), f"SELECT {c.sql} FROM {t.sql} WHERE {m.sql}{between}"

    def like(self):
        t = self.pick(self.tables_with(NAME_KINDS))
        if t is None:
            return None
        c = self.pick(self.cols(t, NAME_KINDS))
        value = self.pick(self.values(t, c))
        words = [w for w in re.findall(r"[A-Za-z]{3,}", value)]
        word = self.pick(words)
        if word is None:
            return None
        w = self.word(c)
        how = self.pick(["contains", "contains", "starts", "ends"])
        if how == "starts" and value.startswith(word):
            pattern, r = f"{word}%", self.pick([f"whose {w} starts with {self.say_value(word)}",
                                                f"with {a(w)} beginning with {self.say_value(word)}"])
        elif how == "ends" and value.endswith(word):
            pattern, r = f"%{word}", f"whose {w} ends with {self.say_value(word)}"
        else:
            pattern, r = f"%{word}%", self.pick([f"whose {w} contains {self.say_value(word)}",
                                                 f"with {self.say_value(word)} in their {w}",
                                                 f"whose {w} includes the word {self.say_value(word)}"])
        if self.chance(0.25):
            return self.count_question(t, r), f"SELECT count(*) FROM {t.sql} WHERE {c.sql} LIKE '{pattern}'"
        out = self.shown(t)
        if out is None:
            return None
        return self.list_question([self.word(out)], t, r), \
            f"SELECT {out.sql} FROM {t.sql} WHERE {c.sql} LIKE '{pattern}'"

    def aggregate(self):
        t = self.pick(self.tables_with(NUMBER_KINDS))
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        agg = self.pick(["avg", "max", "min"] + ["sum"] * (m.kind in ADDITIVE_KINDS))
        cond = self.condition(t, exclude=[m]) if self.chance(0.4) else None
        r = f" {cond.np}" if cond else ""
        w, aw = self.word(m), self.pick(AGGREGATE_WORDS[agg])
        q = self.pick([f"What is the {aw} {w} of the {t.plural}{r}?", f"Find the {aw} {w} of all {t.plural}{r}.",
                       f"Return the {aw} {w} of {t.plural}{r}.", f"What is the {aw} {w} among {t.plural}{r}?",
                       f"Give the {aw} {w} of the {t.plural}{r}."]
                      + ([f"What is the {aw} {w} of any {t.singular}{r}?"] if agg in ("max", "min") else [])
                      + ([f"What is the sum of the {plural(w)} of the {t.plural}{r}?"] if agg == "sum" else [])
                      + ([f"How much {w} do the {t.plural}{r} have in total?"] if agg == "sum" and m.kind == "money"
                         else []))
        return q, f"SELECT {agg}({m.sql}) FROM {t.sql}" + (f" WHERE {cond.sql}" if cond else "")

    def aggregates(self):
        t = self.pick(self.tables_with(NUMBER_KINDS))
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        aggs = self.pick([["max", "min"], ["avg", "max"], ["avg", "min", "max"], ["min", "max", "avg"],
                          ["count", "avg"], ["avg", "sum"] if m.kind in ADDITIVE_KINDS else ["max", "avg"]])
        cond = self.condition(t, exclude=[m]) if self.chance(0.35) else None
        r = f" {cond.np}" if cond else ""
        w = self.word(m)
        names = [f"number of {t.plural}" if g == "count" else f"{self.pick(AGGREGATE_WORDS[g])} {w}" for g in aggs]
        sql_parts = ["count(*)" if g == "count" else f"{g}({m.sql})" for g in aggs]
        if aggs[0] != "count":
            shared = [self.pick(AGGREGATE_WORDS[g]) for g in aggs]
            names = [f"{and_list(shared)} {w}"] if self.chance(0.5) else names
        q = self.pick([f"What are the {and_list(names)} of the {t.plural}{r}?",
                       f"Find the {and_list(names)} of all {t.plural}{r}.",
                       f"Show the {and_list(names)} of {t.plural}{r}.",
                       f"Return the {and_list(names)} for {t.plural}{r}."])
        return q, f"SELECT {', '.join(sql_parts)} FROM {t.sql}" + (f" WHERE {cond.sql}" if cond else "")

    def ordered(self, keys: int = 1):
        t = self.pick(self.tables_with(ORDERABLE))
        if t is None or len(self.cols(t, ORDERABLE)) < keys:
            return None
        ms = self.rng.sample(self.cols(t, ORDERABLE), keys)
        shown = [self.shown(t, avoid=ms)]
        if shown[0] is None:
            return None
        if self.chance(0.3):
            extra = self.shown(t, avoid=ms + shown)
            shown += [extra] if extra is not None else []
        desc = [self.chance(0.5) for _ in ms]
        order_sql = ", ".join(f"{m.sql} {'DESC' if d else 'ASC'}" for m, d in zip(ms, desc))
        mw = [self.word(m) for m in ms]
        if keys == 1:
            order = self.frame(DESCENDING if desc[0] else ASCENDING, m=mw[0])
        else:
            order = (f"{self.frame(DESCENDING if desc[0] else ASCENDING, m=mw[0])}, then by {mw[1]} "
                     f"{'descending' if desc[1] else 'ascending'}")
        if self.chance(0.2):  # "Sort the ... by ..." says the order first
            by = " and then ".join(f"{w} in {'descending' if d else 'ascending'} order" for w, d in zip(mw, desc))
            return (f"Sort the {t.plural} by {by}, and list their {and_list([plural(self.word(c)) for c in shown])}.",
                    f"SELECT {', '.join(c.sql for c in shown)} FROM {t.sql} ORDER BY {order_sql}")
        np_, many = self.things([self.word(c) for c in shown], t)
        return (self.frame(LIST if many else EACH, x=f"{np_}, {order}"),
                f"SELECT {', '.join(c.sql for c in shown)} FROM {t.sql} ORDER BY {order_sql}")

    def ordered_two_keys(self):
        return self.ordered(keys=2)

    def _superlative(self, m: "Col", desc: bool) -> Optional[str]:
        """The adjective for the row with the most of m, where there is one: "oldest", "cheapest"."""
        found = D.SUPERLATIVES.get(m.label)
        return (found[0] if desc else found[1]) if found and self.chance(0.6) else None

    def extreme_words(self, m: "Col", desc: bool) -> tuple[str, ...]:
        if m.kind in TIME_KINDS:
            return ("latest", "most recent") if desc else ("earliest",)
        return HIGH if desc else LOW

    def top_k(self, with_filter: bool = False):
        t = self.pick(self.tables_with(ORDERABLE))
        if t is None:
            return None
        m = self.pick(self.cols(t, ORDERABLE))
        c = self.shown(t, avoid=[m])
        cond = self.condition(t, exclude=[m, c], kinds=CATEGORY_KINDS | ORDERABLE | {"flag"}) if with_filter else None
        if c is None or (with_filter and cond is None):
            return None
        where = f" WHERE {cond.sql}" if cond else ""
        desc, k = self.chance(0.6), self.pick([1, 1, 1, 3, 5])
        direction = "DESC" if desc else "ASC"
        ranked = [r[0] for r in self.run(f"SELECT {m.sql} FROM {t.sql}{where} ORDER BY {m.sql} {direction} "
                                         f"LIMIT {k + 1}")]
        if len(ranked) < k or (len(ranked) > k and ranked[k - 1] == ranked[k]) or None in ranked:
            return None  # a tie at the cut: LIMIT would pick arbitrarily
        w, cw = self.word(m), self.word(c)
        adj, extreme = self._superlative(m, desc), self.pick(self.extreme_words(m, desc))
        sql = f"SELECT {c.sql} FROM {t.sql}{where} ORDER BY {m.sql} {direction} LIMIT {k}"
        if k > 1:
            kk = self.number(k)
            among = f" {cond.np}" if cond else ""
            np_ = (f"the {kk} {adj} {t.plural}{among}" if adj else
                   self.pick([f"the {kk} {t.plural}{among} with the {extreme} {plural(w)}",
                              f"the top {kk} {t.plural}{among} by {w}" + ("" if desc else ", lowest first")]))
            return self.frame(LIST, x=f"the {plural(cw)} of {np_}"), sql
        if cond is None:
            one = f"the {adj} {t.singular}" if adj else self.pick([f"the {t.singular} with the {extreme} {w}",
                                                                  f"the {t.singular} whose {w} is the {extreme}"])
            return self.pick([self.frame(ONE, x=f"the {cw} of {one}"),
                              f"Which {t.singular} has the {extreme} {w}? " + self.frame(ITS, x=cw)]), sql
        one = f"the {adj} {t.singular} {cond.np}" if adj else f"the {t.singular} {cond.np} that has the {extreme} {w}"
        return self.pick([self.frame(ONE, x=f"the {cw} of {one}"),
                          f"Of the {t.plural} {cond.np}, which one has the {extreme} {w}? " + self.frame(ITS, x=cw),
                          f"Among the {t.plural} {cond.np}, find the {cw} of the one with the {extreme} {w}."]), sql

    def top_filtered(self):
        return self.top_k(with_filter=True)

    def extreme_nested(self):
        """The row with the most of a measure, by a nested query instead of ORDER BY/LIMIT."""
        t = self.pick(self.tables_with(NUMBER_KINDS))
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        c = self.shown(t, avoid=[m])
        if c is None:
            return None
        desc = self.chance(0.6)
        agg = "max" if desc else "min"
        w, adj = self.word(m), self._superlative(m, desc)
        extreme = self.pick(HIGH if desc else LOW)
        cw = self.word(c)
        if adj:
            q = self.frame(LIST, x=f"the {plural(cw)} of the {adj} {t.plural}")
        else:
            q = self.pick([self.frame(LIST, x=f"the {plural(cw)} of the {t.plural} with the {extreme} {w}"),
                           f"Which {t.plural} have the {extreme} {w}? " + self.frame(THEIR, x=plural(cw))])
        return q, f"SELECT {c.sql} FROM {t.sql} WHERE {m.sql} = (SELECT {agg}({m.sql}) FROM {t.sql})"

    def group_cols(self, t: "Tab") -> list["Col"]:
        """Columns whose values many rows share: categories, but not what names a row."""
        return [c for c in self.cols(t, CATEGORY_KINDS) if c is not self.name_col(t)]

    def _group_table(self):
        t = self.pick([t for t in self.db.tables if self.group_cols(t)])
        return (t, self.pick(self.group_cols(t))) if t else (None, None)

    def group_count(self):
        t, g = self._group_table()
        if t is None:
            return None
        w = self.word(g)
        q = self.pick([f"How many {t.plural} are there for each {w}?", f"For each {w}, how many {t.plural} are there?",
                       f"Count the {t.plural} in each {w}.", f"Show each {w} and the number of {t.plural} with it.",
                       f"What is the number of {t.plural} per {w}?", f"List the {plural(w)} and the number of "
                       f"{t.plural} for each.", f"Give the count of {t.plural} for every {w}."])
        return q, f"SELECT {g.sql}, count(*) FROM {t.sql} GROUP BY {g.sql}"

    def group_aggregate(self):
        t, g = self._group_table()
        if t is None or not self.cols(t, NUMBER_KINDS):
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        agg = self.pick(["avg", "max", "min"] + ["sum"] * (m.kind in ADDITIVE_KINDS))
        w, gw, aw = self.word(m), self.word(g), self.pick(AGGREGATE_WORDS[agg])
        q = self.pick([f"What is the {aw} {w} of the {t.plural} for each {gw}?",
                       f"For each {gw}, what is the {aw} {w} of the {t.plural}?",
                       f"Show the {aw} {w} of {t.plural} grouped by {gw}.",
                       f"List each {gw} with the {aw} {w} of its {t.plural}.",
                       f"Find the {aw} {w} of {t.plural} per {gw}."])
        return q, f"SELECT {g.sql}, {agg}({m.sql}) FROM {t.sql} GROUP BY {g.sql}"

    def _group_threshold(self, sql: str) -> Optional[int]:
        counts = sorted(r[0] for r in self.run(sql))
        if len(counts) < 2:
            return None
        return max(counts[len(counts) // 2 - (self.chance(0.5))], 2)  # "more than 1 lines" reads badly

    def group_having(self):
        t, g = self._group_table()
        if t is None:
            return None
        n = self._group_threshold(f"SELECT count(*) FROM {t.sql} GROUP BY {g.sql}")
        if n is None:
            return None
        gw = plural(self.word(g))
        op, words = self.pick([(">", f"more than {n}"), (">=", f"at least {n}"), (">=", f"{n} or more")])
        if self.chance(0.3) and self.cols(t, NUMBER_KINDS):  # a condition on an aggregate other than count
            m = self.pick(self.cols(t, NUMBER_KINDS))
            v = self.threshold(t, m)
            agg = self.pick(["avg", "max", "min"])
            aw, cmp = self.pick(AGGREGATE_WORDS[agg]), self.pick([(">", GREATER), ("<", LESS)])
            q = self.pick([f"Which {gw} have {a(aw + ' ' + self.word(m))} {self.frame(cmp[1], v=say(v))} among their "
                           f"{t.plural}?", f"List the {gw} whose {t.plural} have {a(aw + ' ' + self.word(m))} "
                           f"{self.frame(cmp[1], v=say(v))}."])
            return q, f"SELECT {g.sql} FROM {t.sql} GROUP BY {g.sql} HAVING {agg}({m.sql}) {cmp[0]} {sql_value(v)}"
        if self.chance(0.35):
            q = self.pick([f"Show the {gw} with {words} {t.plural}, and the number of {t.plural} for each.",
                           f"For each {self.word(g)} with {words} {t.plural}, how many {t.plural} are there?"])
            return q, f"SELECT {g.sql}, count(*) FROM {t.sql} GROUP BY {g.sql} HAVING count(*) {op} {n}"
        q = self.pick([f"Which {gw} have {words} {t.plural}?", f"List the {gw} with {words} {t.plural}.",
                       f"Find the {gw} that have {words} {t.plural}.", f"Show the {gw} shared by {words} {t.plural}."])
        return q, f"SELECT {g.sql} FROM {t.sql} GROUP BY {g.sql} HAVING count(*) {op} {n}"

    def group_top(self, with_filter: bool = False):
        t, g = self._group_table()
        if t is None:
            return None
        cond = self.condition(t, exclude=[g]) if with_filter else None
        if with_filter and cond is None:
            return None
        where, r = (f" WHERE {cond.sql}", f" {cond.np}") if cond else ("", "")
        desc = self.chance(0.75)
        top = self.run(f"SELECT count(*) FROM {t.sql}{where} GROUP BY {g.sql} ORDER BY count(*) "
                       f"{'DESC' if desc else 'ASC'} LIMIT 2")
        if len(top) < 2 or top[0][0] == top[1][0]:
            return None
        w = self.word(g)
        if desc:
            q = self.pick([f"Which {w} has the most {t.plural}{r}?", f"What is the {w} with the largest number of "
                           f"{t.plural}{r}?", f"Find the {w} that has the most {t.plural}{r}.",
                           f"Which {w} is the most common among the {t.plural}{r}?",
                           f"What is the most common {w} of the {t.plural}{r}?"])
        else:
            q = self.pick([f"Which {w} has the fewest {t.plural}{r}?", f"What is the least common {w} among the "
                           f"{t.plural}{r}?", f"Find the {w} with the smallest number of {t.plural}{r}."])
        return q, (f"SELECT {g.sql} FROM {t.sql}{where} GROUP BY {g.sql} ORDER BY count(*) "
                   f"{'DESC' if desc else 'ASC'} LIMIT 1")

    def group_filtered_top(self):
        return self.group_top(with_filter=True)

    def group_ordered(self):
        t, g = self._group_table()
        if t is None:
            return None
        w = self.word(g)
        desc = self.chance(0.6)
        q = self.pick([f"List each {w} and the number of {t.plural}, ordered by the count "
                       f"{'in descending order' if desc else 'in ascending order'}.",
                       f"Show the number of {t.plural} for each {w}, sorted by the number of {t.plural}"
                       f"{'' if not desc else ', most first'}."])
        return q, (f"SELECT {g.sql}, count(*) FROM {t.sql} GROUP BY {g.sql} ORDER BY count(*) "
                   f"{'DESC' if desc else 'ASC'}")

    def above_average(self):
        t = self.pick(self.tables_with(NUMBER_KINDS))
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        shown = [self.shown(t, avoid=[m])]
        if shown[0] is None:
            return None
        if self.chance(0.3):
            more = self.shown(t, avoid=[m] + shown)
            shown += [more] if more is not None else []
        above = self.chance(0.6)
        word, op = ("above", ">") if above else ("below", "<")
        w = self.word(m)
        r = self.pick([f"whose {w} is {word} the average", f"with {a(w)} {word} average",
                       f"with {a(w)} {'higher' if above else 'lower'} than the average {w}",
                       f"whose {w} is {'greater' if above else 'less'} than the average"])
        return self.list_question([self.word(c) for c in shown], t, r), \
            (f"SELECT {', '.join(c.sql for c in shown)} FROM {t.sql} WHERE {m.sql} {op} "
             f"(SELECT avg({m.sql}) FROM {t.sql})")

    def set_single(self):
        t, g = self._group_table()
        if t is None:
            return None
        first, second = self.condition(t, exclude=[g]), self.condition(t, exclude=[g])
        if first is None or second is None or first.sql == second.sql:
            return None
        gw, op = plural(self.word(g)), self.pick(["INTERSECT", "EXCEPT", "UNION"])
        if op == "INTERSECT":
            q = self.pick([f"Which {gw} have both {t.plural} {first.np} and {t.plural} {second.np}?",
                           f"Find the {gw} that have some {t.plural} {first.np} and also some {t.plural} {second.np}.",
                           f"List the {gw} shared by {t.plural} {first.np} and {t.plural} {second.np}."])
        elif op == "EXCEPT":
            q = self.pick([f"Which {gw} have {t.plural} {first.np} but no {t.plural} {second.np}?",
                           f"Find the {gw} of {t.plural} {first.np}, excluding those of {t.plural} {second.np}.",
                           f"List the {gw} that have {t.plural} {first.np} and no {t.plural} {second.np}."])
        else:
            q = self.pick([f"What are the {gw} of the {t.plural} {first.np} or {second.np}?",
                           f"Find the {gw} that have {t.plural} {first.np} or {t.plural} {second.np}.",
                           f"Show the {gw} of {t.plural} {first.np}, together with those of {t.plural} {second.np}."])
        return q, f"SELECT {g.sql} FROM {t.sql} WHERE {first.sql} {op} SELECT {g.sql} FROM {t.sql} WHERE {second.sql}"

    def having_nested(self):
        """Groups whose aggregate beats the aggregate over the whole table: a nested query in HAVING."""
        t, g = self._group_table()
        if t is None or not self.cols(t, NUMBER_KINDS):
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        above = self.chance(0.6)
        op, word = (">", "above") if above else ("<", "below")
        gw, w = self.word(g), self.word(m)
        with_count = self.chance(0.35)
        q = self.pick([f"Which {plural(gw)} have an average {w} {word} the average {w} of all {t.plural}?",
                       f"Find the {plural(gw)} whose {t.plural} have an average {w} {word} the overall average.",
                       f"List the {plural(gw)} where the mean {w} of the {t.plural} is {word} the average over all "
                       f"{t.plural}."])
        if with_count:
            q = q.rstrip(".?") + f"{'?' if q.endswith('?') else '.'} Also give the number of {t.plural} in each."
        select = f"{g.sql}, count(*)" if with_count else g.sql
        return q, (f"SELECT {select} FROM {t.sql} GROUP BY {g.sql} HAVING avg({m.sql}) {op} "
                   f"(SELECT avg({m.sql}) FROM {t.sql})")

    def from_subquery(self):
        """An aggregate over per-group counts: a nested query in FROM."""
        t, g = self._group_table()
        if t is None:
            return None
        agg = self.pick(["avg", "max", "min"])
        w, n = self.word(g), t.plural
        q = self.pick({"avg": [f"On average, how many {n} are there per {w}?", f"What is the average number of {n} "
                               f"per {w}?", f"How many {n} does each {w} have on average?"],
                       "max": [f"What is the largest number of {n} that share the same {w}?",
                               f"What is the maximum number of {n} in a single {w}?",
                               f"How many {n} does the {w} with the most {n} have?"],
                       "min": [f"What is the smallest number of {n} that share the same {w}?",
                               f"What is the minimum number of {n} per {w}?",
                               f"How many {n} does the {w} with the fewest {n} have?"]}[agg])
        return q, f"SELECT {agg}(cnt) FROM (SELECT count(*) AS cnt FROM {t.sql} GROUP BY {g.sql})"

    # ================================================================================================================
    # shapes on two tables joined by a foreign key
    # ================================================================================================================
    def join_list(self):
        p = self.path(2, 2, kinds=("up",))
        if p is None:
            return None
        child, parent = p.tables
        c, pc = self.shown(child), self.name_col(parent) or self.shown(parent)
        if c is None or pc is None:
            return None
        cw, pw = self.word(c), self.word(pc)
        q = self.pick([f"List the {cw} of each {child.singular} together with the {pw} of its {parent.singular}.",
                       f"For every {child.singular}, show its {cw} and the {pw} of the {parent.singular}.",
                       f"Show the {plural(cw)} of all {child.plural} and the {plural(pw)} of their {parent.plural}.",
                       f"What are the {plural(cw)} of the {child.plural} and the {plural(pw)} of the corresponding "
                       f"{parent.plural}?",
                       f"Give the {cw} of every {child.singular} along with its {parent.singular} {pw}."])
        return q, f"SELECT T1.{c.sql}, T2.{pc.sql} FROM {p.sql}"

    def join_filter(self):
        found = self.link(2, 2, kinds=("up",))
        if found is None:
            return None
        p, where, words = found
        child = p.tables[0]
        if self.chance(0.35):
            return self.count_question(child, words), f"SELECT count(*) FROM {p.sql} WHERE {where}"
        c = self.shown(child)
        if c is None:
            return None
        return self.list_question([self.word(c)], child, words), f"SELECT T1.{c.sql} FROM {p.sql} WHERE {where}"

    def parent_by_child(self):
        """Parents that have a child passing a condition: a join down a foreign key, with DISTINCT."""
        found = self.link(2, 2, kinds=("down",))
        if found is None:
            return None
        p, where, words = found
        parent = p.tables[0]
        c = self.shown(parent)
        if c is None:
            return None
        if self.chance(0.3):
            return self.count_question(parent, words), \
                f"SELECT count(DISTINCT T1.{parent.pk}) FROM {p.sql} WHERE {where}"
        return self.list_question([self.word(c)], parent, words), \
            f"SELECT DISTINCT T1.{c.sql} FROM {p.sql} WHERE {where}"

    def join_group(self):
        p = self.path(2, 2, kinds=("up",))
        if p is None:
            return None
        child, parent = p.tables
        pc = self.name_col(parent)
        if pc is None:
            return None
        fk, pw = p.steps[0].fk, self.word(pc)
        if self.chance(0.4) and self.cols(child, NUMBER_KINDS):
            m = self.pick(self.cols(child, NUMBER_KINDS))
            agg = self.pick(["avg", "max", "min"] + ["sum"] * (m.kind in ADDITIVE_KINDS))
            aw, w = self.pick(AGGREGATE_WORDS[agg]), self.word(m)
            q = self.pick([f"For each {parent.singular}, show its {pw} and the {aw} {w} of its {child.plural}.",
                           f"What is the {aw} {w} of the {child.plural} of each {parent.singular}? List the "
                           f"{parent.singular} {pw} too.",
                           f"List the {pw} of every {parent.singular} with the {aw} {w} of its {child.plural}."])
            return q, f"SELECT T2.{pc.sql}, {agg}(T1.{m.sql}) FROM {p.sql} GROUP BY T1.{fk.sql}"
        q = self.pick([f"For each {parent.singular}, list its {pw} and the number of {child.plural}.",
                       f"How many {child.plural} does each {parent.singular} have? Show the {pw} and the count.",
                       f"Show the {pw} of every {parent.singular} along with how many {child.plural} it has.",
                       f"List the {plural(pw)} of the {parent.plural} and the number of {child.plural} of each."])
        return q, f"SELECT T2.{pc.sql}, count(*) FROM {p.sql} GROUP BY T1.{fk.sql}"

    def join_having(self):
        p = self.path(2, 2, kinds=("up",))
        if p is None:
            return None
        child, parent = p.tables
        pc, fk = self.name_col(parent) or self.shown(parent), p.steps[0].fk
        n = self._group_threshold(f"SELECT count(*) FROM {child.sql} GROUP BY {fk.sql}")
        if pc is None or n is None:
            return None
        pw = plural(self.word(pc))
        op, words = self.pick([(">", f"more than {n}"), (">=", f"at least {n}"), (">=", f"{n} or more")])
        q = self.pick([f"Which {parent.plural} have {words} {child.plural}? " + self.frame(THEIR, x=pw),
                       f"Find the {pw} of the {parent.plural} with {words} {child.plural}.",
                       f"What are the {pw} of {parent.plural} that have {words} {child.plural}?",
                       f"List the {pw} of all {parent.plural} having {words} {child.plural}."])
        return q, f"SELECT T2.{pc.sql} FROM {p.sql} GROUP BY T1.{fk.sql} HAVING count(*) {op} {n}"

    def join_top(self):
        """The parent with the most children, or with the highest aggregate of its children's measure."""
        p = self.path(2, 2, kinds=("up",))
        if p is None:
            return None
        child, parent = p.tables
        pc, fk = self.name_col(parent), p.steps[0].fk
        if pc is None:
            return None
        pw, desc = self.word(pc), self.chance(0.75)
        direction = "DESC" if desc else "ASC"
        if self.chance(0.4) and self.cols(child, NUMBER_KINDS):
            m = self.pick(self.cols(child, NUMBER_KINDS))
            agg = self.pick(["avg", "sum"]) if m.kind in ADDITIVE_KINDS else "avg"
            key = f"{agg}(T1.{m.sql})"
            aw, w = self.pick(AGGREGATE_WORDS[agg]), self.word(m)
            extreme = self.pick(HIGH if desc else LOW)
            about = f"the {extreme} {aw} {w} of its {child.plural}"
            q = self.pick([f"Which {parent.singular} has {about}? " + self.frame(ITS, x=pw),
                           self.frame(ONE, x=f"the {pw} of the {parent.singular} whose {child.plural} have the "
                                              f"{extreme} {aw} {w}")])
        else:
            key = "count(*)"
            most = "most" if desc else "fewest"
            q = self.pick([f"Which {parent.singular} has the {most} {child.plural}? " + self.frame(ITS, x=pw),
                           self.frame(ONE, x=f"the {pw} of the {parent.singular} with the {most} {child.plural}"),
                           f"Find the {pw} of the {parent.singular} that has the "
                           f"{'largest' if desc else 'smallest'} number of {child.plural}."])
        top = self.run(f"SELECT {key} FROM {p.sql} GROUP BY T1.{fk.sql} ORDER BY {key} {direction} LIMIT 2")
        if len(top) < 2 or top[0][0] == top[1][0]:
            return None
        return q, f"SELECT T2.{pc.sql} FROM {p.sql} GROUP BY T1.{fk.sql} ORDER BY {key} {direction} LIMIT 1"

    def join_ordered(self, limit: bool = False):
        found = self.link(2, 2, kinds=("up",))
        if found is None:
            return None
        p, where, words = found
        child = p.tables[0]
        if not self.cols(child, ORDERABLE):
            return None
        m = self.pick(self.cols(child, ORDERABLE))
        c = self.shown(child, avoid=[m])
        if c is None:
            return None
        desc = self.chance(0.6)
        direction = "DESC" if desc else "ASC"
        if limit:
            k = self.pick([1, 1, 3])
            ranked = self.run(f"SELECT T1.{m.sql} FROM {p.sql} WHERE {where} ORDER BY T1.{m.sql} {direction} "
                              f"LIMIT {k + 1}")
            if len(ranked) < k or (len(ranked) > k and ranked[k - 1] == ranked[k]):
                return None
            extreme, w = self.pick(HIGH if desc else LOW), self.word(m)
            if k == 1:
                q = self.frame(ONE, x=f"the {self.word(c)} of the {child.singular} {words} with the {extreme} {w}")
            else:
                q = self.frame(LIST, x=f"the {plural(self.word(c))} of the {self.number(k)} {child.plural} {words} "
                                       f"with the {extreme} {plural(w)}")
            return q, (f"SELECT T1.{c.sql} FROM {p.sql} WHERE {where} ORDER BY T1.{m.sql} {direction} LIMIT {k}")
        order = self.frame(DESCENDING if desc else ASCENDING, m=self.word(m))
        np_, many = self.things([self.word(c)], child, words, every=False)
        return self.frame(LIST if many else EACH, x=f"{np_}, {order}"), \
            f"SELECT T1.{c.sql} FROM {p.sql} WHERE {where} ORDER BY T1.{m.sql} {direction}"

    def join_top_filtered(self):
        return self.join_ordered(limit=True)

    def without_children(self):
        """Parents no child points at: NOT IN a nested query."""
        if not self.links:
            return None
        child, fk = self.pick(self.links)
        parent = self.db.table(fk.ref)
        shown = [self.name_col(parent) or self.shown(parent)]
        if shown[0] is None:
            return None
        nested = f"{parent.pk} NOT IN (SELECT {fk.sql} FROM {child.sql})"
        none = self.pick([f"that have no {child.plural}", f"without any {child.plural}", f"with no {child.plural}",
                          f"that do not have any {child.plural}", f"having no {child.plural}"])
        if self.chance(0.3):
            return self.count_question(parent, none), f"SELECT count(*) FROM {parent.sql} WHERE {nested}"
        if self.chance(0.3):
            more = self.shown(parent, avoid=shown)
            shown += [more] if more is not None else []
        words = [self.word(c) for c in shown]
        return self.list_question(words, parent, none, f"have no {child.plural}"), \
            f"SELECT {', '.join(c.sql for c in shown)} FROM {parent.sql} WHERE {nested}"

    def in_subquery(self):
        """Parents some child of which passes a condition, by IN (a nested query) rather than a join."""
        if not self.links:
            return None
        child, fk = self.pick(self.links)
        parent = self.db.table(fk.ref)
        cond, c = self.condition(child, exclude=[fk]), self.shown(parent)
        if cond is None or c is None:
            return None
        words = self.pick(["with", "having"]) + f" {child.plural} {cond.np}"
        return self.list_question([self.word(c)], parent, words), \
            f"SELECT {c.sql} FROM {parent.sql} WHERE {parent.pk} IN (SELECT {fk.sql} FROM {child.sql} WHERE {cond.sql})"

    def join_set(self):
        """Parents with children of two kinds (INTERSECT), of one kind but not the other (EXCEPT), or either."""
        p = self.path(2, 2, kinds=("down",))
        if p is None:
            return None
        parent, child = p.tables
        pc = self.name_col(parent) or self.shown(parent)
        first, second = self.condition(child, "T2"), self.condition(child, "T2")
        if pc is None or first is None or second is None or first.sql == second.sql:
            return None
        op, pw = self.pick(["INTERSECT", "INTERSECT", "EXCEPT", "UNION"]), plural(self.word(pc))
        if op == "INTERSECT":
            q = self.pick([f"Which {parent.plural} have both {child.plural} {first.np} and {child.plural} {second.np}? "
                           + self.frame(THEIR, x=pw),
                           f"Find the {pw} of the {parent.plural} with {child.plural} {first.np} and also "
                           f"{child.plural} {second.np}."])
        elif op == "EXCEPT":
            q = self.pick([f"Which {parent.plural} have {child.plural} {first.np} but none {second.np}? "
                           + self.frame(THEIR, x=pw),
                           f"Find the {pw} of {parent.plural} with {child.plural} {first.np}, except those with "
                           f"{child.plural} {second.np}."])
        else:
            q = f"Find the {pw} of {parent.plural} that have {child.plural} {first.np} or {child.plural} {second.np}."
        side = f"SELECT T1.{pc.sql} FROM {p.sql} WHERE "
        return q, f"{side}{first.sql} {op} {side}{second.sql}"

    def join_above_average(self):
        found = self.link(2, 2, kinds=("up",))
        if found is None:
            return None
        p, where, words = found
        child = p.tables[0]
        if not self.cols(child, NUMBER_KINDS):
            return None
        m = self.pick(self.cols(child, NUMBER_KINDS))
        c = self.shown(child, avoid=[m])
        if c is None:
            return None
        above = self.chance(0.6)
        w = self.word(m)
        r = f"{words} {self.pick(['whose', 'and whose'])} {w} is {'above' if above else 'below'} the average {w}"
        return self.list_question([self.word(c)], child, r), \
            (f"SELECT T1.{c.sql} FROM {p.sql} WHERE {where} AND T1.{m.sql} {'>' if above else '<'} "
             f"(SELECT avg({m.sql}) FROM {child.sql})")

    # ================================================================================================================
    # shapes on three or four tables: chains of foreign keys and bridge (many-to-many) tables
    # ================================================================================================================
    def path_filter(self):
        found = self.link(3, 4)
        if found is None:
            return None
        p, where, words = found
        head = p.tables[0]
        c = self.shown(head)
        if c is None:
            return None
        distinct = "DISTINCT " if p.steps[0].kind != "up" else ""
        if self.chance(0.3):
            count = f"count(DISTINCT T1.{head.pk})" if distinct else "count(*)"
            return self.count_question(head, words), f"SELECT {count} FROM {p.sql} WHERE {where}"
        return self.list_question([self.word(c)], head, words), \
            f"SELECT {distinct}T1.{c.sql} FROM {p.sql} WHERE {where}"

    def bridge_list(self):
        p = self.path(3, 3, kinds=("bridge",))
        if p is None:
            return None
        head, _, other = p.tables
        hc, oc = self.name_col(head) or self.shown(head), self.name_col(other) or self.shown(other)
        if hc is None or oc is None:
            return None
        verbs = p.steps[0].via.verbs.get((head.name, other.name))
        how = self.pick(verbs) if verbs else f"linked to"
        hw, ow = self.word(hc), self.word(oc)
        q = self.pick([f"Show the {plural(hw)} of {head.plural} and the {plural(ow)} of the {other.plural} they are "
                       f"linked to through {p.steps[0].via.plural}.",
                       f"List each {head.singular} {hw} together with the {ow} of every {other.singular} it is "
                       f"linked to by {a(p.steps[0].via.singular)}.",
                       f"For each {p.steps[0].via.singular}, give the {head.singular} {hw} and the {other.singular} "
                       f"{ow}.",
                       f"List the {plural(hw)} of {head.plural} {how} {other.plural}, with the {plural(ow)} of those "
                       f"{other.plural}."])
        return q, f"SELECT T1.{hc.sql}, T3.{oc.sql} FROM {p.sql}"

    def bridge_group(self):
        """For each row on one side of a bridge, how many links it has (to rows of the other side that pass a
        condition, mostly)."""
        p = self.path(3, 3, kinds=("bridge",))
        if p is None:
            return None
        head, via, other = p.tables
        hc = self.name_col(head)
        if hc is None:
            return None
        hw = self.word(hc)
        tail = self.tail_np(other, "T3") if self.chance(0.6) else None
        if tail is None:
            q = self.pick([f"For each {head.singular}, give its {hw} and the number of {other.plural} it is linked to "
                           f"through {via.plural}.",
                           f"Show the {hw} of every {head.singular} and how many {via.plural} link it to "
                           f"{other.plural}."])
            return q, f"SELECT T1.{hc.sql}, count(*) FROM {p.sql} GROUP BY T1.{head.pk}"
        linked = self.link_words(p, tail[1])
        q = self.pick([f"For each {head.singular} {linked}, give its {hw} and the number of such {via.plural}.",
                       f"Show the {hw} of every {head.singular} {linked}, and how many {via.plural} there are for "
                       f"each.", f"How many {via.plural} does each {head.singular} {linked} have? List the {hw} and "
                       f"the count."])
        return q, f"SELECT T1.{hc.sql}, count(*) FROM {p.sql} WHERE {tail[0]} GROUP BY T1.{head.pk}"

    def bridge_top(self):
        """The row on one side of a bridge linked most often to rows passing a condition on the other side."""
        found = self.link(3, 3, kinds=("bridge",))
        if found is None:
            return None
        p, where, words = found
        head = p.tables[0]
        hc = self.name_col(head)
        if hc is None:
            return None
        key = "count(*)"
        top = self.run(f"SELECT {key} FROM {p.sql} WHERE {where} GROUP BY T1.{head.pk} ORDER BY {key} DESC LIMIT 2")
        if len(top) < 2 or top[0][0] == top[1][0]:
            return None
        hw = self.word(hc)
        q = self.pick([f"Which {head.singular} {words} has the most {p.steps[0].via.plural}? " + self.frame(ITS, x=hw),
                       self.frame(ONE, x=f"the {hw} of the {head.singular} with the most {p.steps[0].via.plural} "
                                         f"among the {head.plural} {words}")])
        return q, (f"SELECT T1.{hc.sql} FROM {p.sql} WHERE {where} GROUP BY T1.{head.pk} ORDER BY {key} DESC LIMIT 1")

    def bridge_set(self):
        """Rows on one side of a bridge linked to rows of two kinds on the other side (or one but not the other)."""
        p = self.path(3, 4, kinds=("bridge",))
        if p is None:
            return None
        head = p.tables[0]
        hc = self.name_col(head) or self.shown(head)
        first, second = self.tail_np(p.tail, p.last), self.tail_np(p.tail, p.last)
        if hc is None or first is None or second is None or first[0] == second[0]:
            return None
        op, hw = self.pick(["INTERSECT", "INTERSECT", "EXCEPT", "UNION"]), plural(self.word(hc))
        one, two = self.link_words(p, first[1]), self.link_words(p, second[1])
        if op == "INTERSECT":
            q = self.pick([f"Find the {hw} of the {head.plural} {one} and also {two}.",
                           f"Which {head.plural} are both {one} and {two}? " + self.frame(THEIR, x=hw)])
        elif op == "EXCEPT":
            q = self.pick([f"Find the {hw} of the {head.plural} {one} but not {two}.",
                           f"Which {head.plural} {one}, but not {two}? " + self.frame(THEIR, x=hw)])
        else:
            q = f"Find the {hw} of the {head.plural} {one} or {two}."
        side = f"SELECT T1.{hc.sql} FROM {p.sql} WHERE "
        return q, f"{side}{first[0]} {op} {side}{second[0]}"

    def bridge_not_in(self):
        """Rows never linked through a bridge to rows passing a condition: NOT IN a nested join."""
        p = self.path(3, 3, kinds=("bridge",))
        if p is None:
            return None
        head, via, other = p.tables
        step = p.steps[0]
        hc = self.name_col(head) or self.shown(head)
        tail = self.tail_np(other, "T2")
        if hc is None or tail is None:
            return None
        verbs = via.verbs.get((head.name, other.name))
        if verbs:
            who, _, rest = self.pick(verbs).partition(" ")
            if who not in ("who", "that"):  # a participle: "books not borrowed by ..."
                never = f"not {who} {rest}"
            elif rest.split()[0] in ("have", "has", "were", "are"):  # "who have never borrowed ..."
                aux, _, verb = rest.partition(" ")
                never = f"{who} {aux} never {verb}"
            else:
                never = f"{who} never {rest}"
        else:
            never = f"without {via.plural} {self.pick(step.fk.rels)}"
        never = f"{never} {tail[1]}"
        nested = (f"SELECT T1.{step.via_fk.sql} FROM {via.sql} AS T1 JOIN {other.sql} AS T2 ON "
                  f"T1.{step.fk.sql} = T2.{other.pk} WHERE {tail[0]}")
        return self.list_question([self.word(hc)], head, never), \
            f"SELECT {hc.sql} FROM {head.sql} WHERE {head.pk} NOT IN ({nested})"
