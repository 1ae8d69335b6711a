"""A condition type is one class registered once: the loader and the evaluator need nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from callsense.rules import evaluate, load_ruleset_text
from callsense.rules.context import Context, Outcome, Scoped, cap, seg_ev
from callsense.rules.loader import RuleFileError
from callsense.rules.model import CONDITIONS, Condition, Findings, register_condition
from callsense.testing.results import make_result, seg


@pytest.fixture
def shouting(monkeypatch):
    """A plug-in condition: segments written in capitals, at least ``min_letters`` of them."""
    monkeypatch.delitem(CONDITIONS, "shouting", raising=False)

    @register_condition("shouting")
    @dataclass(frozen=True, kw_only=True)
    class Shouting(Condition):
        min_letters: int = 5
        min_count: int = 1

        def check(self, findings: Findings) -> None:
            super().check(findings)
            findings.need(self.min_letters >= 1, "min_letters", "min_letters must be at least 1")

        def evaluate(self, ctx: Context, sc: Scoped, n: int) -> Outcome:
            loud = [s for s in sc.segments
                    if sum(ch.isupper() for ch in s.text) >= self.min_letters and s.text == s.text.upper()]
            ok = len(loud) >= self.min_count
            return Outcome(ok, cap(seg_ev(ctx, s, n, text=s.text, note="in capitals") for s in loud) if ok else (),
                           scope=sc)

    yield Shouting
    monkeypatch.delitem(CONDITIONS, "shouting", raising=False)


RULE = """\
rules:
  - id: caps
    name: customer shouts in writing
    scope: {role: customer}
    conditions:
      1: {type: shouting, min_letters: %d}
"""


def test_a_registered_type_is_loaded_checked_and_evaluated(shouting):
    rs = load_ruleset_text(RULE % 4)
    assert isinstance(rs.rules[0].conditions[1], shouting)
    result = make_result([seg("agent", 0, 1000, "HELLO THERE"), seg("customer", 1500, 3000, "WHERE IS MY PARCEL"),
                          seg("customer", 3500, 5000, "hello")])
    hits = evaluate(result, rs)
    assert [h.rule_id for h in hits] == ["caps"]
    assert [e.segment_id for e in hits[0].evidence] == [result.segments[1].id]  # the agent's capitals are out of scope
    assert not evaluate(make_result([seg("customer", 0, 1000, "calm words")]), rs)


def test_its_checks_and_fields_report_file_positions(shouting):
    text = RULE % 0
    with pytest.raises(RuleFileError) as e:
        load_ruleset_text(text, source="r.yaml")
    line = text.splitlines()[5]
    column = line.index("min_letters: 0") + len("min_letters: ") + 1  # the value
    assert [(p.line, p.column, p.message) for p in e.value.problems] == [(6, column, "min_letters must be at least 1")]
    with pytest.raises(RuleFileError) as e:
        load_ruleset_text(RULE.replace("min_letters", "min_leters") % 3, source="r.yaml")
    assert e.value.problems[0].hint == "did you mean 'min_letters'?"


def test_unknown_until_registered_and_a_name_is_registered_once(shouting):
    del CONDITIONS["shouting"]
    with pytest.raises(RuleFileError, match="unknown condition type 'shouting'"):
        load_ruleset_text(RULE % 3)
    with pytest.raises(ValueError, match="already registered"):
        register_condition("keywords")(shouting)
