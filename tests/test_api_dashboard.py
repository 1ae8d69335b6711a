"""``GET /v1/dashboard/{view}``: the dashboard's views as JSON or CSV, the same numbers as the store's
functions, and 4xx for bad input."""

from __future__ import annotations

import csv
import io

import pytest

from api_support import assert_problem
from test_api import _app_client
from test_ui_dashboard import _results


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_models):
    from callsense.store import open_store, save_result

    tmp = tmp_path_factory.mktemp("api-dash")
    url = f"sqlite:///{tmp / 'store.db'}"
    store = open_store(url)
    for r in _results():
        save_result(store, r)
    client, mp = _app_client(tmp, tiny_models, database_url=url)
    client.store = store
    yield client
    client.__exit__(None, None, None)
    store.close()
    mp.undo()


def test_views_as_json_match_the_store(api):
    from callsense.store import agent_before_after, emotion_event_heatmap, script_effectiveness

    heat = api.get("/v1/dashboard/heatmap", params={"by": "category"})
    assert heat.status_code == 200, heat.text
    want = emotion_event_heatmap(api.store, by="category")
    assert heat.json()["columns"] == list(want.columns) and heat.json()["rows"] == [list(r) for r in want.rows]
    script = api.get("/v1/dashboard/script").json()
    assert script["rows"] == [list(r) for r in script_effectiveness(api.store).rows]
    assert [r[0] for r in script["rows"]][:1] == ["(unmatched)"]
    ba = api.get("/v1/dashboard/before_after", params={"agent_id": "a1", "day": "2026-01-07", "days": 2}).json()
    assert ba["rows"] == [list(r) for r in agent_before_after(api.store, "a1", "2026-01-07", days=2).rows]
    # date_to is inclusive: the 3 calls of 01-05 and the 3 of 01-06
    trends = api.get("/v1/dashboard/trends", params={"date_from": "2026-01-05", "date_to": "2026-01-06"}).json()
    assert [(r[0], r[1]) for r in trends["rows"]] == [("2026-01-05", 3), ("2026-01-06", 3)]
    agents = api.get("/v1/dashboard/agents").json()
    assert sum(r[1] for r in agents["rows"]) == 14


def test_view_as_csv(api):
    r = api.get("/v1/dashboard/heatmap", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="callsense_heatmap.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:3] == ["category", "calls", "angry"] and len(rows) == 4


def test_bad_input_is_4xx(api):
    assert_problem(api.get("/v1/dashboard/nonsense"), 404, "not_found")
    assert_problem(api.get("/v1/dashboard/heatmap", params={"by": "colour"}), 422, "usage")
    assert_problem(api.get("/v1/dashboard/trends", params={"date_from": "yesterday"}), 422, "usage")
    assert_problem(api.get("/v1/dashboard/before_after", params={"day": "2026-01-07"}), 422, "usage")
    assert_problem(api.get("/v1/dashboard/before_after", params={"agent_id": "a1", "day": "7.1.2026"}), 422)
    assert api.get("/v1/dashboard/before_after", params={"agent_id": "a1", "day": "2026-01-07",
                                                          "days": 0}).status_code == 422
    assert api.get("/v1/dashboard/trends", params={"format": "xml"}).status_code == 422
