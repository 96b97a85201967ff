"""The faust-streaming peer: the same consume→produce relay as the floor, as a faust agent.

Runs in its own virtualenv (faust-streaming pins its own dependencies; the Makefile pins its version):
`python bench/faust_app.py worker`. Topic names and the broker come from the environment, set by bench/floors.py
from topics.yaml.

Tuned for throughput as faust's settings reference describes: a producer that batches (linger, batch size), a larger
stream buffer and fetch size, offsets committed every 10,000 messages, and the agent taking records in batches
(`stream.take_events`). Acknowledgements stay acks=all (faust's default, -1), as our relay's do.
"""

import os

import faust

app = faust.App(
    os.environ["BENCH_FAUST_APP"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    value_serializer="raw",
    key_serializer="raw",
    topic_allow_declare=False,
    topic_disable_leader=True,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    datadir=os.environ["BENCH_FAUST_DATADIR"],
    producer_linger_ms=5,
    producer_max_batch_size=262144,
    producer_acks=-1,
    stream_buffer_maxsize=16384,
    consumer_max_fetch_size=4 * 1024 * 1024,
    broker_commit_every=10_000,
)
source = app.topic(os.environ["BENCH_SOURCE"], value_serializer="raw", key_serializer="raw")
sink = app.topic(os.environ["BENCH_SINK"], value_serializer="raw", key_serializer="raw")


@app.agent(source)
async def relay(stream):  # type: ignore[no-untyped-def]
    async for batch in stream.take_events(1000, within=0.05):
        for event in batch:
            await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()
