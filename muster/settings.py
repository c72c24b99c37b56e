"""Muster's settings: one object built at start-up from `MUSTER_*` variables and `muster.toml`.

Precedence, highest first: environment variables (`MUSTER_OTLP_GRPC_PORT=4317`), then the file
named by `MUSTER_CONFIG` or `./muster.toml` when it exists, then the defaults below, which need no
file at all. Every setting is listed in docs/configuration.md (a test checks that).
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

MIB = 1024 * 1024


class SettingsError(Exception):
    """A setting has a value Muster cannot use; the message names the setting and the value."""


class Settings(BaseSettings):
    """Every knob Muster has, with its default."""

    model_config = SettingsConfigDict(env_prefix="MUSTER_", extra="forbid", validate_default=True)

    data_dir: Path = Field(
        Path("data"), description="Directory holding the warehouse file and the local tokens."
    )
    host: str = Field(
        "127.0.0.1", description="Listen address of every server; 0.0.0.0 receives from other hosts."
    )
    otlp_grpc_port: int = Field(
        4317, ge=0, le=65535, description="OTLP/gRPC receiver port (0 picks a free one)."
    )
    otlp_http_port: int = Field(
        4318, ge=0, le=65535, description="OTLP/HTTP receiver port (0 picks a free one)."
    )
    api_port: int = Field(8000, ge=0, le=65535, description="HTTP API port (0 picks a free one).")
    max_request_bytes: int = Field(
        64 * MIB, ge=1024, description="Largest OTLP request accepted, measured after decompression."
    )
    ingest_queue_bytes: int = Field(
        256 * MIB,
        ge=1024,
        description="Bytes of requests being decoded or awaiting commit; beyond it exporters are throttled.",
    )
    decode_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=0,
        description="Processes decoding OTLP requests; 0 decodes in a thread of the server process.",
    )
    commit_max_rows: int = Field(500_000, ge=1, description="Most rows the writer puts in one group commit.")
    warehouse_memory_limit: str = Field(
        "256MB",
        pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory DuckDB may use for its buffers before it spills to disk, e.g. 512MB or 2GiB.",
    )
    checkpoint_threshold: str = Field(
        "1GB",
        pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Write-ahead log size that triggers a checkpoint; the writer also checkpoints when idle,"
        " and in a lull once a row group's worth of rows was committed.",
    )
    retry_after_seconds: float = Field(
        1.0, gt=0, description="Back-off suggested to throttled exporters (RetryInfo / Retry-After)."
    )
    max_attributes_per_item: int = Field(
        128,
        ge=1,
        description="Attributes kept per span, event, link, log record, data point, resource or scope.",
    )
    max_attribute_value_length: int = Field(
        64 * 1024,
        ge=1,
        description="Longest attribute value kept: characters, bytes, or elements of an array or map.",
    )
    max_attribute_depth: int = Field(
        32, ge=1, le=100, description="Deepest nesting of arrays and maps inside one attribute value."
    )
    max_events_per_span: int = Field(128, ge=0, description="Events kept per span; the rest are counted.")
    max_links_per_span: int = Field(128, ge=0, description="Links kept per span; the rest are counted.")
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds an HTTP client has to send a request's headers (slowloris guard)."
    )
    http_body_timeout_seconds: float = Field(
        60.0, gt=0, description="Seconds an OTLP/HTTP or API client has to send a request's body; else 408."
    )
    api_max_request_bytes: int = Field(
        16 * MIB, ge=1024, description="Largest API request body accepted; larger ones get 413 unread."
    )
    http_keep_alive_seconds: float = Field(
        5.0, gt=0, description="Seconds an idle HTTP keep-alive connection stays open."
    )
    grpc_max_concurrent_streams: int = Field(
        100, ge=1, description="Concurrent OTLP/gRPC calls one connection may have in flight."
    )
    grpc_max_connection_idle_seconds: float = Field(
        300.0, gt=0, description="Seconds before an OTLP/gRPC connection with no calls is closed."
    )
    grpc_max_connection_age_seconds: float = Field(
        600.0,
        gt=0,
        description="Seconds an OTLP/gRPC connection may live before it is asked to close"
        " (exporters reconnect); bounds calls that stall mid-message.",
    )
    grpc_max_connection_age_grace_seconds: float = Field(
        60.0,
        gt=0,
        description="Seconds an OTLP/gRPC call in flight has to finish once its connection is closing.",
    )
    grpc_max_metadata_bytes: int = Field(
        16 * 1024, ge=1024, description="Largest OTLP/gRPC request metadata (headers) accepted."
    )

    jobs_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="Seconds between scheduled runs of the cost job inside `muster serve`; 0 disables them.",
    )
    jobs_batch_spans: int = Field(
        400_000,
        ge=1,
        description="Spans the cost job reads into memory at a time; each batch of traces commits alone.",
    )
    raw_retention_days: int = Field(
        30, ge=1, description="Days raw spans, metric points, log records and ingest rejects are kept."
    )
    raw_retention_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="Seconds a span stays after it was received, however old: late parts of a trace find it.",
    )
    cost_retention_days: int = Field(
        400, ge=1, description="Days priced calls and per-trace agent activity (the cost facts) are kept."
    )
    prices_file: Path = Field(
        Path("data/prices.yaml"),
        description="Price overrides (discounts, custom models, aliases); a missing file means none.",
    )
    exchange_rates: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")], Annotated[Decimal, Field(gt=0)]
    ] = Field(
        default_factory=dict,
        description='USD per unit of each currency budgets are declared in, e.g. {"EUR": "1.08"}.',
    )

    require_credentials: bool = Field(
        False,
        description="Refuse OTLP exports that carry no valid ingest credential (401 / UNAUTHENTICATED).",
    )
    auth_failure_limit: int = Field(
        30,
        ge=0,
        description="Failed authentications (API tokens, OTLP ingest credentials) one client address may"
        " make per window before it is refused (429, or 503 / UNAVAILABLE on OTLP); 0: none.",
    )
    auth_failure_window_seconds: int = Field(
        60, ge=1, description="The moving window, in seconds, over which auth_failure_limit counts."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate: when set (with tls_key_file), receivers and API speak TLS."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")

    dashboard_port: int = Field(8501, ge=0, le=65535, description="Port of the Streamlit dashboards.")
    api_url: str | None = Field(
        None, description="API the dashboards read; default: the running server's, from its server.json."
    )
    alerts: dict[str, Any] = Field(
        default_factory=dict,
        description="The [alerts] table of muster.toml: routes, receivers, SMTP (docs/alerts.md).",
    )
    alerts_file: Path | None = Field(
        None, description="A YAML or TOML file with the alert routes and receivers, instead of [alerts]."
    )
    alerts_interval_seconds: float = Field(
        5.0, ge=0, description="Seconds between alert dispatcher ticks in `muster serve`; 0 disables them."
    )
    dashboard_url: str = Field(
        "http://127.0.0.1:8501", description="Base URL of the dashboards, for links in notifications."
    )

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "muster.duckdb"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file()))


def config_file() -> Path:
    """The settings file: `MUSTER_CONFIG`, else `./muster.toml` (either may be absent)."""
    return Path(os.environ.get("MUSTER_CONFIG", "muster.toml"))


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning a validation error into one message per bad setting, and a file
    that is not TOML (corrupted, half-written) into one naming the file, line and column."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(
            f"{config_file()} is not valid TOML: {_where(exc)}; nothing was started"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the settings file {config_file()}: {exc}") from None


def _where(exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's message, which says "at end of document" rather than a line when a file is cut short."""
    if "end of document" not in str(exc):
        return str(exc)
    lines = config_file().read_bytes().count(b"\n") + 1
    return f"{exc}, line {lines}: the file ends in the middle of a value (was it cut short?)"


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        if not name:  # a check across settings
            lines.append(f"invalid settings: {error['msg']}")
            continue
        value = error.get("input")
        lines.append(f"invalid setting {name} (MUSTER_{name.upper()}) = {value!r}: {error['msg']}")
    return "\n".join(lines)
