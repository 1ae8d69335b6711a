"""Bad rule files are rejected at load with file:line:column and what is expected; the rules CLI."""

from __future__ import annotations

import json
import textwrap

import pytest

from callsense.cli.app import main
from callsense.errors import RuleError
from callsense.result import dump_result
from callsense.rules import load_ruleset, load_ruleset_text
from callsense.rules.loader import RuleFileError, pack_path
from callsense.testing.results import make_result, seg

GOOD = """\
rules:
  - id: r1
    version: 3
    name: rule one
    conditions:
      - {type: keywords, words: [投诉, 12315]}
      - {type: emotion, labels: [angry]}
    expression: 1 && !2
"""


def problems(text: str) -> list[tuple[int, int, str, str | None]]:
    with pytest.raises(RuleFileError) as e:
        load_ruleset_text(textwrap.dedent(text), source="r.yaml")
    assert isinstance(e.value, RuleError) and e.value.exit_code == 2
    return [(p.line, p.column, p.message, p.hint) for p in e.value.problems]


def test_good_file_loads_with_list_conditions_and_numeric_text():
    rs = load_ruleset_text(GOOD)
    rule = rs.rules[0]
    assert rule.version == "3" and sorted(rule.conditions) == [1, 2]
    assert rule.conditions[1].words == ("投诉", "12315")  # unquoted 12315 is still a keyword


@pytest.mark.parametrize("text,line,column,needle", [
    ("rules:\n  - id: a\n    name: [x\n", 4, 1, "YAML syntax error"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: keyword, words: [x]}\n",
     5, 17, "unknown condition type 'keyword'"),
    ("rules:\n  - id: a\n    name: A\n    colour: red\n    conditions:\n      1: {type: duration, above_s: 1}\n",
     4, 5, "unknown field 'colour' in rule"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: regex, pattern: '(abc'}\n",
     5, 33, "bad regular expression '(abc'"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: duration, above_s: 1}\n"
     "    expression: '1 || 4'\n", 6, 23, "expression names condition 4, which is not defined"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: silence, min_s: five}\n",
     5, 33, "expected a valid number"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: emotion, labels: [angri]}\n",
     5, 34, "unknown emotion 'angri'"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: event, events: [cough]}\n",
     5, 32, "unknown event 'cough'"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: metadata, field: q, op: in, value: x}\n",
     5, 52, "op 'in' needs a list value"),
    ("rules:\n  - id: a\n    conditions:\n      1: {type: duration, above_s: 1}\n",
     2, 5, "required field 'name' is missing"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: duration, above_s: 1}\n"
     "    expression: '1 &'\n", 6, 20, "bad expression"),
    ("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: keywords, words: [x], window: {around: 1, "
     "segments: 2}}\n", 5, 56, "cannot be around itself"),
    ("rules:\n  - id: a\n    name: A\n    conditions: {}\n", 4, 17, "non-empty mapping"),
    ("rules:\n  - {id: a, name: A, conditions: {1: {type: duration, above_s: 1}}}\n"
     "  - {id: a, name: B, conditions: {1: {type: duration, above_s: 1}}}\n", 3, 10, "duplicate rule id 'a'"),
])
def test_bad_files_point_at_the_problem(text, line, column, needle):
    found = problems(text)
    assert any(needle in msg and (ln, col) == (line, column) for ln, col, msg, _ in found), found


def test_did_you_mean_hints_and_all_problems_reported():
    found = problems("""\
        rules:
          - id: a
            name: A
            conditions:
              1: {type: keyword, words: [x]}
              2: {type: silence, min_sec: 5}
    """)
    hints = [h for _, _, _, h in found]
    assert "did you mean 'keywords'?" in hints and "did you mean 'min_s'?" in hints


def test_a_rule_file_never_fails_at_evaluation_with_keyerror():
    rs = load_ruleset_text("""\
rules:
  - id: a
    name: A
    conditions:
      1: {type: metadata, field: deep.missing.path, op: gt, value: 3}
      2: {type: history, flag: x, last: 2}
      3: {type: talk_over}
    expression: 1 || 2 || 3
""")
    from callsense.rules.evaluate import evaluate_outcomes

    out = evaluate_outcomes(make_result([seg("unknown", 0, 1000, "a")], stereo=False), rs, strict=True)
    assert out[0].status == "na"


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(RuleError, match="file not found"):
        load_ruleset(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("rules: []  # caf\xe9".encode("latin-1"))
    with pytest.raises(RuleError, match="not UTF-8"):
        load_ruleset(bad)


# ---------------------------------------------------------------------------------------------- CLI
def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_check_reports_file_line_column_and_exits_2(tmp_path, capsys):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: a\n    name: A\n    conditions:\n      1: {type: keyword, words: [x]}\n",
                    encoding="utf-8")
    code, _, err = run_cli(["rules", "check", str(path)], capsys)
    assert code == 2
    assert f"{path}:5:17: unknown condition type 'keyword'" in err
    assert "did you mean 'keywords'?" in err


def test_cli_check_accepts_the_default_pack_and_scorecard(capsys):
    code, out, err = run_cli(["rules", "check", pack_path(), pack_path("default-scorecard.yaml")], capsys)
    assert code == 0, err
    assert "ok, 12 rules" in out and "scorecard callsense-default" in out


def test_cli_list_shows_the_default_pack(capsys):
    code, out, _ = run_cli(["rules", "list"], capsys)
    assert code == 0 and "callsense-default" in out and "risk.complaint" in out


def test_cli_run_re_evaluates_stored_results(tmp_path, capsys):
    result = make_result([seg("customer", 0, 4000, "我要投诉你们的服务态度", emotion_="angry")], call_id="call-42")
    path = tmp_path / "result.json"
    path.write_text(dump_result(result), encoding="utf-8")
    code, out, err = run_cli(["rules", "run", "default", str(path)], capsys)
    assert code == 0, err
    assert "call-42" in out and "risk.complaint" in out and "FAIL" in out and '"投诉"' in out
    code, out, _ = run_cli(["rules", "run", "default", str(path), "--json"], capsys)
    doc = json.loads(out)  # --json: one document {"results": [...], "failures": [...]}
    assert doc["failures"] == []
    [data] = doc["results"]
    assert data["call_id"] == "call-42" and data["hits"][0]["rule_id"] == "risk.complaint"
    assert data["hits"][0]["evidence"][0]["segment_id"] == "s0001"


def test_cli_run_reports_a_result_of_another_schema_version(tmp_path, capsys):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": "0.3", "call_id": "x"}), encoding="utf-8")
    code, _, err = run_cli(["rules", "run", "default", str(path)], capsys)
    assert code == 3 and "schema version 0.3 is not supported" in err
