"""The run query language: ``grammar/query.lark`` parsed into a tree of conditions, each
compiled to SQL with bound parameters for SQLite or PostgreSQL.

    query = parse_query("params.optimizer.lr < 0.01 and tags has 'baseline'")
    store.query_runs(query, order="-metrics.val_accuracy.max", limit=50)

Nothing from the query text is pasted into SQL: parameter keys, metric keys, layer types
and values are all bound. A bad query is one :class:`QueryError` with the line, a caret
under the column and a "did you mean" for misspelt fields (the reference is docs/compare.md,
"Query language").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Sequence, Union

from neural_dsl_tracking.errors import NeuralError
from neural_dsl_tracking.language.diagnostics import Diagnostic, Pos, Source, did_you_mean
from neural_dsl_tracking.resources import grammar_path
from neural_dsl_tracking.tracking.values import RUN_STATUSES

QUERY_GRAMMAR = "query.lark"
SOURCE_NAME = "query"
FIELDS = ("name", "experiment", "status", "tags", "start", "duration", "params", "metrics", "model")
MODEL_FIELDS = ("params", "macs", "fingerprint", "layers")
AGGREGATES = ("min", "max", "last", "mean", "count")
ORDER_OPS = ("<", "<=", ">", ">=")
NUMBER_OPS = ("=", "!=", *ORDER_OPS)
TEXT_OPS = ("=", "!=", "~")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FINGERPRINT_START = re.compile(r"[0-9a-f]{1,63}")  # shorter than a whole one: ls shows 8, show 16
MAX_DEPTH = 20
"""How deep ``not``, ``and`` and ``or`` may nest within brackets (SQLite's parser overflows
from about 30 levels of brackets)."""
MAX_CONDITIONS = 500
"""How many conditions (comparisons, words, values of ``in``) one query may hold."""
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())
_TOKEN_WORDS = {"WORD": "a word", "STRING": "a quoted string", "OP": "an operator",
                "_AND": "'and'", "_OR": "'or'", "_NOT": "'not'", "_IN": "'in'", "_NOT_IN": "'not in'",
                "_HAS": "'has'", "_AGO": "'ago'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
                "$END": "the end of the query"}


class QueryError(NeuralError):
    """A query that does not parse or names something the language does not know."""


# ---- the tree ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """What a condition looks at: ``kind`` is one of FIELDS, or ``model.<x>`` for model facts;
    ``key`` the parameter key, metric key or layer type; ``aggregate`` the metric's."""

    kind: str
    key: str | None = None
    aggregate: str | None = None


@dataclass(frozen=True)
class Literal:
    """A value: ``number`` (float), ``text`` (str), ``time`` (epoch seconds) or ``ago``
    (seconds before the moment the query runs)."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Compare:
    """``field op value``; ``op`` is one of ``= != < <= > >= ~`` or ``has``."""

    field: Field
    op: str
    value: Literal


@dataclass(frozen=True)
class Word:
    """A plain word: a part of a run's name or id, ASCII letters in any case."""

    text: str


@dataclass(frozen=True)
class Not:
    """The runs ``item`` does not match."""

    item: "Node"


@dataclass(frozen=True)
class AllOf:
    """The runs every item matches (``and``, or conditions side by side)."""

    items: tuple["Node", ...]


@dataclass(frozen=True)
class AnyOf:
    """The runs some item matches (``or``, ``in (...)``)."""

    items: tuple["Node", ...]


Node = Union[Compare, Word, Not, AllOf, AnyOf]


@dataclass(frozen=True)
class Query:
    """A parsed query: its text and its tree (None matches every run)."""

    text: str
    root: Node | None = field(default=None)

    def sql(self, dialect: str, *, now: float, crash_after: float,
            many: Callable[[str, list[Any]], bool] | None = None) -> tuple[str, list[Any]]:
        """A condition on the runs table (aliased ``r``) and its bound parameters. ``many(sql,
        args)`` says whether the rows of ``SELECT 1 FROM ... WHERE ...`` are many: a condition
        on many runs is then checked run by run (a page of runs newest first stops early), one
        on few gathers their ids first (see :class:`_Compiler`)."""
        if self.root is None:
            return "1 = 1", []
        compiler = _Compiler(dialect, now, crash_after, many)
        return f"({compiler.node(self.root)})", compiler.args

    def count_sql(self, dialect: str, *, now: float, crash_after: float) -> tuple[str, list[Any]] | None:
        """A count that need not check the runs one by one, else None (count over the runs):
        one condition on another table is counted from that table alone (its index); an
        ``and`` of two or more such conditions intersects their sets of run ids (INTERSECT),
        the other conditions of the ``and`` one more set read from the runs."""
        if isinstance(self.root, Compare):
            compiler, member = _alone(self.root, dialect, now, crash_after)
            return None if member is None else (member.count, compiler.args)
        if isinstance(self.root, AllOf):
            return _intersected(_flat_items(self.root), dialect, now, crash_after)
        return None

    def __and__(self, other: "Query") -> "Query":
        """Both queries (the dashboard's filters and its search box together)."""
        roots = tuple(q.root for q in (self, other) if q.root is not None)
        text = " and ".join(f"({q.text})" for q in (self, other) if q.root is not None)
        return Query(text, roots[0] if len(roots) == 1 else (AllOf(roots) if roots else None))


MAX_INTERSECTED = 50
"""How many sets of run ids one count intersects at most (SQLite takes 500 SELECTs in one
compound); the conditions past it are checked with the runs' other conditions."""


def _alone(node: Node, dialect: str, now: float, crash_after: float) -> tuple["_Compiler", "_Member | None"]:
    """``node`` compiled alone, and its membership when it is one condition on another table."""
    compiler = _Compiler(dialect, now, crash_after)
    where = compiler.node(node)
    alone = len(compiler.members) == 1 and compiler.members[0].condition == where
    return compiler, compiler.members[0] if alone else None


def _flat_items(node: AllOf) -> list[Node]:
    """The items of an ``and``, those of the ``and``s within it in their place."""
    return [part for item in node.items
            for part in (_flat_items(item) if isinstance(item, AllOf) else [item])]


def _intersected(items: list[Node], dialect: str, now: float,
                 crash_after: float) -> tuple[str, list[Any]] | None:
    """A count of the runs meeting every one of ``items`` as the intersection of run-id sets,
    one per condition on another table (read from its index) and one for the rest (read from
    the runs); None when fewer than two are such conditions. Ordered by run id, SQLite merges
    the sets as it reads them through indexes in that order (schema.py: the ``*_run`` indexes)
    instead of sorting them or checking every run against each condition (bench/query.py)."""
    arms: list[str] = []
    args: list[Any] = []
    rest: list[Node] = []
    for item in items:
        compiler, member = _alone(item, dialect, now, crash_after)
        if member is None or len(arms) == MAX_INTERSECTED:
            rest.append(item)
        else:
            arms.append(member.ids)
            args.extend(compiler.args)
    if len(arms) < 2:
        return None
    if rest:
        compiler = _Compiler(dialect, now, crash_after)
        arms.append(f"SELECT r.run_id FROM runs r WHERE {compiler.node(AllOf(tuple(rest)))}")
        args.extend(compiler.args)
    return f"SELECT COUNT(*) FROM ({' INTERSECT '.join(arms)} ORDER BY 1) AS found", args


def param_number(text: str) -> float | None:
    """A parameter's stored JSON text as the number the query language compares (``params.num``):
    a finite JSON number, else None (text, true/false, lists, NaN)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # a 400-digit integer
        return None
    return number if math.isfinite(number) else None


def quote(text: str) -> str:
    """``text`` as a quoted string of the language (to build a query from chosen values)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---- parsing ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _parser() -> Any:
    from lark import Lark

    return Lark(grammar_path(QUERY_GRAMMAR).read_text(encoding="utf-8"), parser="lalr",
                lexer="contextual", propagate_positions=True, maybe_placeholders=False)


def parse_query(text: str) -> Query:
    """The query ``text`` parsed and checked; blank text matches every run. A QueryError
    shows the line with a caret under the first problem."""
    if not text.strip():
        return Query(text)
    from lark.exceptions import UnexpectedInput

    source = Source(text, SOURCE_NAME)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as error:
        token = getattr(error, "token", None)
        at_end = token is not None and token.type == "$END"
        pos = source.end_pos() if at_end else Pos(error.line, error.column)
        raise _error(source, pos, _unexpected(error)) from None
    return Query(text, _Builder(source).node(tree))


def parse_order(text: str) -> tuple[Field, bool]:
    """An order: a field, ``-`` before it for descending (``-start``, ``metrics.loss.min``)."""
    source = Source(text, "order")
    stripped = text.strip()
    descending = stripped.startswith("-")
    path = stripped[1:].strip() if descending else stripped
    column = text.index(path) + 1 if path else len(text) + 1
    if not path:
        raise _error(source, Pos(1, column), "give a field to order by (e.g. -start)")
    found = _Builder(source).field_of(path, Pos(1, column, 1, column + len(path)))
    if found.kind == "tags":
        raise _error(source, Pos(1, column), "runs cannot be ordered by their tags")
    return found, descending


def _error(source: Source, pos: Pos, message: str) -> QueryError:
    return QueryError(source.render(Diagnostic(pos, message)))


def _unexpected(error: Any) -> str:
    """What the parser found, and what it expected instead."""
    token = getattr(error, "token", None)
    if token is not None and token.type == "$END":
        found = "the query ends too soon"
    elif token is not None:
        found = f"unexpected {str(token)!r}"
    else:
        char = getattr(error, "char", "")
        found = ("a quoted string is not closed" if char in ("'", '"')
                 else f"unexpected character {char!r}" if char else "unexpected input")
    expected = sorted({_TOKEN_WORDS.get(name, name) for name in (getattr(error, "expected", None) or ())
                       if not name.startswith("__")})
    if not expected:
        return found
    return f"{found}; expected " + (f"{', '.join(expected[:-1])} or {expected[-1]}" if len(expected) > 1 else expected[0])


def _pos(meta: Any) -> Pos:
    return Pos(meta.line, meta.column, meta.end_line, meta.end_column)


def _token_pos(token: Any) -> Pos:
    return Pos(token.line, token.column, token.end_line, token.end_column)


class _Builder:
    """The Lark tree of one query as checked conditions (errors point at the source)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.conditions = 0

    def fail(self, pos: Pos, message: str) -> QueryError:
        return _error(self.source, pos, message)

    def node(self, tree: Any, depth: int = 0) -> Node:
        kind = tree.data
        if depth > MAX_DEPTH:
            raise self.fail(_pos(tree.meta), f"the query nests deeper than {MAX_DEPTH} levels "
                                             "(not, and, or within brackets)")
        if kind == "or_expr":
            return AnyOf(tuple(self.node(child, depth + 1) for child in tree.children))
        if kind == "and_expr":
            return AllOf(tuple(self.node(child, depth + 1) for child in tree.children))
        if kind == "negation":
            return Not(self.node(tree.children[0], depth + 1))
        self.count(tree)
        if kind == "word":
            token = tree.children[0]
            return Word(_unquote(token) if token.type == "STRING" else str(token))
        path = tree.children[0].children[0]  # field: WORD
        target = self.field_of(str(path), _token_pos(path))
        if kind == "compare":
            return self.compare(target, str(tree.children[1]), tree.children[2],
                                _token_pos(tree.children[1]))
        if kind == "has":
            return self.compare(target, "has", tree.children[1], _pos(tree.meta))
        each = "has" if target.kind == "tags" else "="  # `in` is one of these or another
        written = "in" if kind == "member" else "not in"
        values = tree.children[1].children
        for value in values[1:]:
            self.count(value)
        either = AnyOf(tuple(self.compare(target, each, value, _pos(tree.meta), written) for value in values))
        return either if kind == "member" else Not(either)

    def count(self, tree: Any) -> None:
        """One more condition; a QueryError at ``tree`` past MAX_CONDITIONS."""
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.fail(_pos(tree.meta), f"a query holds at most {MAX_CONDITIONS} conditions")

    def field_of(self, path: str, pos: Pos) -> Field:
        parts = path.split(".")
        head, rest = parts[0], parts[1:]
        if head not in FIELDS:
            raise self.fail(pos, f"unknown field {head!r}{did_you_mean(head, FIELDS)} "
                                 f"(fields: {', '.join(FIELDS)})")
        if "" in rest:
            raise self.fail(pos, f"empty part in the field {path!r}")
        if head == "params":
            if not rest:
                raise self.fail(pos, "give the parameter's name: params.<name> (e.g. params.optimizer.lr)")
            return Field("params", ".".join(rest))
        if head == "metrics":
            return self.metric(rest, pos)
        if head == "model":
            return self.model(rest, pos)
        if rest:
            raise self.fail(pos, f"{head!r} has no parts ({path!r})")
        return Field(head)

    def metric(self, rest: list[str], pos: Pos) -> Field:
        if len(rest) < 2 or rest[-1] not in AGGREGATES:
            last = rest[-1] if rest else ""
            hint = did_you_mean(last, AGGREGATES) if len(rest) >= 2 else ""
            raise self.fail(pos, f"a metric needs a key and an aggregate: metrics.<key>."
                                 f"({'|'.join(AGGREGATES)}){hint}")
        return Field("metrics", ".".join(rest[:-1]), rest[-1])

    def model(self, rest: list[str], pos: Pos) -> Field:
        what = rest[0] if rest else ""
        if what not in MODEL_FIELDS:
            raise self.fail(pos, f"unknown model fact {what!r}{did_you_mean(what, MODEL_FIELDS)} "
                                 f"(model.params, model.macs, model.fingerprint, model.layers.<type>)")
        if what == "layers":
            if len(rest) != 2:
                raise self.fail(pos, "give the layer type: model.layers.<type> (e.g. model.layers.Conv2D)")
            self.layer_type(rest[1], pos)
            return Field("model.layers", rest[1])
        if len(rest) > 1:
            raise self.fail(pos, f"model.{what} has no parts")
        return Field(f"model.{what}")

    def layer_type(self, name: str, pos: Pos) -> None:
        """A layer type spelt in another letter case than the catalogue's (``dense``) would
        match no compiled run: refused with the spelling that does. Other names pass (a model
        logged from Python may have types of its own)."""
        from neural_dsl_tracking.language.layers import LAYERS

        spelt = {known.lower(): known for known in LAYERS}.get(name.lower())
        if spelt is not None and spelt != name:
            raise self.fail(pos, f"unknown layer type {name!r}; did you mean {spelt!r}? (types are spelt as "
                                 "in the layer catalogue: Conv2D, Dense, LSTM)")

    def compare(self, found: Field, op: str, value: Any, op_pos: Pos, written: str | None = None) -> Compare:
        """``field op value`` checked (``written``: the operator as written, when ``in``)."""
        allowed = _operators(found)
        if op not in allowed:
            hint = " (tags has 'x')" if found.kind == "tags" else ""
            shown = [*allowed, "in"] if "=" in allowed or "has" in allowed else allowed
            raise self.fail(op_pos, f"{_describe(found)} takes {', '.join(shown)}, not {written or op!r}{hint}")
        return Compare(found, op, self.literal(found, op, value))

    def literal(self, target: Field, op: str, tree: Any) -> Literal:
        token = tree.children[0]
        pos = _token_pos(token)
        text = _unquote(token) if tree.data == "quoted" else str(token)
        if tree.data == "ago":
            if target.kind != "start":
                raise self.fail(pos, f"'ago' is for start times (start > 2h ago), not {_describe(target)}")
            return Literal("ago", self.seconds(text, pos))
        kind = target.kind
        if kind == "start":
            return Literal("time", self.moment(text, pos))
        if kind == "duration":
            return Literal("number", self.seconds(text, pos))
        if kind == "status" and text not in RUN_STATUSES:
            raise self.fail(pos, f"unknown status {text!r}{did_you_mean(text, RUN_STATUSES)} "
                                 f"(statuses: {', '.join(RUN_STATUSES)})")
        if kind in ("metrics", "model.params", "model.macs", "model.layers"):
            return Literal("number", self.number(text, pos, quoted=tree.data == "quoted"))
        if kind == "params" and tree.data == "bare" and _NUMBER.fullmatch(text):
            return Literal("number", self.number(text, pos, quoted=False))
        if kind == "params" and op in ORDER_OPS:
            raise self.fail(pos, f"{op} compares numbers; {text!r} is text (use = != ~ for text)")
        return Literal("text", text)

    def number(self, text: str, pos: Pos, *, quoted: bool) -> float:
        if quoted or not _NUMBER.fullmatch(text):
            raise self.fail(pos, f"expected a number, got {text!r}")
        value = float(text)
        if not math.isfinite(value):
            raise self.fail(pos, f"the number {text} is out of range")
        return value

    def seconds(self, text: str, pos: Pos) -> float:
        """Seconds from ``90``, ``2h``, ``1h30m``, ``500ms``, ``1.5d``, ``2w``."""
        if _NUMBER.fullmatch(text) and math.isfinite(float(text)):
            return float(text)
        if _DURATION.fullmatch(text):
            return sum(float(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
        raise self.fail(pos, f"expected a duration such as 90, 30s, 15m, 2h, 1h30m, 3d or 2w, got {text!r}")

    def moment(self, text: str, pos: Pos) -> float:
        """Epoch seconds of an ISO date or date and time (local time unless it has an offset)."""
        try:
            if not _DATE.match(text):
                raise ValueError
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise self.fail(pos, f"expected a date (2026-12-01, 2026-12-01T14:30, "
                                 f"'2026-12-01 14:30+02:00') or a time ago (2h ago), got {text!r}") from None


def _operators(target: Field) -> tuple[str, ...]:
    kind = target.kind
    if kind == "tags":
        return ("has", "~")
    if kind == "start":
        return ORDER_OPS
    if kind in ("name", "experiment", "status", "model.fingerprint"):
        return TEXT_OPS
    if kind == "params":
        return (*NUMBER_OPS, "~")
    return NUMBER_OPS


def _describe(target: Field) -> str:
    if target.kind == "params":
        return f"params.{target.key}"
    if target.kind == "metrics":
        return f"metrics.{target.key}.{target.aggregate}"
    if target.kind == "model.layers":
        return f"model.layers.{target.key}"
    return target.kind


def _unquote(token: Any) -> str:
    """The text of a quoted string: the quotes off, ``\\x`` is ``x``."""
    return re.sub(r"\\(.)", r"\1", str(token)[1:-1], flags=re.DOTALL)


# ---- SQL --------------------------------------------------------------------------------------
_COMPARE_SQL = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_AGGREGATE_SQL = {"min": "min_value", "max": "max_value", "last": "latest", "count": "n_points",
                  "mean": "CASE WHEN n_values > 0 THEN value_sum / n_values END"}


def _glob_parts(pattern: str) -> list[str]:
    """A glob as its pieces: ``*`` and ``?`` wildcards, and literal runs of text."""
    return [part for part in re.split(r"([*?])", pattern) if part]


def _json_glob_parts(pattern: str) -> list[str]:
    """The glob of a JSON string whose content matches ``pattern`` (literal runs escaped as
    JSON escapes them, between the string's quotes)."""
    parts = [part if part in ("*", "?") else json.dumps(part)[1:-1] for part in _glob_parts(pattern)]
    return ['"', *parts, '"']


def _like_escaped(text: str) -> str:
    """``text`` as literal characters of a LIKE pattern with ``ESCAPE '\\'``."""
    return re.sub(r"([\\%_])", r"\\\1", text)


def _ascii_lower(text: str) -> str:
    return text.translate(_LOWER)


@dataclass(frozen=True)
class _Member:
    """A condition on another table as the compiler wrote it: the ``condition`` on ``r``,
    the ``count`` of the runs meeting it and the ``ids`` of those runs (SQL, same marks)."""

    condition: str
    count: str
    ids: str


class _Compiler:
    """Turns a tree into SQL text with ``?`` marks and the list of values bound to them.

    A condition on another table (params, metric summaries, tags, models) is a membership:
    ``r.run_id IN (SELECT run_id ...)`` gathers the ids once, which is fast when they are few;
    when ``many`` says they are many, ``EXISTS (... WHERE run_id = r.run_id)`` checks each run
    through its primary key instead, so the newest page of runs stops after a few."""

    def __init__(self, dialect: str, now: float, crash_after: float,
                 many: Callable[[str, list[Any]], bool] | None = None) -> None:
        self.dialect = dialect
        self.now = now
        self.crash_after = crash_after
        self.many = many
        self.args: list[Any] = []
        self.members: list[_Member] = []

    def bind(self, *values: Any) -> str:
        self.args.extend(values)
        return ", ".join("?" * len(values))

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    def storable(self, text: str) -> bool:
        """Whether stored text can equal ``text``: PostgreSQL text never holds a NUL."""
        return not (self.postgres and "\x00" in text)

    def node(self, node: Node) -> str:
        """``node`` as SQL, bracketed only where SQL's precedence (NOT, AND, OR) needs it:
        SQLite's parser overflows past about 30 nested brackets."""
        if isinstance(node, AllOf):
            return " AND ".join(self.grouped(item, AnyOf) for item in node.items)
        if isinstance(node, AnyOf):
            return " OR ".join(self.node(item) for item in node.items)
        if isinstance(node, Not):
            return "NOT " + self.grouped(node.item, (AllOf, AnyOf))
        if isinstance(node, Word):
            return self.word(node.text)
        return self.compare(node)

    def grouped(self, node: Node, loose: type | tuple[type, ...]) -> str:
        sql = self.node(node)
        return f"({sql})" if isinstance(node, loose) else sql

    # -- pieces
    def lower(self, column: str) -> str:
        """``column`` with ASCII letters lowered, the same on both engines."""
        if self.postgres:
            return f"translate({column}, '{_ASCII_UPPER}', '{_ASCII_UPPER.lower()}')"
        return f"lower({column})"

    def contains(self, column: str, needle: str) -> str:
        """``column`` contains ``needle``, ASCII letters in any case (SQLite's LIKE: five
        times faster than lowering every row; it stops at a NUL, so not for one)."""
        if self.postgres or "\x00" in needle:
            function = "strpos" if self.postgres else "instr"
            return f"{function}({self.lower(column)}, {self.bind(_ascii_lower(needle))}) > 0"
        return f"{column} LIKE {self.bind('%' + _like_escaped(needle) + '%')} ESCAPE '\\'"

    def glob(self, column: str, parts: Sequence[str]) -> str:
        """``column`` matches the glob ``parts`` (case-sensitive on both engines)."""
        if self.postgres:
            like = "".join({"*": "%", "?": "_"}.get(part) or _like_escaped(part) for part in parts)
            return f"{column} LIKE {self.bind(like)} ESCAPE '\\'"
        text = "".join(part if part in ("*", "?") else part.replace("[", "[[]") for part in parts)
        return f"{column} GLOB {self.bind(text)}"

    def text(self, column: str, op: str, value: str) -> str:
        """A text comparison (``= != ~``) of a column that is never NULL."""
        if not self.storable(value):
            return "1 = 1" if op == "!=" else "1 = 0"
        if op == "~":
            return self.glob(column, _glob_parts(value))
        return f"{column} {_COMPARE_SQL[op]} {self.bind(value)}"

    def number(self, expression: str, op: str, value: float) -> str:
        return f"{expression} {_COMPARE_SQL[op]} {self.bind(value)}"

    def member(self, source: str, run_id: str, condition: str, first_arg: int, *,
               several: bool = False) -> str:
        """Runs with a row in ``source`` (whose run id column is ``run_id``) meeting
        ``condition`` (``several``: a run may have more than one); the values bound since
        ``first_arg`` are theirs."""
        rows = f"FROM {source} WHERE {condition}"
        if self.many is not None and self.many(f"SELECT 1 {rows}", self.args[first_arg:]):
            return f"EXISTS (SELECT 1 FROM {source} WHERE {run_id} = r.run_id AND {condition})"
        sql = f"r.run_id IN (SELECT {run_id} {rows})"
        self.members.append(_Member(sql, f"SELECT COUNT({'DISTINCT ' if several else ''}{run_id}) {rows}",
                                    f"SELECT {run_id} {rows}"))
        return sql

    # -- conditions
    def word(self, needle: str) -> str:
        """A plain word: part of the run's name or id, in any letter case."""
        if not self.storable(needle):
            return "1 = 0"
        return f"({self.contains('r.run_name', needle)} OR {self.contains('r.run_id', needle)})"

    def status(self) -> str:
        return (f"(CASE WHEN r.status = 'running' AND r.heartbeat < {self.bind(self.now - self.crash_after)} "
                "THEN 'crashed' ELSE r.status END)")

    def compare(self, node: Compare) -> str:
        kind, op, value = node.field.kind, node.op, node.value
        if kind in ("name", "experiment"):
            return self.text("r.run_name" if kind == "name" else "r.experiment", op, value.value)
        if kind == "status":
            return self.text(self.status(), op, value.value)
        if kind == "tags":
            first = len(self.args)
            inner = self.text("tag", "=" if op == "has" else "~", value.value)
            return self.member("run_tags", "run_id", inner, first, several=op == "~")
        if kind == "start":
            moment = self.now - value.value if value.kind == "ago" else value.value
            return self.number("r.start_time", op, moment)
        if kind == "duration":
            return self.number(DURATION_SQL, op, value.value)
        if kind == "params":
            return self.param(node)
        if kind == "metrics":
            first = len(self.args)
            key = self.bind(node.field.key)  # marks are bound in the order they appear
            inner = self.number(self.aggregate(node.field.aggregate), op, value.value)
            return self.member("metric_summary", "run_id", f"key = {key} AND {inner}", first)
        if kind == "model.layers":
            return self.layers(node)
        column, first = kind.split(".", 1)[1], len(self.args)
        inner = (self.fingerprint(op, value.value) if kind == "model.fingerprint"
                 else self.number(column, op, value.value))
        return self.member("run_models", "run_id", inner, first)

    def fingerprint(self, op: str, value: str) -> str:
        """The model's fingerprint compared with ``value``; with ``=`` and ``!=``, hex shorter
        than a whole fingerprint (as ``ls`` and ``show`` print it) stands for its start."""
        if op == "~" or not _FINGERPRINT_START.fullmatch(value):
            return self.text("fingerprint", op, value)
        starts = self.glob("fingerprint", [value, "*"])
        return starts if op == "=" else f"NOT {starts}"

    def aggregate(self, aggregate: str) -> str:
        sql = _AGGREGATE_SQL[aggregate]
        if aggregate == "mean" and self.postgres:  # PostgreSQL keeps NaN (inf - inf); SQLite NULL
            sql = "CASE WHEN n_values > 0 AND value_sum <> CAST('NaN' AS DOUBLE PRECISION) " \
                  "THEN value_sum / n_values END"
        return sql

    def param(self, node: Compare) -> str:
        """A parameter: ``num`` holds its value when it is a JSON number (the store sets it),
        ``value`` its JSON text."""
        op, value = node.op, node.value
        first = len(self.args)
        key = self.bind(node.field.key)
        if value.kind == "number":
            inner = self.number("num", op, value.value)
        elif op == "~":
            alternatives = [self.glob("value", _json_glob_parts(value.value))]
            if self.storable(value.value):
                alternatives.append(self.glob("value", _glob_parts(value.value)))
            inner = "(" + " OR ".join(alternatives) + ")"
        else:  # a JSON string with this content, or the JSON text as written (true, null, [1, 2])
            forms = [json.dumps(value.value)] + ([value.value] if self.storable(value.value) else [])
            inner = f"value {'IN' if op == '=' else 'NOT IN'} ({self.bind(*forms)})"
        return self.member("params", "run_id", f"key = {key} AND {inner}", first)

    def layers(self, node: Compare) -> str:
        """How many layers of a type the run's model has; a model without one has 0 of it,
        a run without a model matches nothing."""
        op, count = node.op, node.value.value
        first = len(self.args)
        key = self.bind(node.field.key)
        if not _holds(op, 0.0, count):  # only runs with such layers can match
            inner = self.number("n", op, count)
            return self.member("run_layer_counts", "run_id", f"layer_type = {key} AND {inner}", first)
        inner = self.number("COALESCE(c.n, 0)", op, count)
        return self.member(f"run_models m LEFT JOIN run_layer_counts c ON c.run_id = m.run_id "
                           f"AND c.layer_type = {key}", "m.run_id", inner, first)

    # -- order
    def order(self, target: Field, descending: bool) -> str:
        """ORDER BY terms: the field (runs without it last), then start time and run id."""
        direction = " DESC" if descending else ""
        if target.kind == "start":
            return f"r.start_time{direction}, r.run_id{direction}"
        terms = [f"{value}{direction} NULLS LAST" for value in self.order_values(target)]
        return ", ".join([*terms, "r.start_time DESC", "r.run_id DESC"])

    def order_values(self, target: Field) -> list[str]:
        kind = target.kind
        collate = ' COLLATE "C"' if self.postgres else ""
        if kind in ("name", "experiment"):
            return [f"r.{'run_name' if kind == 'name' else kind}{collate}"]
        if kind == "status":
            return [self.status() + collate]
        if kind == "duration":
            return [DURATION_SQL]
        if kind == "params":
            # the number first (runs whose value is text after), then the JSON text
            return [f"(SELECT {value} FROM params p WHERE p.run_id = r.run_id AND p.key = {self.bind(target.key)})"
                    for value in ("p.num", f"p.value{collate}")]
        if kind == "metrics":
            return [f"(SELECT {self.aggregate(target.aggregate)} FROM metric_summary s "
                    f"WHERE s.run_id = r.run_id AND s.key = {self.bind(target.key)})"]
        if kind == "model.layers":
            return [f"(SELECT c.n FROM run_layer_counts c WHERE c.run_id = r.run_id "
                    f"AND c.layer_type = {self.bind(target.key)})"]
        column = kind.split(".", 1)[1]
        return [f"(SELECT m.{column}{collate if column == 'fingerprint' else ''} FROM run_models m "
                f"WHERE m.run_id = r.run_id)"]


DURATION_SQL = "(COALESCE(r.end_time, r.heartbeat) - r.start_time)"
"""A run's duration in seconds: to its end, or to its last heartbeat while it runs."""


def _holds(op: str, left: float, right: float) -> bool:
    return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[op]


def order_sql(order: str, dialect: str, *, now: float, crash_after: float) -> tuple[str, list[Any]]:
    """ORDER BY terms for ``order`` (see :func:`parse_order`) and their bound parameters."""
    target, descending = parse_order(order)
    compiler = _Compiler(dialect, now, crash_after)
    return compiler.order(target, descending), compiler.args
