"""The embedded dataset: SQLite databases across many domains and English questions with gold SQL.

`generate_dataset` builds each database from a domain of `lit_sql.data.domains` (a random subset of its
optional columns and leaf tables, realistic rows), then asks questions of it from patterns that cover what
Spider asks: filters, aggregates, GROUP BY / HAVING, ORDER BY / LIMIT, joins, nested queries and set
operations. Every pattern has several phrasings and one canonical SQL form (upper-case keywords, lower-case
aggregates, T1/T2 aliases in joins, explicit ASC/DESC), values are drawn from the rows, and every gold query runs
on its database before it is kept. The same seed gives the same databases and questions.
"""

from __future__ import annotations

import datetime
import json
import math
import random
import re
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

from tqdm import tqdm

from lit_sql.data import domains as D
from lit_sql.data.sources import SQLExample
from lit_sql.sql.metrics import sql_difficulty

TEXT_KINDS = {"person", "title", "company", "city", "country", "pick", "unique"}
NAME_KINDS = ("unique", "person", "title", "company")
CATEGORY_KINDS = {"pick", "city", "country"}
NUMBER_KINDS = {"int", "qty", "money", "real", "rating"}
ADDITIVE_KINDS = {"qty", "money"}
TIME_KINDS = {"year", "date"}


# ---- the domain language -----------------------------------------------------------------------------------
@dataclass
class Col:
    name: str
    kind: str
    args: list[str]
    label: str
    optional: bool = False
    ref: Optional[str] = None  # fk: the parent table
    rel: str = "of"  # fk: how a child relates to its parent in a question

    @property
    def sql_type(self) -> str:
        if self.kind in TEXT_KINDS or self.kind == "date":
            return "TEXT"
        return "REAL" if self.kind in ("money", "real") else "INTEGER"


@dataclass
class Tab:
    name: str
    plural: str
    person: bool
    cols: list[Col]

    @property
    def pk(self) -> str:
        return f"{self.name}_id"

    @property
    def singular(self) -> str:
        return self.name.replace("_", " ")


def parse_domain(text: str) -> list[Tab]:
    tables = []
    for line in filter(None, (l.strip() for l in text.strip().splitlines())):
        head, _, body = line.partition(":")
        m = re.fullmatch(r"(\w+)\(([^)]*)\)(\*?)", head.strip())
        name, plural, person = m.group(1), m.group(2), bool(m.group(3))
        cols = []
        for spec in re.findall(r'(?:[^,"{]|"[^"]*"|\{[^}]*\})+', body):
            spec = spec.strip()
            label = re.search(r'"([^"]*)"', spec)
            spec_wo = re.sub(r'"[^"]*"', "", spec).strip()
            optional = spec_wo.startswith("?")
            col_name, _, rest = spec_wo.lstrip("?").partition(":")
            kind, *args = rest.split(None, 1)
            args = args[0].strip("{} ").split("|") if args and "{" in args[0] else (args[0].split() if args else [])
            if kind == "fk":
                cols.append(Col(col_name, "fk", [], col_name, optional, ref=args[0],
                                rel=label.group(1) if label else "of"))
            else:
                cols.append(Col(col_name, kind, args, label.group(1) if label else col_name.replace("_", " "),
                                optional))
        tables.append(Tab(name, plural or name + "s", person, cols))
    return tables


def plural(label: str) -> str:
    """"price" -> "prices", "weight in kilograms" -> "weights in kilograms", "years of experience" stays."""
    head, sep, tail = (re.split(r"( in | of | per )", label, maxsplit=1) + ["", ""])[:3]
    words = head.split()
    if _is_plural(words[-1]):
        return label
    return " ".join(words[:-1] + [_plural_word(words[-1])]) + sep + tail


def _is_plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith(("ss", "us", "is"))


def a(label: str) -> str:
    """The label with its article: "a price", "an age", "goals" (plural labels take none)."""
    if _is_plural(label.split()[0]) or _is_plural(re.split(r" (?:in|of|per) ", label)[0].split()[-1]):
        return label
    return ("an " if label[0].lower() in "aeiou" else "a ") + label


def _plural_word(word: str) -> str:
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    if re.search(r"(s|x|ch|sh)$", word):
        return word + "es"
    return word + "s"


def sql_value(v: Union[str, int, float]) -> str:
    return "'" + v.replace("'", "''") + "'" if isinstance(v, str) else _num(v)


def _num(v: Union[int, float]) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}".rstrip("0")


def say(v: Union[str, int, float]) -> str:
    return v if isinstance(v, str) else _num(v)


# ---- building a database -----------------------------------------------------------------------------------
@dataclass
class Database:
    db_id: str
    tables: list[Tab]
    rows: dict[str, list[dict]] = field(default_factory=dict)
    conn: Optional[sqlite3.Connection] = None

    def table(self, name: str) -> Tab:
        return next(t for t in self.tables if t.name == name)

    def children(self, parent: Tab) -> list[tuple[Tab, Col]]:
        return [(t, c) for t in self.tables for c in t.cols if c.ref == parent.name]


def _instance(domain: str, tables: list[Tab], rng: random.Random, variant: int) -> list[Tab]:
    """A variant of a domain: some optional columns and some leaf tables left out."""
    if variant == 0:
        return [Tab(t.name, t.plural, t.person, list(t.cols)) for t in tables]
    kept = list(tables)
    referenced = {c.ref for t in tables for c in t.cols if c.ref}
    leaves = [t for t in kept if t.name not in referenced and any(c.ref for c in t.cols)]
    if len(kept) > 3 and leaves and rng.random() < 0.5:
        kept.remove(rng.choice(leaves))
    names = {t.name for t in kept}
    out = []
    for t in kept:
        cols = [c for c in t.cols if (c.ref is None or c.ref in names) and not (c.optional and rng.random() < 0.5)]
        out.append(Tab(t.name, t.plural, t.person, cols))
    return out


def _value(col: Col, rng: random.Random, pools: dict, used: set) -> Union[str, int, float]:
    k, a = col.kind, col.args
    for _ in range(50):
        if k == "person":
            v = f"{rng.choice(D.FIRST_NAMES)} {rng.choice(D.LAST_NAMES)}"
        elif k == "title":
            adj, noun = rng.choice(D.TITLE_ADJECTIVES), rng.choice(D.TITLE_NOUNS)
            v = rng.choice([f"The {adj} {noun}", f"{adj} {noun}", f"{noun} of the {adj} {rng.choice(D.TITLE_NOUNS)}"])
        elif k == "company":
            v = f"{rng.choice(D.LAST_NAMES)} {rng.choice(D.COMPANY_SUFFIXES)}"
        elif k in ("city", "country"):
            return rng.choice(pools[k])
        elif k == "pick":
            return rng.choice(a)
        elif k in ("int", "rating", "year"):
            return rng.randint(int(a[0]), int(a[1]))
        elif k in ("qty", "money", "real"):
            lo, hi = float(a[0]), float(a[1])
            x = math.exp(rng.uniform(math.log(max(lo, 1)), math.log(hi))) if hi / max(lo, 1) > 20 else rng.uniform(lo, hi)
            if k == "qty":
                return int(round(x))
            if k == "real":
                return round(x, 1)
            return round(x, 2) if x < 1000 else float(round(x, -1) if x < 100000 else round(x, -3))
        elif k == "date":
            start = datetime.date(int(a[0]), 1, 1)
            span = (datetime.date(int(a[1]), 12, 31) - start).days
            return (start + datetime.timedelta(days=rng.randint(0, span))).isoformat()
        else:
            raise ValueError(f"unknown column kind {k!r} in {col.name}")
        if v not in used:
            used.add(v)
            return v
    return v


def build_database(db_id: str, tables: list[Tab], rng: random.Random) -> Database:
    db = Database(db_id, tables)
    pools = {"city": rng.sample(D.CITIES, rng.randint(5, 8)), "country": rng.sample(D.COUNTRIES, rng.randint(4, 7))}
    conn = sqlite3.connect(":memory:")
    for t in tables:  # parents come before their children in every domain
        cols = [f"  {t.pk} INTEGER PRIMARY KEY"] + [f"  {c.name} {c.sql_type if c.kind != 'fk' else 'INTEGER'}"
                                                    for c in t.cols]
        cols += [f"  FOREIGN KEY ({c.name}) REFERENCES {c.ref}({c.ref}_id)" for c in t.cols if c.kind == "fk"]
        conn.execute(f"CREATE TABLE {t.name} (\n" + ",\n".join(cols) + "\n)")
        unique = next((c for c in t.cols if c.kind == "unique"), None)
        has_fk = any(c.kind == "fk" for c in t.cols)
        n = rng.randint(25, 60) if has_fk else rng.randint(8, 20)
        if unique is not None:
            n = min(n, len(unique.args), rng.randint(6, 12) if not has_fk else n)
        uniques = {c.name: rng.sample(c.args, len(c.args)) for c in t.cols if c.kind == "unique"}
        # some parents get no children, so that "which X have no Y" has answers
        active = {c.name: rng.sample(range(1, len(db.rows[c.ref]) + 1), max(1, int(len(db.rows[c.ref]) * 0.8)))
                  for c in t.cols if c.kind == "fk"}
        used: dict[str, set] = {c.name: set() for c in t.cols}
        rows = []
        for i in range(min(n, *(len(v) for v in uniques.values())) if uniques else n):
            row = {t.pk: i + 1}
            for c in t.cols:
                if c.kind == "unique":
                    row[c.name] = uniques[c.name][i]
                elif c.kind == "fk":
                    row[c.name] = rng.choice(active[c.name])
                else:
                    row[c.name] = _value(c, rng, pools, used[c.name])
            rows.append(row)
        db.rows[t.name] = rows
        names = [t.pk] + [c.name for c in t.cols]
        conn.executemany(f"INSERT INTO {t.name} VALUES ({', '.join('?' * len(names))})",
                         [tuple(r[n] for n in names) for r in rows])
    conn.commit()  # an open write transaction would make Connection.backup() wait forever
    db.conn = conn
    return db


# ---- questions ---------------------------------------------------------------------------------------------
class Asker:
    """Asks one random question of a database from a chosen pattern; None when the pattern does not fit."""

    def __init__(self, db: Database, rng: random.Random):
        self.db, self.rng = db, rng

    # helpers
    def run(self, sql: str) -> list[tuple]:
        return self.db.conn.execute(sql).fetchall()

    def pick(self, seq):
        return self.rng.choice(seq) if seq else None

    def cols(self, t: Tab, kinds) -> list[Col]:
        return [c for c in t.cols if c.kind in kinds]

    def name_col(self, t: Tab) -> Optional[Col]:
        for kind in NAME_KINDS:
            for c in t.cols:
                if c.kind == kind:
                    return c
        return None

    def shown(self, t: Tab, avoid: Optional[Col] = None) -> Optional[Col]:
        """A column to list: the table's name column mostly, sometimes another."""
        name = self.name_col(t)
        others = [c for c in t.cols if c.kind != "fk" and c is not avoid and c is not name]
        if name is not None and name is not avoid and (self.rng.random() < 0.75 or not others):
            return name
        return self.pick(others)

    def values(self, t: Tab, c: Col) -> list:
        return [r[c.name] for r in self.db.rows[t.name]]

    def threshold(self, t: Tab, c: Col):
        vals = sorted(self.values(t, c))
        v = vals[self.rng.randint(len(vals) // 4, max(len(vals) // 4, 3 * len(vals) // 4 - 1))]
        if c.kind == "money" or c.kind == "qty":
            digits = max(0, len(str(int(v))) - 2)
            v = int(round(v, -digits)) if digits else int(v)
        return v

    def condition(self, t: Tab, prefix: str = "", exclude=()) -> Optional[tuple[str, list[str], list[str]]]:
        """(SQL condition, noun-phrase forms, verb-phrase forms) on one column of t."""
        cands = [c for c in t.cols if c.kind in CATEGORY_KINDS | NUMBER_KINDS | TIME_KINDS | {"unique", "title"}
                 and c not in exclude]
        c = self.pick(cands)
        if c is None:
            return None
        col, label = prefix + c.name, c.label
        if c.kind in CATEGORY_KINDS or c.kind in ("unique", "title"):
            v = self.pick(self.values(t, c))
            sql = f"{col} = {sql_value(v)}"
            if c.kind == "city" and t.person:
                return sql, [f"from {v}", f"who live in {v}", f"based in {v}"], [f"live in {v}", f"are from {v}"]
            if c.kind == "city":
                return sql, [f"in {v}", f"located in {v}"], [f"are located in {v}", f"are in {v}"]
            if c.kind == "country" and label in ("country", "nationality"):
                return sql, [f"from {v}"], [f"are from {v}", f"come from {v}"]
            if c.kind in ("unique", "title"):
                return sql, [f"named {v}", f"called {v}"], [f"are named {v}"]
            return sql, [f"whose {label} is {v}", f"with the {label} {v}"], [f"have the {label} {v}",
                                                                              f"have {v} as their {label}"]
        v = self.threshold(t, c)
        if self.rng.random() < 0.5:
            op, np_, vp = (">", [f"whose {label} is greater than {say(v)}", f"with {a(label)} above {say(v)}",
                                 f"with {a(label)} of more than {say(v)}"],
                           [f"have {a(label)} above {say(v)}", f"have {a(label)} greater than {say(v)}"])
            if c.kind in TIME_KINDS:
                np_, vp = [f"whose {label} is after {say(v)}", f"with {a(label)} later than {say(v)}"], \
                          [f"have {a(label)} after {say(v)}"]
        else:
            op, np_, vp = ("<", [f"whose {label} is less than {say(v)}", f"with {a(label)} below {say(v)}",
                                 f"with {a(label)} under {say(v)}"],
                           [f"have {a(label)} below {say(v)}", f"have {a(label)} smaller than {say(v)}"])
            if c.kind in TIME_KINDS:
                np_, vp = [f"whose {label} is before {say(v)}", f"with {a(label)} earlier than {say(v)}"], \
                          [f"have {a(label)} before {say(v)}"]
        return f"{col} {op} {sql_value(v)}", np_, vp

    def join(self) -> Optional[tuple[Tab, Col, Tab]]:
        """A child table, its foreign key, and the parent it points to."""
        links = [(t, c) for t in self.db.tables for c in t.cols if c.kind == "fk"]
        if not links:
            return None
        child, fk = self.pick(links)
        return child, fk, self.db.table(fk.ref)

    @staticmethod
    def on(child: Tab, fk: Col, parent: Tab) -> str:
        return f"{child.name} AS T1 JOIN {parent.name} AS T2 ON T1.{fk.name} = T2.{parent.pk}"

    # patterns: each returns (question, sql) or None
    def count_all(self):
        t = self.pick(self.db.tables)
        q = self.pick([f"How many {t.plural} are there?", f"Count the number of {t.plural}.",
                       f"What is the total number of {t.plural}?", f"How many {t.plural} are in the database?",
                       f"Find the number of {t.plural}."])
        return q, f"SELECT count(*) FROM {t.name}"

    def list_column(self):
        t = self.pick(self.db.tables)
        c = self.shown(t)
        if c is None:
            return None
        cp = plural(c.label)
        q = self.pick([f"List the {cp} of all {t.plural}.", f"What are the {cp} of the {t.plural}?",
                       f"Show the {c.label} of every {t.singular}.", f"Give me the {cp} of all {t.plural}.",
                       f"What is the {c.label} of each {t.singular}?"])
        return q, f"SELECT {c.name} FROM {t.name}"

    def list_two(self):
        t = self.pick(self.db.tables)
        c1 = self.shown(t)
        c2 = self.shown(t, avoid=c1)
        if c1 is None or c2 is None or c1 is c2:
            return None
        q = self.pick([f"List the {c1.label} and {c2.label} of each {t.singular}.",
                       f"What are the {plural(c1.label)} and {plural(c2.label)} of all {t.plural}?",
                       f"Show the {c1.label} and the {c2.label} of every {t.singular}.",
                       f"Give the {c1.label} and {c2.label} of all {t.plural}."])
        return q, f"SELECT {c1.name}, {c2.name} FROM {t.name}"

    def distinct(self):
        t = self.pick([t for t in self.db.tables if self.cols(t, CATEGORY_KINDS)])
        if t is None:
            return None
        c = self.pick(self.cols(t, CATEGORY_KINDS))
        cp = plural(c.label)
        if self.rng.random() < 0.35:
            q = self.pick([f"How many different {cp} are there among the {t.plural}?",
                           f"Count the number of distinct {cp} of the {t.plural}.",
                           f"How many distinct {cp} do the {t.plural} have?"])
            return q, f"SELECT count(DISTINCT {c.name}) FROM {t.name}"
        q = self.pick([f"What are the distinct {cp} of the {t.plural}?", f"List the different {cp} of all {t.plural}.",
                       f"Which {cp} appear among the {t.plural}?", f"Show all the distinct {cp} of {t.plural}."])
        return q, f"SELECT DISTINCT {c.name} FROM {t.name}"

    def filtered(self, two: bool = False):
        t = self.pick(self.db.tables)
        cond = self.condition(t)
        if cond is None:
            return None
        where, np_, vp = cond
        if two:
            cond2 = self.condition(t, exclude=[c for c in t.cols if c.name == where.split()[0]])
            if cond2 is None:
                return None
            joiner = self.pick(["AND", "AND", "OR"])
            where = f"{where} {joiner} {cond2[0]}"
            np_ = [f"that {a} {joiner.lower()} {b}" for a in vp for b in cond2[2]]
            vp = [f"{a} {joiner.lower()} {b}" for a in vp for b in cond2[2]]
        n, v = self.pick(np_), self.pick(vp)
        if self.rng.random() < 0.4:
            q = self.pick([f"How many {t.plural} {v}?", f"Count the {t.plural} {n}.",
                           f"What is the number of {t.plural} {n}?", f"Find the number of {t.plural} {n}."])
            return q, f"SELECT count(*) FROM {t.name} WHERE {where}"
        c = self.shown(t)
        if c is None:
            return None
        cp = plural(c.label)
        q = self.pick([f"List the {cp} of the {t.plural} {n}.", f"What are the {cp} of {t.plural} {n}?",
                       f"Which {t.plural} {v}? Give their {cp}.", f"Find the {cp} of all {t.plural} that {v}.",
                       f"Show the {c.label} of each {t.singular} {n}."])
        return q, f"SELECT {c.name} FROM {t.name} WHERE {where}"

    def filtered_two(self):
        return self.filtered(two=True)

    def aggregate(self, with_filter: bool = False):
        t = self.pick([t for t in self.db.tables if self.cols(t, NUMBER_KINDS)])
        if t is None:
            return None
        c = self.pick(self.cols(t, NUMBER_KINDS))
        aggs = ["avg", "max", "min"] + (["sum"] if c.kind in ADDITIVE_KINDS else [])
        agg = self.pick(aggs)
        l, pl, sg = c.label, t.plural, t.singular
        phr = {"avg": [f"What is the average {l} of all {pl}?", f"Find the average {l} of the {pl}.",
                       f"What is the mean {l} across all {pl}?"],
               "max": [f"What is the highest {l} of any {sg}?", f"Find the maximum {l} among the {pl}.",
                       f"What is the largest {l} of all {pl}?"],
               "min": [f"What is the lowest {l} of any {sg}?", f"Find the minimum {l} among the {pl}.",
                       f"What is the smallest {l} of all {pl}?"],
               "sum": [f"What is the total {l} of all {pl}?", f"Find the sum of the {l} of all {pl}.",
                       f"How much {l} do all {pl} have in total?"]}
        if self.rng.random() < 0.2:
            q = self.pick([f"What are the maximum and minimum {l} of all {pl}?",
                           f"Find the highest and the lowest {l} among the {pl}."])
            return q, f"SELECT max({c.name}), min({c.name}) FROM {t.name}"
        if not with_filter:
            return self.pick(phr[agg]), f"SELECT {agg}({c.name}) FROM {t.name}"
        cond = self.condition(t, exclude=[c])
        if cond is None:
            return None
        words = {"avg": "average", "max": "highest", "min": "lowest", "sum": "total"}[agg]
        n = self.pick(cond[1])
        q = self.pick([f"What is the {words} {l} of the {pl} {n}?", f"Find the {words} {l} of {pl} {n}.",
                       f"For the {pl} {n}, what is the {words} {l}?"])
        return q, f"SELECT {agg}({c.name}) FROM {t.name} WHERE {cond[0]}"

    def aggregate_filtered(self):
        return self.aggregate(with_filter=True)

    def ordered(self):
        t = self.pick([t for t in self.db.tables if self.cols(t, NUMBER_KINDS | TIME_KINDS)])
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS | TIME_KINDS))
        c = self.shown(t, avoid=m)
        if c is None:
            return None
        desc = self.rng.random() < 0.5
        cp = plural(c.label)
        if desc:
            q = self.pick([f"List the {cp} of all {t.plural}, sorted by {m.label} in descending order.",
                           f"Show the {cp} of the {t.plural} ordered by {m.label} from highest to lowest.",
                           f"What are the {cp} of the {t.plural}, from the highest {m.label} to the lowest?"])
        else:
            q = self.pick([f"List the {cp} of all {t.plural}, sorted by {m.label} in ascending order.",
                           f"Show the {cp} of the {t.plural} ordered by {m.label} from lowest to highest.",
                           f"Sort the {t.plural} by {m.label}, smallest first, and list their {cp}."])
        return q, f"SELECT {c.name} FROM {t.name} ORDER BY {m.name} {'DESC' if desc else 'ASC'}"

    def superlative(self):
        t = self.pick([t for t in self.db.tables if self.cols(t, NUMBER_KINDS)])
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        c = self.shown(t, avoid=m)
        if c is None:
            return None
        desc = self.rng.random() < 0.6
        word, agg = ("highest", "max") if desc else ("lowest", "min")
        k = self.pick([1, 1, 1, 3, 5])
        if k == 1:
            if self.run(f"SELECT count(*) FROM {t.name} WHERE {m.name} = (SELECT {agg}({m.name}) FROM {t.name})")[0][0] != 1:
                return None
            q = self.pick([f"What is the {c.label} of the {t.singular} with the {word} {m.label}?",
                           f"Which {t.singular} has the {word} {m.label}? Give its {c.label}.",
                           f"Find the {c.label} of the {t.singular} that has the {word} {m.label}.",
                           f"Show the {c.label} of the {t.singular} whose {m.label} is the {word}."])
        else:
            ranked = [r[0] for r in self.run(f"SELECT {m.name} FROM {t.name} ORDER BY {m.name} "
                                             f"{'DESC' if desc else 'ASC'} LIMIT {k + 1}")]
            if len(ranked) <= k or ranked[k - 1] == ranked[k]:
                return None
            q = self.pick([f"List the {plural(c.label)} of the {k} {t.plural} with the {word} {m.label}.",
                           f"What are the {plural(c.label)} of the top {k} {t.plural} by {m.label}"
                           f"{'' if desc else ', lowest first'}?",
                           f"Show the {c.label} of the {k} {t.plural} that have the {word} {m.label}."])
        return q, f"SELECT {c.name} FROM {t.name} ORDER BY {m.name} {'DESC' if desc else 'ASC'} LIMIT {k}"

    def _group_table(self):
        t = self.pick([t for t in self.db.tables if self.cols(t, CATEGORY_KINDS)])
        return (t, self.pick(self.cols(t, CATEGORY_KINDS))) if t else (None, None)

    def group_count(self):
        t, g = self._group_table()
        if t is None:
            return None
        q = self.pick([f"How many {t.plural} are there for each {g.label}?",
                       f"For each {g.label}, how many {t.plural} are there?",
                       f"Count the {t.plural} in each {g.label}.",
                       f"Show each {g.label} and the number of {t.plural} with that {g.label}."])
        return q, f"SELECT {g.name}, count(*) FROM {t.name} GROUP BY {g.name}"

    def group_aggregate(self):
        t, g = self._group_table()
        if t is None or not self.cols(t, NUMBER_KINDS):
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        agg, word = self.pick([("avg", "average"), ("max", "highest"), ("min", "lowest")]
                              + ([("sum", "total")] if m.kind in ADDITIVE_KINDS else []))
        q = self.pick([f"What is the {word} {m.label} of the {t.plural} for each {g.label}?",
                       f"For each {g.label}, what is the {word} {m.label} of the {t.plural}?",
                       f"Show the {word} {m.label} of {t.plural} grouped by {g.label}."])
        return q, f"SELECT {g.name}, {agg}({m.name}) FROM {t.name} GROUP BY {g.name}"

    def group_having(self):
        t, g = self._group_table()
        if t is None:
            return None
        counts = sorted(r[0] for r in self.run(f"SELECT count(*) FROM {t.name} GROUP BY {g.name}"))
        if len(counts) < 2:
            return None
        n = counts[len(counts) // 2 - 1] if self.rng.random() < 0.5 else counts[len(counts) // 2]
        n = max(n, 2)  # "more than 1 lines" reads badly
        gp = plural(g.label)
        if self.rng.random() < 0.5:
            q = self.pick([f"Which {gp} have more than {n} {t.plural}?", f"List the {gp} with more than {n} {t.plural}.",
                           f"Find the {gp} that have more than {n} {t.plural}."])
            return q, f"SELECT {g.name} FROM {t.name} GROUP BY {g.name} HAVING count(*) > {n}"
        q = self.pick([f"Which {gp} have at least {n} {t.plural}?", f"List the {gp} with at least {n} {t.plural}.",
                       f"Find the {gp} that have {n} or more {t.plural}."])
        return q, f"SELECT {g.name} FROM {t.name} GROUP BY {g.name} HAVING count(*) >= {n}"

    def group_superlative(self):
        t, g = self._group_table()
        if t is None:
            return None
        top = self.run(f"SELECT count(*) FROM {t.name} GROUP BY {g.name} ORDER BY count(*) DESC LIMIT 2")
        if len(top) < 2 or top[0][0] == top[1][0]:
            return None
        q = self.pick([f"Which {g.label} has the most {t.plural}?",
                       f"What is the {g.label} with the largest number of {t.plural}?",
                       f"Find the {g.label} that has the most {t.plural}.",
                       f"Which {g.label} is the most common among the {t.plural}?"])
        return q, f"SELECT {g.name} FROM {t.name} GROUP BY {g.name} ORDER BY count(*) DESC LIMIT 1"

    def join_list(self):
        link = self.join()
        if link is None:
            return None
        child, fk, parent = link
        c, p = self.shown(child), self.name_col(parent) or self.shown(parent)
        if c is None or p is None:
            return None
        q = self.pick([f"List the {c.label} of each {child.singular} together with the {p.label} of its {parent.singular}.",
                       f"For every {child.singular}, show its {c.label} and the {p.label} of the {parent.singular}.",
                       f"Show the {plural(c.label)} of all {child.plural} and the {plural(p.label)} of their "
                       f"{parent.plural}."])
        return q, f"SELECT T1.{c.name}, T2.{p.name} FROM {self.on(child, fk, parent)}"

    def join_filter(self):
        link = self.join()
        if link is None:
            return None
        child, fk, parent = link
        name = self.name_col(parent)
        count = self.rng.random() < 0.35
        c = self.shown(child)
        if c is None and not count:
            return None
        if name is not None and self.rng.random() < 0.5:  # "books written by Ana Silva"
            v = self.pick([r[name.name] for r in self.db.rows[parent.name]])
            where, about = f"T2.{name.name} = {sql_value(v)}", f"{fk.rel} the {parent.singular} {v}"
            if parent.person or name.kind == "person":
                about = f"{fk.rel} {v}"
        else:
            cond = self.condition(parent, prefix="T2.")
            if cond is None:
                return None
            where, about = cond[0], f"{fk.rel} {parent.plural} {self.pick(cond[1])}"
        if count:
            q = self.pick([f"How many {child.plural} {about} are there?", f"Count the {child.plural} {about}.",
                           f"What is the number of {child.plural} {about}?"])
            return q, f"SELECT count(*) FROM {self.on(child, fk, parent)} WHERE {where}"
        q = self.pick([f"What are the {plural(c.label)} of the {child.plural} {about}?",
                       f"List the {plural(c.label)} of all {child.plural} {about}.",
                       f"Show the {c.label} of each {child.singular} {about}."])
        return q, f"SELECT T1.{c.name} FROM {self.on(child, fk, parent)} WHERE {where}"

    def named_join(self) -> Optional[tuple[Tab, Col, Tab, Col]]:
        """A join whose parent has a name column to show."""
        link = self.join()
        name = self.name_col(link[2]) if link else None
        return (*link, name) if name is not None else None

    def join_group(self):
        if (found := self.named_join()) is None:
            return None
        child, fk, parent, p = found
        q = self.pick([f"For each {parent.singular}, list its {p.label} and the number of {child.plural}.",
                       f"How many {child.plural} does each {parent.singular} have? Show the {p.label} and the count.",
                       f"Show the {p.label} of every {parent.singular} along with how many {child.plural} it has."])
        return q, f"SELECT T2.{p.name}, count(*) FROM {self.on(child, fk, parent)} GROUP BY T1.{fk.name}"

    def join_superlative(self):
        if (found := self.named_join()) is None:
            return None
        child, fk, parent, p = found
        top = self.run(f"SELECT count(*) FROM {child.name} GROUP BY {fk.name} ORDER BY count(*) DESC LIMIT 2")
        if len(top) < 2 or top[0][0] == top[1][0]:
            return None
        if self.rng.random() < 0.5:
            q = self.pick([f"Which {parent.singular} has the most {child.plural}? Give its {p.label}.",
                           f"What is the {p.label} of the {parent.singular} with the most {child.plural}?",
                           f"Find the {p.label} of the {parent.singular} that has the largest number of {child.plural}."])
            return q, (f"SELECT T2.{p.name} FROM {self.on(child, fk, parent)} GROUP BY T1.{fk.name} "
                       f"ORDER BY count(*) DESC LIMIT 1")
        counts = sorted(r[0] for r in self.run(f"SELECT count(*) FROM {child.name} GROUP BY {fk.name}"))
        n = max(counts[len(counts) // 2], 2)
        q = self.pick([f"Which {parent.plural} have at least {n} {child.plural}? List their {plural(p.label)}.",
                       f"Find the {plural(p.label)} of the {parent.plural} with {n} or more {child.plural}.",
                       f"What are the {plural(p.label)} of {parent.plural} that have at least {n} {child.plural}?"])
        return q, (f"SELECT T2.{p.name} FROM {self.on(child, fk, parent)} GROUP BY T1.{fk.name} "
                   f"HAVING count(*) >= {n}")

    def join_ordered(self):
        link = self.join()
        if link is None or not self.cols(link[0], NUMBER_KINDS | TIME_KINDS):
            return None
        child, fk, parent = link
        m = self.pick(self.cols(child, NUMBER_KINDS | TIME_KINDS))
        c = self.shown(child, avoid=m)
        cond = self.condition(parent, prefix="T2.")
        if c is None or cond is None:
            return None
        about = f"{fk.rel} {parent.plural} {self.pick(cond[1])}"
        desc = self.rng.random() < 0.6
        order = "from highest to lowest" if desc else "from lowest to highest"
        q = self.pick([f"List the {plural(c.label)} of the {child.plural} {about}, ordered by {m.label} {order}.",
                       f"Show the {c.label} of each {child.singular} {about}, sorted by {m.label} "
                       f"{'in descending order' if desc else 'in ascending order'}."])
        return q, (f"SELECT T1.{c.name} FROM {self.on(child, fk, parent)} WHERE {cond[0]} ORDER BY T1.{m.name} "
                   f"{'DESC' if desc else 'ASC'}")

    def above_average(self):
        t = self.pick([t for t in self.db.tables if self.cols(t, NUMBER_KINDS)])
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS))
        c = self.shown(t, avoid=m)
        if c is None:
            return None
        above = self.rng.random() < 0.6
        word, op = ("above", ">") if above else ("below", "<")
        cp = plural(c.label)
        q = self.pick([f"Which {t.plural} have {a(m.label)} {word} the average? List their {cp}.",
                       f"List the {cp} of the {t.plural} whose {m.label} is {word} the average {m.label}.",
                       f"Find the {cp} of all {t.plural} with {a(m.label)} {word} average."])
        return q, f"SELECT {c.name} FROM {t.name} WHERE {m.name} {op} (SELECT avg({m.name}) FROM {t.name})"

    def without_children(self):
        link = self.join()
        if link is None:
            return None
        child, fk, parent = link
        p = self.name_col(parent) or self.shown(parent)
        if p is None:
            return None
        pp = plural(p.label)
        if self.rng.random() < 0.3:
            q = self.pick([f"How many {parent.plural} have no {child.plural}?",
                           f"Count the {parent.plural} that do not have any {child.plural}."])
            return q, (f"SELECT count(*) FROM {parent.name} WHERE {parent.pk} NOT IN "
                       f"(SELECT {fk.name} FROM {child.name})")
        q = self.pick([f"Which {parent.plural} have no {child.plural}? Give their {pp}.",
                       f"List the {pp} of {parent.plural} that do not have any {child.plural}.",
                       f"Find the {pp} of the {parent.plural} without any {child.plural}."])
        return q, f"SELECT {p.name} FROM {parent.name} WHERE {parent.pk} NOT IN (SELECT {fk.name} FROM {child.name})"

    def set_operation(self):
        t, g = self._group_table()
        if t is None:
            return None
        a = self.condition(t, exclude=[g])
        b = self.condition(t, exclude=[g])
        if a is None or b is None or a[0] == b[0]:
            return None
        gp = plural(g.label)
        if self.rng.random() < 0.5:
            q = self.pick([f"Which {gp} have both {t.plural} {self.pick(a[1])} and {t.plural} {self.pick(b[1])}?",
                           f"Find the {gp} that have some {t.plural} {self.pick(a[1])} and also some {t.plural} "
                           f"{self.pick(b[1])}."])
            return q, f"SELECT {g.name} FROM {t.name} WHERE {a[0]} INTERSECT SELECT {g.name} FROM {t.name} WHERE {b[0]}"
        q = self.pick([f"Which {gp} have {t.plural} {self.pick(a[1])} but no {t.plural} {self.pick(b[1])}?",
                       f"Find the {gp} with {t.plural} {self.pick(a[1])}, excluding those with {t.plural} "
                       f"{self.pick(b[1])}."])
        return q, f"SELECT {g.name} FROM {t.name} WHERE {a[0]} EXCEPT SELECT {g.name} FROM {t.name} WHERE {b[0]}"

    def like(self):
        t = self.pick([t for t in self.db.tables if self.cols(t, ("person", "title", "company", "unique"))])
        if t is None:
            return None
        c = self.pick(self.cols(t, ("person", "title", "company", "unique")))
        word = self.pick(self.pick(self.values(t, c)).split())
        if len(word) < 3:
            return None
        out = self.shown(t) or c
        q = self.pick([f"Which {t.plural} have '{word}' in their {c.label}? List their {plural(out.label)}.",
                       f"Find the {plural(out.label)} of the {t.plural} whose {c.label} contains '{word}'.",
                       f"List the {plural(out.label)} of all {t.plural} with {a(c.label)} containing '{word}'."])
        return q, f"SELECT {out.name} FROM {t.name} WHERE {c.name} LIKE '%{word}%'"

    def between(self):
        t = self.pick([t for t in self.db.tables if self.cols(t, NUMBER_KINDS | {"year"})])
        if t is None:
            return None
        m = self.pick(self.cols(t, NUMBER_KINDS | {"year"}))
        c = self.shown(t, avoid=m)
        lo, hi = sorted([self.threshold(t, m), self.threshold(t, m)])
        if c is None or lo == hi:
            return None
        q = self.pick([f"List the {plural(c.label)} of {t.plural} whose {m.label} is between {say(lo)} and {say(hi)}.",
                       f"Which {t.plural} have {a(m.label)} between {say(lo)} and {say(hi)}? Give their "
                       f"{plural(c.label)}.",
                       f"Find the {plural(c.label)} of the {t.plural} with {a(m.label)} from {say(lo)} to {say(hi)}."])
        return q, f"SELECT {c.name} FROM {t.name} WHERE {m.name} BETWEEN {sql_value(lo)} AND {sql_value(hi)}"


# pattern -> weight: tuned so that the levels come out near Spider's mix (about 1/4 easy, 2/5 medium)
PATTERNS: dict[str, float] = {
    "count_all": 0.3, "list_column": 0.4, "list_two": 0.7, "distinct": 0.5, "filtered": 1.6, "filtered_two": 1.4,
    "aggregate": 0.6, "aggregate_filtered": 0.9, "ordered": 0.6, "superlative": 1.3, "group_count": 0.8,
    "group_aggregate": 0.7, "group_having": 0.7, "group_superlative": 0.9, "join_list": 0.5, "join_filter": 1.6,
    "join_group": 0.8, "join_superlative": 1.5, "above_average": 0.9, "without_children": 1.0,
    "set_operation": 1.2, "like": 0.4, "between": 0.4, "join_ordered": 1.0,
}


@lru_cache(maxsize=4096)
def _difficulty_of_shape(shape: str) -> str:
    return sql_difficulty(shape) or "extra"


def difficulty(sql: str) -> str:
    """The level of a generated query, computed once per shape (names and values blanked)."""
    shape = re.sub(r"'(?:[^']|'')*'", "'v'", sql)
    shape = re.sub(r"\b(?!(?:count|avg|max|min|sum)\b)[a-z_][a-z0-9_]*\b", "c", shape)
    return _difficulty_of_shape(re.sub(r"\b\d+(\.\d+)?\b", "0", shape))


def databases_plan(num_databases: int, seed: int) -> list[tuple[str, str, int]]:
    """(db_id, domain, variant) for each database: every domain once, then variants in a seeded order."""
    names = list(D.DOMAINS)
    plan = []
    for i in range(num_databases):
        domain, variant = names[i % len(names)], i // len(names)
        plan.append((f"{domain}_{variant + 1}", domain, variant))
    return plan


def generate_dataset(out_dir: Union[str, Path], num_databases: int = 50, num_questions: int = 5000,
                     seed: int = 42, write: bool = True) -> list[SQLExample]:
    """Build `num_databases` SQLite databases under out_dir/database/<db_id>/<db_id>.sqlite and
    `num_questions` questions about them (also written to out_dir/questions.json, Spider layout)."""
    out_dir = Path(out_dir)
    plan = databases_plan(num_databases, seed)
    parsed = {name: parse_domain(text) for name, text in D.DOMAINS.items()}
    names, weights = list(PATTERNS), list(PATTERNS.values())
    examples: list[SQLExample] = []
    per_db = [num_questions // num_databases + (i < num_questions % num_databases) for i in range(num_databases)]
    with tqdm(total=num_questions, desc="generating questions", unit="question", mininterval=0.5, leave=False) as bar:
        for (db_id, domain, variant), quota in zip(plan, per_db):
            rng = random.Random(f"{seed}/{db_id}")
            db = build_database(db_id, _instance(domain, parsed[domain], rng, variant), rng)
            db_path = (out_dir / "database" / db_id / f"{db_id}.sqlite").resolve()
            if write:
                db_path.parent.mkdir(parents=True, exist_ok=True)
                if db_path.exists():
                    db_path.unlink()
                disk = sqlite3.connect(db_path)
                db.conn.backup(disk)
                disk.close()
            asker, seen, attempts = Asker(db, rng), set(), 0
            while len(seen) < quota and attempts < quota * 30:
                attempts += 1
                made = getattr(asker, rng.choices(names, weights)[0])()
                if made is None or made[0] in seen:
                    continue
                question, sql = made
                try:
                    rows = asker.run(sql)
                except sqlite3.Error as e:  # a bug in a pattern, never the data: fail loudly
                    raise RuntimeError(f"generated SQL does not run on {db_id}: {sql} ({e})") from e
                if not rows or rows == [(0,)] or rows == [(None,)]:
                    continue  # an empty answer teaches nothing
                seen.add(question)
                examples.append(SQLExample(question[0].upper() + question[1:], sql, "generated", db_id=db_id,
                                           db_path=str(db_path), difficulty=difficulty(sql), index=len(examples),
                                           verified=True, extra={"domain": domain}))
                bar.update(1)
            db.conn.close()
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        records = [{"db_id": e.db_id, "question": e.question, "query": e.sql, "difficulty": e.difficulty}
                   for e in examples]
        (out_dir / "questions.json").write_text(json.dumps(records, indent=1, ensure_ascii=False))
    return examples
