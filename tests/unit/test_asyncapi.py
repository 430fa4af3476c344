"""docs/asyncapi.yaml: valid AsyncAPI 3.0 (the official JSON Schema), one channel per topic setting,
payloads that are the committed JSON Schemas of the pydantic models, dead-letter headers that are
schemas.tags.DeadLetter's, references that resolve, and examples that the schemas and models accept."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from schemas import DLQ_HEADERS, DeadLetter, json_schemas
from schemas.export import DEFAULT_DIR, schema_id
from schemas.tags import DLQ_HEADER_PREFIX
from streams.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
DOC_PATH = REPO / "docs" / "asyncapi.yaml"
OFFICIAL_SCHEMA = Path(__file__).with_name("data") / "asyncapi-3.0.0.schema.json"

# topic setting -> (channel, committed schema name of its payload, or None for raw bytes)
TOPICS = {
    "clickstream_topic": ("clickstream", "clickstream"),
    "pos_topic": ("pos", "pos"),
    "orders_topic": ("orders", "orders"),
    "identity_topic": ("identity", "identity"),
    "tag_changes_topic": ("tagChanges", "tag_change"),
    "deadletter_topic": ("deadLetter", None),
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def official_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(document)]


def test_valid_against_the_official_asyncapi_3_schema(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert official_errors(doc) == []


def test_the_official_schema_does_reject_a_broken_document(doc: dict[str, Any]) -> None:
    broken = copy.deepcopy(doc)
    broken["operations"]["sendTagChanges"]["action"] = "publish"  # AsyncAPI 2 wording, not 3
    assert any("sendTagChanges" in e for e in official_errors(broken))


def test_one_channel_per_topic_setting_at_its_default_address(doc: dict[str, Any]) -> None:
    topic_settings = {name for name in KafkaSettings.model_fields if name.endswith("_topic")}
    assert topic_settings == set(TOPICS), "a topic setting was added or removed: describe it in docs/asyncapi.yaml"
    defaults = KafkaSettings()
    for setting, (channel, _) in TOPICS.items():
        assert doc["channels"][channel]["address"] == getattr(defaults, setting)
    assert set(doc["channels"]) == {channel for channel, _ in TOPICS.values()} | set(DERIVED)


DERIVED = {"rules": "rules_deployment"}
"""Channels of topics whose names derive from the app id (streams/io/topics.py), with their schema."""


def test_the_rules_topic_is_the_workers(doc: dict[str, Any]) -> None:
    from streams.io.topics import rules_topic_name
    from streams.settings import Settings

    address = doc["channels"]["rules"]["address"]
    assert address.replace("{appId}", Settings().app_id) == rules_topic_name(Settings())


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def local_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#"):
                yield value
            else:
                yield from local_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from local_refs(item)


def test_every_local_reference_resolves(doc: dict[str, Any]) -> None:
    refs = list(local_refs(doc))
    assert refs
    for ref in refs:
        resolve(doc, ref)
    for name, op in doc["operations"].items():
        channel = resolve(doc, op["channel"]["$ref"])
        for m in op["messages"]:
            assert m["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), name
            assert resolve(doc, m["$ref"]) in channel["messages"].values()


def message_of(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    (ref,) = [m["$ref"] for m in doc["channels"][channel]["messages"].values()]
    message: dict[str, Any] = resolve(doc, ref)
    return message


@pytest.mark.parametrize(("channel", "schema_name"), [*(v for v in TOPICS.values() if v[1]), *DERIVED.items()])
def test_payloads_are_the_committed_schemas_of_the_models(doc: dict[str, Any], channel: str,
                                                          schema_name: str) -> None:
    payload = message_of(doc, channel)["payload"]
    assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12"
    path = (DOC_PATH.parent / payload["schema"]["$ref"]).resolve()
    assert path == DEFAULT_DIR / f"{schema_name}.schema.json"
    committed = json.loads(path.read_text(encoding="utf-8"))
    assert committed["$id"] == schema_id(schema_name)
    assert committed == json_schemas()[schema_name], f"schemas/json is stale: run tagstream schemas ({path.name})"


@pytest.mark.parametrize(("channel", "schema_name"), [*(v for v in TOPICS.values() if v[1]), *DERIVED.items()])
def test_examples_are_valid_payloads(doc: dict[str, Any], channel: str, schema_name: str) -> None:
    schema = json_schemas()[schema_name]
    examples = message_of(doc, channel)["examples"]
    assert examples
    for example in examples:
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
            example["payload"])


def test_dead_letter_headers_are_the_models(doc: dict[str, Any]) -> None:
    message = message_of(doc, "deadLetter")
    headers = resolve(doc, message["headers"]["$ref"])
    assert tuple(headers["properties"]) == DLQ_HEADERS  # names and order
    required_fields = [name for name, f in DeadLetter.model_fields.items() if f.is_required()]
    assert headers["required"] == [DLQ_HEADER_PREFIX + name for name in required_fields]
    for example in message["examples"]:
        jsonschema.Draft7Validator(headers).validate(example["headers"])
        parsed = DeadLetter.from_headers(list(example["headers"].items()))
        assert dict(parsed.to_headers()) == {k: v.encode() for k, v in example["headers"].items()}
    produced = DeadLetter(source_topic="t", source_partition=0, source_offset=5, source_timestamp_ms=1, reason="r",
                          error="e", key_truncated_from_bytes=20000, truncated_from_bytes=9_000_000,
                          value_sha256="a" * 64).to_headers()
    jsonschema.Draft7Validator(headers).validate({k: v.decode() for k, v in produced})
