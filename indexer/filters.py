"""Metadata filters in the Chroma / MongoDB style users already know.

    {"source": "news"}                          equality
    {"year": {"$gte": 2020}}                    comparison
    {"tag": {"$in": ["a", "b"]}}                membership
    {"$and": [{...}, {...}]}, {"$or": [...]}    combination

A field whose value is a list matches `$eq` / `$in` when any element matches (as in MongoDB).
A missing field matches only `$ne` and `$nin`. An unknown operator is an error, never ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import InvalidFilter

Predicate = Callable[[dict[str, Any]], bool]
_MISSING = object()
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
OPERATORS = ("$eq", "$ne", "$in", "$nin", *_COMPARE, "$and", "$or")


def compile_filter(spec: dict[str, Any], path: str = "filter") -> Predicate:
    """Validate `spec` once and return a fast predicate over a metadata dict."""
    if not isinstance(spec, dict):
        raise InvalidFilter(f"{path} must be an object", field=path)
    preds: list[Predicate] = []
    for key, cond in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise InvalidFilter(f"{path}.{key} must be a non-empty list", field=f"{path}.{key}")
            subs = [compile_filter(c, f"{path}.{key}[{i}]") for i, c in enumerate(cond)]
            preds.append(_all(subs) if key == "$and" else _any(subs))
        elif key.startswith("$"):
            raise InvalidFilter(
                f"unknown operator {key!r} in {path}; known: {OPERATORS}", field=f"{path}.{key}"
            )
        elif isinstance(cond, dict):
            if not cond:
                raise InvalidFilter(f"{path}.{key} has no operator", field=f"{path}.{key}")
            preds += [_field(key, op, arg, f"{path}.{key}") for op, arg in cond.items()]
        else:
            preds.append(_field(key, "$eq", cond, f"{path}.{key}"))
    return _all(preds)


def _all(preds: list[Predicate]) -> Predicate:
    return lambda m: all(p(m) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    return lambda m: any(p(m) for p in preds)


def _scalar(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise InvalidFilter(f"{where} must be a string, number, boolean or null", field=where)


def _values(m: dict[str, Any], key: str) -> list[Any]:
    v = m.get(key, _MISSING)
    if v is _MISSING:
        return []
    return v if isinstance(v, list) else [v]


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a filter on a boolean must not match the number 1
    return type(a) is type(b) or (_is_number(a) and _is_number(b)) if a == b else False


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _field(key: str, op: str, arg: Any, where: str) -> Predicate:
    if op in ("$eq", "$ne"):
        value = _scalar(arg, where)
        eq: Predicate = lambda m: any(_same(v, value) for v in _values(m, key))  # noqa: E731
        return eq if op == "$eq" else (lambda m: not eq(m))
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise InvalidFilter(f"{where}.{op} must be a list", field=f"{where}.{op}")
        options = [_scalar(a, f"{where}.{op}") for a in arg]
        inn: Predicate = lambda m: any(_same(v, o) for v in _values(m, key) for o in options)  # noqa: E731
        return inn if op == "$in" else (lambda m: not inn(m))
    if op in _COMPARE:
        value = _scalar(arg, f"{where}.{op}")
        if not (_is_number(value) or isinstance(value, str)):
            raise InvalidFilter(f"{where}.{op} needs a number or a string", field=f"{where}.{op}")
        cmp = _COMPARE[op]
        kind = str if isinstance(value, str) else (int, float)

        def compare(m: dict[str, Any]) -> bool:
            return any(
                isinstance(v, kind) and not isinstance(v, bool) and cmp(v, value)
                for v in _values(m, key)
            )

        return compare
    raise InvalidFilter(
        f"unknown operator {op!r} in {where}; known: {OPERATORS}", field=f"{where}.{op}"
    )
