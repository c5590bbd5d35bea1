"""Validation and row building for ingest: request body -> store rows.

`batch_rows` turns a POST /api/events body into rows (tuples in
store.tables.INSERT_COLUMNS order): a fast path for plainly valid batches,
else pydantic, which also words every error (BatchError: 413/422 naming the
index and the field). The rows then go to the group-commit writer
(server/ingest.py).

This is the door: the bounds declared on schema.Event (timestamps, token
counts, costs, name sizes, no NUL in strings) are what the store and the
queries can hold, so nothing that passes here can fail a commit or a read
later. Both paths judge a batch against one clock reading (`now_us`).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from agentwatch._ids import new_id
from agentwatch.pricing import PriceBook, Rates
from agentwatch.schema import (
    MAX_ERROR,
    MAX_FUTURE_US,
    MAX_ID,
    MAX_NAME,
    MAX_NAME_BYTES,
    MIN_TIMESTAMP_US,
    Event,
    EventBatch,
)
from agentwatch.store.sketch import latency_bin
from agentwatch.store.tables import (
    FLAG_CLIENT_COST,
    FLAG_FALLBACK_PRICE,
    quality_flags,
)

_BATCH = TypeAdapter(EventBatch)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class BatchError(ValueError):
    """A batch was rejected; `errors` name the index and the field."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def _reject(errors: list[dict[str, Any]]) -> BatchError:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"events[{first['index']}]." if first["index"] is not None else ""
    return BatchError(422, f"{where}{first['field']}: {first['message']}{more}", errors)


def _now_us() -> int:
    return (datetime.now(UTC) - _EPOCH) // _MICROSECOND


def parse_batch(body: bytes, max_events: int, now_us: int | None = None) -> list[Event]:
    """Parse and validate a request body; raise BatchError with a clear message.

    The body is validated straight from JSON bytes by pydantic-core, which
    keeps validation of a 500-event batch to a few milliseconds. `now_us` is
    the arrival time that bounds timestamps (default: the clock).
    """
    ctx = {"now_us": _now_us() if now_us is None else now_us}
    try:
        batch = _BATCH.validate_json(body, context=ctx)
    except ValidationError as e:
        errors = []
        for err in e.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            if err["type"] == "json_invalid":
                raise BatchError(422, f"request body is not valid JSON: {err['msg']}") from None
            if loc[:1] == ("events",) and len(loc) >= 2 and isinstance(loc[1], int):
                index, fld = loc[1], ".".join(str(p) for p in loc[2:]) or "(event)"
            else:
                index, fld = None, ".".join(str(p) for p in loc) or "(body)"
                if fld == "(body)" or err["type"] == "model_type":
                    err["msg"] = 'body must be a JSON object {"events": [...]}'
            errors.append({"index": index, "field": fld, "message": err["msg"]})
        raise _reject(errors) from None
    if len(batch.events) > max_events:
        raise BatchError(
            413, f"batch has {len(batch.events)} events; the limit is {max_events} per request"
        )
    missing = [
        {"index": i, "field": "model", "message": "model is required for kind 'llm'"}
        for i, ev in enumerate(batch.events)
        if ev.kind == "llm" and not ev.model
    ]
    if missing:
        raise _reject(missing)
    return batch.events


def to_rows(
    events: list[Event], prices: PriceBook, now_us: int | None = None
) -> list[tuple[Any, ...]]:
    """Store rows (tuples in INSERT_COLUMNS order): defaults filled, priced, binned.

    An event without a timestamp gets `now_us` (default: the clock).
    This is the hot path of ingest (every event, on the event loop), so it
    touches each event once, looks rates up once per model per batch, and does
    no formatting that only a reader would need.
    """
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    seen: set[str] = set()
    now = _EPOCH + (_now_us() if now_us is None else now_us) * _MICROSECOND
    rates_of = prices.rates
    rates: dict[tuple[str, str | None], Rates] = {}
    for ev in events:
        eid = ev.id or new_id()
        if eid in seen:  # the same id twice in one batch is stored once
            continue
        seen.add(eid)
        ts = ev.timestamp or now
        if ts.tzinfo is None:  # naive means UTC
            ts = ts.replace(tzinfo=UTC)
        meta = ev.metadata
        extra = ev.__pydantic_extra__
        if extra:  # unknown top-level keys are kept, under metadata
            meta = {**extra, **(meta or {})}
        tin = ev.input_tokens
        tout = ev.output_tokens
        cr = ev.cache_read_tokens
        cw = ev.cache_write_tokens
        cost = ev.cost_usd
        flags = 0
        if cost is None:
            key = (ev.model, ev.provider)
            r = rates.get(key)
            if r is None:
                r = rates[key] = rates_of(ev.model, ev.provider)
            cost = r.cost(tin, tout, cr, cw)
            if r.source == "fallback":
                flags = FLAG_FALLBACK_PRICE
        else:
            flags = FLAG_CLIENT_COST
        if meta:
            flags |= quality_flags(meta)
        lat = ev.latency_ms
        append(
            (
                eid,
                ev.task_name,
                ev.agent_name,
                ev.model,
                tin,
                tout,
                cr,
                cw,
                ev.reasoning_tokens,
                lat,
                cost,
                ev.status,
                ev.error_message,
                (ts - _EPOCH) // _MICROSECOND,  # exact, unlike float seconds
                _meta_json(meta) if meta else None,
                ev.kind,
                ev.trace_id,
                ev.parent_id,
                ev.provider,
                ev.user_id,
                ev.session_id,
                latency_bin(lat),
                flags,
            )
        )
    return rows


Row = tuple[Any, ...]


def batch_rows(
    body: bytes, max_events: int, prices: PriceBook, now_us: int | None = None
) -> tuple[list[Row], int]:
    """Store rows for a request body and the number of events it held.

    Takes the fast path when it can vouch for the whole batch, otherwise the
    pydantic path (parse_batch + to_rows), which also words every error.
    Raises BatchError (422/413) exactly as parse_batch does. `now_us` is the
    arrival time (default: the clock), one reading for both paths.
    """
    if now_us is None:
        now_us = _now_us()
    fast = fast_rows(body, max_events, prices, now_us)
    if fast is not None:
        return fast
    events = parse_batch(body, max_events, now_us)
    return to_rows(events, prices, now_us), len(events)


# --- Fast path ---------------------------------------------------------------
#
# Most batches come from the SDK and are plain: every field has exactly the JSON
# type the schema names, well inside its bounds. For those, pydantic's work
# (building one Event object per event, then reading it back in to_rows) is
# pure overhead. fast_rows decodes the body with orjson and, in a single loop,
# checks each event and builds its row. It only says yes or "not sure": on the
# first thing it does not recognise as plainly valid it returns None, and the
# caller runs the pydantic path over the whole batch. So the fast path never
# has to produce an error message, and it must never accept what pydantic
# would reject nor store anything pydantic + to_rows would store differently.
#
# Things pydantic accepts that the fast path leaves to it (lax conversions and
# rare forms): 5.0 for an int, Unix-time numbers and many other timestamp
# spellings, NaN/Infinity/huge numbers in metadata, a NUL anywhere in the body
# (refused in the event's strings, kept in metadata), and a batch over the
# event limit (pydantic's path decides between its 413 and a 422).

_FIELD_NAMES = frozenset(Event.model_fields)


def _bound(name: str, attr: str) -> Any:
    """A numeric bound (`ge` or `le`) declared on Event.<name>."""
    for m in Event.model_fields[name].metadata:
        if hasattr(m, attr):
            return getattr(m, attr)
    raise LookupError(f"Event.{name} declares no {attr}")  # pragma: no cover


_TOKENS_GE, _TOKENS_LE = _bound("input_tokens", "ge"), _bound("input_tokens", "le")
_LATENCY_GE, _LATENCY_LE = _bound("latency_ms", "ge"), _bound("latency_ms", "le")
_COST_GE, _COST_LE = _bound("cost_usd", "ge"), _bound("cost_usd", "le")

# The one timestamp shape taken here: RFC 3339 with a "T", seconds, 1 to 6
# fractional digits, and "Z", "+HH:MM", "-HH:MM" or no offset (naive = UTC).
# datetime.fromisoformat then checks calendar and clock ranges (Feb 30, hour
# 24, second 60, year 0 make it raise, as pydantic rejects them too). The
# offset is range-checked here because fromisoformat takes "+05:60", which
# pydantic refuses; other forms it takes and pydantic does not ("+05",
# "+05:30:15", " +05:30") do not match the pattern. ASCII only, so \d is 0-9.
_TS_SHAPE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?",
    re.ASCII,
).fullmatch

# orjson turns an integer outside the 64-bit range into a float, pydantic keeps
# it an int; a float this large in metadata may have been such an integer.
_BIG = float(2**63)
# pydantic's JSON parser refuses nesting deeper than about 200 levels, orjson
# goes to 1024; metadata nested deeper than this goes to pydantic to decide.
_MAX_NESTING = 64


# Values that orjson and pydantic decode alike, whatever their content.
_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(values: Any, depth: int = 0) -> bool:
    """True if these decoded metadata values are exactly what pydantic would decode."""
    if depth > _MAX_NESTING:
        return False
    for v in values:
        t = type(v)
        if t is float:
            if not -_BIG < v < _BIG:
                return False
        elif (t is dict or t is list) and not _plain(v.values() if t is dict else v, depth + 1):
            return False
    return True


# Only a name longer than this many characters can exceed MAX_NAME_BYTES.
_NAME_CHARS_SAFE = MAX_NAME_BYTES // 4


def fast_rows(
    body: bytes, max_events: int, prices: PriceBook, now_us: int | None = None
) -> tuple[list[Row], int] | None:
    """The rows of to_rows(parse_batch(body)) and the event count, or None if unsure.

    None means "let pydantic decide": it is returned for anything that is not
    plainly valid, including every batch pydantic would reject.
    """
    # JSON can only spell a NUL as this escape (a raw control character is
    # invalid JSON): one scan of the body instead of a check per string.
    if b"\\u0000" in body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or len(doc) != 1:
        return None
    events = doc.get("events")
    if type(events) is not list or len(events) > max_events:
        return None

    rows: list[Row] = []
    append = rows.append
    seen: set[str] = set()
    seen_add = seen.add
    if now_us is None:
        now_us = _now_us()
    ts_lo, ts_hi = MIN_TIMESTAMP_US, now_us + MAX_FUTURE_US
    name_safe, name_bytes = _NAME_CHARS_SAFE, MAX_NAME_BYTES
    rates_of = prices.rates
    rates: dict[tuple[str, str | None], Rates] = {}
    rates_get = rates.get
    dumps = orjson.dumps
    fromiso = datetime.fromisoformat
    ts_shape = _TS_SHAPE
    fields = _FIELD_NAMES
    scalars = _SCALARS
    tok_ge, tok_le = _TOKENS_GE, _TOKENS_LE
    lat_ge, lat_le = _LATENCY_GE, _LATENCY_LE

    for ev in events:
        if type(ev) is not dict:
            return None
        get = ev.get

        # Required names, then the model: a str, "" when absent, and an "llm"
        # event must have one.
        task = get("task_name")
        agent = get("agent_name")
        model = get("model", "")
        if not (
            type(task) is str
            and 0 < len(task) <= MAX_NAME
            and type(agent) is str
            and 0 < len(agent) <= MAX_NAME
            and type(model) is str
            and len(model) <= MAX_NAME
        ):
            return None
        if (
            (len(task) > name_safe and len(task.encode()) > name_bytes)
            or (len(agent) > name_safe and len(agent.encode()) > name_bytes)
            or (len(model) > name_safe and len(model.encode()) > name_bytes)
        ):
            return None
        kind = get("kind", "llm")
        if kind == "llm":
            if not model:
                return None
        elif kind != "task" and kind != "tool":
            return None
        status = get("status", "success")
        if status != "success" and status != "error":
            return None

        # Token counts: exactly int (bool is not), within the bounds.
        tin = get("input_tokens", 0)
        tout = get("output_tokens", 0)
        cr = get("cache_read_tokens", 0)
        cw = get("cache_write_tokens", 0)
        reasoning = get("reasoning_tokens", 0)
        if not (
            type(tin) is int
            and type(tout) is int
            and type(cr) is int
            and type(cw) is int
            and type(reasoning) is int
            and tok_ge <= tin <= tok_le
            and tok_ge <= tout <= tok_le
            and tok_ge <= cr <= tok_le
            and tok_ge <= cw <= tok_le
            and tok_ge <= reasoning <= tok_le
        ):
            return None

        # Floats: a JSON float or int within bounds (orjson never yields NaN or
        # infinity, and the comparisons would refuse them); pydantic turns an
        # int into a float, so do we.
        lat = get("latency_ms", 0.0)
        if type(lat) is float:
            if not lat_ge <= lat <= lat_le:
                return None
        elif type(lat) is int and lat_ge <= lat <= lat_le:
            lat = float(lat)
        else:
            return None
        cost = get("cost_usd")
        if cost is not None:
            if type(cost) is float:
                if not _COST_GE <= cost <= _COST_LE:
                    return None
            elif type(cost) is int and _COST_GE <= cost <= _COST_LE:
                cost = float(cost)
            else:
                return None

        # Optional strings: null and absent both mean None.
        eid = get("id")
        trace_id = get("trace_id")
        parent_id = get("parent_id")
        provider = get("provider")
        user_id = get("user_id")
        session_id = get("session_id")
        error = get("error_message")
        if not (
            (eid is None or (type(eid) is str and 0 < len(eid) <= MAX_ID))
            and (trace_id is None or (type(trace_id) is str and 0 < len(trace_id) <= MAX_ID))
            and (parent_id is None or (type(parent_id) is str and 0 < len(parent_id) <= MAX_ID))
            and (provider is None or (type(provider) is str and len(provider) <= MAX_NAME))
            and (user_id is None or (type(user_id) is str and len(user_id) <= MAX_NAME))
            and (session_id is None or (type(session_id) is str and len(session_id) <= MAX_NAME))
            and (error is None or (type(error) is str and len(error) <= MAX_ERROR))
        ):
            return None
        if (
            (provider and len(provider) > name_safe and len(provider.encode()) > name_bytes)
            or (user_id and len(user_id) > name_safe and len(user_id.encode()) > name_bytes)
            or (
                session_id and len(session_id) > name_safe and len(session_id.encode()) > name_bytes
            )
        ):
            return None

        # Timestamp: microseconds since the epoch; naive means UTC.
        ts = get("timestamp")
        if ts is None:
            ts_us = now_us
        else:
            if type(ts) is not str or ts_shape(ts) is None:
                return None
            try:
                dt = fromiso(ts)
            except ValueError:
                return None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            ts_us = (dt - _EPOCH) // _MICROSECOND
            if not ts_lo <= ts_us <= ts_hi:
                return None

        # Metadata, with unknown top-level keys merged under it (metadata's own
        # keys win), as to_rows does with pydantic's extras.
        # Flat str/int/bool/null values, the usual metadata, are checked inline.
        meta = get("metadata")
        if meta is not None:
            if type(meta) is not dict:
                return None
            for v in meta.values():
                if type(v) not in scalars and not _plain((v,)):
                    return None
        if not fields.issuperset(ev):
            extra = {k: v for k, v in ev.items() if k not in fields}
            if not _plain(extra.values()):
                return None
            meta = {**extra, **(meta or {})}

        # The event is valid. Only now skip a repeated id: to_rows also drops
        # it, but pydantic validated it first.
        if eid is None:
            eid = new_id()
        if eid in seen:
            continue
        seen_add(eid)
        if cost is None:
            key = (model, provider)
            r = rates_get(key)
            if r is None:
                r = rates[key] = rates_of(model, provider)
            cost = r.cost(tin, tout, cr, cw)
            flags = FLAG_FALLBACK_PRICE if r.source == "fallback" else 0
        else:
            flags = FLAG_CLIENT_COST
        if meta:
            flags |= quality_flags(meta)
        append(
            (
                eid,
                task,
                agent,
                model,
                tin,
                tout,
                cr,
                cw,
                reasoning,
                lat,
                cost,
                status,
                error,
                ts_us,
                dumps(meta).decode() if meta else None,
                kind,
                trace_id,
                parent_id,
                provider,
                user_id,
                session_id,
                latency_bin(lat),
                flags,
            )
        )
    return rows, len(events)


def _meta_json(meta: dict[str, Any]) -> str:
    """metadata as stored JSON text. orjson refuses integers beyond 64 bits,
    which pydantic accepts; those fall back to the standard library, with
    NaN and infinities written as null (as orjson does), so that the stored
    text is always JSON that the readers can parse."""
    try:
        return orjson.dumps(meta).decode()
    except TypeError:
        return json.dumps(_finite(meta), separators=(",", ":"), ensure_ascii=False)


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v
