"""Message contracts, golden Pub/Sub push bodies and the CloudEvents functions-framework builds from them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from cloudevents.http import CloudEvent

from shared.contracts import topics
from shared.contracts.envelope import decode_cloud_event
from shared.contracts.messages import RunRequest, StageTask, StatusEvent, json_schemas, parse_message
from shared.errors import UndecodableMessage

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "contracts" / "schemas"


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def test_committed_json_schemas_match_the_models() -> None:
    for name, schema in json_schemas().items():
        committed = json.loads((SCHEMAS / name).read_text())
        assert committed == json.loads(json.dumps(schema)), f"{name} is stale: run `make schemas`"


def test_functions_framework_turns_the_golden_push_body_into_the_golden_cloudevent() -> None:
    source = Path(__file__).resolve().parents[1] / "test_functions" / "capture" / "main.py"
    app = functions_framework.create_app(target="capture", source=str(source), signature_type="cloudevent")
    client = app.test_client()
    response = client.post(f"/projects/cloudact-test/topics/{topics.STAGE_TASKS}", json=golden("stage_task.push.json"))
    assert response.status_code == 200
    received = sys.modules["main"].RECEIVED[-1]  # functions-framework registers the source as module `main`
    expected = golden("stage_task.cloudevent.json")
    for key, value in expected["attributes"].items():
        assert received[key] == value, key
    assert received.data == expected["data"]


def test_golden_cloudevent_decodes_to_the_stage_task() -> None:
    ce = golden("stage_task.cloudevent.json")
    received = decode_cloud_event(CloudEvent(ce["attributes"], ce["data"]))
    assert received.topic == topics.STAGE_TASKS and received.message_id == "1302"
    task = parse_message(received.data, StageTask)
    assert (task.tenant_id, task.pipeline_id, task.stage_id) == ("acme", "daily_sales", "load_orders")
    assert received.attributes["run_id"] == task.run_id


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("run_request.push.json", RunRequest),
        ("status_event.push.json", StatusEvent),
        ("stage_task.push.json", StageTask),
    ],
)
def test_every_golden_push_body_parses_with_its_contract(name: str, model: Any) -> None:
    body = golden(name)
    event = CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//x"}, body)
    message = parse_message(decode_cloud_event(event).data, model)
    assert message.version == 1


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"[1, 2]", b'{"kind": "stage.task"}', b"not json"])
def test_undecodable_payloads_raise_undecodable_message(raw: bytes) -> None:
    with pytest.raises(UndecodableMessage):
        parse_message(raw, StageTask)


def test_event_without_pubsub_message_is_undecodable() -> None:
    with pytest.raises(UndecodableMessage):
        decode_cloud_event(CloudEvent({"type": "t", "source": "//x"}, {"nope": 1}))
    with pytest.raises(UndecodableMessage):
        decode_cloud_event(CloudEvent({"type": "t", "source": "//x"}, golden("undecodable.push.json")))


def test_consumers_ignore_unknown_fields_for_forward_compatibility() -> None:
    payload = json.loads(
        json.dumps(
            {
                "kind": "stage.task",
                "version": 1,
                "run_id": "r",
                "tenant_id": "t",
                "pipeline_id": "p",
                "stage_id": "s",
                "added_in_a_later_minor": True,
            }
        )
    )
    assert parse_message(json.dumps(payload).encode(), StageTask).stage_id == "s"


def test_every_topic_has_one_subscriber_function() -> None:
    assert set(topics.SUBSCRIBERS) == set(topics.ALL_TOPICS)
    assert set(topics.SUBSCRIBERS.values()) == {
        "run_starter",
        "stage_worker",
        "notifier",
        "scheduled_trigger",
        "maintenance",
    }
