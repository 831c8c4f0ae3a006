"""POST /v1/feedback on the device's server: the cloud API's body, answer and errors, kept in the real SQLite log.

Each request goes to the edge app and to the real cloud app (records routes, DynamoDB on the moto server), and the
two must answer alike.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from edge_client.config import Settings
from edge_client.server import create_app as create_edge_app
from edge_client.service import EdgeService
from hybrid_router.api.app import create_app as create_cloud_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.api.settings import ApiSettings
from hybrid_router.backends.llama_cpp import LlamaCppBackend
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.stores.sqlite_log import DecisionLog

API_KEY = "device-key-1"


@pytest.fixture
def sides(tmp_path, dynamodb_client, decision_table, make_decision):
    """(edge client, its decision log, cloud client, a decision both sides know)."""
    record = make_decision(prompt="What is the boiling point of water at sea level?")
    settings = Settings(data_dir=str(tmp_path))
    log = DecisionLog(settings.decision_log_path)
    log.append(record)
    weak = LlamaCppBackend(tmp_path / "absent.gguf", name="local")  # never loaded: no chat here
    edge_app = create_edge_app(EdgeService(settings, weak=weak, strong=None, route_source=None, decision_log=log))
    store = DynamoDecisionStore(decision_table, client=dynamodb_client)
    store.put_records([record], owner=("acme", "laptop-7"))
    cloud_app = create_cloud_app(
        ApiSettings(table_name=decision_table, api_keys=parse_key_map(f"{API_KEY}=acme/laptop-7")),
        groups=("records",),
        store=store,
    )
    with TestClient(edge_app) as edge, TestClient(cloud_app, headers={"x-api-key": API_KEY}) as cloud:
        yield edge, log, cloud, record
    log.close()


def test_a_rating_is_kept_in_the_log_and_answered_as_the_cloud_answers(sides) -> None:
    edge, log, cloud, record = sides
    body = {"decision_id": record.decision_id, "rating": 4, "comment": "right, but long"}
    mine, theirs = edge.post("/v1/feedback", json=body), cloud.post("/v1/feedback", json=body)
    assert mine.status_code == theirs.status_code == 200
    assert set(mine.json()) == set(theirs.json()) == {"decision_id", "rating", "scale", "comment", "created_at"}
    assert {k: v for k, v in mine.json().items() if k != "created_at"} == {**body, "scale": "stars"}  # inferred
    stored = log.feedback(record.decision_id)
    assert (stored.rating, stored.scale, stored.comment, stored.synced_at) == (4, "stars", "right, but long", None)
    assert edge.post("/v1/feedback", json={"decision_id": record.decision_id, "rating": -1}).status_code == 200
    assert (log.feedback(record.decision_id).rating, log.feedback(record.decision_id).comment) == (-1, None)


@pytest.mark.parametrize(
    "body",
    [
        {"rating": 5},  # decision_id filled in below: one neither side has
        {"decision_id": None, "rating": 7},
        {"decision_id": None, "rating": True},
        {"decision_id": None, "rating": "5"},
        {"decision_id": "short", "rating": 5},
        {"decision_id": None, "rating": 5, "extra": 1},
        {"decision_id": None, "rating": 5, "comment": "x" * 4001},
        b"{not json",
        b"",
    ],
)
def test_bad_ratings_get_the_cloud_apis_errors(sides, make_decision, body) -> None:
    edge, log, cloud, record = sides
    if isinstance(body, dict):
        body = {"decision_id": make_decision().decision_id, **body} if "decision_id" not in body else body
        body = {**body, "decision_id": body["decision_id"] or record.decision_id}
        mine, theirs = edge.post("/v1/feedback", json=body), cloud.post("/v1/feedback", json=body)
    else:
        headers = {"content-type": "application/json"}
        mine = edge.post("/v1/feedback", content=body, headers=headers)
        theirs = cloud.post("/v1/feedback", content=body, headers=headers)
    assert mine.status_code == theirs.status_code and mine.status_code in (400, 404, 422)
    assert mine.json() == theirs.json()  # the same OpenAI-style error body, field for field
    assert log.feedback(record.decision_id) is None


@pytest.mark.parametrize("side", ["edge", "cloud"])
def test_a_rating_of_1_says_its_scale(sides, side) -> None:
    """1 is one star or thumbs up; ratings become training labels, so both APIs ask which, and keep the answer."""
    edge, log, cloud, record = sides
    api = edge if side == "edge" else cloud
    body = {"decision_id": record.decision_id, "rating": 1}
    ambiguous = api.post("/v1/feedback", json=body)
    assert ambiguous.status_code == 422 and "ambiguous" in ambiguous.json()["error"]["message"]
    for scale in ("thumbs", "stars"):
        answer = api.post("/v1/feedback", json={**body, "scale": scale})
        assert answer.status_code == 200 and answer.json()["scale"] == scale
        if side == "edge":
            assert log.feedback(record.decision_id).scale == scale
    inferred = api.post("/v1/feedback", json={**body, "rating": -1})
    assert inferred.status_code == 200 and inferred.json()["scale"] == "thumbs"
    wrong = api.post("/v1/feedback", json={**body, "rating": 3, "scale": "thumbs"})
    assert wrong.status_code == 422 and "not on the thumbs scale" in wrong.json()["error"]["message"]
    odd = api.post("/v1/feedback", json={**body, "scale": "emoji"})
    assert odd.status_code == 422 and odd.json()["error"]["param"] == "scale"


def test_a_rating_the_full_log_cannot_keep_is_a_507(tmp_path, make_decision) -> None:
    from hybrid_router.stores.sqlite_log import DecisionLogError

    settings = Settings(data_dir=str(tmp_path))
    log = DecisionLog(settings.decision_log_path, max_bytes=64 * 1024)
    record = make_decision()
    log.append(record)
    for size in (500, 0):  # full to the last page, whatever room the big records left
        with pytest.raises(DecisionLogError):
            for _ in range(10_000):
                log.append(make_decision(prompt="x" * size))
    service = EdgeService(
        settings,
        weak=LlamaCppBackend(tmp_path / "absent.gguf", name="local"),
        strong=None,
        route_source=None,
        decision_log=log,
    )
    with TestClient(create_edge_app(service)) as edge:
        full = edge.post("/v1/feedback", json={"decision_id": record.decision_id, "rating": 5, "comment": "y" * 4000})
    assert full.status_code == 507 and full.json()["error"]["code"] == "decision_log_unwritable"
    assert "the rating is not saved" in full.json()["error"]["message"] and log.feedback(record.decision_id) is None
    log.close()
