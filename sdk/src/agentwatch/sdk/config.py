"""The client's settings: each one named, typed and given its variable and default once.

``init()`` and ``AgentWatch()`` take the same keyword options (:class:`Options`);
any option left out or None is read from its ``AGENTWATCH_*`` variable, then
from its default (:func:`resolve`). A malformed variable is ignored with a
warning, never an exception: configuration must not stop the host app.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from agentwatch.sdk.events import Event
from agentwatch.sdk.safety import log, log_once, strict

Exporter = Callable[[list[Event]], None]

DEFAULT_SERVER_URL = "http://localhost:8787"
DEFAULT_NAME = "default"


class Options(TypedDict, total=False):
    """The keyword options of init() and AgentWatch(); docs/sdk.md has the table."""

    batch_size: int | None
    flush_interval: float | None
    max_queue: int | None
    shutdown_timeout: float | None
    disabled: bool | None
    openai_include_usage: bool | None
    api_key: str | None
    exporter: Exporter | None


@dataclass(frozen=True, slots=True)
class Config:
    """Resolved settings of one client."""

    server_url: str
    agent: str
    task: str
    batch_size: int
    flush_interval: float
    max_queue: int
    shutdown_timeout: float
    disabled: bool
    openai_include_usage: bool
    api_key: str | None = field(repr=False)  # a secret: never in a repr or a log
    exporter: Exporter | None = None


def env_str(name: str) -> str | None:
    """The variable's value, or None when unset or empty."""
    v = os.environ.get(name)
    return v if v else None


def env_bool(name: str, default: bool) -> bool:
    """1/0/true/false/yes/no/on/off; anything else is ignored with a warning."""
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    v = v.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    log.warning("agentwatch: ignoring %s=%r (expected 1/0/true/false)", name, v)
    return default


def _env_num(name: str, default: float, cast: Callable[[str], float]) -> float:
    v = os.environ.get(name)
    if not v:
        return default
    try:
        return cast(v)
    except ValueError:
        log.warning("agentwatch: ignoring %s=%r (not a number)", name, v)
        return default


def _api_key(given: str | None) -> str | None:
    """The key to send as ``Authorization: Bearer``, or None; a malformed one is ignored."""
    key = (given if given is not None else env_str("AGENTWATCH_API_KEY") or "").strip()
    if not key:
        return None
    # It travels in an HTTP header: a control character would end the header
    # early. Say so, and send no key (the server then refuses the events,
    # which are counted in dropped_auth), rather than stop the app.
    if not (key.isascii() and key.isprintable()):
        msg = "agentwatch: api_key ignored: it must be printable ASCII (it is a Bearer token)"
        if strict():
            raise ValueError(msg)
        log_once("api_key", logging.WARNING, msg)
        return None
    return key


def resolve(
    server_url: str | None, agent: str | None, task: str | None, options: Options
) -> Config:
    """Arguments first, then the AGENTWATCH_* variables, then the defaults."""
    unknown = set(options) - set(Options.__annotations__)
    if unknown:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(unknown))}")

    def num(key: str, env: str, default: float, cast: Callable[[str], float]) -> float:
        v = options.get(key)
        return _env_num(env, default, cast) if v is None else v  # type: ignore[return-value]

    def flag(key: str, env: str, default: bool) -> bool:
        v = options.get(key)
        return env_bool(env, default) if v is None else bool(v)

    return Config(
        server_url=(server_url or env_str("AGENTWATCH_SERVER_URL") or DEFAULT_SERVER_URL).rstrip(
            "/"
        ),
        agent=agent or env_str("AGENTWATCH_AGENT") or DEFAULT_NAME,
        task=task or env_str("AGENTWATCH_TASK") or DEFAULT_NAME,
        batch_size=int(num("batch_size", "AGENTWATCH_BATCH_SIZE", 100, int)),
        flush_interval=num("flush_interval", "AGENTWATCH_FLUSH_INTERVAL", 1.0, float),
        max_queue=int(num("max_queue", "AGENTWATCH_MAX_QUEUE", 10_000, int)),
        shutdown_timeout=num("shutdown_timeout", "AGENTWATCH_SHUTDOWN_TIMEOUT", 5.0, float),
        disabled=flag("disabled", "AGENTWATCH_DISABLED", False),
        openai_include_usage=flag("openai_include_usage", "AGENTWATCH_OPENAI_INCLUDE_USAGE", True),
        api_key=_api_key(options.get("api_key")),
        exporter=options.get("exporter"),
    )
