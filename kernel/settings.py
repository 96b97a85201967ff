"""One settings object, read from the environment (and `.env`), shared by every command and worker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Unset: the local stack started by `ppu stack up` is used (its addresses are in the state dir).
    kafka_bootstrap_servers: str | None = Field(default=None, alias="KAFKA_BOOTSTRAP_SERVERS")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")

    state_dir: Path = Field(default=Path(".local"), alias="PPU_STATE_DIR")
    # Prepended to every topic name; tests use it so that runs cannot see each other's topics.
    topic_prefix: str = Field(default="", alias="PPU_TOPIC_PREFIX")
    kafka_version: str = Field(default="4.4.0", alias="PPU_KAFKA_VERSION")

    round_deadline_seconds: float = Field(default=60.0, gt=0, alias="PPU_ROUND_DEADLINE_SECONDS")
    # An attempt waiting on a round is decided by then with the best Supported answer so far (domain/rounds.py);
    # the purchase service's own timeout is the reference.
    decision_budget_seconds: float = Field(default=2.0, gt=0, alias="PPU_DECISION_BUDGET_SECONDS")
    # How often the sweeper runs the institutions' opt-in automatic re-checks (workers/auto_recheck.py).
    auto_recheck_every_seconds: float = Field(default=60.0, gt=0, alias="PPU_AUTO_RECHECK_EVERY_SECONDS")
    # How the workers' sessions plan their statements. A statement planned for each execution's values
    # (force_custom_plan) was a third of their statements' time at a paced 1,000/s: the same dozen statements,
    # planned again every batch. A generic plan is made once per session; made on a new install's nearly empty
    # tables it would keep their sequential scans as they grow, so with it the sessions price those out
    # (workers/process.session_settings; tests/test_generic_plans.py), and the sweeper analyses tables as they
    # begin to fill, so that it is made again reading by key (db/young_tables.py).
    db_plan_cache_mode: Literal["force_generic_plan", "auto", "force_custom_plan"] = Field(
        default="force_generic_plan", alias="PPU_DB_PLAN_CACHE_MODE"
    )
    # What the planner assumes a random page read costs against a sequential one, in the workers' sessions. 4 (the
    # server's default) is for spinning disks; a worker's reads hit a hot set in memory. With it, PostgreSQL read a
    # batch's 500 meters of support as a sequential scan and sort of the whole table (bench/profiles).
    db_random_page_cost: float = Field(default=1.1, gt=0, alias="PPU_DB_RANDOM_PAGE_COST")
    # Days of history kept per table before its time partitions are dropped, as JSON (db/partitions.py lists
    # the tables and their defaults): PPU_RETENTION_DAYS='{"lookups": 30, "audit_log": 730}'.
    retention_days: dict[str, int] = Field(default_factory=dict, alias="PPU_RETENTION_DAYS")
    batch_max_records: int = Field(default=500, gt=0, alias="PPU_BATCH_MAX_RECORDS")
    batch_timeout_ms: int = Field(default=200, gt=0, alias="PPU_BATCH_TIMEOUT_MS")
    # How long the broker may hold a consumer's fetch to gather records (up to PPU_FETCH_MIN_BYTES), rather than
    # answer each record as it comes (Kafka's 1 byte): why, and what it saved, in docs/deployment.md "How a consumer
    # fetches".
    fetch_max_wait_ms: int = Field(default=10, gt=0, alias="PPU_FETCH_MAX_WAIT_MS")
    fetch_min_bytes: int = Field(default=1 << 20, ge=1, alias="PPU_FETCH_MIN_BYTES")
    # With no record for this long, a consumer fetches as Kafka does by default till one comes (messaging/fetch_pace.py)
    fetch_idle_after_ms: int = Field(default=100, gt=0, alias="PPU_FETCH_IDLE_AFTER_MS")
    # Kafka's committed offsets are only a hint (the database holds the real ones, workers/group_progress.py): sent at
    # most once per this interval rather than after every batch (a write to __consumer_offsets each).
    commit_hint_every_ms: int = Field(default=1000, ge=0, alias="PPU_COMMIT_HINT_EVERY_MS")
    max_poll_interval_ms: int = Field(default=60000, ge=3000, alias="PPU_MAX_POLL_INTERVAL_MS")
    # How far ahead of our clock a provider may date an answer; further ahead, it is clamped to receipt time.
    max_clock_skew_seconds: float = Field(default=30.0, ge=0, alias="PPU_MAX_CLOCK_SKEW_SECONDS")
    max_message_bytes: int = Field(default=64 * 1024, gt=0, alias="PPU_MAX_MESSAGE_BYTES")
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0, alias="PPU_SHUTDOWN_TIMEOUT_SECONDS")
    metrics_port: int = Field(default=0, ge=0, alias="PPU_METRICS_PORT")
    # topics.yaml's replication profile that `ppu topics apply|check` use: single (one broker) or cluster.
    topics_profile: str = Field(default="single", min_length=1, alias="PPU_TOPICS_PROFILE")
    # Loopback unless a scraper elsewhere must reach it (compose sets 0.0.0.0 inside its private network).
    metrics_host: str = Field(default="127.0.0.1", min_length=1, alias="PPU_METRICS_HOST")
    # Traces (kernel/tracing.py): off unless an OTLP endpoint is set, or the console exporter is asked for.
    otel_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    trace_console: bool = Field(default=False, alias="PPU_TRACE_CONSOLE")
    log_level: str = Field(default="INFO", alias="PPU_LOG_LEVEL")
    # Fault scenarios only (workers/failpoints.py): e.g. "after_db_commit:5". Empty in production.
    failpoints: str = Field(
        default="",
        alias="PPU_FAILPOINTS",
        pattern=r"^((mid_transaction|after_db_commit|after_publish):[1-9][0-9]*(,|$))*$",
    )

    # Who we are in provider requests (PPU v3 originator); identity, not secrets. The institution id is the one
    # Electrum assigned to the switch: no default, the HTTP bridge refuses to start without it.
    switch_institution_id: str | None = Field(default=None, pattern=r"^[0-9]{1,11}$", alias="PPU_SWITCH_INSTITUTION_ID")
    switch_institution_name: str = Field(
        default="PPU Switch", min_length=1, max_length=40, alias="PPU_SWITCH_INSTITUTION_NAME"
    )
    # `receiver` for a meter whose utility is unknown (Unassigned) or has no Electrum id; unset: no receiver.
    default_receiver_id: str | None = Field(default=None, pattern=r"^[0-9]{1,11}$", alias="PPU_DEFAULT_RECEIVER_ID")
    default_receiver_name: str = Field(
        default="Unassigned", min_length=1, max_length=40, alias="PPU_DEFAULT_RECEIVER_NAME"
    )
    # How often a running bridge re-reads its provider's settings and the institution registry.
    bridge_reload_seconds: float = Field(default=5.0, gt=0, alias="PPU_BRIDGE_RELOAD_SECONDS")
    switch_terminal_id: str = Field(default="PPU00001", min_length=8, max_length=8, alias="PPU_SWITCH_TERMINAL_ID")
    switch_merchant_id: str = Field(
        default="PPUSWITCH000001", min_length=15, max_length=15, alias="PPU_SWITCH_MERCHANT_ID"
    )
    switch_merchant_type: str = Field(default="6012", pattern=r"^\d{4}$", alias="PPU_SWITCH_MERCHANT_TYPE")
    switch_city: str = Field(default="Johannesburg", max_length=13, alias="PPU_SWITCH_CITY")
    switch_region: str = Field(default="GP", max_length=2, alias="PPU_SWITCH_REGION")
    switch_country: str = Field(default="ZA", max_length=2, alias="PPU_SWITCH_COUNTRY")

    # Signs operator commands (domain/command_proof.py); shared by the console, the CLI and the command consumer.
    # No default: `ppu run` makes a random one; production sets its own.
    command_signing_key: SecretStr | None = Field(default=None, alias="PPU_COMMAND_SIGNING_KEY")
    # Signs console session cookies. No default: `ppu run` makes a random one; production sets its own.
    console_secret_key: SecretStr | None = Field(default=None, alias="PPU_CONSOLE_SECRET_KEY")
    console_host: str = Field(default="127.0.0.1", alias="PPU_CONSOLE_HOST")
    console_port: int = Field(default=8080, ge=0, alias="PPU_CONSOLE_PORT")
    # Secure cookies: on whenever the console is served over TLS (directly or behind a TLS proxy).
    console_tls: bool = Field(default=False, alias="PPU_CONSOLE_TLS")
    # The largest request body the console reads (forms and API bodies are small; a login is under 1 KiB).
    console_max_body_bytes: int = Field(default=64 * 1024, ge=1024, alias="PPU_CONSOLE_MAX_BODY_BYTES")
    # How long Confirm support waits for the command consumer before showing the page anyway.
    console_command_wait_seconds: float = Field(default=10.0, ge=0, alias="PPU_CONSOLE_COMMAND_WAIT_SECONDS")
