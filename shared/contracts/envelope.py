"""Pub/Sub <-> CloudEvent envelopes.

Functions receive `google.cloud.pubsub.topic.v1.messagePublished` CloudEvents (functions-framework builds them from push
bodies). Only `data.message.{data,attributes,messageId,publishTime}` is relied on: the emulator and Eventarc differ in
everything else.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from shared.errors import UndecodableMessage

PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


@dataclass(frozen=True)
class ReceivedMessage:
    """One Pub/Sub message as a function sees it."""

    data: bytes
    attributes: dict[str, str]
    message_id: str
    publish_time: str
    topic: str = ""
    delivery_attempt: int | None = None


@dataclass(frozen=True)
class OutboundMessage:
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)


def topic_from_source(source: str) -> str:
    """`//pubsub.googleapis.com/projects/p/topics/t` -> `t` (empty when the source carries no topic)."""
    marker = "/topics/"
    return source.rsplit(marker, 1)[1] if marker in source else ""


def source_topic(event: Any) -> str:
    """The topic a Pub/Sub CloudEvent came from (empty when its source names none): one function may serve two."""
    return topic_from_source(str(event["source"])) if _has(event, "source") else ""


def decode_cloud_event(event: Any) -> ReceivedMessage:
    """Extract the Pub/Sub message from a CloudEvent (cloudevents.http.CloudEvent or anything with the same shape)."""
    data = event.data if hasattr(event, "data") else event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise UndecodableMessage("CloudEvent data has no Pub/Sub `message` object")
    message = data["message"]
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise UndecodableMessage(f"message.data is not base64: {exc}") from exc
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise UndecodableMessage("message.attributes is not an object")
    attempt = data.get("deliveryAttempt") or message.get("deliveryAttempt")
    return ReceivedMessage(
        data=raw,
        attributes={str(k): str(v) for k, v in attributes.items()},
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        publish_time=str(message.get("publishTime") or message.get("publish_time") or ""),
        topic=source_topic(event),
        delivery_attempt=int(attempt) if attempt else None,
    )


def _has(event: Any, key: str) -> bool:
    try:
        event[key]
    except (KeyError, TypeError):
        return False
    return True


def cloud_event_attributes(project: str, topic: str, message_id: str, publish_time: str) -> dict[str, str]:
    return {
        "id": message_id,
        "specversion": "1.0",
        "type": PUBSUB_EVENT_TYPE,
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "time": publish_time,
        "datacontenttype": "application/json",
    }
