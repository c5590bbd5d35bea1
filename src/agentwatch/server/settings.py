"""Every server setting, listed once: CLI flag, AGENTWATCH_* variable, default.

The CLI builds its flags from SETTINGS, the environment fills the defaults, and
docs/configuration.md documents each row (tests/server/test_docs.py checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
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
)


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8787
    db: str = "agentwatch.db"
    prices: str | None = None
    cors_origins: str = ""
    max_batch_events: int = 10_000
    max_body_bytes: int = 10 * 1024 * 1024
    sse_buffer: int = 1000
    log_level: str = "info"
    retention_days: int = 0
    auth: str = "on"
    allowed_hosts: str = ""

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
