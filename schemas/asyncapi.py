"""An AsyncAPI 3.0 document of the provider-facing topics, generated from topics.yaml and the models."""

from __future__ import annotations

from typing import Any

import yaml

from kernel.topics import topic
from schemas.registry import MODELS

PROVIDER_TOPICS = ["lookup_requests", "lookup_responses", "lookup_requests_dlq"]


def render() -> str:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for key in PROVIDER_TOPICS:
        spec = topic(key)
        channel: dict[str, Any] = {
            "address": spec.name_or_template,
            "description": f"Key: {spec.message_key}. Partitions: {spec.partitions}. Produced by {spec.producer}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in spec.schemas},
        }
        if spec.templated:
            channel["parameters"] = {"provider_id": {"description": "the provider's institution id at the switch"}}
        channels[key] = channel
        # A provider receives lookup requests and sends responses.
        action = "send" if key == "lookup_responses" else "receive"
        operations[f"{action}_{key}"] = {"action": action, "channel": {"$ref": f"#/channels/{key}"}}
        for name in spec.schemas:
            messages[name] = {
                "name": name,
                "contentType": "application/cloudevents+json"
                if name != "DeadLetterHeaders"
                else "application/octet-stream",
                "payload": {"$ref": f"../schemas/json/{name}.schema.json"},
                "description": (MODELS[name].__doc__ or "").strip().splitlines()[0] if MODELS[name].__doc__ else name,
            }
    document = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PPU meter lookup: provider topics",
            "version": "1",
            "description": "What a provider that integrates natively on Kafka consumes and produces. "
            "Every message key is the meter number. See docs/provider-integration.md.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
    return yaml.safe_dump(document, sort_keys=False, width=110)
