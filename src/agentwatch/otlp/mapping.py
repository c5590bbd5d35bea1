"""Span records -> AgentWatch events (``schema.Event``), one event per stored span.

Which spans are stored: LLM calls (``kind="llm"``), agent/chain/workflow runs
(``kind="task"``) and tool calls (``kind="tool"``), recognised by the
attributes in ``attributes.py``. Other spans (HTTP, database, framework
internals) are not stored; they still carry the tree.

Ids: an event's ``id`` is a UUID derived from its span's (trace id, span id),
its ``timestamp`` the span's start, so a retried export maps to the same ids
and the store keeps each span once. ``trace_id`` is the trace id in hex;
``parent_id`` is the event id of the nearest *stored* ancestor span, so the
dashboard's waterfall builds the tree exactly as for the SDK's ``@track`` runs.

Spans of one trace arrive in several export requests, children usually first
(an SDK exports a span when it ends, and a parent ends after its children).
``SpanMemory`` remembers, for recently seen spans, their parent, whether they
were stored and the names their descendants inherit. A span whose parent has
not been seen is linked to that parent's event id, and the parent is
"promised": if it turns out to be a span that would not be stored (an HTTP or
custom span with a parent of its own), it is stored after all, as a task step
marked ``otel.kept_for_tree``, so that the link resolves and the run's
waterfall and cost include everything below it. docs/otlp.md lists the limits.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from agentwatch.otlp import attributes as A
from agentwatch.otlp.decode import SpanRecord
from agentwatch.schema import MAX_ERROR, MAX_NAME, Event

# -- ids ------------------------------------------------------------------------

# The namespace of span-derived event ids (a UUIDv5 name space of our own).
_NAMESPACE = bytes.fromhex("6f1e0c5a9b7d4e21a3c8d2f4b6e8a0c1")


def event_id(trace_id: bytes, span_id: bytes) -> str:
    """The event id of a span: UUIDv5 (RFC 9562) of the 24 id bytes in our namespace."""
    h = bytearray(hashlib.sha1(_NAMESPACE + trace_id + span_id).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 9562 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


# -- memory across requests ---------------------------------------------------------

DROPPED, STORED, STORED_TASK, PROMISED = 0, 1, 2, 3

# Sizing: an entry is about 250 bytes, so 100,000 spans are ~25 MB at most. At a
# busy server's few thousand spans a second that still covers tens of seconds,
# and exporters send a trace's spans within seconds of each other (the
# BatchSpanProcessor's default delay is 5 s). The TTL bounds how long a parent
# may end after its children and still be linked to what was remembered: long
# agent runs take minutes, rarely an hour.
MAX_SPANS = 100_000
TTL_S = 3600.0

Inherit = tuple[str | None, str | None, str | None, str | None]  # agent, session, user, workflow
_NO_INHERIT: Inherit = (None, None, None, None)


class SpanMemory:
    """Recently seen spans: (expiry, parent key, state, name, inherited names).

    Keys are the 24 bytes of trace id + span id. Bounded by count (oldest
    first out) and by age. Used from the event loop only: no locking.
    """

    def __init__(
        self,
        max_spans: int = MAX_SPANS,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_spans = max_spans
        self.ttl_s = ttl_s
        self.clock = clock
        self._d: OrderedDict[bytes, tuple[float, bytes | None, int, str | None, Inherit]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._d)

    def get(
        self, key: bytes, now: float
    ) -> tuple[float, bytes | None, int, str | None, Inherit] | None:
        e = self._d.get(key)
        if e is not None and e[0] < now:
            del self._d[key]
            return None
        return e

    def put(
        self,
        key: bytes,
        parent: bytes | None,
        state: int,
        name: str | None,
        inh: Inherit,
        now: float,
    ) -> None:
        d = self._d
        d[key] = (now + self.ttl_s, parent, state, name, inh)
        d.move_to_end(key)

    def promise(self, key: bytes, now: float) -> None:
        if key not in self._d:
            self.put(key, None, PROMISED, None, _NO_INHERIT, now)

    def trim(self, now: float) -> None:
        d = self._d
        while len(d) > self.max_spans:
            d.popitem(last=False)
        while d:
            first = next(iter(d.values()))
            if first[0] >= now:
                break
            d.popitem(last=False)


# -- the mapping ------------------------------------------------------------------------

# Metadata bounds per event. Attributes are copied under their names until
# one of these is reached; the rest is counted in "otel.dropped_attributes".
# OpenInference records prompts and completions by default (input.value,
# llm.input_messages.*): truncated, they stay useful without making every
# stored event kilobytes long.
MAX_META_KEYS = 128
MAX_META_VALUE_CHARS = 1024
MAX_META_CHARS = 8192
# A parent chain longer than this is treated as cut (it is hostile or broken:
# real traces are a few levels deep).
MAX_HOPS = 256

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TOKENS = 2**53
_MAX_COST = 1e9
_MAX_REASONS = 5  # distinct rejection reasons quoted in a partial success


@dataclass
class Result:
    events: list[Event] = field(default_factory=list)
    spans: int = 0  # spans in the request
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, where: str, why: str) -> None:
        self.rejected += 1
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(f"{where}: {why}")

    def message(self) -> str:
        more = self.rejected - len(self.reasons)
        tail = f" (and {more} more)" if more > 0 else ""
        return f"{self.rejected} of {self.spans} spans rejected: " + "; ".join(self.reasons) + tail


def classify(attrs: dict[str, Any]) -> str | None:
    """The event kind of a span ("llm", "task", "tool"), or None: not stored."""
    op = attrs.get(A.GENAI_OPERATION)
    if type(op) is str:
        k = A.GENAI_KINDS.get(op)
        if k is not None:
            return k
    oi = attrs.get(A.OI_SPAN_KIND)
    if type(oi) is str:
        return A.OI_KINDS.get(oi.upper())
    return None


def _text(attrs: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for n in names:
        v = attrs.get(n)
        if type(v) is str:
            if v:
                return v
        elif type(v) is int:
            return str(v)
    return None


def _inherit(attrs: dict[str, Any]) -> Inherit:
    return (
        _text(attrs, A.AGENT),
        _text(attrs, A.SESSION),
        _text(attrs, A.USER),
        _text(attrs, A.WORKFLOW),
    )


def _count(attrs: dict[str, Any], names: tuple[str, ...], ignored: list[str]) -> int:
    """The first usable token count among `names` (0 if none)."""
    for n in names:
        v = attrs.get(n)
        if v is None:
            continue
        if type(v) is float and v.is_integer():
            v = int(v)
        if type(v) is int and 0 <= v <= _MAX_TOKENS:
            return v
        ignored.append(n)
    return 0


def _number(
    attrs: dict[str, Any], names: tuple[str, ...], hi: float, ignored: list[str]
) -> float | None:
    for n in names:
        v = attrs.get(n)
        if v is None:
            continue
        if (type(v) is int or type(v) is float) and math.isfinite(v) and 0 <= v <= hi:
            return float(v)
        ignored.append(n)
    return None


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


class _Meta:
    """Builds one event's metadata within the bounds above."""

    __slots__ = ("chars", "d", "dropped")

    def __init__(self, base: dict[str, Any]) -> None:
        self.d = base
        self.chars = 0
        self.dropped = 0

    def add(self, key: str, value: Any) -> None:
        if len(self.d) >= MAX_META_KEYS or self.chars >= MAX_META_CHARS:
            self.dropped += 1
            return
        room = min(MAX_META_VALUE_CHARS, max(MAX_META_CHARS - self.chars, 16))
        t = type(value)
        if t is str:
            v: Any = _clip(value, room)
            size = len(v)
        elif t is float:
            v = value if math.isfinite(value) else None
            size = 8
        elif t is list or t is dict:
            # Arrays and maps are measured as the JSON they will be stored as;
            # one too long is kept as its JSON text, cut (NaN becomes null).
            text = orjson.dumps(value).decode()
            size = len(text)
            v = value if size <= room else _clip(text, room)
            if size > room:
                size = len(v)
        else:
            v = value
            size = 8
        self.d[_clip(key, MAX_NAME)] = v
        self.chars += len(key) + size


class Mapper:
    """Maps export requests; holds the span memory of one server process."""

    def __init__(self, memory: SpanMemory | None = None) -> None:
        self.memory = memory or SpanMemory()

    def map(self, records: list[SpanRecord]) -> Result:
        res = Result(spans=len(records))
        mem = self.memory
        now = mem.clock()

        # 1. Check ids, index the request's spans, classify them.
        spans: list[tuple[bytes, bytes | None, SpanRecord, str | None]] = []
        local: dict[bytes, tuple[bytes | None, SpanRecord, str | None]] = {}
        for rec in records:
            why = rec.problem or _id_problem(rec)
            if why is not None:
                res.reject(rec.where, why)
                continue
            key = rec.trace_id + rec.span_id
            parent = rec.trace_id + rec.parent_span_id if rec.parent_span_id else None
            if parent == key:  # a span cannot be its own parent: treat it as a root
                parent = None
            kind = classify(rec.attrs)
            if kind is None and parent is not None:
                known = mem.get(key, now)
                # A stored child already links to it (or did, if this is a
                # retried export): keep it, so that the link resolves.
                if known is not None and known[2] in (PROMISED, STORED_TASK):
                    kind = "task"
            if key not in local:
                local[key] = (parent, rec, kind)
                spans.append((key, parent, rec, kind))

        # 2. Events for the stored spans, each linked to its nearest stored ancestor.
        inherit_cache: dict[bytes, Inherit] = {}

        def inherited(key: bytes, rec: SpanRecord) -> Inherit:
            inh = inherit_cache.get(key)
            if inh is None:
                inh = inherit_cache[key] = _inherit(rec.attrs)
            return inh

        for key, parent, rec, kind in spans:
            if kind is None:
                continue
            agent, session, user, workflow = inherited(key, rec)
            parent_event: str | None = None
            root_name = rec.name if parent is None else None
            top_task = rec.name if kind == "task" else None
            cur = parent
            hops = 0
            while cur is not None and hops < MAX_HOPS:
                hops += 1
                node = local.get(cur)
                if node is not None:
                    up, prec, pkind = node
                    stored = pkind is not None
                    is_task = pkind == "task"
                    name: str | None = prec.name
                    inh = inherited(cur, prec)
                else:
                    m = mem.get(cur, now)
                    if m is None or m[2] == PROMISED:
                        # Not seen yet: link to it; it will be stored when it comes.
                        if parent_event is None:
                            parent_event = event_id(cur[:16], cur[16:])
                            mem.promise(cur, now)
                        break
                    _, up, state, name, inh = m
                    stored = state != DROPPED
                    is_task = state == STORED_TASK
                if stored and parent_event is None:
                    parent_event = event_id(cur[:16], cur[16:])
                if agent is None:
                    agent = inh[0]
                if session is None:
                    session = inh[1]
                if user is None:
                    user = inh[2]
                if workflow is None:
                    workflow = inh[3]
                if is_task and name:
                    top_task = name
                if up is None:
                    root_name = name
                    break
                cur = up
            ev = self._event(
                rec, kind, parent_event, agent, session, user, workflow, root_name, top_task, res
            )
            if ev is not None:
                res.events.append(ev)

        # 3. Remember this request's spans for the requests to come.
        for key, parent, rec, kind in spans:
            state = DROPPED if kind is None else STORED_TASK if kind == "task" else STORED
            # Names are kept where descendants may need them: roots (the task
            # name) and runs (the fallback when the root is unknown).
            name = rec.name[:MAX_NAME] if (parent is None or kind == "task") else None
            inh = inherit_cache.get(key) or _inherit(rec.attrs)
            mem.put(key, parent, state, name, inh, now)
        mem.trim(now)
        return res

    def _event(
        self,
        rec: SpanRecord,
        kind: str,
        parent_event: str | None,
        agent: str | None,
        session: str | None,
        user: str | None,
        workflow: str | None,
        root_name: str | None,
        top_task: str | None,
        res: Result,
    ) -> Event | None:
        attrs = rec.attrs
        service = rec.resource.get(A.SERVICE_NAME)
        service = service if type(service) is str and service else None
        agent_name = agent or service or "unknown_service"
        task_name = workflow or root_name or top_task or service or "unknown_service"

        ignored: list[str] = []
        meta = _Meta(
            {
                "otel.span_name": _clip(rec.name, MAX_NAME),
                "otel.span_kind": SPAN_KINDS[rec.kind]
                if 0 <= rec.kind < len(SPAN_KINDS)
                else rec.kind,
                "otel.scope": _clip(rec.scope, MAX_NAME),
                "otel.span_id": rec.span_id.hex(),
            }
        )
        if kind == "task" and classify(attrs) is None:
            meta.d["otel.kept_for_tree"] = True

        fields: dict[str, Any] = {}
        if kind == "llm":
            tin = _count(attrs, A.INPUT_TOKENS, ignored)
            tout = _count(attrs, A.OUTPUT_TOKENS, ignored)
            cr = _count(attrs, A.CACHE_READ_TOKENS, ignored)
            cw = _count(attrs, A.CACHE_WRITE_TOKENS, ignored)
            if cr + cw > tin:
                # Both conventions count cached tokens inside the input. A
                # producer that reports more cached than input tokens counted
                # them apart (Anthropic's own API does); add them so input is
                # all input. A correct producer never reaches this branch, so
                # nothing is counted twice.
                tin += cr + cw
                meta.d["otel.input_tokens_excluded_cache"] = True
            provider = _text(attrs, A.PROVIDER)
            if provider is not None:
                provider = provider.lower()
                provider = A.PROVIDER_IDS.get(provider, provider)[:MAX_NAME]
            fields = {
                "model": (_text(attrs, A.MODEL) or _requested_model(attrs) or "unknown")[:MAX_NAME],
                "provider": provider,
                "input_tokens": min(tin, _MAX_TOKENS),
                "output_tokens": tout,
                "cache_read_tokens": cr,
                "cache_write_tokens": cw,
                "reasoning_tokens": _count(attrs, A.REASONING_TOKENS, ignored),
                "cost_usd": _number(attrs, A.COST, _MAX_COST, ignored),
            }
            ttft = _number(attrs, A.TIME_TO_FIRST_TOKEN_S, 1e7, ignored)
            if ttft is not None:
                meta.d["time_to_first_token_ms"] = ttft * 1000.0
            else:
                for e in rec.events:
                    if e.name == A.FIRST_TOKEN_EVENT and e.time_ns >= rec.start_ns:
                        meta.d["time_to_first_token_ms"] = (e.time_ns - rec.start_ns) / 1e6
                        break
        elif kind == "tool":
            meta.d["tool"] = _clip(_text(attrs, A.TOOL_NAME) or rec.name, MAX_NAME)

        status, error = _status(rec)
        error_type = _text(attrs, (A.ERROR_TYPE,))
        if error_type is not None:
            meta.d["error_type"] = _clip(error_type, MAX_NAME)

        for k, v in rec.resource.items():
            if k != A.SERVICE_NAME and k.startswith(A.RESOURCE_KEPT_PREFIXES):
                meta.add(k, v)
        for k, v in attrs.items():
            if k not in A.MAPPED:
                meta.add(k, v)
        if ignored:
            meta.d["otel.ignored_attributes"] = ignored
        dropped = meta.dropped + rec.dropped_attributes
        if dropped:
            meta.d["otel.dropped_attributes"] = dropped

        end = rec.end_ns if rec.end_ns >= rec.start_ns else rec.start_ns
        try:
            return Event(
                id=event_id(rec.trace_id, rec.span_id),
                kind=kind,  # type: ignore[arg-type]  # one of KINDS, from classify()
                task_name=_clip(task_name, MAX_NAME),
                agent_name=_clip(agent_name, MAX_NAME),
                latency_ms=(end - rec.start_ns) / 1e6,
                status=status,  # type: ignore[arg-type]  # "success" or "error"
                error_message=error,
                timestamp=_EPOCH + timedelta(microseconds=rec.start_ns // 1000),
                metadata=meta.d,
                trace_id=rec.trace_id.hex(),
                parent_id=parent_event,
                session_id=_clip(session, MAX_NAME) if session else None,
                user_id=_clip(user, MAX_NAME) if user else None,
                **fields,
            )
        except (ValidationError, OverflowError) as e:
            res.reject(rec.where, _first_error(e))
            return None


def _requested_model(attrs: dict[str, Any]) -> str | None:
    raw = attrs.get(A.INVOCATION_PARAMETERS)
    if type(raw) is not str or len(raw) > 65536:
        return None
    try:
        model = orjson.loads(raw).get("model")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return model if type(model) is str and model else None


def _id_problem(rec: SpanRecord) -> str | None:
    if len(rec.trace_id) != 16 or not any(rec.trace_id):
        return (
            f"traceId must be 16 bytes (32 hex digits), not all zero; got {len(rec.trace_id)} bytes"
        )
    if len(rec.span_id) != 8 or not any(rec.span_id):
        return f"spanId must be 8 bytes (16 hex digits), not all zero; got {len(rec.span_id)} bytes"
    if rec.parent_span_id and len(rec.parent_span_id) != 8:
        n = len(rec.parent_span_id)
        return f"parentSpanId must be empty or 8 bytes (16 hex digits); got {n} bytes"
    if rec.start_ns <= 0:
        return "startTimeUnixNano is missing"
    return None


def _status(rec: SpanRecord) -> tuple[str, str | None]:
    """("success" | "error", message): ERROR status or error.type means error."""
    error_type = rec.attrs.get(A.ERROR_TYPE)
    failed = rec.status_code == 2 or (type(error_type) is str and error_type != "")
    if not failed:
        return "success", None
    msg = rec.status_message or None
    if msg is None:
        for e in rec.events:
            if e.name == A.EXCEPTION_EVENT:
                text = e.attrs.get(A.EXCEPTION_MESSAGE)
                etype = e.attrs.get(A.EXCEPTION_TYPE)
                if type(text) is str and text:
                    msg = f"{etype}: {text}" if type(etype) is str and etype else text
                elif type(etype) is str and etype:
                    msg = etype
                if msg:
                    break
    if msg is None and type(error_type) is str and error_type:
        msg = error_type
    return "error", _clip(msg, MAX_ERROR) if msg else None


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(span)"
        return f"{loc}: {err['msg']}"
    return str(e)
