"""HOMEWARD_NOTIFY_LANES: a notify process's delivery workers consume the lanes it names (a
process of its own for `restricted` keeps hub pushes off a bulk fan-out's CPU), each once; a
lane that does not exist, or none at all, stops the start."""

from __future__ import annotations

from typing import Any, cast

import pytest
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from services.notify.consumers import LANES, register
from shared import topics
from shared.settings import Settings

R, P = topics.DELIVERY_JOBS_RESTRICTED, topics.DELIVERY_JOBS_PUBLIC


@pytest.mark.parametrize(("lanes", "consumed"), [
    (["restricted"], [R]),
    (["public"], [P]),
    (["restricted", "public"], [R, P]),
    (["public", "restricted"], [P, R]),
    (["public", "public"], [P]),
])
def test_a_process_consumes_the_lanes_it_is_given(lanes: list[str], consumed: list[str]) -> None:
    settings = Settings(notify_lanes=lanes)
    made = register(KafkaBroker("127.0.0.1:9"), cast(Any, None), cast(Any, None), "127.0.0.1:9",
                    plan=False, lanes=settings.notify_lanes)
    assert [c.topic for c in made] == consumed
    assert all(c.consumer is None for c in made)  # nothing connects before start()


def test_both_lanes_by_default_and_every_lane_is_a_jobs_topic() -> None:
    assert Settings().notify_lanes == ["restricted", "public"]
    assert sorted(LANES.values()) == sorted(topics.JOB_TOPICS)


@pytest.mark.parametrize("lanes", [[], ["bulk"], ["restricted", "hubs"]])
def test_an_unknown_lane_or_none_stops_the_start(lanes: list[str]) -> None:
    with pytest.raises(ValidationError, match="notify_lanes"):
        Settings(notify_lanes=lanes)
