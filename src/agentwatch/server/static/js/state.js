// Page state (time range, filters, breakdown tab) mirrored in the URL, so a
// view can be bookmarked, shared and navigated with Back/Forward.

export const RANGES = ["1h", "24h", "7d", "30d"];
export const TABS = ["agent_name", "model", "task_name"];

// Filter dimension -> short URL parameter name.
export const FILTER_KEYS = { agent_name: "agent", model: "model", task_name: "task" };
export const FILTER_LABELS = { agent_name: "agent", model: "model", task_name: "task" };

const DEFAULT_RANGE = "24h";
const DEFAULT_TAB = "agent_name";

const listeners = new Set();

export const state = readUrl();

function readUrl() {
  const q = new URLSearchParams(window.location.search);
  const range = RANGES.includes(q.get("range")) ? q.get("range") : DEFAULT_RANGE;
  const tab = TABS.includes(q.get("tab")) ? q.get("tab") : DEFAULT_TAB;
  const filters = {};
  for (const [dim, key] of Object.entries(FILTER_KEYS)) {
    const v = q.get(key);
    if (v) filters[dim] = v;
  }
  return { range, tab, filters };
}

function writeUrl(push) {
  const q = new URLSearchParams();
  if (state.range !== DEFAULT_RANGE) q.set("range", state.range);
  for (const [dim, key] of Object.entries(FILTER_KEYS)) {
    if (state.filters[dim]) q.set(key, state.filters[dim]);
  }
  if (state.tab !== DEFAULT_TAB) q.set("tab", state.tab);
  const search = q.toString();
  const url = window.location.pathname + (search ? `?${search}` : "");
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

export function setRange(range) {
  if (!RANGES.includes(range) || range === state.range) return;
  state.range = range;
  writeUrl(true);
  emit(new Set(["range"]));
}

export function setTab(tab) {
  if (!TABS.includes(tab) || tab === state.tab) return;
  state.tab = tab;
  writeUrl(false);
  emit(new Set(["tab"]));
}

export function setFilter(dim, value) {
  if (!(dim in FILTER_KEYS)) return;
  const next = value === null || value === undefined || value === "" ? undefined : String(value);
  if (state.filters[dim] === next) return;
  if (next === undefined) delete state.filters[dim];
  else state.filters[dim] = next;
  writeUrl(true);
  emit(new Set(["filters"]));
}

export function clearFilters() {
  if (!Object.keys(state.filters).length) return;
  state.filters = {};
  writeUrl(true);
  emit(new Set(["filters"]));
}

export function hasFilters() {
  return Object.keys(state.filters).length > 0;
}

/** Does an event match the active filters? (Used for live events.) */
export function matches(event) {
  for (const [dim, value] of Object.entries(state.filters)) {
    if (event[dim] !== value) return false;
  }
  return true;
}

window.addEventListener("popstate", () => {
  const next = readUrl();
  const changed = new Set();
  if (next.range !== state.range) changed.add("range");
  if (next.tab !== state.tab) changed.add("tab");
  if (JSON.stringify(next.filters) !== JSON.stringify(state.filters)) changed.add("filters");
  Object.assign(state, next);
  if (changed.size) emit(changed);
});
