// Wires the page together: the header (views, time range, freshness, live
// state), the views, the shared live stream and the detail dialog.
//
// Adding a view (alerts, data quality, ...): a <section class="view"
// data-view="NAME"> in index.html, a module under js/views/ with a class
// that has `section`, `title`, enter(), leave() and onState(changedKeys), an
// entry in VIEWS below and in state.js VIEWS, and a link in the header nav.

import { authReady } from "./auth.js";
import { Detail } from "./detail.js";
import "./export.js";
import "./quality.js";
import { $, $$, setText } from "./dom.js";
import { renderFilterBar } from "./filters.js";
import { ago, shortDateTime } from "./format.js";
import { LiveStream } from "./stream.js";
import { hasFilters, onChange, openExplorer, openSession, setOpen, setRange, state, update, urlFor } from "./state.js";
import { Explorer } from "./views/explorer.js";
import { Overview, REFRESH_MS } from "./views/overview.js";
import { SessionView } from "./views/session.js";
import { AlertBanner, AlertsView } from "./views/alerts.js";

const root = document.documentElement;
// Data counts as stale when it could not be refreshed for this long, or the
// live stream has been down this long.
const STALE_AFTER_MS = 2 * REFRESH_MS;
const STREAM_GRACE_MS = 5000;

// ---------------------------------------------------------------- freshness

/** What the header says about the data: "Updated 12s ago", and whether it is stale. */
class Freshness {
  constructor(live) {
    this.live = live;
    this.lastOk = null;
    this.failed = false;
    this.downSince = null;
    // Only a view that refreshes by itself (the overview) goes stale by age;
    // the explorer's pages are snapshots on purpose.
    this.expectRefresh = false;
    live.onStatus((s) => {
      if (s === "connected") this.downSince = null;
      else if (this.downSince === null && s === "reconnecting") this.downSince = Date.now();
      this.paint();
    });
    setInterval(() => this.paint(), 1000);
  }

  /** A view reports each refresh: ok, or failed. */
  updated(ok) {
    if (ok) this.lastOk = Date.now();
    this.failed = !ok;
    this.paint();
  }

  paint() {
    const el = $("#updated");
    const now = Date.now();
    if (this.failed) {
      el.textContent = "Update failed, retrying";
      el.dataset.state = "error";
    } else {
      el.dataset.state = "ok";
      el.textContent = this.lastOk ? `Updated ${ago((now - this.lastOk) / 1000)}` : "Loading…";
    }
    const reasons = [];
    if (this.failed && this.lastOk) reasons.push("the server is not answering");
    if (this.downSince !== null && now - this.downSince > STREAM_GRACE_MS) reasons.push("the live stream is down");
    if (this.expectRefresh && this.lastOk && now - this.lastOk > STALE_AFTER_MS) reasons.push("not refreshed lately");
    const stale = reasons.length > 0 && this.lastOk !== null;
    root.dataset.stale = stale ? "true" : "false";
    const note = $("#stale");
    note.hidden = !stale;
    if (stale) note.textContent = `Stale: numbers from ${shortDateTime(this.lastOk)} (${reasons.join(", ")})`;
    paintLive(this.live.status);
  }
}

function paintLive(status) {
  const el = $("#conn");
  el.dataset.state = status;
  setText("#conn-label", status === "connected" ? "Connected" : status === "reconnecting" ? "Reconnecting" : "Connecting");
  $("#brand-dot").dataset.state = status;
}

// ---------------------------------------------------------------- views

const live = new LiveStream();
const freshness = new Freshness(live);
const detail = new Detail($("#detail"), {
  onOpen: (id) => setOpen(id),
  onUser: (user) => openExplorer({ user_id: user }),
  onSession: (sid) => openSession(sid),
});
const alertBanner = new AlertBanner();
const VIEWS = {
  overview: new Overview({ detail, live, status: freshness }),
  explore: new Explorer({ detail, live, status: freshness }),
  session: new SessionView({ detail, status: freshness }),
  alerts: new AlertsView({ banner: alertBanner, status: freshness }),
};
let current = null;

function showView(name, { focus = false } = {}) {
  const view = VIEWS[name] || VIEWS.overview;
  if (current === view) return;
  current?.leave();
  for (const [key, v] of Object.entries(VIEWS)) v.section.hidden = key !== name;
  current = view;
  root.dataset.view = name;
  freshness.expectRefresh = Boolean(view.refreshes);
  view.enter();
  // A user who switched views lands on the new view's heading (screen readers announce it).
  if (focus) view.title.focus({ preventScroll: false });
}

// ---------------------------------------------------------------- header

function paintHeader() {
  const custom = state.from !== null && state.to !== null;
  for (const btn of $$("#ranges button")) {
    btn.setAttribute("aria-pressed", !custom && btn.dataset.range === state.range ? "true" : "false");
  }
  root.dataset.range = custom ? "custom" : state.range;
  $("#window-chip").hidden = !custom;
  if (custom) setText("#window-label", `${shortDateTime(state.from)} – ${shortDateTime(state.to)}`);
  for (const a of $$(".views-nav a")) {
    const name = a.dataset.view;
    a.href = urlFor({ ...state, view: name, cursor: null, open: null });
    if (name === state.view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  renderFilterBar();
}

for (const btn of $$("#ranges button")) btn.addEventListener("click", () => setRange(btn.dataset.range));
$("#window-clear").addEventListener("click", () => setRange(state.range));
for (const a of $$(".views-nav a")) {
  a.addEventListener("click", (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return; // a new tab keeps its default
    e.preventDefault();
    update({ view: a.dataset.view, cursor: null, open: null });
  });
}

onChange((changed) => {
  paintHeader();
  if (changed.has("view")) showView(state.view, { focus: true });
  for (const v of Object.values(VIEWS)) v.onState(changed);
  if (changed.has("open")) syncDetail();
});

// The dialog follows `open` in the URL (a shared link, Back/Forward).
function syncDetail() {
  if (state.open && state.open !== detail.currentId) detail.openById(state.open);
  else if (!state.open && detail.dialog.open) detail.close();
}

paintHeader();
await authReady; // signed in, or no key needed (js/auth.js)
showView(state.view);
live.connect();
alertBanner.start();
if (state.open) detail.openById(state.open);

// For tests and the benchmark.
window.agentwatch = {
  state,
  live,
  feed: VIEWS.overview.feed,
  charts: VIEWS.overview.charts,
  refresh: () => VIEWS.overview.refresh(),
  explorer: VIEWS.explore,
  hasFilters,
};
