"""The domain: the guide's rules as plain functions and dataclasses over loaded rows. No I/O: no database, no Kafka."""
