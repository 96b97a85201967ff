"""Workers: the runtime (Kafka and SQL plumbing) and one handler module per flow."""
