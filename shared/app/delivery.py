"""How a Pub/Sub-triggered function maps outcomes to ack / nack.

- returns normally            -> ack (HTTP 2xx to the push subscription)
- TransientError / unexpected -> raise: nack, Pub/Sub redelivers with backoff, then dead-letters
- TerminalError               -> ack; the handler has recorded FAILED and emitted its event
- UndecodableMessage          -> ack after publishing the raw message to the dead-letter topic with the reason:
                                 a message that cannot be understood is never retried forever
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from shared import logs, observability
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage, ReceivedMessage, decode_cloud_event, source_topic
from shared.contracts.messages import Message, parse_message
from shared.errors import TerminalError, TransientError, UndecodableMessage
from shared.runtime.context import Context, get_context

log = logs.get_logger(__name__)
M = TypeVar("M", bound=Message)


def dead_letter(ctx: Context, received: ReceivedMessage, reason: str, function: str) -> None:
    attrs = dict(received.attributes)
    attrs.update(
        {
            "cdp_dead_letter_reason": reason[:1000],
            "cdp_source_function": function,
            "cdp_source_topic": received.topic,
            "cdp_source_message_id": received.message_id,
        }
    )
    ctx.bus.publish(topics.DEAD_LETTERS, [OutboundMessage(received.data, attrs)])


def handle_event(cloud_event: Any, model: type[M], handler: Callable[[Context, M], None], function: str) -> None:
    handle_received_event(cloud_event, model, lambda ctx, message, _received: handler(ctx, message), function)


def handle_received_event(
    cloud_event: Any,
    model: type[M],
    handler: Callable[[Context, M, ReceivedMessage], None],
    function: str,
) -> None:
    """`handle_event` for a handler that also reads the Pub/Sub envelope (attributes, publish time): the event is
    decoded once."""
    ctx = get_context()
    logs.configure(ctx.settings.log_level)
    observability.configure(ctx.settings)
    try:
        received = decode_cloud_event(cloud_event)
        message = parse_message(received.data, model)
    except UndecodableMessage as exc:
        raw = cloud_event.data if hasattr(cloud_event, "data") else None
        # The topic it came from goes with it, so the dead letter says where it was published (and replays there).
        received = replace(_best_effort(raw), topic=source_topic(cloud_event))
        log.error(
            "undecodable message dead-lettered: %s",
            exc,
            extra={"fields": {"function": function, "message_id": received.message_id}},
        )
        dead_letter(ctx, received, str(exc), function)
        return
    ids = {k: getattr(message, k, None) for k in logs.ID_FIELDS}
    with (
        observability.pubsub_span(function, received, ids),
        logs.log_context(function=function, message_id=received.message_id, **ids),
    ):
        try:
            handler(ctx, message, received)
        except TransientError as exc:
            log.warning("transient failure, nack for redelivery: %s", exc)
            raise
        except TerminalError as exc:
            log.error("terminal failure, acked: %s", exc)
        except Exception:
            log.exception("unexpected failure, nack for redelivery")
            raise


def _best_effort(raw: Any) -> ReceivedMessage:
    """Whatever can be salvaged from an event that failed to decode, so the dead letter keeps the original bytes."""
    import base64
    import json

    message = raw.get("message") if isinstance(raw, dict) else None
    if isinstance(message, dict):
        data = message.get("data") or ""
        try:
            payload = base64.b64decode(data, validate=True)
        except Exception:
            payload = str(data).encode()
        raw_attrs = message.get("attributes")
        attrs: dict[str, Any] = raw_attrs if isinstance(raw_attrs, dict) else {}
        return ReceivedMessage(
            payload,
            {str(k): str(v) for k, v in attrs.items()},
            str(message.get("messageId", "")),
            str(message.get("publishTime", "")),
        )
    return ReceivedMessage(json.dumps(raw, default=str).encode(), {}, "", "")
