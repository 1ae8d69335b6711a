"""Outlier scores searchable and usable in rules (issue 20, item 7): the ``outlier`` condition, rules applied
against the store (``callsense rules run --db``), ``callsense search --outliers``, ``/v1/search?outliers``
and ``GET /v1/outliers`` — on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from api_support import Server, assert_problem
from callsense.rules import apply_qa, load_ruleset_text
from callsense.rules.loader import RuleFileError
from callsense.rules.model import OutlierScore
from callsense.testing.results import make_result, seg
from callsense.testing.store import fresh_postgres_database

DIM = 16
RULES = """\
ruleset: {id: odd, version: "1"}
rules:
  - id: odd.voice
    name: Unusual voice
    conditions:
      1: {type: outlier}
    consequence: {severity: warning}
  - id: odd.customer_far
    name: Customer far from the reference
    scope: {role: customer}
    conditions:
      1: {type: outlier, above: 0.5}
    consequence: {severity: info}
"""


def _call(n: int, agent: str, odd: bool, rng):
    segs = [seg(("customer", "agent")[i % 2], i * 3000, i * 3000 + 2500, f"words {n}-{i}", emotion_="neutral")
            for i in range(3)]
    r = make_result(segs, call_id=f"c{n:03d}", metadata={"agent_id": agent})
    r = dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=f"{n:064d}"))
    r = dataclasses.replace(r, segments=tuple(dataclasses.replace(s, emotion=dataclasses.replace(
        s.emotion, embedding_index=i)) for i, s in enumerate(r.segments)))
    rows = []
    for i in range(3):
        v = np.zeros(DIM, np.float32)
        v[(i % 2) * 4:(i % 2) * 4 + 4] = 1.0
        v += 0.05 * rng.standard_normal(DIM).astype(np.float32)
        if odd and i == 0:  # the customer's first segment points where no reference segment does
            v = np.zeros(DIM, np.float32)
            v[-4:] = 1.0
        rows.append(v)
    return r, np.stack(rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Eight calls of agent a1 (the reference), one of a9 whose first customer segment is odd; one outliers
    run over every call against a1's."""
    from callsense.store import open_store, save_result
    from callsense.store.clusters import Selection, run_outliers

    ctx = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        ctx = fresh_postgres_database()
        url = ctx.__enter__()
    rng = np.random.default_rng(3)
    with open_store(url) as s:
        for n, agent in [*((n, "a1") for n in range(8)), (99, "a9")]:
            r, e = _call(n, agent, n == 99, rng)
            save_result(s, r, embeddings=e)
        run_outliers(s, Selection(), Selection(where={"agent_id": "a1"}))
    yield url
    if ctx is not None:
        ctx.__exit__(None, None, None)


def _cli(*args, check=True):
    """`callsense ARGS` in this process (cli_support: no Python start-up; these commands load no model)."""
    from cli_support import run_cli

    p = run_cli(args, {"COLUMNS": "200"})
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


# ---------------------------------------------------------------- the condition
def test_outlier_condition_reads_the_scores_it_is_given():
    r = make_result([seg("customer", 0, 2000, "a"), seg("agent", 2000, 4000, "b"), seg("customer", 4000, 6000, "c")])
    ids = [s.id for s in r.segments]
    rules = load_ruleset_text(RULES, "odd.yaml")
    scores = {ids[0]: OutlierScore(0.9, True, 4, 0.3), ids[1]: OutlierScore(0.2, False, 4, 0.3),
              ids[2]: OutlierScore(0.6, False, 3, 0.7)}
    hits = {h.rule_id: h for h in apply_qa(r, ruleset=rules, outliers=scores).rule_hits}
    assert [e.segment_id for e in hits["odd.voice"].evidence] == [ids[0]]  # flagged only
    assert "outlier score 0.900 (run 4, threshold 0.300, flagged)" in hits["odd.voice"].evidence[0].note
    # customer segments over 0.5, flagged or not: the first and the third
    assert sorted(e.segment_id for e in hits["odd.customer_far"].evidence) == [ids[0], ids[2]]

    calm = {k: dataclasses.replace(v, flagged=False, score=0.1) for k, v in scores.items()}
    out = apply_qa(r, ruleset=rules, outliers=calm)
    assert out.rule_hits == ()
    from callsense.rules import evaluate_outcomes

    # no score stored for the call: not applicable, never a silent pass
    outcomes = {o.rule_id: o for o in evaluate_outcomes(r, rules)}
    assert outcomes["odd.voice"].status == "na" and "callsense clusters outliers" in outcomes["odd.voice"].reason
    assert {o.status for o in evaluate_outcomes(r, rules, outliers=calm)} == {"pass"}

    with pytest.raises(RuleFileError) as e:
        load_ruleset_text(RULES.replace("{type: outlier}", "{type: outlier, flagged: false}"), "bad.yaml")
    assert "flagged" in str(e.value)
    with pytest.raises(RuleFileError):
        load_ruleset_text(RULES.replace("above: 0.5", "above: 3"), "bad.yaml")


# ---------------------------------------------------------------- against the store
@pytest.mark.slow
def test_rules_search_and_cli_read_the_latest_stored_scores(db_url, tmp_path):
    from callsense.store import get_result, open_store
    from callsense.store.clusters import Selection, latest_outlier_scores, run_outliers
    from callsense.store.history import apply_store_rules
    from callsense.store.search import SearchQuery, search

    rules = load_ruleset_text(RULES, "odd.yaml")
    with open_store(db_url) as s:
        odd = apply_store_rules(s, get_result(s, "c099"), rules)
        hit = {h.rule_id: h for h in odd.rule_hits}["odd.voice"]
        assert [e.segment_id for e in hit.evidence] == ["s0001"]
        hits = search(s, SearchQuery(outliers=True))
        clean = next(f"c{n:03d}" for n in range(8) if f"c{n:03d}" not in {h.call_id for h in hits})
        assert "odd.voice" not in {h.rule_id for h in apply_store_rules(s, get_result(s, clean), rules).rule_hits}

        assert [(h.call_id, h.segment_id) for h in hits if h.call_id == "c099"] == [("c099", "s0001")]
        assert all(h.outlier_flagged for h in hits) and max(h.outlier_score for h in hits) > 0.5
        assert len(hits) <= 3  # the odd segment, perhaps an unlucky one or two
        assert {h.call_id for h in search(s, SearchQuery(min_outlier=0.5))} == {"c099"}
        assert search(s, SearchQuery(outliers=True, role="agent", min_outlier=0.5)) == []

        # a later run that scores only agent segments: the customer's odd segment keeps its older score
        first = latest_outlier_scores(s, "c099")
        later = run_outliers(s, Selection(role="agent"), Selection(where={"agent_id": "a1"}))
        now = latest_outlier_scores(s, "c099")
        assert now["s0001"] == first["s0001"] and now["s0002"].run_id == later != first["s0002"].run_id
        assert first["s0001"].threshold is not None and first["s0001"].score > first["s0001"].threshold

    rule_file = tmp_path / "odd.yaml"
    rule_file.write_text(RULES, encoding="utf-8")
    doc = json.loads(_cli("rules", "run", rule_file, "--db", db_url, "--call", "c099", "--call", clean,
                          "--json").stdout)
    by_call = {r["call_id"]: {h["rule_id"] for h in r["hits"]} for r in doc["results"]}
    assert "odd.voice" in by_call["c099"] and "odd.voice" not in by_call[clean]
    missing = _cli("rules", "run", rule_file, "--db", db_url, "--call", "nope", check=False)
    assert missing.returncode == 3 and "nope" in missing.stdout + missing.stderr
    assert _cli("rules", "run", rule_file, check=False).returncode == 2  # nothing to run on

    found = json.loads(_cli("search", "--outliers", "--db", db_url, "--json").stdout)
    odd = [f for f in found if f["call_id"] == "c099"]
    assert [f["segment_id"] for f in odd] == ["s0001"] and all(f["outlier_flagged"] for f in found)
    table = _cli("search", "--min-outlier", "0.5", "--db", db_url).stdout
    assert "c099" in table and "outlier" in table
    assert _cli("search", "--min-outlier", "5", "--db", db_url, check=False).returncode == 2


@pytest.mark.slow
def test_api_lists_and_searches_outliers(db_url, tmp_path, tiny_models):
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": db_url}
    srv = Server(tmp_path / "data", env, "--no-ui").start()
    try:
        with srv.client() as c:
            r = c.get("/v1/outliers")
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["segments_flagged"][0]["call_id"] == "c099" and doc["reference_segments"] == 24
            assert all(x["flagged"] for x in doc["segments_flagged"])
            every = c.get("/v1/outliers", params={"all": "true", "limit": 100}).json()
            assert len(every["segments_flagged"]) == 27
            assert c.get("/v1/outliers", params={"run": doc["run"]}).json()["run"] == doc["run"]
            assert_problem(c.get("/v1/outliers", params={"run": doc["run"] + 50}), 404)
            assert_problem(c.get("/v1/outliers", params={"limit": 0}), 422)

            found = c.get("/v1/search", params={"outliers": "true"}).json()
            odd = [i for i in found["items"] if i["call_id"] == "c099"]
            assert [i["segment_id"] for i in odd] == ["s0001"] and odd[0]["outlier_flagged"] is True
            near = c.get("/v1/search", params={"min_outlier": 0.5, "role": "customer"}).json()
            assert {i["call_id"] for i in near["items"]} == {"c099"}
            assert "outlier_score" not in c.get("/v1/search", params={"role": "customer"}).json()["items"][0]
            assert_problem(c.get("/v1/search", params={"min_outlier": 3}), 422)
            calls = c.get("/v1/calls", params={"outliers": "true"}).json()
            assert "c099" in {i["call_id"] for i in calls["items"]} and calls["total"] == len({i["call_id"] for i in found["items"]})
            paged = c.get("/v1/calls", params={"outliers": "true", "cursor": "", "limit": 1}).json()
            assert len(paged["items"]) == 1 and (paged["next_cursor"] is not None) == (calls["total"] > 1)
    finally:
        srv.stop()
