"""`callsense clusters` (issue 20, item 7) on SQLite and PostgreSQL: k chosen by silhouette, clusters with
their emotions, agents and examples, outliers against a reference set, runs that follow deleted calls."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from callsense.analysis.clusters import cluster, outlier_scores
from callsense.testing.results import make_result, seg
from callsense.testing.store import fresh_postgres_database

DIM = 16
GROUPS = {"angry": 0, "happy": 1, "sad": 2}  # each emotion's segments sit around its own direction


def _centre(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i * 4:(i + 1) * 4] = 1.0
    return v


def _call(n: int, agent: str, emotions: list[str], rng, odd: bool = False):
    segs = [seg(("customer", "agent")[i % 2], i * 3000, i * 3000 + 2500, f"{emo} words {n}-{i}", emotion_=emo)
            for i, emo in enumerate(emotions)]
    r = make_result(segs, call_id=f"c{n:03d}", metadata={"agent_id": agent, "queue": "q1"})
    r = dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=f"{n:064d}"))
    segments = tuple(dataclasses.replace(s, emotion=dataclasses.replace(s.emotion, embedding_index=i))
                     for i, s in enumerate(r.segments))
    r = dataclasses.replace(r, segments=segments)
    rows = []
    for emo in emotions:
        if not odd:
            v = _centre(GROUPS[emo]) + 0.05 * rng.standard_normal(DIM).astype(np.float32)
        else:
            v = np.zeros(DIM, np.float32)
            v[-4:] = 1.0  # a direction no reference call has
            v[-1] = -1.0
        rows.append(v)
    return r, np.stack(rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    from callsense.store import open_store, save_result

    ctx = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        ctx = fresh_postgres_database()
        url = ctx.__enter__()
    rng = np.random.default_rng(0)
    with open_store(url) as s:
        n = 0
        for agent in ("a1", "a2"):
            for emos in (["angry", "angry", "happy"], ["happy", "sad", "sad"], ["sad", "angry", "happy"],
                         ["angry", "happy", "sad"]):
                r, e = _call(n, agent, emos, rng)
                save_result(s, r, embeddings=e)
                n += 1
        r, e = _call(99, "a9", ["neutral"], rng, odd=True)
        save_result(s, r, embeddings=e)
    yield url
    if ctx is not None:
        ctx.__exit__(None, None, None)


def _cli(*args, check=True):
    """`callsense clusters ARGS` in this process (cli_support: no Python start-up; it loads no model)."""
    from cli_support import run_cli

    p = run_cli(["clusters", *args], {"COLUMNS": "200"})
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.mark.slow
def test_clusters_choose_k_and_describe_each_cluster(db_url):
    doc = json.loads(_cli("run", "--db", db_url, "--where", "queue=q1", "--k-max", "6", "--json").stdout)
    assert doc["criterion"] == "silhouette (cosine)" and doc["segments"] == 25
    sizes = sorted(c["size"] for c in doc["clusters"])
    assert doc["k"] == 4 and sizes == [1, 8, 8, 8]  # three emotions and the odd segment
    for c in doc["clusters"]:
        assert c["emotions"][0]["share"] == 1.0  # each cluster is one emotion's segments
        assert len(c["examples"]) == min(3, c["size"]) and c["examples"][0]["text"]
    big = [c for c in doc["clusters"] if c["size"] == 8]
    assert {c["emotions"][0]["value"] for c in big} == set(GROUPS)
    assert all({a["value"] for a in c["agents"]} == {"a1", "a2"} for c in big)
    assert doc["tried"]["4"] == max(doc["tried"].values())

    given = json.loads(_cli("run", "--db", db_url, "--k", "2", "--role", "customer", "--json").stdout)
    assert given["k"] == 2 and given["criterion"] == "given" and given["segments"] < 25
    c0 = given["clusters"][0]["cluster"]
    members = json.loads(_cli("show", str(given["run"]), "--db", db_url, "--cluster", c0, "--json").stdout)
    m = members["clusters"][0]["members"]
    assert len(m) == members["clusters"][0]["size"] and all(x["role"] == "customer" for x in m)
    assert [x["score"] for x in m] == sorted(x["score"] for x in m)  # nearest the centre first
    assert "clusters run" in _cli("show", "--db", db_url).stdout  # the latest run, as a table

    bad = _cli("run", "--db", db_url, "--k", "1", check=False)
    assert bad.returncode == 2
    bad = _cli("run", "--db", db_url, "--where", "colour=red", check=False)
    assert bad.returncode == 2 and "agent_id" in bad.stderr + bad.stdout
    none = _cli("run", "--db", db_url, "--where", "agent_id=nobody", check=False)
    assert none.returncode == 3


@pytest.mark.slow
def test_outliers_against_a_reference_agent_and_deletion(db_url):
    from callsense.store import open_store
    from callsense.store.privacy import delete_call

    doc = json.loads(_cli("outliers", "--db", db_url, "--reference", "agent_id=a1", "--json").stdout)
    assert doc["reference_segments"] == 12 and doc["segments"] == 25
    flagged = doc["segments_flagged"]
    assert flagged and flagged[0]["call_id"] == "c099" and flagged[0]["score"] > doc["threshold"]
    assert doc["flagged"] == len(flagged) <= 3  # the odd segment, perhaps an unlucky one or two
    listing = json.loads(_cli("flagged", "--db", db_url, "--json").stdout)
    assert listing["segments_flagged"][0]["call_id"] == "c099"
    every = json.loads(_cli("flagged", "--db", db_url, "--all", "--top", "100", "--json").stdout)
    assert len(every["segments_flagged"]) == 25

    with open_store(db_url) as s:
        from callsense.store.clusters import segment_outliers

        assert segment_outliers(s, "c099")["s0001"] == pytest.approx(flagged[0]["score"], abs=1e-4)
        delete_call(s, "c099")
    after = json.loads(_cli("flagged", "--db", db_url, "--all", "--top", "100", "--json").stdout)
    assert len(after["segments_flagged"]) == 24 and "c099" not in {r["call_id"] for r in after["segments_flagged"]}
    assert _cli("outliers", "--db", db_url, "--reference", "agent_id=a9", check=False).returncode == 3


def test_outlier_scores_unit():
    rng = np.random.default_rng(1)
    ref = np.concatenate([_centre(0) + 0.05 * rng.standard_normal((10, DIM)),
                          _centre(1) + 0.05 * rng.standard_normal((10, DIM))])
    groups = [f"r{i // 2}" for i in range(20)]
    q = np.stack([_centre(0), _centre(3)])
    o = outlier_scores(q, ["x", "y"], ref, groups, k=3)
    assert o.scores[0] < 0.05 and o.scores[1] > 0.9 and o.flagged.tolist() == [False, True]
    # a segment is never its own neighbour: the same call's reference rows are left out
    same = outlier_scores(ref[:1], [groups[0]], ref[:3], groups[:3], k=1)
    assert same.scores[0] > 1e-4  # ref[0] itself (distance 0) was not counted
    c = cluster(np.concatenate([ref, q[1:] + 0.01 * rng.standard_normal((5, DIM))]), k_max=5)
    assert c.k == 3 and sorted(np.bincount(c.labels).tolist()) == [5, 10, 10]


@pytest.mark.slow
def test_purge_removes_old_runs_and_their_rows(db_url):
    from sqlalchemy import func, select

    from callsense.store import open_store
    from callsense.store.clusters import Selection, run_clusters
    from callsense.store.models import AnalysisRun, SegmentScore
    from callsense.store.privacy import purge

    with open_store(db_url) as s:
        run_clusters(s, Selection(), k=3)
        purge(s, "0s", what="records")
        with s.session() as ses:
            assert ses.execute(select(func.count()).select_from(AnalysisRun)).scalar() == 0
            assert ses.execute(select(func.count()).select_from(SegmentScore)).scalar() == 0


def test_no_run_yet_is_exit_3_with_the_way_forward(tmp_path):
    """Asking for a run that does not exist is bad input (exit 3) naming what to run, never exit 1."""

    env = {**os.environ, "CALLSENSE_HOME": str(tmp_path), "CALLSENSE_OFFLINE": "1",
           "CALLSENSE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    for args, hint in ((["clusters", "show"], "callsense clusters run"), (["clusters", "flagged"], "callsense clusters outliers")):
        proc = subprocess.run([sys.executable, "-m", "callsense", *args], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        assert proc.returncode == 3, (args, proc.returncode, proc.stderr)
        assert hint in proc.stderr and "Traceback" not in proc.stderr
