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
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
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

export const summary = (period, filters) =>
  getJSON("api/metrics/summary", { period, ...filters }, "summary");

export const timeseries = (period, filters, bucket) =>
  getJSON("api/metrics/timeseries", { period, bucket, ...filters }, "timeseries");

export const breakdown = (groupBy, period, filters) =>
  getJSON("api/metrics/breakdown", { group_by: groupBy, period, ...filters }, "breakdown");

export const events = (params, slot) => getJSON("api/events", params, slot);

export const STREAM_URL = "api/stream";
