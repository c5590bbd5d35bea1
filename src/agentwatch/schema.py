"""The wire contract: one event as it travels from an SDK to the server.

The brief's fields keep their names and types; every field added since is
optional, so an event shaped exactly like the brief's example is always valid.
This module is server-side (it imports pydantic); the SDK builds plain dicts
with the same keys and never imports it, so `import agentwatch` stays light.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

KINDS = ("llm", "task", "tool")
STATUSES = ("success", "error")

# Bounds keep one hostile or buggy client from storing megabytes per field.
MAX_NAME = 256
MAX_ID = 128
MAX_ERROR = 16_384

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
OptName = Annotated[str | None, Field(default=None, max_length=MAX_NAME)]
OptId = Annotated[str | None, Field(default=None, min_length=1, max_length=MAX_ID)]
Tokens = Annotated[int, Field(default=0, ge=0, le=2**53)]


class Event(BaseModel):
    """One LLM call, task run or tool call."""

    # Unknown top-level keys are not an error (a newer SDK may send fields this
    # server does not know); they are kept, moved under `metadata`.
    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    id: OptId = None
    task_name: Name
    agent_name: Name
    model: Annotated[str, Field(default="", max_length=MAX_NAME)] = ""
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    latency_ms: Annotated[float, Field(ge=0, le=1e10, allow_inf_nan=False)] = 0.0
    cost_usd: Annotated[float | None, Field(ge=0, le=1e9, allow_inf_nan=False)] = None
    status: Literal["success", "error"] = "success"
    error_message: Annotated[str | None, Field(max_length=MAX_ERROR)] = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None
    kind: Literal["llm", "task", "tool"] = "llm"
    trace_id: OptId = None
    parent_id: OptId = None
    provider: OptName = None
    user_id: OptName = None
    session_id: OptName = None

    # Checks that need more than one field, and the defaults that need a clock
    # or a random source, are applied by the server at ingest (ingest.py),
    # outside pydantic, so that validation of a batch stays in compiled code.
    # They are: a "llm" event needs a model; a naive timestamp means UTC; a
    # missing id gets a UUID4 and a missing timestamp the time of arrival.


class EventBatch(BaseModel):
    """Body of POST /api/events."""

    model_config = ConfigDict(extra="forbid")
    events: list[Event]


# Columns of the stored/returned event, in the order the API returns them.
EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "task_name",
    "agent_name",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "latency_ms",
    "cost_usd",
    "status",
    "error_message",
    "timestamp",
    "metadata",
    "kind",
    "trace_id",
    "parent_id",
    "provider",
    "user_id",
    "session_id",
)
