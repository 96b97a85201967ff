"""Provider integrations: the PPU v3 HTTP bridge, Electrum's constraints, and provider simulators (REST and Kafka)."""
