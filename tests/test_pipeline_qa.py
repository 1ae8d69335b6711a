"""The pipeline applies QA rules and sends alerts; a dead webhook never loses the analysis."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from callsense.cli.app import main
from callsense.testing.rules import always_rules

CALL = Path(__file__).resolve().parent.parent / "examples" / "call_stereo.wav"

ALWAYS = always_rules()


class Receiver(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("Content-Length", 0))
        Receiver.bodies.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.bodies = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_rules_file_hits_and_alert_delivered(with_models, tmp_path, receiver, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALWAYS)
    code, out, err = run(["analyze", str(CALL), "--out", str(tmp_path / "o"), "--json", "--rules", str(rules),
                          "--webhook", receiver], capsys)
    assert code == 0, err
    [data] = json.loads(out)["calls"]  # analyze --json: {"calls": [...], "failures": [...]}
    assert [h["rule_id"] for h in data["rule_hits"]] == ["long.call"]
    assert data["metrics"]["duration_ms"] == data["source"]["duration_ms"]
    assert len(data["alerts"]) == 1 and data["alerts"][0]["delivered"] is True
    assert len(Receiver.bodies) == 1 and "long.call" in json.dumps(Receiver.bodies[0], ensure_ascii=False)


def test_dead_webhook_is_recorded_and_the_result_kept(with_models, tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALWAYS)
    code, out, err = run(["analyze", str(CALL), "--out", str(tmp_path / "o"), "--json", "--rules", str(rules),
                          "--webhook", "http://127.0.0.1:9/nothing-listens"], capsys)
    assert code == 0, err
    [data] = json.loads(out)["calls"]  # analyze --json: {"calls": [...], "failures": [...]}
    assert data["alerts"][0]["delivered"] is False and data["alerts"][0]["attempts"] >= 2
    assert (next((tmp_path / "o").iterdir()) / "result.json").is_file()


def test_default_pack_runs_when_no_rules_given(with_models, tmp_path, capsys):
    code, out, err = run(["analyze", str(CALL), "--out", str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    [data] = json.loads(out)["calls"]  # analyze --json: {"calls": [...], "failures": [...]}
    assert data["metrics"] is not None and data["score"]["scorecard_id"]


def test_bad_webhook_spec_is_a_usage_error(with_models, tmp_path, capsys):
    code, _, err = run(["analyze", str(CALL), "--webhook", "teams:xyz", "--out", str(tmp_path)], capsys)
    assert code == 2 and "wecom" in err


def test_bad_rule_file_is_rejected_before_any_audio(with_models, tmp_path, capsys):
    rules = tmp_path / "bad.yaml"
    rules.write_text(ALWAYS.replace("type: duration", "type: durashun"))
    code, _, err = run(["analyze", str(CALL), "--rules", str(rules), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "bad.yaml" in err and "durashun" in err
    assert not (tmp_path / "o").exists()
