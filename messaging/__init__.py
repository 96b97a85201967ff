"""What every Kafka consumer of ours shares, the workers and the HTTP bridge alike: decoding and validating records,
dead letters, retries, and the metrics and /healthz endpoint."""
