// The live event feed: strictly newest first (by timestamp, then arrival),
// whatever order events arrive in, after a filter change, a reload or a
// server restart. Rows from another day carry their date; rows older than
// the selected range sit below a divider that says so. Live events can be
// paused (they wait, counted) and older pages loaded on demand. One tab stop
// for the whole list: the arrow keys move between rows.

import { $, h, replace } from "./dom.js";
import { agentColor, dateTime, money, moneyExact, ms, rowTime, tokens, tsKey } from "./format.js";
import { Roving } from "./keynav.js";
import { runTotals } from "./runs.js";

// Rows kept while live events arrive (more once the user loads older pages).
export const FEED_CAP = 100;
// Live events held while paused, at most (the oldest go first beyond this).
const PENDING_CAP = 1000;

export class Feed {
  constructor({ list, onSelect, filter, onChange }) {
    this.list = list;
    this.onSelect = onSelect;
    this.filter = filter;
    this.onChange = onChange || (() => {});
    this.items = []; // {ev, key}, newest first
    this.byId = new Map();
    this.cap = FEED_CAP;
    this.paused = false;
    this.pending = [];
    this.live = true; // false while the window ends in the past: live events are outside it
    this.windowStartKey = null; // microseconds; rows before it are "older than the range"
    this.windowLabel = "";
    this.cursor = null; // next_cursor of the last page loaded
    this.trimmed = false; // rows were dropped at the bottom: page on by time, not by cursor
    this.hasMore = false;
    this.frame = null;
    this.roving = new Roving(list, "li[data-id]", (row) => {
      const ev = this.byId.get(row.dataset.id);
      if (ev) this.onSelect(ev);
    });
  }

  /** Rows before `startMs` (null: none) are marked as older than the range called `label`. */
  setWindow(startMs, label, live) {
    this.windowStartKey = startMs === null ? null : startMs * 1000;
    this.windowLabel = label;
    this.live = live;
  }

  /**
   * Replace the rows with a page from the API (newest first). Live events
   * that arrived while it loaded are kept when they belong above the page's
   * oldest row; anything older would leave a hole, so it goes.
   */
  load(events, nextCursor) {
    const page = (events || []).filter((e) => e && e.id);
    const oldest = page.length ? tsKey(page[page.length - 1].timestamp) : null;
    const keep = this.items.filter(
      (it) => it.live && this.filter(it.ev) && (oldest === null || it.key >= oldest) && !page.some((e) => e.id === it.ev.id),
    );
    this.items = [];
    this.byId.clear();
    this.pending = [];
    for (const ev of page) this._append(ev, false);
    for (const it of keep) this._insert(it.ev, true);
    this.cap = FEED_CAP;
    this.cursor = nextCursor ?? null;
    this.hasMore = Boolean(nextCursor);
    this.trimmed = false;
    this._render();
  }

  /** Append an older page ("load more"). */
  appendOlder(events, nextCursor) {
    for (const ev of events || []) {
      if (ev && ev.id && !this.byId.has(ev.id)) this._insert(ev, false);
    }
    this.cap = Math.max(this.cap, this.items.length);
    this.cursor = nextCursor ?? null;
    this.hasMore = Boolean(nextCursor);
    this._render();
  }

  /** Where the next older page starts: {cursor} while the rows are contiguous, else {until}. */
  nextPage() {
    if (this.cursor && !this.trimmed) return { cursor: this.cursor };
    const last = this.items[this.items.length - 1];
    return last ? { until: last.ev.timestamp } : {};
  }

  /** A live event: into its place by time (it may be older than rows shown). */
  push(ev) {
    if (!ev || !ev.id || !this.live || !this.filter(ev)) return;
    if (this.paused) {
      if (!this.pending.some((p) => p.id === ev.id)) this.pending.push(ev);
      if (this.pending.length > PENDING_CAP) this.pending.shift();
      this.onChange();
      return;
    }
    if (this.byId.has(ev.id)) return;
    // Older than every row while more exist below: it belongs to a page not loaded yet.
    const last = this.items[this.items.length - 1];
    if (last && this.hasMore && tsKey(ev.timestamp) < last.key) return;
    this._insert(ev, true, true);
    while (this.items.length > this.cap) {
      const gone = this.items.pop();
      this.byId.delete(gone.ev.id);
      this.trimmed = true;
      this.hasMore = true;
    }
    this._renderSoon();
  }

  // Live events come in bursts: draw once per frame, not once per event.
  _renderSoon() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this._render();
    });
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused) {
      const waiting = this.pending;
      this.pending = [];
      for (const ev of waiting) this.push(ev);
      this._render();
    }
    this.onChange();
  }

  _append(ev, live) {
    if (this.byId.has(ev.id)) return;
    const it = { ev, key: tsKey(ev.timestamp), live };
    this.items.push(it);
    this.byId.set(ev.id, ev);
  }

  // Newest first; among equal times the later arrival first.
  _insert(ev, live, fresh = false) {
    if (this.byId.has(ev.id)) return;
    const it = { ev, key: tsKey(ev.timestamp), live, fresh };
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].key > it.key || (!live && this.items[mid].key === it.key)) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, it);
    this.byId.set(ev.id, ev);
  }

  /** Events in display order (for tests and the detail view). */
  events() {
    return this.items.map((it) => it.ev);
  }

  counts() {
    const start = this.windowStartKey;
    const older = start === null ? 0 : this.items.filter((it) => it.key < start).length;
    return { shown: this.items.length, older, inRange: this.items.length - older, pending: this.pending.length };
  }

  _render() {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = null;
    }
    const now = new Date();
    const start = this.windowStartKey;
    const rows = [];
    let divided = false;
    for (const it of this.items) {
      const older = start !== null && it.key < start;
      if (older && !divided) {
        divided = true;
        rows.push(
          h(
            "li",
            { class: "feed-divider", role: "row" },
            h("span", { role: "gridcell", "aria-colspan": "8" }, `Older than the selected range (${this.windowLabel})`),
          ),
        );
      }
      rows.push(this._row(it, older, now));
    }
    this.roving.update(() => replace(this.list, rows));
    for (const it of this.items) it.fresh = false;
    const empty = $("#feed-empty");
    if (empty) empty.hidden = this.items.length > 0;
    this.onChange();
  }

  _row(it, older, now) {
    const ev = it.ev;
    const ok = ev.status !== "error";
    const kind = ev.kind || "llm";
    const isLlm = kind === "llm";
    const isRun = kind === "task";
    const label = isLlm ? ev.model : kind === "tool" ? ev.metadata?.tool || ev.model || "tool" : ev.model || "";
    const cell = (cls, content, extra = {}) => h("span", { class: cls, role: "gridcell", ...extra }, content);
    const li = h(
      "li",
      {
        class: "feed-row" + (it.fresh ? " fresh" : "") + (ok ? "" : " is-error") + (ev.parent_id ? " nested" : "") + (older ? " older" : ""),
        dataset: { id: ev.id, kind, status: ev.status || "success" },
        role: "row",
        tabindex: "-1",
        title: ok ? "Show details" : `Error: ${ev.error_message || "unknown"}`,
      },
      cell("f-dot", null, { "aria-label": ok ? "success" : "error" }),
      h("time", { class: "f-time", role: "gridcell", datetime: ev.timestamp, title: dateTime(ev.timestamp) }, rowTime(ev.timestamp, now)),
      cell("f-agent", h("span", { class: "badge agent", style: { "--agent": agentColor(ev.agent_name) }, title: ev.agent_name }, ev.agent_name)),
      cell("f-task", [kindPill(ev), h("span", { class: "f-task-name", title: ev.task_name }, ev.task_name)]),
      cell("f-model", label, { title: label || null }),
      cell("f-tokens", isLlm ? `${tokens(ev.input_tokens)} / ${tokens(ev.output_tokens)}` : "", { title: "input / output tokens" }),
      cell("f-cost", isLlm || ev.cost_usd ? money(ev.cost_usd ?? 0) : "", { title: isLlm ? moneyExact(ev.cost_usd ?? 0) : null }),
      cell("f-latency", ms(ev.latency_ms)),
    );
    if (isRun) this._runCells(li, ev.id);
    return li;
  }

  // A run's own event has no cost or tokens: show its subtree's totals.
  _runCells(li, id) {
    const fill = (t) => {
      if (!t) return;
      const tok = li.querySelector(".f-tokens");
      const cost = li.querySelector(".f-cost");
      tok.textContent = `${tokens(t.input_tokens)} / ${tokens(t.output_tokens)}`;
      tok.title = `run total: ${t.llm_calls} LLM call${t.llm_calls === 1 ? "" : "s"}, input / output tokens`;
      cost.textContent = money(t.cost_usd);
      cost.title = `run total: ${moneyExact(t.cost_usd)}`;
      li.dataset.runCost = String(t.cost_usd);
    };
    const known = runTotals.peek(id);
    if (known) fill(known);
    else runTotals.get(id).then(fill);
  }
}

function kindPill(ev) {
  if (ev.kind === "task") return h("span", { class: "pill pill-task" }, "run");
  if (ev.kind === "tool") return h("span", { class: "pill pill-tool" }, "tool");
  return null;
}
