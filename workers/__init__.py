"""Workers: the consume loop, the unit of work, the worker registry, and one handler module per flow."""
