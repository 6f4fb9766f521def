"""The example records of docs/events.md against the parser they document."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.events import InvalidEvent, check_view_timing, decode_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
BLOCK_RE = re.compile(r"```json\n(.*?)\n```", re.DOTALL)
DEAD_LETTER_FIELDS = {"error", "field", "topic", "partition", "offset", "key",
                      "value", "value_base64", "rejected_at_ms"}


def examples() -> list[dict[str, Any]]:
    return [orjson.loads(block) for block in BLOCK_RE.findall(DOC.read_text())]


def test_every_type_has_an_example() -> None:
    types = [example.get("type") for example in examples()]
    for event_type in ["MessagePosted", "LikeAdded", "LikeRemoved", "ViewRecorded"]:
        assert event_type in types


@pytest.mark.parametrize(
    "example", [e for e in examples() if "schema_version" in e],
    ids=lambda example: example["type"],
)
def test_event_example_valid(example: dict[str, Any]) -> None:
    event = decode_event(orjson.dumps(example))
    if event.type == "ViewRecorded":
        check_view_timing(event, retention_days=30)
    assert event.message_id == "01938a4e-6f2b-7c41-9d3e-5b8f0a2c4e61"


def test_dead_letter_example_matches_rejection() -> None:
    [letter] = [e for e in examples() if "value_base64" in e]
    assert set(letter) == DEAD_LETTER_FIELDS
    raw = base64.b64decode(letter["value_base64"])
    assert raw.decode() == letter["value"]
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw, expected_topic=letter["topic"])
    assert caught.value.field == letter["field"]
    assert caught.value.message == letter["error"]
    assert orjson.loads(raw)["message_id"] == letter["key"]
