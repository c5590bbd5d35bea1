// Wires the dashboard together: state -> API -> panels, the 30 s refresh,
// the live stream, and the readiness marks used by tests and the benchmark.

import * as api from "./api.js";
import { authReady } from "./auth.js";
import { Breakdown, bindTabs, paintTabs } from "./breakdown.js";
import { renderCards } from "./cards.js";
import { Charts, chartReady } from "./charts.js";
import { Detail } from "./detail.js";
import { $, $$, setText } from "./dom.js";
import { Feed } from "./feed.js";
import { renderFilterBar } from "./filters.js";
import { ago } from "./format.js";
import { RANGES, hasFilters, matches, onChange, setFilter, setRange, setTab, state } from "./state.js";

const REFRESH_MS = 30_000;
// Bucket width per range, in minutes: 60-85 points per chart, enough to
// show the daily shape without turning sparse minutes into noise.
const BUCKETS = { "1h": 1, "24h": 20, "7d": 120, "30d": 720 };
const bucketFor = (range) => BUCKETS[range];
const FEED_INITIAL = 50;

const root = document.documentElement;
const ready = new Set();
const READY_PARTS = ["cards", "cost-chart", "latency-chart", "breakdown"];

// Readiness: each panel marks itself once it has painted real data; when all
// four have, <html data-ready="true">. performance marks give the timings.
function markReady(part) {
  if (ready.has(part)) return;
  ready.add(part);
  performance.mark(`agentwatch:${part}`);
  root.dataset[`ready${part.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`] = "true";
  if (READY_PARTS.every((p) => ready.has(p))) {
    performance.mark("agentwatch:ready");
    root.dataset.ready = "true";
    markPainted();
    firstDraw.resolve();
  }
}

// "painted": the frame holding the drawn panels has been produced (the task
// after the next animation frame), so the benchmark can report both figures.
function markPainted() {
  afterNextFrame().then(() => {
    performance.mark("agentwatch:painted");
    root.dataset.painted = "true";
  });
}

const afterNextFrame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

// Resolved when the cards, charts and breakdown have first drawn (or the
// empty state shows). The feed's 50 rows are rendered after that, so their
// layout does not delay the first meaningful paint.
const firstDraw = {};
firstDraw.promise = new Promise((resolve) => {
  firstDraw.resolve = resolve;
});

const charts = new Charts((name) => markReady(name));
const detail = new Detail($("#detail"));
const breakdown = new Breakdown({
  table: $("#breakdown-table"),
  onRow: (group, name) => setFilter(group, name),
});
const feed = new Feed({
  list: $("#feed"),
  filter: matches,
  onSelect: (ev) => detail.open(ev),
  onStatus: setConnection,
  onEvent: onLiveEvent,
});

let lastUpdated = null;
let refreshFailed = false;
let isEmpty = null;
let refreshTimer = null;

// ---------------------------------------------------------------- header

function paintRanges() {
  for (const btn of $$("#ranges button")) {
    btn.setAttribute("aria-pressed", btn.dataset.range === state.range ? "true" : "false");
  }
  root.dataset.range = state.range;
}

function setConnection(status, recovered) {
  const el = $("#conn");
  el.dataset.state = status;
  setText("#conn-label", status === "connected" ? "Connected" : status === "reconnecting" ? "Reconnecting" : "Connecting");
  // Back after a drop: catch up on what the stream missed.
  if (status === "connected" && recovered) {
    loadFeed();
    refresh();
  }
}

function tickUpdated() {
  const el = $("#updated");
  if (refreshFailed) {
    el.textContent = "Update failed, retrying";
    el.dataset.state = "error";
    return;
  }
  el.dataset.state = "ok";
  el.textContent = lastUpdated ? `Updated ${ago((Date.now() - lastUpdated) / 1000)}` : "Loading…";
}

// ---------------------------------------------------------------- data

function filters() {
  return { ...state.filters };
}

async function loadMetrics(pending) {
  const period = state.range;
  const [summary, series] = await pending;
  renderCards(summary, series, {
    onAgent: (name) => setFilter("agent_name", state.filters.agent_name === name ? null : name),
    activeAgent: state.filters.agent_name,
  });
  markReady("cards");
  const noCalls = !summary.total_requests;
  $("#cost-empty").hidden = !noCalls;
  $("#latency-empty").hidden = !noCalls;
  await chartReady;
  charts.update(series, period);
}

function fetchMetrics() {
  const f = filters();
  return Promise.all([api.summary(state.range, f), api.timeseries(state.range, f, bucketFor(state.range))]);
}

async function loadBreakdown(pending) {
  const group = state.tab;
  paintTabs(group);
  const rows = await (pending || api.breakdown(group, state.range, filters()));
  breakdown.render(group, rows, state.filters[group]);
  markReady("breakdown");
}

async function loadFeed() {
  try {
    const data = await api.events({ limit: FEED_INITIAL, ...filters() }, "feed");
    await firstDraw.promise;
    await afterNextFrame();
    feed.load(data.events || []);
  } catch (err) {
    if (!api.isAbort(err)) console.warn("feed load failed", err);
  }
}

/** Is the server's store empty? Unfiltered, so a narrow filter never looks like a fresh install. */
async function checkEmpty() {
  const data = await api.events({ limit: 1 }, "empty-check");
  return !(data.events && data.events.length);
}

// The empty state's snippets name this server's real address.
function fillOrigin() {
  const base = new URL(".", window.location.href).href.replace(/\/$/, "");
  for (const el of $$("#empty .origin")) el.textContent = base;
}

function showEmpty(empty) {
  if (empty) fillOrigin();
  isEmpty = empty;
  $("#empty").hidden = !empty;
  for (const el of $$(".when-data")) el.hidden = empty;
  root.dataset.empty = empty ? "true" : "false";
  if (empty) {
    performance.mark("agentwatch:ready");
    root.dataset.ready = "empty";
    firstDraw.resolve();
  }
}

async function refresh({ hasData = false } = {}) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, REFRESH_MS);
  // Everything is requested at once; the emptiness check only decides what to show.
  const emptyCheck = hasData ? Promise.resolve(false) : checkEmpty();
  const metrics = fetchMetrics();
  const rows = api.breakdown(state.tab, state.range, filters());
  // Rejections are handled below, after the emptiness check; don't report them twice.
  metrics.catch(() => {});
  rows.catch(() => {});
  try {
    const empty = await emptyCheck;
    if (empty) {
      showEmpty(true);
    } else {
      if (isEmpty !== false) showEmpty(false);
      await Promise.all([loadMetrics(metrics), loadBreakdown(rows)]);
    }
    lastUpdated = Date.now();
    refreshFailed = false;
  } catch (err) {
    if (api.isAbort(err)) return;
    refreshFailed = true;
    firstDraw.resolve();
    console.warn("refresh failed", err);
  }
  tickUpdated();
}

let leavingEmpty = false;

function onLiveEvent() {
  // The first event on a fresh server: leave the empty state at once. The
  // event itself proves the store is no longer empty.
  if (isEmpty && !leavingEmpty) {
    leavingEmpty = true;
    refresh({ hasData: true }).finally(() => {
      leavingEmpty = false;
    });
  }
}

// ---------------------------------------------------------------- wiring

for (const btn of $$("#ranges button")) {
  btn.addEventListener("click", () => setRange(btn.dataset.range));
}
bindTabs((group) => setTab(group));

// Arrow keys move between tabs (the WAI-ARIA tabs pattern).
$("#breakdown-tabs").addEventListener("keydown", (e) => {
  if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
  const tabs = $$("#breakdown-tabs [role=tab]");
  const i = tabs.findIndex((t) => t.getAttribute("aria-selected") === "true");
  const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
  next.focus();
  setTab(next.dataset.group);
});

onChange((changed) => {
  paintRanges();
  renderFilterBar();
  if (changed.has("filters")) loadFeed();
  if (changed.has("range") || changed.has("filters")) {
    refresh();
  } else if (changed.has("tab") && !isEmpty) {
    loadBreakdown().catch((err) => {
      if (!api.isAbort(err)) console.warn("breakdown failed", err);
    });
  }
});

if (!RANGES.includes(state.range)) setRange("24h");
paintRanges();
renderFilterBar();
paintTabs(state.tab);
await authReady; // signed in, or no key needed (js/auth.js)
refresh();
loadFeed();
feed.connect();
// Build the (empty) charts while the data is on its way: Chart.js's first
// setup then overlaps the network wait instead of following it.
chartReady.then(() => charts.prepare()).catch((err) => console.warn("charts unavailable", err));
setInterval(tickUpdated, 1000);
document.addEventListener("visibilitychange", () => {
  // A tab coming back after a long time in the background refreshes at once.
  if (!document.hidden && lastUpdated && Date.now() - lastUpdated > REFRESH_MS) refresh();
});

// For tests and the benchmark.
window.agentwatch = { state, feed, charts, refresh, hasFilters };
