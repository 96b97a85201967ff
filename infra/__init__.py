"""Local infrastructure: a real Kafka broker and a real PostgreSQL cluster, started without Docker."""
