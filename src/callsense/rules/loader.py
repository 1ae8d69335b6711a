"""Load rule sets and scorecards from YAML, with ``file:line:column`` errors.

Every problem is found at load time, never at evaluation: YAML syntax, duplicate keys, unknown
fields and condition types (with a "did you mean"), wrong value types, bad regular expressions,
expressions naming a missing condition, impossible windows, unknown emotion or event names. All
problems of a file are collected; :class:`RuleFileError` (a :class:`~callsense.errors.RuleError`)
carries them, its message is the first one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from callsense.errors import RuleError
from callsense.labels import EMOTION_NAMES, SENSEVOICE_EVENTS
from callsense.rules import expr as _expr
from callsense.rules import model as m

EMOTION_GROUPS = ("positive", "negative", "neutral")
EVENT_TAGS = tuple(e for e in SENSEVOICE_EVENTS if e != "Speech")
_VERSION_KEYS = {"version"}
_TEXT_LIST_KEYS = {"words", "exclude", "negations", "examples"}


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
        data = yaml.safe_load(text)
    except yaml.YAMLError:
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
class _Loader:
    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.problems: list[Problem] = []
        self.nodes: dict[tuple, yaml.Node] = {}  # path -> value node
        self.keys: dict[tuple, yaml.Node] = {}  # path -> key node
        self.constructor = yaml.constructor.SafeConstructor()

    # ---- generic
    def problem(self, path: tuple, message: str, hint: str | None = None, *, key: bool = False,
                offset: int = 0) -> None:
        node = (self.keys.get(path) if key else None) or self._nearest(path)
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
        if offset and node is not None and isinstance(node, yaml.ScalarNode):
            col += offset + (1 if node.style in ("'", '"') else 0)
        self.problems.append(Problem(self.source, line, col, message, hint))

    def _nearest(self, path: tuple) -> yaml.Node | None:
        for n in range(len(path), -1, -1):
            if path[:n] in self.nodes:
                return self.nodes[path[:n]]
        return None

    def fail(self) -> None:
        if self.problems:
            self.problems.sort(key=lambda p: (p.line, p.column))
            raise RuleFileError(self.problems)

    def compose(self) -> Any:
        try:
            node = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            msg = f"YAML syntax error: {e.problem or e.context}"
            if e.context and e.problem:
                msg += f" ({e.context})"
            self.problems.append(Problem(self.source, (mark.line + 1) if mark else 1,
                                         (mark.column + 1) if mark else 1, msg,
                                         "check indentation, colons and quotes; quote text containing ': ' or '#'"))
            self.fail()
        except yaml.YAMLError as e:
            self.problems.append(Problem(self.source, 1, 1, f"YAML error: {e}"))
            self.fail()
        if node is None:
            self.problems.append(Problem(self.source, 1, 1, "the file is empty",
                                         "a rule file has a top-level 'rules:' list"))
            self.fail()
        return self._data(node, ())

    def _data(self, node: yaml.Node, path: tuple) -> Any:
        self.nodes[path] = node
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                key = self.constructor.construct_object(knode, deep=True)
                if isinstance(key, (list, dict)):
                    self.keys[path + ("?",)] = knode
                    self.problem(path + ("?",), "a mapping key must be a plain value", key=True)
                    continue
                self.keys[path + (key,)] = knode
                if key in out:
                    self.problem(path + (key,), f"duplicate key {key!r}", "each key may appear once", key=True)
                    continue
                out[key] = self._data(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._data(child, path + (i,)) for i, child in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)

    def _move(self, old: tuple, new: tuple) -> None:
        """Re-key the node maps after a path changed (a conditions list became a numbered mapping)."""
        for table in (self.nodes, self.keys):
            for path in [p for p in table if p[:len(old)] == old]:
                table[new + path[len(old):]] = table[path]

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
        if isinstance(data.get("ruleset"), dict):
            self.check_fields(data["ruleset"], ("ruleset",), m.RulesetInfo, "'ruleset'")
        rules = data.get("rules")
        if rules is not None and not isinstance(rules, list):
            self.problem(("rules",), f"'rules' must be a list of rules, not {_kind(rules)}")
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            self._prepare_rule(rule, ("rules", i))
        for i, target in enumerate(data.get("alerts") or [] if isinstance(data.get("alerts"), list) else []):
            self.check_fields(target, ("alerts", i), m.AlertTarget, "alert target")
        self._validate(data, m.Ruleset)
        self._check_raw(data)
        self.fail()
        return replace(self._build(data, m.Ruleset), source=self.source)

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
        self._validate(data, m.Scorecard)
        self.fail()
        card = self._build(data, m.Scorecard)
        self._check_scorecard(card)
        self.fail()
        return replace(card, source=self.source)

    # ---- preparation (before type validation)
    def _versions(self, data: Any, path: tuple) -> None:
        if isinstance(data, dict) and isinstance(data.get("version"), (int, float)) \
                and not isinstance(data.get("version"), bool):
            data["version"] = str(data["version"])

    def _prepare_rule(self, rule: Any, path: tuple) -> None:
        if not self.check_fields(rule, path, m.Rule, "rule"):
            if not isinstance(rule, dict):
                return
        self._versions(rule, path)
        scope = rule.get("scope")
        if scope is not None and self.check_fields(scope, path + ("scope",), m.Scope, "'scope'"):
            self._prepare_window(scope, path + ("scope",))
        if rule.get("consequence") is not None:
            self.check_fields(rule["consequence"], path + ("consequence",), m.Consequence, "'consequence'")
        if isinstance(rule.get("expression"), int) and not isinstance(rule.get("expression"), bool):
            rule["expression"] = str(rule["expression"])
        conds = rule.get("conditions")
        if conds is None:
            return
        if isinstance(conds, list):
            numbered = {}
            for i, c in enumerate(conds):
                self._move(path + ("conditions", i), path + ("conditions", f"#{i + 1}"))
                numbered[i + 1] = c
            for i in range(len(conds)):
                self._move(path + ("conditions", f"#{i + 1}"), path + ("conditions", i + 1))
            rule["conditions"] = conds = numbered
        if not isinstance(conds, dict) or not conds:
            self.problem(path + ("conditions",), "'conditions' must be a non-empty mapping of numbered conditions",
                         "write conditions: {1: {type: keywords, words: [...]}}")
            return
        for number, cond in conds.items():
            cpath = path + ("conditions", number)
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                self.problem(cpath, f"condition number {number!r} is not a positive whole number",
                             "number conditions 1, 2, 3... and refer to them in 'expression'", key=True)
                continue
            self._prepare_condition(cond, cpath)

    def _prepare_condition(self, cond: Any, path: tuple) -> None:
        if not isinstance(cond, dict):
            self.problem(path, f"a condition must be a mapping with a 'type', not {_kind(cond)}")
            return
        kind = cond.get("type")
        types = sorted(m.CONDITION_TYPES)
        if kind is None:
            self.problem(path, "condition has no 'type'", f"one of: {', '.join(types)}")
            return
        if kind not in m.CONDITION_TYPES:
            close = difflib.get_close_matches(str(kind), types, n=1)
            self.problem(path + ("type",), f"unknown condition type {kind!r} (expected one of: {', '.join(types)})",
                         f"did you mean {close[0]!r}?" if close else None)
            return
        self.check_fields(cond, path, m.CONDITION_TYPES[kind], f"condition of type {kind!r}")
        self._prepare_window(cond, path)
        for key in _TEXT_LIST_KEYS & set(cond):
            if isinstance(cond[key], list):  # 12315 unquoted in YAML is a number: treat it as text
                cond[key] = [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                             for v in cond[key]]

    def _prepare_window(self, holder: dict, path: tuple) -> None:
        window = holder.get("window")
        if window == "call" or window == "whole_call":
            holder["window"] = {}
        elif isinstance(window, str):
            self.problem(path + ("window",), f"unknown window {window!r}",
                         "write 'call' or a mapping such as {first_s: 30}, {last_segments: 3}, {share: [0.75, 1]}, "
                         "{around: 2, seconds: 15}")
        elif window is not None:
            self.check_fields(window, path + ("window",), m.Window, "'window'")

    # ---- type validation with pydantic
    def _validate(self, data: Any, cls: type) -> None:
        from pydantic import ValidationError

        try:
            _adapter(cls).validate_python(data)
        except ValidationError as e:
            covered = {"unexpected_keyword_argument", "extra_forbidden", "union_tag_invalid", "union_tag_not_found"}
            for err in e.errors():
                if err["type"] in covered:
                    continue
                path = self._path(err["loc"])
                where = _describe(path, data)
                if err["type"] in ("missing", "missing_keyword_only_argument"):
                    self.problem(path[:-1], f"{where}: required field {path[-1]!r} is missing")
                    continue
                got = err.get("input")
                msg = err["msg"].replace("Input should be", "expected")
                self.problem(path, f"{where}: {msg}, got {got!r}" if not isinstance(got, (dict, list)) else
                             f"{where}: {msg}, got {_kind(got)}")

    def _path(self, loc: tuple) -> tuple:
        """A pydantic error location without the union tags pydantic inserts."""
        path: tuple = ()
        for part in loc:
            if path + (part,) in self.nodes or path + (part,) in self.keys:
                path += (part,)
            elif isinstance(part, str) and part.isdigit() and path + (int(part),) in self.nodes:
                path += (int(part),)
            elif part in m.CONDITION_TYPES or part in ("function-after",):
                continue
            else:
                path += (part,)
        return path

    def _build(self, data: Any, cls: type) -> Any:
        return _adapter(cls).validate_python(data)

    # ---- meaning (after type validation)
    def _piece(self, data: Any, cls: Any) -> Any:
        """``data`` validated as ``cls``, or None when it has type errors (reported by ``_validate``)."""
        from pydantic import ValidationError

        try:
            return _adapter(cls).validate_python(data)
        except (ValidationError, TypeError, ValueError):
            return None

    def _check_raw(self, data: dict) -> None:
        """Checks of meaning, on every piece that is well-typed, so one bad field hides nothing else."""
        rules = data.get("rules") if isinstance(data.get("rules"), list) else []
        seen: dict[str, int] = {}
        for i, raw in enumerate(rules):
            if not isinstance(raw, dict):
                continue
            path = ("rules", i)
            rid = raw.get("id")
            if isinstance(rid, str):
                if rid in seen:
                    self.problem(path + ("id",), f"duplicate rule id {rid!r} (also rule #{seen[rid] + 1})",
                                 "rule ids must be unique in a file")
                seen.setdefault(rid, i)
            conds = raw.get("conditions") if isinstance(raw.get("conditions"), dict) else {}
            numbers = sorted(k for k in conds if isinstance(k, int) and not isinstance(k, bool) and k > 0)
            expression = raw.get("expression")
            if isinstance(expression, str) and expression.strip():
                try:
                    tree = _expr.parse(expression)
                except _expr.ExprSyntaxError as e:
                    self.problem(path + ("expression",), f"rule {rid!r}: bad expression {expression!r}: {e}",
                                 "write e.g. 1 && (2 || !3)", offset=e.column)
                else:
                    for ref in _expr.refs(tree):
                        if ref.number not in numbers:
                            self.problem(path + ("expression",),
                                         f"rule {rid!r}: expression names condition {ref.number}, which is not "
                                         f"defined (conditions: {', '.join(map(str, numbers)) or 'none'})",
                                         offset=ref.column)
            scope = raw.get("scope")
            if isinstance(scope, dict) and isinstance(scope.get("window"), dict):
                w = self._piece(scope["window"], m.Window)
                if w is not None:
                    self._check_window(w, path + ("scope", "window"), numbers, None)
            parsed = {}
            for n in numbers:
                c = self._piece(conds[n], m.Condition)
                if c is None:
                    continue
                parsed[n] = c
                if c.window is not None:
                    self._check_window(c.window, path + ("conditions", n, "window"), numbers, n)
                self._check_condition(c, path + ("conditions", n))
            self._check_cycles(parsed, rid, path)
        alerts = data.get("alerts") if isinstance(data.get("alerts"), list) else []
        for i, raw in enumerate(alerts):
            t = self._piece(raw, m.AlertTarget)
            if t is None:
                continue
            if not re.match(r"^https?://", t.url):
                self.problem(("alerts", i, "url"), f"alert url {t.url!r} is not an http(s) URL")
            if t.timeout_s <= 0 or t.retries < 0 or t.backoff_s < 0:
                self.problem(("alerts", i), "timeout_s must be > 0, retries and backoff_s >= 0")

    def _check_window(self, w: m.Window, path: tuple, numbers: list[int], own: int | None) -> None:
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
            if own is None:
                self.problem(path + ("around",), "a rule-level window cannot be 'around' a condition",
                             "put the around-window on the condition that needs it")
            elif w.around not in numbers:
                self.problem(path + ("around",), f"window is around condition {w.around}, which is not defined")
            elif w.around == own:
                self.problem(path + ("around",), "a condition's window cannot be around itself")

    def _check_cycles(self, conds: dict[int, Any], rid: Any, path: tuple) -> None:
        deps = {n: c.window.around for n, c in conds.items() if c.window and c.window.around
                and c.window.around != n}  # self-reference has its own message
        for start in deps:
            seen, cur = {start}, deps[start]
            while cur in deps:
                if cur in seen:
                    self.problem(path + ("conditions", start, "window"),
                                 f"rule {rid!r}: 'around' windows form a cycle through condition {start}")
                    break
                seen.add(cur)
                cur = deps[cur]

    def _check_condition(self, c: Any, path: tuple) -> None:
        def need(ok: bool, key: str, message: str, hint: str | None = None) -> None:
            if not ok:
                self.problem(path + (key,) if key else path, message, hint)

        if getattr(c, "min_count", None) is not None and c.min_count < 1:
            need(False, "min_count", "min_count must be at least 1")
        if c.min_chars is not None:
            need(c.min_chars >= 0, "min_chars", "min_chars must be >= 0")
        if isinstance(c, m.Keywords):
            need(bool(c.words) and all(w.strip() for w in c.words), "words", "keywords need a non-empty list of words")
            if c.at_least is not None:
                need(1 <= c.at_least <= len(c.words), "at_least",
                     f"at_least must be between 1 and the number of words ({len(c.words)})")
                need(c.match == "any", "match", "use either at_least or match, not both")
            need(not (c.in_order or c.within is not None) or c.match == "all", "match",
                 "in_order and within need match: all")
            need(c.negation_window >= 0, "negation_window", "negation_window must be >= 0")
        elif isinstance(c, m.Regex):
            for key in ("pattern", "exclude"):
                value = getattr(c, key)
                if value is None:
                    continue
                try:
                    re.compile(value)
                except re.error as e:
                    self.problem(path + (key,), f"bad regular expression {value!r}: {e.msg} at position {e.pos}",
                                 "Python regex syntax; escape ( ) [ ] . * + ? with a backslash", offset=0)
        elif isinstance(c, m.Similarity):
            need(bool(c.examples), "examples", "similarity needs a non-empty list of examples")
            need(0 < c.min_similarity <= 1, "min_similarity", "min_similarity must be in (0, 1]")
        elif isinstance(c, m.Repetition):
            need(c.min_repeats >= 2, "min_repeats", "min_repeats must be at least 2")
        elif isinstance(c, (m.Emotion, m.EmotionChange)):
            for key in ("labels",) if isinstance(c, m.Emotion) else ("before", "after"):
                values = getattr(c, key)
                need(bool(values), key, f"{key} must list emotions")
                for v in values:
                    if v not in EMOTION_NAMES and v not in EMOTION_GROUPS:
                        close = difflib.get_close_matches(v, [*EMOTION_NAMES, *EMOTION_GROUPS], n=1)
                        self.problem(path + (key,), f"unknown emotion {v!r} (expected one of: "
                                     f"{', '.join(EMOTION_NAMES)}, or a group: {', '.join(EMOTION_GROUPS)})",
                                     f"did you mean {close[0]!r}?" if close else None)
            if c.min_score is not None:
                need(0 <= c.min_score <= 1, "min_score", "min_score must be in [0, 1]")
            if isinstance(c, m.Emotion):
                modes = [k for k in ("sustained_s", "share_below", "share_at_least") if getattr(c, k) is not None]
                need(len(modes) <= 1, modes[-1] if modes else "", f"use one of {', '.join(modes)}, not several")
                for k in ("share_below", "share_at_least"):
                    if getattr(c, k) is not None:
                        need(0 <= getattr(c, k) <= 1, k, f"{k} must be in [0, 1]")
            else:
                need(c.within_segments >= 1, "within_segments", "within_segments must be at least 1")
        elif isinstance(c, m.Event):
            need(bool(c.events), "events", "event needs a non-empty list of event tags")
            for v in c.events:
                if v not in EVENT_TAGS:
                    close = difflib.get_close_matches(v, EVENT_TAGS, n=1) or [t for t in EVENT_TAGS if t.lower() == v.lower()]
                    self.problem(path + ("events",), f"unknown event {v!r} (expected one of: {', '.join(EVENT_TAGS)})",
                                 f"did you mean {close[0]!r}?" if close else None)
            if c.min_share is not None:
                need(0 <= c.min_share <= 1, "min_share", "min_share must be in [0, 1]")
        elif isinstance(c, m.Silence) or isinstance(c, m.TalkOver):
            need(c.min_s >= 0, "min_s", "min_s must be >= 0")
        elif isinstance(c, m.Loudness):
            need(c.spike or c.above_dbfs is not None or c.below_dbfs is not None, "",
                 "loudness needs above_dbfs, below_dbfs or spike: true")
        elif isinstance(c, (m.SpeechRate, m.TalkRatio, m.TextLength, m.SegmentCount)):
            need(c.above is not None or c.below is not None, "", f"{c.type} needs 'above' or 'below' (or both)")
            if isinstance(c, m.TalkRatio):
                for k in ("above", "below"):
                    if getattr(c, k) is not None:
                        need(0 <= getattr(c, k) <= 1, k, f"{k} is a share of talk time, in [0, 1]")
        elif isinstance(c, m.Duration):
            need(c.above_s is not None or c.below_s is not None, "", "duration needs 'above_s' or 'below_s'")
        elif isinstance(c, m.Metadata):
            self._check_metadata(c, path)
        elif isinstance(c, m.History):
            need((c.flag is None) != (c.emotion is None), "", "history needs exactly one of 'flag' or 'emotion'")
            if c.emotion is not None:
                need(c.emotion in EMOTION_NAMES, "emotion", f"unknown emotion {c.emotion!r}")
            need(c.last >= 1, "last", "last must be at least 1")
            if c.min_count is not None:
                need(1 <= c.min_count <= c.last, "min_count", f"min_count must be between 1 and last ({c.last})")

    def _check_metadata(self, c: m.Metadata, path: tuple) -> None:
        v = c.value
        if c.op in ("in", "not_in") and not isinstance(v, (list, tuple)):
            self.problem(path + ("value",), f"op {c.op!r} needs a list value, got {_kind(v)}")
        elif c.op in ("gt", "ge", "lt", "le") and (isinstance(v, bool) or not isinstance(v, (int, float))):
            self.problem(path + ("value",), f"op {c.op!r} needs a number, got {v!r}")
        elif c.op == "regex":
            if not isinstance(v, str):
                self.problem(path + ("value",), f"op 'regex' needs a text value, got {_kind(v)}")
            else:
                try:
                    re.compile(v)
                except re.error as e:
                    self.problem(path + ("value",), f"bad regular expression {v!r}: {e.msg} at position {e.pos}")
        elif c.op in ("exists", "missing") and v is not None:
            self.problem(path + ("value",), f"op {c.op!r} takes no value")
        elif c.op in ("eq", "ne", "contains") and path + ("value",) not in self.nodes:
            self.problem(path, f"op {c.op!r} needs a 'value'", "use op: exists / missing to test presence")

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
    from pydantic import TypeAdapter

    if id(cls) not in _ADAPTERS:
        _ADAPTERS[id(cls)] = TypeAdapter(cls)
    return _ADAPTERS[id(cls)]


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", type(None): "nothing"}.get(
        type(value), f"a {type(value).__name__}")


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
