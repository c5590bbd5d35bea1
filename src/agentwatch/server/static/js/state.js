// Page state, mirrored in the URL so that every view can be bookmarked,
// shared and navigated with Back/Forward: the view, the time window (a
// preset range, or a custom from-to from a chart zoom or the explorer), the
// filters every view shares, the breakdown tab, the explorer's own filters,
// sort and page, the session shown and the event opened in the dialog.

import { span } from "./format.js";

export const VIEWS = ["overview", "explore", "session", "alerts"];
export const RANGES = ["1h", "24h", "7d", "30d", "all"];
export const RANGE_MS = { "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000, all: null };
export const RANGE_LABELS = { "1h": "1 h", "24h": "24 h", "7d": "7 d", "30d": "30 d", all: "all time" };
export const TABS = ["agent_name", "model", "task_name", "provider", "user_id", "session_id"];
export const STACKS = ["none", "model", "agent_name"];
export const SORTS = ["time", "cost", "latency", "tokens"];

// Shared filters (the dimensions the metrics can narrow by): dimension -> URL name.
export const FILTER_KEYS = { agent_name: "agent", model: "model", task_name: "task" };
export const FILTER_LABELS = { agent_name: "agent", model: "model", task_name: "task" };
// The explorer's own filters: API parameter -> URL name.
export const EXPLORE_KEYS = {
  status: "status",
  kind: "kind",
  provider: "provider",
  user_id: "user",
  session_id: "session",
  trace_id: "trace",
  error_contains: "q",
};

const DEFAULTS = { view: "overview", range: "24h", tab: "agent_name", stack: "none", sort: "time", order: "desc" };

const listeners = new Set();

export const state = readUrl();

function isoParam(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

function timeParam(v) {
  if (!v) return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

function readUrl() {
  const q = new URLSearchParams(window.location.search);
  const pick = (name, allowed) => (allowed.includes(q.get(name)) ? q.get(name) : DEFAULTS[name]);
  let from = timeParam(q.get("from"));
  let to = timeParam(q.get("to"));
  if (from === null || to === null || from >= to) from = to = null;
  const filters = {};
  for (const [dim, key] of Object.entries(FILTER_KEYS)) {
    const v = q.get(key);
    if (v) filters[dim] = v;
  }
  const explore = {};
  for (const [param, key] of Object.entries(EXPLORE_KEYS)) {
    const v = q.get(key);
    if (v) explore[param] = v;
  }
  return {
    view: pick("view", VIEWS),
    range: pick("range", RANGES),
    from,
    to,
    filters,
    tab: pick("tab", TABS),
    stack: pick("stack", STACKS),
    explore,
    sort: pick("sort", SORTS),
    order: pick("order", ["desc", "asc"]),
    cursor: q.get("cursor") || null,
    sid: q.get("sid") || null,
    open: q.get("open") || null,
  };
}

export function urlFor(s) {
  const q = new URLSearchParams();
  if (s.view !== DEFAULTS.view) q.set("view", s.view);
  if (s.from !== null && s.to !== null) {
    q.set("from", isoParam(s.from));
    q.set("to", isoParam(s.to));
  } else if (s.range !== DEFAULTS.range) q.set("range", s.range);
  for (const [dim, key] of Object.entries(FILTER_KEYS)) {
    if (s.filters[dim]) q.set(key, s.filters[dim]);
  }
  if (s.tab !== DEFAULTS.tab) q.set("tab", s.tab);
  if (s.stack !== DEFAULTS.stack) q.set("stack", s.stack);
  if (s.view === "explore") {
    for (const [param, key] of Object.entries(EXPLORE_KEYS)) {
      if (s.explore[param]) q.set(key, s.explore[param]);
    }
    if (s.sort !== DEFAULTS.sort) q.set("sort", s.sort);
    if (s.order !== DEFAULTS.order) q.set("order", s.order);
    if (s.cursor) q.set("cursor", s.cursor);
  }
  if (s.view === "session" && s.sid) q.set("sid", s.sid);
  if (s.open) q.set("open", s.open);
  const search = q.toString();
  return window.location.pathname + (search ? `?${search}` : "");
}

function writeUrl(push) {
  const url = urlFor(state);
  if (url === window.location.pathname + window.location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** Subscribe to changes; fn(changedKeys: Set<string>). */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(changed) {
  for (const fn of listeners) fn(changed);
}

/** Apply several changes at once: one history entry, one notification. */
export function update(patch, { push = true } = {}) {
  const changed = new Set();
  for (const [key, value] of Object.entries(patch)) {
    const before = state[key];
    const same = typeof value === "object" && value !== null ? JSON.stringify(before) === JSON.stringify(value) : before === value;
    if (same) continue;
    state[key] = value;
    changed.add(key === "from" || key === "to" || key === "range" ? "window" : key);
  }
  // Anything that changes which rows match sends the explorer back to its first page.
  if (!("cursor" in patch) && state.cursor && ["window", "filters", "explore", "sort", "order"].some((k) => changed.has(k))) {
    state.cursor = null;
    changed.add("cursor");
  }
  if (!changed.size) return;
  writeUrl(push);
  emit(changed);
}

export function setRange(range) {
  if (!RANGES.includes(range)) return;
  update({ range, from: null, to: null });
}

/** A custom window [fromMs, toMs] (a chart zoom, the explorer's From/To). */
export function setWindow(from, to) {
  if (from === null || to === null || !(to > from)) return;
  update({ from: Math.round(from), to: Math.round(to) });
}

export function setTab(tab) {
  if (TABS.includes(tab)) update({ tab }, { push: false });
}

export function setStack(stack) {
  if (STACKS.includes(stack)) update({ stack }, { push: false });
}

export function setFilter(dim, value) {
  if (!(dim in FILTER_KEYS)) return;
  const next = { ...state.filters };
  if (value === null || value === undefined || value === "") delete next[dim];
  else next[dim] = String(value);
  update({ filters: next });
}

export function clearFilters() {
  update({ filters: {} });
}

export function hasFilters() {
  return Object.keys(state.filters).length > 0;
}

export function setView(view, extra = {}) {
  if (VIEWS.includes(view)) update({ view, ...extra });
}

/** Open the explorer with these filters (shared ones go to `filters`). */
export function openExplorer(params = {}) {
  const filters = { ...state.filters };
  const own = {};
  for (const [k, v] of Object.entries(params)) {
    if (k in FILTER_KEYS) filters[k] = v;
    else if (k in EXPLORE_KEYS && v) own[k] = v;
  }
  update({ view: "explore", filters, explore: own, cursor: null });
}

export function openSession(sid) {
  if (sid) update({ view: "session", sid });
}

export function setOpen(id) {
  update({ open: id || null }, { push: false });
}

/** The time window now: {start, end} in epoch ms (start null for "all"), and whether it follows the clock. */
export function currentWindow(now = Date.now()) {
  if (state.from !== null && state.to !== null) {
    return { start: state.from, end: state.to, live: false, preset: null };
  }
  const len = RANGE_MS[state.range];
  return { start: len === null ? null : now - len, end: now, live: true, preset: state.range };
}

/** The window's length in words: "24 h", "3 h 20 min"; "all time". */
export function windowLabel(win) {
  return win.preset ? RANGE_LABELS[win.preset] : span(win.end - win.start);
}

/** Does an event match the shared filters? (Used for live events.) */
export function matches(event) {
  for (const [dim, value] of Object.entries(state.filters)) {
    if (event[dim] !== value) return false;
  }
  return true;
}

window.addEventListener("popstate", () => {
  const next = readUrl();
  const changed = new Set();
  for (const [key, value] of Object.entries(next)) {
    const before = state[key];
    const same = typeof value === "object" && value !== null ? JSON.stringify(before) === JSON.stringify(value) : before === value;
    if (!same) changed.add(key === "from" || key === "to" || key === "range" ? "window" : key);
  }
  Object.assign(state, next);
  if (changed.size) emit(changed);
});
