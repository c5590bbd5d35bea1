// The overview: cards, charts, live feed and breakdown for the time window
// and filters in the URL. Numbers refresh when live events arrive (debounced)
// and every 30 s; the feed follows the stream.

import * as api from "../api.js";
import { Breakdown, bindTabs, hintFor, paintTabs } from "../breakdown.js";
import { renderCards, renderDeltas } from "../cards.js";
import { Charts, loadChartJs } from "../charts.js";
import { $, $$, setText } from "../dom.js";
import { Feed } from "../feed.js";
import { PALETTE, agentColor, shortDateTime } from "../format.js";
import { afterNextFrame, firstDraw, markEmpty, markReady, resetReady } from "../ready.js";
import {
  currentWindow,
  matches,
  openExplorer,
  openSession,
  setFilter,
  setStack,
  setTab,
  setWindow,
  state,
  windowLabel,
} from "../state.js";

export const REFRESH_MS = 30_000;
// After a live event the numbers refresh this soon, and at most this often:
// a busy stream must not turn into a request storm.
const LIVE_DEBOUNCE_MS = 1500;
const LIVE_MIN_GAP_MS = 5000;
// Bucket width per preset, in minutes: 60-85 points per chart, enough to
// show the daily shape without turning sparse minutes into noise.
const BUCKETS = { "1h": 1, "24h": 20, "7d": 120, "30d": 720 };
// Widths a custom window picks from (the smallest giving at most MAX_POINTS).
const NICE = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440, 2880, 10080];
const MAX_POINTS = 90;
const FEED_PAGE = 50;
const STACK_GROUPS = 5; // stacked cost: the costliest five, then "other"
const RAW_LIMIT = 100; // provider, user and session tabs: the costliest hundred
const DIMS = ["agent_name", "model", "task_name"];

/** Bucket minutes for a window: fixed per preset ("all": the server decides), else from its span. */
export function bucketFor(win) {
  if (win.preset) return BUCKETS[win.preset];
  const minutes = (win.end - win.start) / 60_000;
  return NICE.find((m) => minutes / m <= MAX_POINTS) || NICE[NICE.length - 1];
}

export class Overview {
  /** status: the header's freshness reporter (main.js). */
  constructor({ detail, live, status }) {
    this.section = $('section[data-view="overview"]');
    this.title = $("#overview-title");
    this.live = live;
    this.status = status;
    this.active = false;
    this.refreshes = true; // on its own (timer, live events): freshness can age
    this.dirty = true;
    this.isEmpty = null;
    this.leavingEmpty = false;
    this.timer = null;
    this.liveTimer = null;
    this.lastRefresh = 0;
    this.lastSeries = null;
    this.charts = new Charts(
      (name) => markReady(name),
      (from, to) => setWindow(from, to),
    );
    this.breakdown = new Breakdown({ table: $("#breakdown-table"), onRow: (group, name) => this._follow(group, name) });
    this.feed = new Feed({
      list: $("#feed"),
      filter: matches,
      onSelect: (ev) => detail.open(ev),
      onChange: () => this._paintFeedHead(),
    });
    bindTabs((group) => setTab(group));
    $("#stack-select").addEventListener("change", (e) => setStack(e.target.value));
    $("#feed-pause").addEventListener("click", () => this.feed.setPaused(!this.feed.paused));
    $("#feed-more").addEventListener("click", () => this.loadMore());
    live.onEvent((ev) => this.onLiveEvent(ev));
    live.onStatus((s, recovered) => this.onStatus(s, recovered));
    document.addEventListener("visibilitychange", () => {
      // A tab coming back after a long time in the background refreshes at once.
      if (this.active && !document.hidden && Date.now() - this.lastRefresh > REFRESH_MS) this.refresh();
    });
  }

  enter() {
    this.active = true;
    paintTabs(state.tab);
    $("#stack-select").value = state.stack;
    // Back from another view: numbers older than a refresh period are fetched again.
    if (this.dirty || Date.now() - this.lastRefresh > REFRESH_MS) {
      this.dirty = false;
      this.refresh();
      this.loadFeed();
    }
  }

  leave() {
    this.active = false;
    clearTimeout(this.timer);
    clearTimeout(this.liveTimer);
    this.liveTimer = null;
  }

  onState(changed) {
    if (!this.active) {
      if (["window", "filters", "tab", "stack"].some((k) => changed.has(k))) this.dirty = true;
      return;
    }
    if (changed.has("window") || changed.has("filters")) {
      this.loadFeed();
      this.refresh();
      return;
    }
    if (changed.has("tab") && !this.isEmpty) {
      this.loadBreakdown().catch((err) => {
        if (!api.isAbort(err)) console.warn("breakdown failed", err);
      });
    }
    if (changed.has("stack")) {
      $("#stack-select").value = state.stack;
      if (this.lastSeries) this._drawCost(this.lastSeries, currentWindow());
    }
  }

  // ---------------------------------------------------------------- data

  async refresh({ hasData = false } = {}) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
    this.lastRefresh = Date.now();
    const win = currentWindow();
    const params = api.windowParams(win);
    const prev = api.previousWindowParams(win);
    const f = { ...state.filters };
    // Everything is requested at once; the emptiness check only decides what to show.
    const emptyCheck = hasData ? Promise.resolve(false) : this._checkEmpty();
    const summary = api.summary(params, f);
    const previous = prev ? api.summary(prev, f, "summary-prev") : Promise.resolve(null);
    const series = api.timeseries(params, f, bucketFor(win));
    const rows = this._fetchBreakdown(params, f);
    // With the requests on their way, load Chart.js and build the (empty)
    // charts: their setup overlaps the network wait instead of following it.
    loadChartJs()
      .then(() => this.charts.prepare())
      .catch((err) => console.warn("charts unavailable", err));
    // Rejections are handled below, after the emptiness check; don't report them twice.
    for (const p of [summary, previous, series, rows]) p.catch(() => {});
    try {
      const empty = await emptyCheck;
      if (empty) {
        this._showEmpty(true);
      } else {
        if (this.isEmpty !== false) this._showEmpty(false);
        await Promise.all([this._loadMetrics(summary, previous, series, win, f), this.loadBreakdown(rows)]);
      }
      this.status.updated(true);
    } catch (err) {
      if (api.isAbort(err)) return;
      this.status.updated(false);
      firstDraw.resolve();
      console.warn("refresh failed", err);
    }
  }

  async _loadMetrics(summaryP, previousP, seriesP, win, f) {
    const [summary, series, previous] = await Promise.all([summaryP, seriesP, previousP.catch(() => undefined)]);
    renderCards(summary, series, {
      onAgent: (name) => setFilter("agent_name", state.filters.agent_name === name ? null : name),
      activeAgent: state.filters.agent_name,
    });
    renderDeltas(summary, previous, windowLabel(win));
    markReady("cards");
    const noCalls = !summary.total_requests;
    for (const id of ["cost-empty", "latency-empty", "requests-empty"]) {
      const el = $(`#${id}`);
      el.dataset.state = noCalls ? "empty" : "ready";
      el.textContent = "No LLM calls in this range.";
      el.hidden = !noCalls;
    }
    await loadChartJs();
    this.lastSeries = series;
    this.charts.update(series);
    if (state.stack !== "none") this._drawCost(series, win, f);
  }

  /** Cost stacked by model or agent: the costliest groups' own series, the rest as "other". */
  async _drawCost(series, win, f = { ...state.filters }) {
    const dim = state.stack;
    if (dim === "none" || f[dim]) {
      this.charts.update(series);
      return;
    }
    const params = api.windowParams(win);
    try {
      const groups = await api.breakdown(dim, params, f, STACK_GROUPS, "stack-groups");
      const parts = await Promise.all(
        groups.map((g, i) => api.timeseries(params, { ...f, [dim]: g.name }, series.bucket_minutes, `stack-${i}`)),
      );
      if (state.stack !== dim || this.lastSeries !== series) return; // changed meanwhile
      // Align each group's buckets with the total's by start time.
      const index = new Map(series.timestamps.map((t, i) => [t, i]));
      const stack = groups.map((g, i) => {
        const cost = series.timestamps.map(() => 0);
        parts[i].timestamps.forEach((t, j) => {
          if (index.has(t)) cost[index.get(t)] = parts[i].cost[j] || 0;
        });
        return { name: g.name, cost, color: dim === "agent_name" ? agentColor(g.name) : PALETTE[i % PALETTE.length] };
      });
      this.charts.update(series, { stack });
    } catch (err) {
      if (!api.isAbort(err)) console.warn("stacked cost failed", err);
    }
  }

  _fetchBreakdown(params, f) {
    const group = state.tab;
    return api.breakdown(group, params, f, DIMS.includes(group) ? undefined : RAW_LIMIT);
  }

  async loadBreakdown(pending) {
    const group = state.tab;
    paintTabs(group);
    const rows = await (pending || this._fetchBreakdown(api.windowParams(currentWindow()), { ...state.filters }));
    if (group !== state.tab) return;
    this.breakdown.render(group, rows, state.filters[group]);
    const limited = !DIMS.includes(group) && rows.length >= RAW_LIMIT ? RAW_LIMIT : 0;
    setText("#breakdown-hint", hintFor(group, limited));
    markReady("breakdown");
  }

  _follow(group, name) {
    if (DIMS.includes(group)) setFilter(group, state.filters[group] === name ? null : name);
    else if (group === "session_id") openSession(name);
    else openExplorer({ [group]: name });
  }

  // ---------------------------------------------------------------- feed

  _feedParams(win) {
    // A window that ends in the past shows the events up to its end.
    return { limit: FEED_PAGE, ...state.filters, until: win.live ? undefined : new Date(win.end).toISOString() };
  }

  async loadFeed() {
    const win = currentWindow();
    this.feed.setWindow(win.start, windowLabel(win), win.live);
    try {
      const data = await api.events(this._feedParams(win), "feed");
      await firstDraw.promise;
      await afterNextFrame();
      this.feed.load(data.events || [], data.next_cursor);
    } catch (err) {
      if (!api.isAbort(err)) console.warn("feed load failed", err);
    }
  }

  async loadMore() {
    const btn = $("#feed-more");
    btn.disabled = true;
    try {
      const win = currentWindow();
      const data = await api.events({ ...this._feedParams(win), ...this.feed.nextPage() }, "feed-more");
      this.feed.appendOlder(data.events || [], data.next_cursor);
    } catch (err) {
      if (!api.isAbort(err)) console.warn("loading older events failed", err);
    } finally {
      btn.disabled = false;
    }
  }

  _paintFeedHead() {
    const feed = this.feed;
    const c = feed.counts();
    const parts = [];
    if (c.shown) parts.push(c.older ? `${c.inRange} in range · ${c.older} older` : `${c.shown} shown`);
    setText("#feed-count", parts.join(""));
    const pause = $("#feed-pause");
    pause.setAttribute("aria-pressed", feed.paused ? "true" : "false");
    pause.textContent = feed.paused ? (c.pending ? `Resume (${c.pending} new)` : "Resume") : "Pause";
    pause.hidden = !feed.live;
    $("#feed-more").hidden = !feed.hasMore;
    const note = $("#feed-note");
    const win = currentWindow();
    if (!feed.live) {
      note.hidden = false;
      note.textContent = `Events up to ${shortDateTime(win.end)}, the end of the selected range. Live events resume when you go back to a preset range.`;
    } else if (c.shown && c.older && !c.inRange) {
      note.hidden = false;
      note.textContent = `No events in the last ${windowLabel(win)}; these are older.`;
    } else {
      note.hidden = true;
    }
    this._paintLiveDot();
  }

  _paintLiveDot() {
    const panel = $("#feed-panel");
    const s = this.live.status;
    panel.dataset.live = !this.feed.live ? "off" : this.feed.paused ? "paused" : s === "connected" ? "on" : s;
  }

  // ---------------------------------------------------------------- live

  onLiveEvent(ev) {
    this.feed.push(ev);
    // The first event on a fresh server: leave the empty state at once. The
    // event itself proves the store is no longer empty.
    if (this.isEmpty && !this.leavingEmpty) {
      this.leavingEmpty = true;
      this.refresh({ hasData: true }).finally(() => {
        this.leavingEmpty = false;
      });
      return;
    }
    const win = currentWindow();
    if (this.active && win.live && matches(ev)) this._refreshSoon();
    else if (!this.active) this.dirty = true;
  }

  _refreshSoon() {
    if (this.liveTimer) return;
    const wait = Math.max(LIVE_DEBOUNCE_MS, this.lastRefresh + LIVE_MIN_GAP_MS - Date.now());
    this.liveTimer = setTimeout(() => {
      this.liveTimer = null;
      if (this.active) this.refresh({ hasData: true });
    }, wait);
  }

  onStatus(status, recovered) {
    this._paintLiveDot();
    // Back after a drop: catch up on what the stream missed.
    if (status === "connected" && recovered) {
      if (this.active) {
        this.loadFeed();
        this.refresh();
      } else this.dirty = true;
    }
  }

  // ---------------------------------------------------------------- empty state

  /** Is the server's store empty? Unfiltered, so a narrow filter never looks like a fresh install. */
  async _checkEmpty() {
    const data = await api.events({ limit: 1 }, "empty-check");
    return !(data.events && data.events.length);
  }

  _showEmpty(empty) {
    if (empty) {
      // The empty state's snippets name this server's real address.
      const base = new URL(".", window.location.href).href.replace(/\/$/, "");
      for (const el of $$("#empty .origin")) el.textContent = base;
    } else resetReady();
    this.isEmpty = empty;
    $("#empty").hidden = !empty;
    for (const el of $$(".when-data", this.section)) el.hidden = empty;
    document.documentElement.dataset.empty = empty ? "true" : "false";
    if (empty) markEmpty();
  }
}
