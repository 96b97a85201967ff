"""Fault scenarios (`make faults`): real broker, database and worker processes; record everything, then check
invariants, in the manner of Kafka's system tests and Jepsen's Kafka checker."""
