"""Every server setting, listed once: CLI flag, AGENTWATCH_* variable, default.

The CLI builds its flags from SETTINGS, the environment fills the defaults, and
docs/configuration.md documents each row (tests/server/test_docs.py checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "AGENTWATCH_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# Reasons for the numbers: 10,000 events / 10 MiB per request is 100x the SDK's
# default batch and far above any sane client batch, yet bounds the memory one
# request can pin; 1,000 buffered SSE messages is ~1 s of a busy server's
# stream, enough to ride out a slow network without holding megabytes per client.
# HTTP limits (server/limits.py): 64 KiB of request header is four times what
# Node.js allows and holds any real header, browser cookies for `localhost`
# from other local apps included; 10 s to send a header, or between two reads
# of a body, is an age for any client that is working (the SDK sends a batch
# in milliseconds) and short for one that holds a connection to exhaust the
# server; 1,000 connections is far above what the SDK and a few dashboards
# open, and well inside the usual limit of open files.
SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "0.0.0.0", "Interface to listen on"),
    Setting("port", int, 8787, "Port to listen on"),
    Setting("db", str, "agentwatch.db", "SQLite file path or postgresql:// URL"),
    Setting("prices", str, None, "JSON or TOML price file for custom model rates"),
    Setting(
        "cors_origins",
        str,
        "",
        "Comma-separated origins whose pages may call the API (CORS); none by default, * for any",
    ),
    Setting("max_batch_events", int, 10_000, "Most events accepted in one POST (else 413)"),
    Setting("max_body_bytes", int, 10 * 1024 * 1024, "Largest request body accepted (else 413)"),
    Setting("sse_buffer", int, 1000, "Messages buffered per live-stream client before dropping it"),
    Setting("log_level", str, "info", "Log level: debug, info, warning, error"),
    Setting("retention_days", int, 0, "Delete events older than N whole days (0: keep all)"),
    Setting(
        "auth",
        str,
        "on",
        "on: API keys, and while none exists only this machine is served; off: no keys",
    ),
    Setting(
        "allowed_hosts",
        str,
        "",
        "Comma-separated Host names served while no key exists (*.example.com for subdomains)",
    ),
    Setting("max_header_bytes", int, 64 * 1024, "Largest request header accepted (else 431)"),
    Setting("header_timeout", float, 10.0, "Seconds to send a complete request header"),
    Setting("body_timeout", float, 10.0, "Seconds a request body may pause between reads"),
    Setting("max_connections", int, 1000, "Most open connections; past it the oldest idle closes"),
    Setting("alert_interval", float, 30.0, "Seconds between two evaluations of the alert rules"),
    Setting(
        "alert_retry_base",
        float,
        10.0,
        "Seconds before the first retry of a failed alert delivery (doubling, with jitter)",
    ),
    Setting("alert_retry_for", float, 600.0, "Seconds an alert delivery is retried before failing"),
    Setting(
        "public_url",
        str,
        "",
        "The dashboard's address for links in alert notifications (default http://HOST:PORT)",
    ),
    Setting(
        "metrics_max_series",
        int,
        2000,
        "GET /metrics: label combinations per group of series; new ones past it count as other",
    ),
    Setting(
        "read_workers",
        int,
        1,
        "Processes answering the dashboard's metric queries beside the server (0: in the server)",
    ),
)


def _default(name: str) -> Any:
    """A setting's default, as SETTINGS has it (the one place it is written)."""
    return field(default=next(s.default for s in SETTINGS if s.name == name))


@dataclass(frozen=True)
class Settings:
    """The settings a server runs with; the defaults are SETTINGS'."""

    host: str = _default("host")
    port: int = _default("port")
    db: str = _default("db")
    prices: str | None = _default("prices")
    cors_origins: str = _default("cors_origins")
    max_batch_events: int = _default("max_batch_events")
    max_body_bytes: int = _default("max_body_bytes")
    sse_buffer: int = _default("sse_buffer")
    log_level: str = _default("log_level")
    retention_days: int = _default("retention_days")
    auth: str = _default("auth")
    allowed_hosts: str = _default("allowed_hosts")
    max_header_bytes: int = _default("max_header_bytes")
    header_timeout: float = _default("header_timeout")
    body_timeout: float = _default("body_timeout")
    max_connections: int = _default("max_connections")
    alert_interval: float = _default("alert_interval")
    alert_retry_base: float = _default("alert_retry_base")
    alert_retry_for: float = _default("alert_retry_for")
    public_url: str = _default("public_url")
    metrics_max_series: int = _default("metrics_max_series")
    read_workers: int = _default("read_workers")

    @property
    def dashboard_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def cors_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


assert [s.name for s in SETTINGS] == [f.name for f in fields(Settings)]


class SettingsError(ValueError):
    pass


def env_default(s: Setting, environ: dict[str, str] | None = None) -> Any:
    """The setting's value from the environment, or its default."""
    env = os.environ if environ is None else environ
    raw = env.get(s.env)
    if raw is None or raw == "":
        return s.default
    try:
        return s.type(raw)
    except ValueError:
        raise SettingsError(f"{s.env}={raw!r} is not a valid {s.type.__name__}") from None
