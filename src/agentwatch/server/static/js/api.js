// The HTTP API client. URLs are relative, so the dashboard works behind a
// reverse proxy under any path prefix.

import { signInAgain } from "./auth.js";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) for (const item of v) q.append(k, String(item));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// One in-flight request per "slot": a newer request for the same panel
// aborts the older one, so a quick range switch never paints stale numbers.
const inflight = new Map();

export async function getJSON(path, params, slot) {
  let controller;
  if (slot) {
    inflight.get(slot)?.abort();
    controller = new AbortController();
    inflight.set(slot, controller);
  }
  try {
    const resp = await fetch(path + query(params), {
      headers: { Accept: "application/json" },
      signal: controller?.signal,
    });
    if (resp.status === 401) signInAgain();
    if (!resp.ok) throw new ApiError(`${path}: HTTP ${resp.status}`, resp.status);
    return await resp.json();
  } finally {
    if (slot && inflight.get(slot) === controller) inflight.delete(slot);
  }
}

export const isAbort = (err) => err?.name === "AbortError";

const iso = (ms) => new Date(ms).toISOString();

/**
 * Query parameters of a time window ({start, end, preset} as made by
 * state.currentWindow): a preset is the server's own `period` (its clock);
 * anything else is an explicit since/until.
 */
export function windowParams(win) {
  if (win.preset) return { period: win.preset };
  return { since: iso(win.start), until: iso(win.end) };
}

/** The window of the same length just before `win` (for "vs previous" deltas); null for all time. */
export function previousWindowParams(win) {
  if (win.start === null) return null;
  const len = win.end - win.start;
  return { since: iso(win.start - len), until: iso(win.start - 1) };
}

export const summary = (params, filters, slot = "summary") => getJSON("api/metrics/summary", { ...params, ...filters }, slot);

export const timeseries = (params, filters, bucket, slot = "timeseries") =>
  getJSON("api/metrics/timeseries", { ...params, bucket, ...filters }, slot);

export const breakdown = (groupBy, params, filters, limit, slot = "breakdown") =>
  getJSON("api/metrics/breakdown", { group_by: groupBy, ...params, ...filters, limit }, slot);

export const events = (params, slot) => getJSON("api/events", params, slot);

export const runTotals = (ids) => getJSON("api/runs/totals", { id: ids });

export const session = (sid, slot = "session") => getJSON(`api/sessions/${encodeURIComponent(sid)}`, null, slot);

export const STREAM_URL = "api/stream";
