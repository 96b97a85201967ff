"""The faust-streaming peer: the same consume→produce relay as the floor, as a faust agent.

Runs in its own virtualenv (faust-streaming pins its own dependencies): `python bench/faust_app.py worker`.
Topic names and the broker come from the environment, set by bench/floors.py from topics.yaml.
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
)
source = app.topic(os.environ["BENCH_SOURCE"], value_serializer="raw", key_serializer="raw")
sink = app.topic(os.environ["BENCH_SINK"], value_serializer="raw", key_serializer="raw")


@app.agent(source)
async def relay(stream):  # type: ignore[no-untyped-def]
    async for key, value in stream.items():
        await sink.send(key=key, value=value)


if __name__ == "__main__":
    app.main()
