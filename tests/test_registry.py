"""One registry says who handles which topic, and it agrees with topics.yaml."""

from __future__ import annotations

from kernel.settings import Settings
from kernel.topics import registry
from workers.registry import CONSUMERS, consumer_flow


def test_every_consumed_topic_is_handled_by_the_group_topics_yaml_names() -> None:
    settings = Settings(PPU_TOPIC_PREFIX="")
    flows = {consumer_flow(name, settings) for name in CONSUMERS}
    by_topic = {f.topic_key: f for f in flows}
    for key, spec in registry().items():
        ours = [g for g in spec.consumers if "{" not in g]
        if ours:
            assert key in by_topic, f"{key} names consumers {ours} but no worker handles it"
            assert by_topic[key].group_id in ours
            assert spec.schemas == (by_topic[key].model.__name__,)
    assert set(by_topic) <= set(registry())
