"""Load rule sets and scorecards from YAML, with ``file:line:column`` errors.

Every problem is found at load time, never at evaluation: YAML syntax, duplicate keys, unknown
fields and condition types (with a "did you mean"), wrong value types, bad regular expressions,
expressions naming a missing condition, impossible windows, unknown emotion or event names. All
problems of a file are collected; :class:`RuleFileError` (a :class:`~callsense.errors.RuleError`)
carries them, its message is the first one.

Positions come from ruamel.yaml's round-trip loader, which keeps the line and column of every
key and value; pydantic's error locations are paths into that document. Each piece (a condition,
a rule, an alert target) is validated once; a condition through the class registered for its
``type`` (``callsense.rules.model.register_condition``), which also owns its checks of meaning.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

import callsense.rules.conditions  # noqa: F401  (registers the built-in condition types)
from callsense.errors import RuleError
from callsense.rules import expr as _expr
from callsense.rules import model as m
from callsense.rules.conditions.checks import kind_of as _kind


@dataclass(frozen=True)
class Problem:
    source: str
    line: int  # 1-based
    column: int  # 1-based
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.source}:{self.line}:{self.column}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class RuleFileError(RuleError):
    """A rule or scorecard file that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = tuple(problems)
        first = problems[0]
        super().__init__(first.message, hint=first.hint, source=f"{first.source}:{first.line}:{first.column}")
        if len(problems) > 1:
            self.message = f"{first.message} (and {len(problems) - 1} more problem(s))"


# ------------------------------------------------------------------------------------ public API
def load_ruleset(path: str | Path) -> m.Ruleset:
    """Read and validate a rule file; raises :class:`RuleFileError` with every problem found."""
    p = Path(path)
    return load_ruleset_text(_read(p), source=str(p))


def load_ruleset_text(text: str, source: str = "<rules>") -> m.Ruleset:
    return _Loader(text, source).ruleset()


def load_scorecard(path: str | Path) -> m.Scorecard:
    p = Path(path)
    return load_scorecard_text(_read(p), source=str(p))


def load_scorecard_text(text: str, source: str = "<scorecard>") -> m.Scorecard:
    return _Loader(text, source).scorecard()


@lru_cache(maxsize=1)
def default_ruleset() -> m.Ruleset:
    """The shipped default pack (``callsense/rules/packs/default.yaml``)."""
    return load_ruleset_text(_pack_text("default.yaml"), source="callsense:packs/default.yaml")


@lru_cache(maxsize=1)
def default_scorecard() -> m.Scorecard:
    return load_scorecard_text(_pack_text("default-scorecard.yaml"), source="callsense:packs/default-scorecard.yaml")


def pack_path(name: str = "default.yaml") -> str:
    return str(resources.files("callsense.rules").joinpath("packs", name))


def is_scorecard_text(text: str) -> bool:
    """Whether a YAML file is a scorecard (has a top-level ``scorecard:`` key) rather than rules."""
    try:
        data = _yaml().load(text)
    except YAMLError:
        return False
    return isinstance(data, dict) and "scorecard" in data


def _pack_text(name: str) -> str:
    return resources.files("callsense.rules").joinpath("packs", name).read_text("utf-8")


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise RuleError("file not found", source=p, hint="give the path of a rule YAML file") from e
    except IsADirectoryError as e:
        raise RuleError("is a directory, not a rule file", source=p) from e
    except UnicodeDecodeError as e:
        raise RuleError(f"not UTF-8 text ({e.reason} at byte {e.start})", source=p,
                        hint="save the rule file as UTF-8") from e


# ----------------------------------------------------------------------------------------- loader
def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)  # round-trip: keeps line/column of every node
    y.preserve_quotes = True  # quoted scalars keep their style, so columns inside them are exact
    y.allow_duplicate_keys = False
    return y


def _plain(node: Any) -> Any:
    """The document as plain dicts, lists and scalars (what pydantic and the checks see)."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for t in (str, int, float):
        if isinstance(node, t):
            return t(node)
    return node


class _Loader:
    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.problems: list[Problem] = []
        self.doc: Any = None  # the ruamel document: positions

    # ---- generic
    def problem(self, path: tuple, message: str, hint: str | None = None, *, key: bool = False,
                offset: int = 0) -> None:
        line, col, value = self._position(path, key=key)
        if offset and isinstance(value, (SingleQuotedScalarString, DoubleQuotedScalarString)):
            col += 1  # the quote
        self.problems.append(Problem(self.source, line, col + offset, message, hint))

    def _position(self, path: tuple, *, key: bool = False) -> tuple[int, int, Any]:
        """1-based line and column of the deepest node of ``path`` in the document, and that node.

        Parts of a pydantic location that are not in the document (union tags) are skipped; a
        conditions list is addressed with the condition numbers 1, 2, ... the loader gave it.
        """
        node = self.doc
        line = col = 0  # the document itself: 1:1
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, CommentedMap):
                k = part if part in node else (int(part) if isinstance(part, str) and part.isdigit()
                                               and int(part) in node else None)
                if k is None:
                    continue
                line, col = node.lc.key(k) if key and last else node.lc.value(k)
                node = node[k]
            elif isinstance(node, CommentedSeq):
                idx = int(part) if isinstance(part, int) or (isinstance(part, str) and part.isdigit()) else None
                if idx is not None and i > 0 and path[i - 1] == "conditions":
                    idx -= 1  # numbered from 1 in rules
                if idx is None or not 0 <= idx < len(node):
                    continue
                line, col = node.lc.item(idx)
                node = node[idx]
            else:
                break
        return line + 1, col + 1, node

    def fail(self) -> None:
        if self.problems:
            self.problems.sort(key=lambda p: (p.line, p.column))
            raise RuleFileError(self.problems)

    def compose(self) -> Any:
        try:
            self.doc = _yaml().load(self.text)
        except MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line, col = ((mark.line + 1), (mark.column + 1)) if mark else (1, 1)
            if type(e).__name__ == "DuplicateKeyError":
                self.problems.append(Problem(self.source, line, col, f"duplicate key: {e.problem}",
                                             "each key may appear once"))
            else:
                msg = f"YAML syntax error: {e.problem or e.context}"
                if e.context and e.problem:
                    msg += f" ({e.context})"
                self.problems.append(Problem(self.source, line, col, msg,
                                             "check indentation, colons and quotes; quote text containing ': ' "
                                             "or '#'"))
            self.fail()
        except YAMLError as e:
            self.problems.append(Problem(self.source, 1, 1, f"YAML error: {e}"))
            self.fail()
        if self.doc is None:
            self.problems.append(Problem(self.source, 1, 1, "the file is empty",
                                         "a rule file has a top-level 'rules:' list"))
            self.fail()
        return _plain(self.doc)

    # ---- unknown fields
    def check_fields(self, data: Any, path: tuple, cls: type | list[str], what: str) -> bool:
        if not isinstance(data, dict):
            self.problem(path, f"{what} must be a mapping, not {_kind(data)}")
            return False
        allowed = cls if isinstance(cls, list) else [f.name for f in fields(cls) if f.name != "source"]
        ok = True
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else None
                self.problem(path + (key,), f"unknown field {key!r} in {what} (expected one of: {', '.join(allowed)})",
                             hint, key=True)
                ok = False
        return ok

    # ---- documents
    def ruleset(self) -> m.Ruleset:
        data = self.compose()
        if not isinstance(data, dict):
            self.problem((), f"a rule file must be a mapping with a 'rules:' list, not {_kind(data)}")
            self.fail()
        if "scorecard" in data:
            self.problem(("scorecard",), "this is a scorecard file, not a rule file",
                         "use --scorecard for scorecards", key=True)
        else:
            self.check_fields(data, (), m.Ruleset, "the rule file")
        if "rules" not in data:
            self.problem((), "no 'rules:' list", "a rule file has a top-level 'rules:' list of rules")
        self._versions(data.get("ruleset"), ("ruleset",))
        info = m.RulesetInfo()
        if isinstance(data.get("ruleset"), dict) and self.check_fields(data["ruleset"], ("ruleset",), m.RulesetInfo,
                                                                       "'ruleset'"):
            info = self._validated(data["ruleset"], m.RulesetInfo, ("ruleset",), data) or info
        rules_raw = data.get("rules")
        if rules_raw is not None and not isinstance(rules_raw, list):
            self.problem(("rules",), f"'rules' must be a list of rules, not {_kind(rules_raw)}")
        rules = []
        for i, raw in enumerate(rules_raw if isinstance(rules_raw, list) else []):
            rule = self._rule(raw, ("rules", i), data)
            if rule is not None:
                rules.append(rule)
        self._check_rule_ids(rules_raw if isinstance(rules_raw, list) else [])
        alerts = []
        alerts_raw = data.get("alerts")
        for i, raw in enumerate(alerts_raw if isinstance(alerts_raw, list) else []):
            if self.check_fields(raw, ("alerts", i), m.AlertTarget, "alert target"):
                target = self._validated(raw, m.AlertTarget, ("alerts", i), data)
                if target is not None:
                    self._check_alert(target, ("alerts", i))
                    alerts.append(target)
        if alerts_raw is not None and not isinstance(alerts_raw, list):
            self.problem(("alerts",), f"'alerts' must be a list of alert targets, not {_kind(alerts_raw)}")
        weights = self._emotion_weights(data.get("emotion_weights"))
        self.fail()
        return m.Ruleset(ruleset=info, rules=tuple(rules), alerts=tuple(alerts), emotion_weights=weights,
                         source=self.source)

    def _emotion_weights(self, raw: Any) -> tuple[tuple[str, float], ...]:
        """``emotion_weights: {angry: 1.3, neutral: 0.8}``: labels among the nine, weights in (0, 100)."""
        from callsense.labels import EMOTION_NAMES

        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.problem(("emotion_weights",), f"'emotion_weights' must be a mapping of label: weight, not {_kind(raw)}",
                         "e.g. emotion_weights: {angry: 1.3, neutral: 0.8}")
            return ()
        out = []
        for label, w in raw.items():
            if label not in EMOTION_NAMES:
                close = difflib.get_close_matches(str(label), EMOTION_NAMES, n=1)
                self.problem(("emotion_weights", label), f"unknown emotion {label!r} in emotion_weights "
                             f"(expected one of: {', '.join(EMOTION_NAMES)})",
                             f"did you mean {close[0]!r}?" if close else None, key=True)
            elif isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < float(w) < 100:
                self.problem(("emotion_weights", label), f"the weight of {label} must be a number over 0 and under "
                             f"100 (1 = unchanged), not {w!r}")
            else:
                out.append((str(label), float(w)))
        return tuple(out)

    def scorecard(self) -> m.Scorecard:
        data = self.compose()
        if not isinstance(data, dict) or "scorecard" not in data:
            self.problem((), "a scorecard file has a top-level 'scorecard:' mapping")
            self.fail()
        self.check_fields(data, (), ["scorecard"], "the scorecard file")
        sc = data["scorecard"]
        if self.check_fields(sc, ("scorecard",), m.ScorecardInfo, "'scorecard'"):
            self._versions(sc, ("scorecard",))
            for i, section in enumerate(sc.get("sections") or [] if isinstance(sc.get("sections"), list) else []):
                spath = ("scorecard", "sections", i)
                if self.check_fields(section, spath, m.ScorecardSection, "scorecard section"):
                    items = section.get("items")
                    for j, item in enumerate(items if isinstance(items, list) else []):
                        self.check_fields(item, spath + ("items", j), m.ScorecardItem, "scorecard item")
        card = self._validated({k: v for k, v in data.items() if k == "scorecard"}, m.Scorecard, (), data)
        self.fail()
        assert card is not None  # a validation error was reported above
        self._check_scorecard(card)
        self.fail()
        return m.Scorecard(scorecard=card.scorecard, source=self.source)

    # ---- preparation (before type validation)
    def _versions(self, data: Any, path: tuple) -> None:
        if isinstance(data, dict) and isinstance(data.get("version"), (int, float)) \
                and not isinstance(data.get("version"), bool):
            data["version"] = str(data["version"])

    def _rule(self, rule: Any, path: tuple, data: dict) -> m.Rule | None:
        """One rule: fields checked, conditions built through the registry, then validated once."""
        if not self.check_fields(rule, path, m.Rule, "rule") and not isinstance(rule, dict):
            return None
        self._versions(rule, path)
        ok = True
        scope = rule.get("scope")
        if scope is not None and self.check_fields(scope, path + ("scope",), m.Scope, "'scope'"):
            ok &= self._prepare_window(scope, path + ("scope",))
        if rule.get("consequence") is not None:
            self.check_fields(rule["consequence"], path + ("consequence",), m.Consequence, "'consequence'")
        if isinstance(rule.get("expression"), int) and not isinstance(rule.get("expression"), bool):
            rule["expression"] = str(rule["expression"])
        conds = rule.get("conditions")
        if isinstance(conds, list):
            rule["conditions"] = conds = {i + 1: c for i, c in enumerate(conds)}
        numbers: list[int] = []
        if conds is not None and (not isinstance(conds, dict) or not conds):
            self.problem(path + ("conditions",), "'conditions' must be a non-empty mapping of numbered conditions",
                         "write conditions: {1: {type: keywords, words: [...]}}")
            ok = False
        elif isinstance(conds, dict):
            conditions: dict[Any, Any] = {}
            for number, raw in conds.items():
                cpath = path + ("conditions", number)
                if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                    self.problem(cpath, f"condition number {number!r} is not a positive whole number",
                                 "number conditions 1, 2, 3... and refer to them in 'expression'", key=True)
                    ok = False
                    continue
                numbers.append(number)
                cond = self._condition(raw, cpath, data)
                if cond is None:
                    ok = False
                conditions[number] = cond
            rule["conditions"] = conditions
            numbers.sort()
            self._check_expression(rule, path, numbers)
            self._check_around(conditions, rule.get("id"), path, numbers)
        # with a bad condition, the rest of the rule is still validated (conditions were reported above)
        built = self._validated(rule if ok else {**rule, "conditions": {}}, m.Rule, path, data,
                                skip=() if ok else ("conditions",))
        window = built.scope.window if built is not None else None
        if built is None and isinstance(scope, dict) and isinstance(scope.get("window"), dict):
            window = self._quiet(scope["window"], m.Window)  # a bad field elsewhere hides no window problem
        if window is not None and window is not m.WHOLE_CALL:
            self._check_window(window, path + ("scope", "window"), numbers, None)
        return built if ok else None

    def _condition(self, cond: Any, path: tuple, data: dict) -> m.Condition | None:
        if not isinstance(cond, dict):
            self.problem(path, f"a condition must be a mapping with a 'type', not {_kind(cond)}")
            return None
        kind = cond.get("type")
        types = sorted(m.CONDITIONS)
        if kind is None:
            self.problem(path, "condition has no 'type'", f"one of: {', '.join(types)}")
            return None
        cls = m.CONDITIONS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            close = difflib.get_close_matches(str(kind), types, n=1)
            self.problem(path + ("type",), f"unknown condition type {kind!r} (expected one of: {', '.join(types)})",
                         f"did you mean {close[0]!r}?" if close else None)
            return None
        fields_ok = self.check_fields(cond, path, ["type", *(f.name for f in fields(cls))],
                                      f"condition of type {kind!r}")
        window_ok = self._prepare_window(cond, path)
        body = {k: v for k, v in cond.items() if k != "type"}
        if not (fields_ok and window_ok):
            return None
        c = self._validated(body, cls, path, data)
        if c is None:
            return None
        if c.window is not None:
            self._check_window(c.window, path + ("window",), None, None)  # 'around' is checked per rule
        findings = m.Findings(given=frozenset(body))
        c.check(findings)
        for key, message, hint, offset in findings.problems:
            self.problem(path + ((key,) if key else ()), message, hint, offset=offset)
        return c

    def _prepare_window(self, holder: dict, path: tuple) -> bool:
        window = holder.get("window")
        if window == "call" or window == "whole_call":
            holder["window"] = {}
        elif isinstance(window, str):
            self.problem(path + ("window",), f"unknown window {window!r}",
                         "write 'call' or a mapping such as {first_s: 30}, {last_segments: 3}, {share: [0.75, 1]}, "
                         "{around: 2, seconds: 15}")
            return False
        elif window is not None:
            return self.check_fields(window, path + ("window",), m.Window, "'window'")
        return True

    # ---- type validation with pydantic, once per piece
    def _validated(self, raw: Any, cls: Any, path: tuple, data: dict, *, skip: tuple[str, ...] = ()) -> Any:
        """``raw`` validated as ``cls``; None after reporting each type error at its position."""
        try:
            return _adapter(cls).validate_python(raw)
        except ValidationError as e:
            covered = {"unexpected_keyword_argument", "extra_forbidden"}
            for err in e.errors():
                if err["type"] in covered or (err["loc"] and err["loc"][0] in skip):
                    continue
                where_path = path + tuple(err["loc"])
                where = _describe(where_path, data)
                if err["type"] in ("missing", "missing_keyword_only_argument"):
                    self.problem(where_path[:-1], f"{where}: required field {where_path[-1]!r} is missing")
                    continue
                got = err.get("input")
                msg = err["msg"].replace("Input should be", "expected")
                self.problem(where_path, f"{where}: {msg}, got {got!r}" if not isinstance(got, (dict, list)) else
                             f"{where}: {msg}, got {_kind(got)}")
            return None

    def _quiet(self, raw: Any, cls: Any) -> Any:
        """``raw`` as ``cls``, or None; for the meaning checks of a piece whose parent has type errors."""
        try:
            return _adapter(cls).validate_python(raw)
        except ValidationError:
            return None

    # ---- meaning (after type validation)
    def _check_rule_ids(self, rules: list) -> None:
        seen: dict[str, int] = {}
        for i, raw in enumerate(rules):
            rid = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(rid, str):
                if rid in seen:
                    self.problem(("rules", i, "id"), f"duplicate rule id {rid!r} (also rule #{seen[rid] + 1})",
                                 "rule ids must be unique in a file")
                seen.setdefault(rid, i)

    def _check_expression(self, raw: dict, path: tuple, numbers: list[int]) -> None:
        rid, expression = raw.get("id"), raw.get("expression")
        if not (isinstance(expression, str) and expression.strip()):
            return
        try:
            tree = _expr.parse(expression)
        except _expr.ExprSyntaxError as e:
            self.problem(path + ("expression",), f"rule {rid!r}: bad expression {expression!r}: {e}",
                         "write e.g. 1 && (2 || !3)", offset=e.column)
            return
        for ref in _expr.refs(tree):
            if ref.number not in numbers:
                self.problem(path + ("expression",),
                             f"rule {rid!r}: expression names condition {ref.number}, which is not "
                             f"defined (conditions: {', '.join(map(str, numbers)) or 'none'})",
                             offset=ref.column)

    def _check_alert(self, t: m.AlertTarget, path: tuple) -> None:
        if not re.match(r"^https?://", t.url):
            self.problem(path + ("url",), f"alert url {t.url!r} is not an http(s) URL")
        if t.timeout_s <= 0 or t.retries < 0 or t.backoff_s < 0:
            self.problem(path, "timeout_s must be > 0, retries and backoff_s >= 0")

    def _check_around(self, conds: dict[int, Any], rid: Any, path: tuple, numbers: list[int]) -> None:
        for n, c in conds.items():
            w = c.window if c is not None else None
            if w is None or w.around is None:
                continue
            wpath = path + ("conditions", n, "window", "around")
            if w.around not in numbers:
                self.problem(wpath, f"window is around condition {w.around}, which is not defined")
            elif w.around == n:
                self.problem(wpath, "a condition's window cannot be around itself")
        deps = {n: c.window.around for n, c in conds.items() if c is not None and c.window and c.window.around
                and c.window.around != n}  # self-reference has its own message
        for start, first in deps.items():
            seen, cur = {start}, first
            while cur in deps:
                if cur in seen:
                    self.problem(path + ("conditions", start, "window"),
                                 f"rule {rid!r}: 'around' windows form a cycle through condition {start}")
                    break
                seen.add(cur)
                cur = deps[cur]

    def _check_window(self, w: m.Window, path: tuple, numbers: list[int] | None, own: int | None) -> None:
        """Checks of one window; ``numbers`` is None for a condition's window (its anchor is checked per rule)."""
        kinds = [k for k in ("first_s", "last_s", "first_segments", "last_segments", "share", "around")
                 if getattr(w, k) is not None]
        if len(kinds) > 1:
            self.problem(path, f"a window has one kind, this one has {len(kinds)}: {', '.join(kinds)}",
                         "split the rule, or use a condition-level window")
        for k in ("first_s", "last_s", "first_segments", "last_segments", "segments", "seconds"):
            v = getattr(w, k)
            if v is not None and v < 0:
                self.problem(path + (k,), f"{k} must be >= 0, got {v}")
        if w.share is not None and not (0 <= w.share[0] < w.share[1] <= 1):
            self.problem(path + ("share",), f"share must be [from, to] with 0 <= from < to <= 1, got {list(w.share)}")
        if (w.segments is not None or w.seconds is not None) and w.around is None:
            self.problem(path, "'segments'/'seconds' only go with 'around'",
                         "write {around: 2, segments: 3}, or first_segments / last_segments")
        if w.around is not None:
            if (w.segments is None) == (w.seconds is None):
                self.problem(path, "an 'around' window needs exactly one of 'segments' or 'seconds'",
                             "write {around: 2, seconds: 15}")
            if numbers is not None:
                self.problem(path + ("around",), "a rule-level window cannot be 'around' a condition",
                             "put the around-window on the condition that needs it")

    def _check_scorecard(self, card: m.Scorecard) -> None:
        sc = card.scorecard
        need_path = ("scorecard",)
        if not sc.sections:
            self.problem(need_path, "a scorecard needs at least one section with items")
        if not 0 <= sc.pass_score <= 100:
            self.problem(need_path + ("pass_score",), "pass_score is a normalised score in [0, 100]")
        ids: set[str] = set()
        for i, section in enumerate(sc.sections):
            spath = need_path + ("sections", i)
            if section.weight < 0:
                self.problem(spath + ("weight",), "weight must be >= 0")
            for j, item in enumerate(section.items):
                ipath = spath + ("items", j)
                full = f"{section.id}.{item.id}"
                if full in ids:
                    self.problem(ipath + ("id",), f"duplicate item {full!r}")
                ids.add(full)
                if item.points < 0:
                    self.problem(ipath + ("points",), "points must be >= 0")


_ADAPTERS: dict[int, Any] = {}


def _adapter(cls: Any) -> Any:
    """A cached pydantic TypeAdapter (building one costs milliseconds; packs are loaded often in tests)."""
    if id(cls) not in _ADAPTERS:
        _ADAPTERS[id(cls)] = TypeAdapter(cls)
    return _ADAPTERS[id(cls)]


def _describe(path: tuple, data: Any) -> str:
    """'rule risk.complaint, condition 2, field min_s' for a path into the document."""
    parts = []
    node = data
    i = 0
    while i < len(path):
        p = path[i]
        if p == "rules" and i + 1 < len(path) and isinstance(node, dict) and isinstance(node.get("rules"), list):
            idx = path[i + 1]
            rule = node["rules"][idx] if isinstance(idx, int) and idx < len(node["rules"]) else {}
            rid = rule.get("id") if isinstance(rule, dict) else None
            parts.append(f"rule {rid!r}" if rid else f"rule #{idx + 1 if isinstance(idx, int) else idx}")
            node, i = rule, i + 2
            continue
        if p == "conditions" and i + 1 < len(path):
            parts.append(f"condition {path[i + 1]}")
            node = node.get("conditions", {}).get(path[i + 1], {}) if isinstance(node, dict) and isinstance(
                node.get("conditions"), dict) else {}
            i += 2
            continue
        parts.append(f"[{p}]" if isinstance(p, int) else f"{p!r}")
        node = node.get(p) if isinstance(node, dict) else (node[p] if isinstance(node, list) and isinstance(p, int)
                                                           and p < len(node) else None)
        i += 1
    return ", ".join(parts) or "the file"
