"""The seeds' QC list (``callsense export --format json --what qc``) and the discard view
(``callsense search --invalid``) over a batch with a complaint, a calm call, an empty call and a broken file."""

from __future__ import annotations

import json

import pytest

from callsense.batch import collect, run_batch
from callsense.cli.app import main
from callsense.testing.store import FakeAnalyzer, write_fake_call


class QAFakeAnalyzer(FakeAnalyzer):
    """The fake decoder with the default QA pack applied, as the real Analyzer does."""

    def run(self, source, **kw):
        from dataclasses import replace

        from callsense.rules import apply_qa

        run = super().run(source, **kw)
        return replace(run, result=apply_qa(run.result))


@pytest.fixture
def qc_url(tmp_path):
    d = tmp_path / "in"
    write_fake_call(d / "a_complaint.wav", [("agent", 0, 3000, "您好很高兴为您服务", "neutral"),
                                            ("customer", 3000, 9000, "你们再不发货我就投诉", "angry")])
    write_fake_call(d / "b_calm.wav", [("agent", 0, 3000, "您好请问有什么可以帮您", "happy"),
                                       ("customer", 3000, 8000, "好的没问题谢谢你啊", "happy")])
    write_fake_call(d / "c_empty.wav", [], duration_ms=30000)  # ringing and nothing said
    (d / "d_broken.wav").write_bytes(b"not audio")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    report = run_batch(collect(d), analyzer_factory=QAFakeAnalyzer, db_url=url)
    assert report.done == 3 and report.failed == 1  # the broken file did not stop the batch
    return url


def cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_qc_export_is_one_json_array_with_the_seeds_fields(qc_url, tmp_path, capsys):
    out = tmp_path / "qc.json"
    code, _, err = cli(["export", "--db", qc_url, "--format", "json", "--what", "qc", "-o", str(out)], capsys)
    assert code == 0, err
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(rows, list) and len(rows) == 4
    for r in rows:
        assert set(r) >= {"call_id", "duration_s", "text", "start_emotion", "end_emotion", "risk", "invalid",
                          "score", "hit_ids"}
    calls = {r["file"]: r for r in rows if r["call_id"]}
    complaint, calm, empty = calls["a_complaint.wav"], calls["b_calm.wav"], calls["c_empty.wav"]
    assert complaint["risk"] is True and "risk.complaint" in complaint["hit_ids"] and complaint["score"] == 0
    assert complaint["end_emotion"] == "angry" and "投诉" in complaint["text"] and complaint["duration_s"] == 9.0
    assert calm["risk"] is False and calm["invalid"] is False and calm["score"] > 0 and calm["start_emotion"] == "happy"
    assert empty["invalid"] is True and empty["score"] is None and empty["hit_ids"] == ["call.invalid"]
    broken, = [r for r in rows if r["call_id"] is None]
    assert broken["file"].endswith("d_broken.wav") and "not an audio file" in broken["error"]


def test_search_invalid_is_the_discard_view(qc_url, capsys):
    code, out, err = cli(["search", "--db", qc_url, "--invalid", "--json"], capsys)
    assert code == 0, err
    hits = json.loads(out)
    assert {h["call_id"] for h in hits} and all(h["qa_score"] is None for h in hits)
    code, out, _ = cli(["search", "--db", qc_url, "--json"], capsys)
    assert len({h["call_id"] for h in json.loads(out)}) > len({h["call_id"] for h in hits})
