"""Conditions on what is known about the call: its metadata, and earlier calls of the same person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from callsense.labels import EMOTION_NAMES
from callsense.result.model import CallAnalysis
from callsense.rules import model as m
from callsense.rules.conditions.checks import check_regex, kind_of
from callsense.rules.context import Context, Outcome, Scoped, compiled, interval_ev
from callsense.rules.model import Condition, Findings, register_condition

MetadataOp = Literal["eq", "ne", "in", "not_in", "contains", "regex", "gt", "ge", "lt", "le", "exists", "missing"]
_MISSING = object()


def _lookup(data: Any, dotted: str) -> Any:
    if isinstance(data, dict) and dotted in data:
        return data[dotted]
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return not isinstance(a, (dict, list)) and not isinstance(b, (dict, list)) and str(a) == str(b)


def _person(result: CallAnalysis, by: str) -> Any:
    for key in (f"{by}_id", by):
        v = result.metadata.get(key)
        if v not in (None, ""):
            return str(v)
    return None


@register_condition("metadata")
@dataclass(frozen=True, kw_only=True)
class Metadata(Condition):
    """A field of the call's metadata compared with a value."""

    field: str  # key in result.metadata; dots reach into nested mappings ("custom.vip")
    op: MetadataOp = "eq"
    value: Any = None

    def check(self, findings: Findings) -> None:
        super().check(findings)
        v = self.value
        if self.op in ("in", "not_in") and not isinstance(v, (list, tuple)):
            findings.add("value", f"op {self.op!r} needs a list value, got {kind_of(v)}")
        elif self.op in ("gt", "ge", "lt", "le") and (isinstance(v, bool) or not isinstance(v, (int, float))):
            findings.add("value", f"op {self.op!r} needs a number, got {v!r}")
        elif self.op == "regex":
            if not isinstance(v, str):
                findings.add("value", f"op 'regex' needs a text value, got {kind_of(v)}")
            else:
                check_regex(findings, "value", v, None)
        elif self.op in ("exists", "missing") and v is not None:
            findings.add("value", f"op {self.op!r} takes no value")
        elif self.op in ("eq", "ne", "contains") and "value" not in findings.given:
            findings.add(None, f"op {self.op!r} needs a 'value'", "use op: exists / missing to test presence")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        value = _lookup(ctx.result.metadata, self.field)
        if self.op in ("exists", "missing"):
            ok = (value is not _MISSING and value is not None) == (self.op == "exists")
        elif value is _MISSING or value is None:
            return Outcome(False, applicable=False, scope=sc, note=f"metadata {self.field!r} missing")
        elif self.op == "eq":
            ok = _same(value, self.value)
        elif self.op == "ne":
            ok = not _same(value, self.value)
        elif self.op in ("in", "not_in"):
            ok = any(_same(value, v) for v in self.value) == (self.op == "in")
        elif self.op == "contains":
            ok = (any(_same(v, self.value) for v in value) if isinstance(value, (list, tuple))
                  else str(self.value) in str(value))
        elif self.op == "regex":
            ok = compiled(self.value, True).search(str(value)) is not None
        else:
            a, b = _num(value), _num(self.value)
            if a is None or b is None:
                return Outcome(False, applicable=False, scope=sc, note=f"metadata {self.field!r} is not a number")
            ok = {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[self.op]
        shown = "missing" if value is _MISSING else repr(value)
        return Outcome(ok, (interval_ev(ctx, 0, ctx.duration, n, note=f"metadata {self.field} = {shown} "
                                         f"({self.op} {self.value!r})"),) if ok else (), scope=sc)


@register_condition("history")
@dataclass(frozen=True, kw_only=True)
class History(Condition):
    """Earlier calls of the same agent / customer (needs the store's history)."""

    by: Literal["agent", "customer"] = "agent"  # earlier calls of the same agent / customer
    last: int = 3  # how many earlier calls are looked at
    min_count: int | None = None  # of those, how many must match (default: all ``last``)
    flag: str | None = None  # a rule id that hit in the earlier call
    emotion: str | None = None  # or: this emotion's share for ``role`` (default customer)...
    min_share: float = 0.3  # ...at least this

    def check(self, findings: Findings) -> None:
        super().check(findings)
        need = findings.need
        need((self.flag is None) != (self.emotion is None), None, "history needs exactly one of 'flag' or 'emotion'")
        if self.emotion is not None:
            need(self.emotion in EMOTION_NAMES, "emotion", f"unknown emotion {self.emotion!r}")
        need(self.last >= 1, "last", "last must be at least 1")
        if self.min_count is not None:
            need(1 <= self.min_count <= self.last, "min_count", f"min_count must be between 1 and last ({self.last})")

    def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
        who = _person(ctx.result, self.by)
        if who is None:
            return Outcome(False, applicable=False, scope=sc, note=f"no {self.by}_id in metadata")
        earlier = [h for h in ctx.history if (h.agent_id if self.by == "agent" else h.customer_id) == who
                   and h.call_id != ctx.result.call_id]
        earlier.sort(key=lambda h: h.started_at, reverse=True)
        recent = earlier[:self.last]
        if len(recent) < self.last:
            return Outcome(False, applicable=False, scope=sc, note=f"{len(recent)} earlier calls, {self.last} needed")
        role = sc.role if sc.role != "any" else "customer"

        def match(h: m.CallSummary) -> bool:
            if self.flag is not None:
                return self.flag in h.flags
            share = h.share(role, self.emotion)
            return share is not None and share >= self.min_share

        matched = [h for h in recent if match(h)]
        ok = len(matched) >= (self.min_count or self.last)
        what = f"flag {self.flag}" if self.flag else f"{role} {self.emotion} >= {self.min_share:g}"
        note = (f"{len(matched)} of the {self.by}'s last {self.last} calls with {what}: "
                f"{', '.join(h.call_id for h in matched)}")
        return Outcome(ok, (interval_ev(ctx, 0, ctx.duration, n, note=note),) if ok else (), scope=sc)
