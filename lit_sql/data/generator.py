"""The embedded dataset: SQLite databases across many domains and English questions with gold SQL.

`generate_dataset` builds each database from a domain of `lit_sql.data.domains`: a random subset of its optional
columns and leaf tables, some categories moved into lookup tables of their own, names written in one of several
styles (snake_case or CamelCase, abbreviated or not, `id` or `<table>_id` keys, foreign keys declared or not), and
realistic rows. Then `lit_sql.data.questions` asks questions of it in the SQL shapes Spider asks, in varied words,
until the levels of Spider's difficulty labeller (`lit_sql.sql.metrics.sql_difficulty`) come out in Spider's
proportions (`LEVEL_SHARES`). Every gold query runs on its database, and returns rows, before it is kept. The
same seed gives the same databases and questions.
"""

from __future__ import annotations

import datetime
import json
import math
import random
import re
import sqlite3
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

from tqdm import tqdm

from lit_sql.data import domains as D
from lit_sql.data.questions import Asker, _plural_word, plural
from lit_sql.data.sources import SQLExample
from lit_sql.sql.metrics import DIFFICULTY_LEVELS, sql_difficulty

TEXT_KINDS = {"person", "title", "company", "city", "country", "pick", "flag", "unique"}
LOOKUP_KINDS = ("pick", "city", "country")  # categories a database may keep in a table of their own
PK = "#pk"  # the key of a row's primary key in Database.rows (no column is named so)

# Spider's mix of levels (train split): what the generated questions are drawn to match.
LEVEL_SHARES = {"easy": 0.25, "medium": 0.40, "hard": 0.17, "extra": 0.17}

# level -> {shape: weight}: the shapes drawn for a question meant to be of that level. A shape's SQL is labelled
# by `sql_difficulty` and kept while its level still has room, so a shape listed under one level may also fill
# another (an optional WHERE or a second column moves some queries up a level).
LEVEL_PLAN: dict[str, dict[str, float]] = {
    "easy": {"count_all": 0.8, "list_column": 0.8, "distinct_values": 0.6, "count_distinct": 0.5, "filtered": 2.5,
             "filtered_count": 1.2, "between": 0.8, "aggregate": 1.5, "ordered": 1.0, "group_having": 0.5,
             "from_subquery": 0.3},
    "medium": {"list_columns": 1.0, "filtered_two": 1.5, "like": 1.0, "aggregates": 1.0, "top_k": 1.5,
               "ordered_two_keys": 0.4, "group_count": 1.0, "group_aggregate": 1.0, "group_having": 0.6,
               "group_ordered": 0.4, "join_list": 0.8, "join_filter": 2.0, "parent_by_child": 1.0, "join_group": 1.2,
               "join_having": 1.0, "bridge_list": 0.6},
    "hard": {"above_average": 1.0, "extreme_nested": 0.7, "set_single": 1.2, "without_children": 1.0,
             "in_subquery": 0.8, "group_top": 1.0, "top_filtered": 1.0, "join_ordered": 1.0, "path_filter": 2.5,
             "having_nested": 0.6, "bridge_not_in": 0.8, "bridge_group": 0.6},
    "extra": {"join_top": 2.0, "path_filter": 1.5, "join_top_filtered": 1.0, "join_set": 1.0, "bridge_set": 1.0,
              "bridge_top": 1.0, "without_children": 0.6, "join_above_average": 0.8, "group_filtered_top": 0.8,
              "above_average": 0.4, "having_nested": 0.4},
}


# ---- the domain language -----------------------------------------------------------------------------------
@dataclass
class Col:
    name: str  # the logical name, as the domain writes it
    kind: str
    args: list[str]
    labels: list[str]  # what questions call it: the usual word first, then synonyms
    optional: bool = False
    ref: Optional[str] = None  # fk: the parent table
    rels: list[str] = field(default_factory=lambda: ["of"])  # fk: how a child relates to its parent in a question
    sql: str = ""  # the name in this database's style

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def sql_type(self) -> str:
        if self.kind in TEXT_KINDS or self.kind == "date":
            return "TEXT"
        return "REAL" if self.kind in ("money", "real") else "INTEGER"


@dataclass
class Tab:
    name: str  # logical
    singular: str
    plural: str
    person: bool
    cols: list[Col]
    verbs: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # a bridge: (from, to) -> phrases
    plain_names: bool = False  # a lookup of cities or countries: "from Lyon", not "from the city Lyon"
    sql: str = ""  # the name in this database's style
    pk: str = ""  # the primary key's name in this database's style


def parse_domain(text: str) -> list[Tab]:
    tables: list[Tab] = []
    for line in filter(None, (l.strip() for l in text.strip().splitlines())):
        if line.startswith("~"):  # how a bridge links its two parents
            for part in line[1:].split(";"):
                m = re.fullmatch(r'\s*(\w+)\s+"([^"]+)"\s+(\w+)\s*', part)
                tables[-1].verbs[(m.group(1), m.group(3))] = m.group(2).split("|")
            continue
        head, _, body = line.partition(":")
        m = re.fullmatch(r"(\w+)\(([^)]*)\)(\*?)", head.strip())
        name, nouns, person = m.group(1), m.group(2), bool(m.group(3))
        singular, _, plural_ = nouns.rpartition("/")
        cols = []
        for spec in re.findall(r'(?:[^,"{]|"[^"]*"|\{[^}]*\})+', body):
            spec = spec.strip()
            label = re.search(r'"([^"]*)"', spec)
            words = label.group(1).split("|") if label else None
            spec_wo = re.sub(r'"[^"]*"', "", spec).strip()
            optional = spec_wo.startswith("?")
            col_name, _, rest = spec_wo.lstrip("?").partition(":")
            kind, *args = rest.split(None, 1)
            args = args[0].strip("{} ").split("|") if args and "{" in args[0] else (args[0].split() if args else [])
            if kind == "pick" and sorted(args) == ["no", "yes"]:
                kind = "flag"  # a yes/no column: a condition, never a group ("for each vegetarian")
            if kind == "fk":
                cols.append(Col(col_name, "fk", [], [col_name], optional, ref=args[0], rels=words or ["of"]))
            else:
                cols.append(Col(col_name, kind, args, words or [col_name.replace("_", " ")], optional))
        tables.append(Tab(name, singular or name.replace("_", " "), plural_ or name.replace("_", " ") + "s",
                          person, cols))
    return tables


# ---- schema styles -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Style:
    """How one database names things. Spider's databases differ in all of these."""
    case: str = "snake"  # snake (dept_name), camel (DeptName) or title (Dept_Name)
    plural_tables: bool = False  # `books` rather than `book`
    short_pk: bool = False  # every key named `id` rather than `<table>_id`
    declare_fks: bool = True  # FOREIGN KEY clauses in the DDL (many real databases have none)
    abbreviate: float = 0.0  # the share of abbreviable words written short (`dept`, `emp`, `qty`)
    prefix_names: bool = False  # name and title columns carry their table's name: `dept_name`
    sql_types: bool = False  # VARCHAR/INT/DECIMAL/DATE instead of SQLite's TEXT/INTEGER/REAL
    value_case: str = "as is"  # how category values are stored: as is, lower, title or upper


def draw_style(rng: random.Random) -> Style:
    return Style(case=rng.choices(["snake", "camel", "title"], [0.5, 0.3, 0.2])[0],
                 plural_tables=rng.random() < 0.3, short_pk=rng.random() < 0.4, declare_fks=rng.random() < 0.7,
                 abbreviate=rng.choices([0.0, 0.5, 1.0], [0.55, 0.3, 0.15])[0], prefix_names=rng.random() < 0.25,
                 sql_types=rng.random() < 0.35,
                 value_case=rng.choices(["as is", "lower", "title", "upper"], [0.7, 0.15, 0.1, 0.05])[0])


def _render(words: list[str], case: str) -> str:
    if case == "snake":
        return "_".join(w.lower() for w in words)
    cap = ["ID" if w == "id" else w[:1].upper() + w[1:] for w in words]
    return "".join(cap) if case == "camel" else "_".join(cap)


def apply_style(tables: list[Tab], style: Style, rng: random.Random) -> None:
    """Give every table and column its name in this database (`sql`, `pk`)."""
    short = {w: s for w, s in sorted(D.ABBREVIATIONS.items()) if rng.random() < style.abbreviate}

    def name(words: list[str], abbreviate: bool = True) -> str:
        if abbreviate and len(words) > 1:  # `dept_id`, never a lone `nm`
            words = [short.get(w, w) for w in words]
        text = _render(words, style.case)
        return text if text.lower() not in D.RESERVED else _render(words + ["value"], style.case)

    taken = set()
    for t in tables:
        words = t.name.split("_")
        t.sql = name(words[:-1] + [_plural_word(words[-1])] if style.plural_tables else words)
        if t.sql.lower() in taken:
            t.sql = name(words + ["info"])
        taken.add(t.sql.lower())
        t.pk = name(["id"] if style.short_pk else words + ["id"])
        used = {t.pk.lower()}
        for c in t.cols:
            col_words = c.name.split("_")
            if style.prefix_names and c.name in ("name", "title"):
                col_words = words + col_words
            for candidate in (name(col_words), name(col_words, abbreviate=False), name(words + col_words)):
                if candidate.lower() not in used:
                    c.sql = candidate
                    break
            used.add(c.sql.lower())


# ---- building a database -----------------------------------------------------------------------------------
@dataclass
class Database:
    db_id: str
    tables: list[Tab]
    style: Style = Style()
    rows: dict[str, list[dict]] = field(default_factory=dict)
    conn: Optional[sqlite3.Connection] = None

    def table(self, name: str) -> Tab:
        return next(t for t in self.tables if t.name == name)


def _copy(t: Tab, cols: Optional[list[Col]] = None) -> Tab:
    return replace(t, cols=[replace(c, labels=list(c.labels), rels=list(c.rels)) for c in (cols or t.cols)],
                   verbs=dict(t.verbs))


def _instance(tables: list[Tab], rng: random.Random, variant: int) -> tuple[list[Tab], dict]:
    """A variant of a domain: some optional columns and leaf tables left out, some categories moved into lookup
    tables; and the cities and countries its rows draw from."""
    pools = {"city": rng.sample(D.CITIES, rng.randint(5, 8)), "country": rng.sample(D.COUNTRIES, rng.randint(4, 7))}
    kept = [_copy(t) for t in tables]
    if variant > 0:
        referenced = {c.ref for t in kept for c in t.cols if c.ref}
        leaves = [t for t in kept if t.name not in referenced and any(c.ref for c in t.cols)]
        if len(kept) > 3 and leaves and rng.random() < 0.5:
            kept.remove(rng.choice(leaves))
        names = {t.name for t in kept}
        kept = [_copy(t, [c for c in t.cols if (c.ref is None or c.ref in names)
                          and not (c.optional and rng.random() < 0.5)]) for t in kept]
        for t in kept:  # a bridge verb needs both its tables
            t.verbs = {k: v for k, v in t.verbs.items() if k[0] in names and k[1] in names}
    if rng.random() < 0.45:
        kept = _add_lookups(kept, rng, pools)
    _drop_ambiguous_synonyms(kept)
    return kept, pools


def _add_lookups(tables: list[Tab], rng: random.Random, pools: dict) -> list[Tab]:
    """Move one to four category columns into tables of their own (`genre(id, name)` and `book.genre_id`), as
    normalised schemas do: the same question then needs a join."""
    names = {t.name for t in tables}
    candidates = sorted({c.name for t in tables for c in t.cols if c.kind in LOOKUP_KINDS} - names)
    room = 15 - len(tables)
    chosen = rng.sample(candidates, min(len(candidates), rng.randint(1, 4), room)) if room > 0 else []
    lookups = []
    for col_name in chosen:
        users = [(t, c) for t in tables for c in t.cols if c.name == col_name]
        kind, label = users[0][1].kind, col_name.replace("_", " ")
        values = sorted(pools[kind]) if kind in pools else sorted({v for _, c in users for v in c.args})
        lookups.append(Tab(col_name, label, plural(label), False,
                           [Col("name", "unique", values, ["name", f"{label} name"])], plain_names=kind in pools))
        for t, c in users:
            rel = ("from" if t.person else "in") if kind == "city" else ("from" if kind == "country" else "with")
            t.cols[t.cols.index(c)] = Col(f"{col_name}_id", "fk", [], [f"{col_name}_id"], ref=col_name, rels=[rel])
    return lookups + tables  # parents come before the tables that point at them


def _drop_ambiguous_synonyms(tables: list[Tab]) -> None:
    """A synonym may not be another column's word in the same table ("score" for a rating next to a score)."""
    for t in tables:
        for c in t.cols:
            generic = D.LABEL_SYNONYMS.get(c.label, []) + (["name"] if c.kind == "title" else [])
            others = {w for o in t.cols if o is not c for w in o.labels}
            c.labels = list(dict.fromkeys([c.labels[0]] + [w for w in c.labels[1:] + generic if w not in others]))


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
        elif k in ("pick", "flag"):
            return rng.choice(a)
        elif k in ("int", "year"):
            return rng.randint(int(a[0]), int(a[1]))
        elif k in ("qty", "money", "real"):
            lo, hi = float(a[0]), float(a[1])
            wide = hi / max(lo, 1) > 20  # prices, sales: spread over orders of magnitude
            x = math.exp(rng.uniform(math.log(max(lo, 1)), math.log(hi))) if wide else rng.uniform(lo, hi)
            if k == "qty":
                return int(round(x))
            if k == "real":
                return round(x, 1) if hi > 2 else round(x, 2)
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


def _styled_value(v: str, case: str) -> str:
    return {"lower": v.lower(), "upper": v.upper(), "title": v.title()}.get(case, v)


def _declared_type(c: Col, style: Style) -> str:
    if c.kind == "fk":
        return "INT" if style.sql_types else "INTEGER"
    if not style.sql_types:
        return c.sql_type
    if c.kind == "date":
        return "DATE"
    if c.kind in TEXT_KINDS:
        return f"VARCHAR({max(20, 5 * (max(map(len, c.args), default=20) // 5 + 4))})"
    return {"money": "DECIMAL(12,2)", "real": "FLOAT"}.get(c.kind, "INT")


def build_database(db_id: str, tables: list[Tab], rng: random.Random, style: Style = Style(),
                   pools: Optional[dict] = None) -> Database:
    apply_style(tables, style, rng)
    db = Database(db_id, tables, style)
    pools = pools or {"city": rng.sample(D.CITIES, 6), "country": rng.sample(D.COUNTRIES, 5)}
    conn = sqlite3.connect(":memory:")
    for t in tables:  # parents come before their children in every domain
        lines = [f"  {t.pk} INTEGER PRIMARY KEY"] + [f"  {c.sql} {_declared_type(c, style)}" for c in t.cols]
        if style.declare_fks:
            lines += [f"  FOREIGN KEY ({c.sql}) REFERENCES {db.table(c.ref).sql}({db.table(c.ref).pk})"
                      for c in t.cols if c.kind == "fk"]
        conn.execute(f"CREATE TABLE {t.sql} (\n" + ",\n".join(lines) + "\n)")
        unique = next((c for c in t.cols if c.kind == "unique"), None)
        has_fk = any(c.kind == "fk" for c in t.cols)
        n = rng.randint(25, 60) if has_fk else rng.randint(8, 20)
        if unique is not None:
            n = min(n, len(unique.args), rng.randint(6, 12) if not has_fk else n)
        if t.plain_names or (unique is not None and len(t.cols) == 1):
            n = len(unique.args)  # a lookup table lists every category
        uniques = {c.name: rng.sample(c.args, len(c.args)) for c in t.cols if c.kind == "unique"}
        # some parents get no children, so that "which X have no Y" has answers
        active = {c.name: rng.sample(range(1, len(db.rows[c.ref]) + 1), max(1, int(len(db.rows[c.ref]) * 0.8)))
                  for c in t.cols if c.kind == "fk"}
        used: dict[str, set] = {c.name: set() for c in t.cols}
        rows = []
        for i in range(min(n, *(len(v) for v in uniques.values())) if uniques else n):
            row = {PK: i + 1}
            for c in t.cols:
                if c.kind == "unique":
                    row[c.name] = uniques[c.name][i]
                elif c.kind == "fk":
                    row[c.name] = rng.choice(active[c.name])
                else:
                    row[c.name] = _value(c, rng, pools, used[c.name])
                if c.kind == "pick" or (c.kind == "unique" and len(t.cols) == 1 and not t.plain_names):
                    row[c.name] = _styled_value(row[c.name], style.value_case)
            rows.append(row)
        db.rows[t.name] = rows
        names = [PK] + [c.name for c in t.cols]
        conn.executemany(f"INSERT INTO {t.sql} VALUES ({', '.join('?' * len(names))})",
                         [tuple(r[n] for n in names) for r in rows])
    conn.commit()  # an open write transaction would make Connection.backup() wait forever
    db.conn = conn
    return db


# ---- labelling ---------------------------------------------------------------------------------------------
_KEPT_WORDS = {"SELECT", "DISTINCT", "FROM", "AS", "JOIN", "ON", "WHERE", "AND", "OR", "NOT", "IN", "LIKE",
               "BETWEEN", "GROUP", "BY", "HAVING", "ORDER", "ASC", "DESC", "LIMIT", "INTERSECT", "UNION", "EXCEPT",
               "IS", "NULL", "count", "avg", "max", "min", "sum"}


@lru_cache(maxsize=8192)
def _difficulty_of_shape(shape: str) -> Optional[str]:
    return sql_difficulty(shape)


def difficulty(sql: str) -> Optional[str]:
    """The level of a generated query, computed once per shape (names and values blanked): the labeller parses
    each shape once rather than each of thousands of queries."""
    shape = re.sub(r"'(?:[^']|'')*'", "'v'", sql)
    shape = re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", lambda m: m.group(0) if m.group(0) in _KEPT_WORDS else "c", shape)
    return _difficulty_of_shape(re.sub(r"\b\d+(\.\d+)?\b", "0", shape))


# ---- the dataset -------------------------------------------------------------------------------------------
def databases_plan(num_databases: int, seed: int) -> list[tuple[str, str, int]]:
    """(db_id, domain, variant) for each database: every domain once, then second variants, and so on."""
    names = list(D.DOMAINS)
    return [(f"{names[i % len(names)]}_{i // len(names) + 1}", names[i % len(names)], i // len(names))
            for i in range(num_databases)]


def _level_targets(total: int) -> dict[str, int]:
    """How many of `total` questions each level gets: Spider's shares, rounded by largest remainder."""
    norm = sum(LEVEL_SHARES.values())
    exact = {lv: total * LEVEL_SHARES[lv] / norm for lv in DIFFICULTY_LEVELS}
    out = {lv: int(x) for lv, x in exact.items()}
    for lv in sorted(exact, key=lambda lv: out[lv] - exact[lv])[:total - sum(out.values())]:
        out[lv] += 1
    return out


def _answers(rows: list[tuple]) -> bool:
    """Whether a result teaches something: some row, not only zeros from a count, not only NULLs."""
    return bool(rows) and rows != [(0,)] and any(v is not None for row in rows for v in row)


def ask_database(db: Database, rng: random.Random, wanted: dict[str, int]) -> list[tuple[str, str, str]]:
    """(question, sql, level) for one database, as many of each level as `wanted` asks for where the database
    allows: no question twice, at most two wordings of one query."""
    asker, seen, per_sql, out = Asker(db, rng), set(), {}, []
    want = dict(wanted)
    for _ in range(60 * sum(want.values())):
        open_levels = [lv for lv in DIFFICULTY_LEVELS if want[lv] > 0]
        if not open_levels:
            break
        level = rng.choices(open_levels, [want[lv] for lv in open_levels])[0]
        shapes = LEVEL_PLAN[level]
        made = asker.ask(rng.choices(list(shapes), list(shapes.values()))[0])
        if made is None or made[0] in seen or per_sql.get(made[1], 0) >= 2:
            continue
        question, sql = made
        got = difficulty(sql)
        if got is None:
            raise RuntimeError(f"generated SQL does not parse: {sql}")
        if want.get(got, 0) <= 0:
            continue
        try:
            rows = asker.run(sql)
        except sqlite3.Error as e:  # a bug in a shape, never the data: fail loudly
            raise RuntimeError(f"generated SQL does not run on {db.db_id}: {sql} ({e})") from e
        if not _answers(rows):
            continue
        seen.add(question)
        per_sql[sql] = per_sql.get(sql, 0) + 1
        want[got] -= 1
        out.append((question, sql, got))
    return out


def generate_dataset(out_dir: Union[str, Path], num_databases: int = 100, num_questions: int = 10000,
                     seed: int = 42, write: bool = True) -> list[SQLExample]:
    """Build `num_databases` SQLite databases under out_dir/database/<db_id>/<db_id>.sqlite and
    `num_questions` questions about them (also written to out_dir/questions.json, Spider layout), their levels in
    Spider's proportions."""
    out_dir = Path(out_dir)
    plan = databases_plan(num_databases, seed)
    parsed = {name: parse_domain(text) for name, text in D.DOMAINS.items()}
    examples: list[SQLExample] = []
    per_db = [num_questions // num_databases + (i < num_questions % num_databases) for i in range(num_databases)]
    done = {lv: 0 for lv in DIFFICULTY_LEVELS}
    with tqdm(total=num_questions, desc="generating questions", unit="question", mininterval=0.5, leave=False) as bar:
        for i, ((db_id, domain, variant), quota) in enumerate(zip(plan, per_db)):
            rng = random.Random(f"{seed}/{db_id}")
            tables, pools = _instance(parsed[domain], rng, variant)
            db = build_database(db_id, tables, rng, draw_style(rng), pools)
            db_path = (out_dir / "database" / db_id / f"{db_id}.sqlite").resolve()
            if write:
                db_path.parent.mkdir(parents=True, exist_ok=True)
                if db_path.exists():
                    db_path.unlink()
                disk = sqlite3.connect(db_path)
                db.conn.backup(disk)
                disk.close()
            # each database asks for what keeps the running mix on target, so a database that cannot ask some
            # level (no bridge table, say) leaves it to the next ones
            target = _level_targets(sum(per_db[:i + 1]))
            wanted = {lv: max(0, target[lv] - done[lv]) for lv in DIFFICULTY_LEVELS}
            while sum(wanted.values()) > 2 * quota:
                wanted[max(wanted, key=wanted.get)] -= 1
            for question, sql, level in ask_database(db, rng, wanted):
                done[level] += 1
                examples.append(SQLExample(question, sql, "generated", db_id=db_id, db_path=str(db_path),
                                           difficulty=level, index=len(examples), verified=True,
                                           extra={"domain": domain}))
                bar.update(1)
            db.conn.close()
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        records = [{"db_id": e.db_id, "question": e.question, "query": e.sql, "difficulty": e.difficulty}
                   for e in examples]
        (out_dir / "questions.json").write_text(json.dumps(records, indent=1, ensure_ascii=False))
    return examples
