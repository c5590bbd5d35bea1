// The explorer: every call and run in the store, filtered by any field, a
// custom time range and a search over error messages, sorted by time, cost,
// latency or tokens, paged by cursor (a page stays the same while events
// arrive; newer ones are announced, not slipped in). Any row opens in the
// detail dialog (a run with its waterfall); an id or trace id opens directly.
// All of it lives in the URL.

import * as api from "../api.js";
import { $, $$, h, replace, setText } from "../dom.js";
import { agentColor, dateTime, fromLocalInput, money, moneyExact, ms, rowTime, shortDateTime, toLocalInput, tokens } from "../format.js";
import { Roving } from "../keynav.js";
import { runTotals } from "../runs.js";
import { EXPLORE_KEYS, FILTER_KEYS, RANGE_MS, currentWindow, openSession, state, update, windowLabel } from "../state.js";

const PAGE = 50;
const SORTABLE = { time: "Time", tokens: "Tokens", cost: "Cost", latency: "Latency" };
const COLUMNS = [
  { key: "time", label: "Time", cls: "x-time" },
  { key: "kind", label: "Kind", cls: "x-kind" },
  { key: "agent", label: "Agent", cls: "x-agent" },
  { key: "task", label: "Task", cls: "x-task" },
  { key: "model", label: "Model", cls: "x-model" },
  { key: "user", label: "User", cls: "x-user" },
  { key: "session", label: "Session", cls: "x-session" },
  { key: "tokens", label: "Tokens", cls: "x-tokens num" },
  { key: "cost", label: "Cost", cls: "x-cost num" },
  { key: "latency", label: "Latency", cls: "x-latency num" },
];
const SORT_WORDS = {
  time: ["newest first", "oldest first"],
  cost: ["costliest first", "cheapest first"],
  latency: ["slowest first", "fastest first"],
  tokens: ["most tokens first", "fewest tokens first"],
};

const iso = (msec) => new Date(msec).toISOString();

/** Does a live event match every explorer filter? */
function matchesAll(ev) {
  for (const [dim, v] of Object.entries(state.filters)) if (ev[dim] !== v) return false;
  for (const [param, v] of Object.entries(state.explore)) {
    if (param === "error_contains") {
      if (!(ev.error_message || "").toLowerCase().includes(v.toLowerCase())) return false;
    } else if (ev[param] !== v) return false;
  }
  return true;
}

export class Explorer {
  constructor({ detail, live, status }) {
    this.section = $('section[data-view="explore"]');
    this.title = $("#explore-title");
    this.detail = detail;
    this.status = status;
    this.active = false;
    this.dirty = true;
    // Page links learned while paging: cursor -> the cursor of the page before
    // it (null: the first page). Back/Forward and the buttons both follow them.
    this.prevOf = new Map();
    // The results are a snapshot: a preset window ("last 24 h") is fixed to
    // [start, end] when the first page loads, so every page, the first one
    // included when you come back to it, shows the same rows while events
    // arrive. Newer events are counted in a notice; showing them takes a new snapshot.
    this.snap = null;
    this.byId = new Map();
    this.newer = 0;
    this.next = null;
    this.loads = 0;
    this.suggested = false;
    this.form = $("#explore-form");
    this.table = $("#explore-table");
    this.roving = new Roving(this.table.tBodies[0], "tr[data-id]", (tr) => {
      const ev = this.byId.get(tr.dataset.id);
      if (ev) detail.open(ev);
    });
    this._buildHead();
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this._apply();
    });
    $("#explore-reset").addEventListener("click", () => update({ filters: {}, explore: {}, from: null, to: null, cursor: null }));
    $("#goto-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.goto($("#goto-input").value.trim());
    });
    $("#explore-next").addEventListener("click", () => {
      if (!this.next) return;
      this.prevOf.set(this.next, state.cursor);
      update({ cursor: this.next });
    });
    $("#explore-prev").addEventListener("click", () => {
      if (this.prevOf.has(state.cursor)) update({ cursor: this.prevOf.get(state.cursor) });
    });
    $("#explore-first").addEventListener("click", () => update({ cursor: null }));
    $("#explore-newer-notice").addEventListener("click", () => {
      this.snap = null; // a new snapshot, from now
      this.prevOf.clear();
      if (state.cursor) update({ cursor: null });
      else this.load();
    });
    live.onEvent((ev) => this.onLiveEvent(ev));
  }

  enter() {
    this.active = true;
    this._paintForm();
    this._suggest();
    if (this.dirty) this.load();
  }

  leave() {
    this.active = false;
  }

  onState(changed) {
    // Another query: the links between its pages are not this one's.
    if (["window", "filters", "explore", "sort", "order"].some((k) => changed.has(k))) {
      this.prevOf.clear();
      this.snap = null;
    }
    const relevant = ["window", "filters", "explore", "sort", "order", "cursor"].some((k) => changed.has(k));
    if (!relevant) return;
    if (!this.active) {
      this.dirty = true;
      return;
    }
    this._paintForm();
    this.load();
  }

  /** This page's number (1: the first), or null when it was reached from a link. */
  pageNumber() {
    let n = 1;
    for (let c = state.cursor; c !== null; n++) {
      if (!this.prevOf.has(c)) return null;
      c = this.prevOf.get(c);
    }
    return n;
  }

  // ---------------------------------------------------------------- form

  _paintForm() {
    const els = this.form.elements;
    for (const dim of Object.keys(FILTER_KEYS)) els[dim].value = state.filters[dim] || "";
    for (const param of Object.keys(EXPLORE_KEYS)) if (els[param]) els[param].value = state.explore[param] || "";
    els.from.value = state.from === null ? "" : toLocalInput(state.from);
    els.to.value = state.to === null ? "" : toLocalInput(state.to);
    const win = currentWindow();
    setText(
      "#explore-window",
      win.preset
        ? win.start === null
          ? "Time: all time. Set From and To for a custom range."
          : `Time: the last ${windowLabel(win)} (the header's range). Set From and To for a custom range.`
        : `Time: ${shortDateTime(win.start)} to ${shortDateTime(win.end)}.`,
    );
  }

  _apply() {
    const els = this.form.elements;
    const filters = {};
    for (const dim of Object.keys(FILTER_KEYS)) if (els[dim].value.trim()) filters[dim] = els[dim].value.trim();
    const explore = {};
    for (const param of Object.keys(EXPLORE_KEYS)) {
      const v = els[param]?.value.trim();
      if (v) explore[param] = v;
    }
    // An input left as shown keeps the window's exact bound (a zoom has seconds; the input, minutes).
    let from = els.from.value === toLocalInput(state.from) && state.from !== null ? state.from : fromLocalInput(els.from.value);
    let to = els.to.value === toLocalInput(state.to) && state.to !== null ? state.to : fromLocalInput(els.to.value);
    if (from !== null && to === null) to = Date.now();
    if (to !== null && from === null) from = to - (RANGE_MS[state.range] || RANGE_MS["24h"]);
    const patch = { filters, explore, cursor: null };
    if (from !== null && to !== null && to > from) Object.assign(patch, { from, to });
    else if (from === null && to === null) Object.assign(patch, { from: null, to: null });
    update(patch);
  }

  async _suggest() {
    if (this.suggested) return;
    this.suggested = true;
    const lists = { agent_name: "#dl-agents", task_name: "#dl-tasks", model: "#dl-models" };
    await Promise.all(
      Object.entries(lists).map(async ([dim, sel]) => {
        try {
          const rows = await api.breakdown(dim, { period: "all" }, {}, 500, `suggest-${dim}`);
          replace($(sel), rows.map((r) => h("option", { value: r.name })));
        } catch (err) {
          if (!api.isAbort(err)) console.warn("suggestions failed", err);
        }
      }),
    );
  }

  // ---------------------------------------------------------------- data

  params() {
    if (!this.snap) {
      const win = currentWindow();
      this.snap = { start: win.start, end: win.end };
      this.newer = 0;
      this._paintNewer();
    }
    return {
      ...state.filters,
      ...state.explore,
      since: this.snap.start === null ? undefined : iso(this.snap.start),
      until: iso(this.snap.end),
      sort: state.sort,
      order: state.order,
      cursor: state.cursor || undefined,
      limit: PAGE,
    };
  }

  async load() {
    this.dirty = false;
    const seq = ++this.loads;
    this.section.dataset.state = "loading";
    this.table.setAttribute("aria-busy", "true");
    let data;
    try {
      data = await api.events(this.params(), "explore");
    } catch (err) {
      if (api.isAbort(err)) return;
      this.status.updated(false);
      this.section.dataset.state = "error";
      setText("#explore-count", "Could not load events; try again.");
      console.warn("explorer load failed", err);
      return;
    }
    if (seq !== this.loads) return;
    this.status.updated(true);
    this.next = data.next_cursor;
    this._render(data.events || []);
    this.table.setAttribute("aria-busy", "false");
    this.section.dataset.state = "ready";
    this.section.dataset.loads = String(seq);
  }

  _render(events) {
    this.byId = new Map(events.map((e) => [e.id, e]));
    const now = new Date();
    const body = this.table.tBodies[0];
    this.roving.update(() => {
      if (!events.length) {
        replace(body, h("tr", { class: "empty-row" }, h("td", { colspan: COLUMNS.length }, "No events match. Widen the time range or clear a filter.")));
      } else {
        replace(body, events.map((e) => this._row(e, now)));
      }
    });
    const [desc, asc] = SORT_WORDS[state.sort];
    const pageNo = this.pageNumber();
    setText(
      "#explore-count",
      `${events.length}${this.next ? "+" : ""} event${events.length === 1 ? "" : "s"}${pageNo && pageNo > 1 ? ` on page ${pageNo}` : ""}, ${state.order === "desc" ? desc : asc}`,
    );
    setText("#explore-page", pageNo ? `Page ${pageNo}` : "A later page");
    $("#explore-next").disabled = !this.next;
    $("#explore-prev").disabled = !state.cursor || !this.prevOf.has(state.cursor);
    $("#explore-first").disabled = !state.cursor;
    this._paintSort();
  }

  _row(ev, now) {
    const kind = ev.kind || "llm";
    const isLlm = kind === "llm";
    const err = ev.status === "error";
    const model = kind === "tool" ? ev.metadata?.tool || ev.model || "tool" : ev.model || "";
    const td = (cls, content, props = {}) => h("td", { class: cls, ...props }, content);
    const link = (value, onClick, label) =>
      value ? h("button", { type: "button", class: "link cell-link", title: label, on: { click: onClick } }, value) : h("span", { class: "muted" }, "—");
    const tr = h(
      "tr",
      { dataset: { id: ev.id, kind, status: ev.status }, class: err ? "is-error" : "", tabindex: "-1", title: err ? `Error: ${ev.error_message || "unknown"}` : "Show details" },
      td("x-time", h("time", { datetime: ev.timestamp, title: dateTime(ev.timestamp) }, rowTime(ev.timestamp, now))),
      td("x-kind", [
        h("span", { class: `pill pill-${kind}` }, kind === "task" ? "run" : kind),
        h("span", { class: `status-dot ${err ? "bad" : "good"}`, "aria-label": ev.status, title: ev.status }),
      ]),
      td("x-agent", h("span", { class: "badge agent", style: { "--agent": agentColor(ev.agent_name) }, title: ev.agent_name }, ev.agent_name)),
      td("x-task", [
        h("span", { class: "cell-main", title: ev.task_name }, ev.task_name),
        err && ev.error_message ? h("span", { class: "cell-error-text", title: ev.error_message }, ev.error_message) : null,
      ]),
      td("x-model", model, { title: model || null }),
      td("x-user", link(ev.user_id, () => update({ explore: { ...state.explore, user_id: ev.user_id }, cursor: null }), `Only user ${ev.user_id}`)),
      td("x-session", link(ev.session_id, () => openSession(ev.session_id), `Open session ${ev.session_id}`)),
      td("x-tokens num", isLlm ? `${tokens(ev.input_tokens)} / ${tokens(ev.output_tokens)}` : ""),
      td("x-cost num", isLlm ? money(ev.cost_usd) : "", { title: isLlm ? moneyExact(ev.cost_usd) : null }),
      td("x-latency num", ms(ev.latency_ms)),
    );
    if (kind === "task") {
      runTotals.get(ev.id).then((t) => {
        if (!t) return;
        const [tok, cost] = [tr.querySelector(".x-tokens"), tr.querySelector(".x-cost")];
        tok.textContent = `${tokens(t.input_tokens)} / ${tokens(t.output_tokens)}`;
        tok.title = `run total over ${t.llm_calls} LLM call${t.llm_calls === 1 ? "" : "s"}`;
        cost.textContent = money(t.cost_usd);
        cost.title = `run total: ${moneyExact(t.cost_usd)}`;
        tr.dataset.runCost = String(t.cost_usd);
      });
    }
    return tr;
  }

  _buildHead() {
    const cells = COLUMNS.map((c) => {
      const sortable = c.key in SORTABLE;
      return h(
        "th",
        { scope: "col", class: c.cls, dataset: { key: c.key } },
        sortable
          ? h("button", { type: "button", class: "sort", on: { click: () => this._sortBy(c.key) } }, c.label, h("span", { class: "sort-arrow", "aria-hidden": "true" }))
          : c.label,
      );
    });
    replace(this.table.tHead, h("tr", null, cells));
  }

  _sortBy(key) {
    if (state.sort === key) update({ order: state.order === "desc" ? "asc" : "desc", cursor: null });
    else update({ sort: key, order: "desc", cursor: null });
  }

  _paintSort() {
    for (const th of $$("th", this.table.tHead)) {
      if (!(th.dataset.key in SORTABLE)) continue;
      const on = th.dataset.key === state.sort;
      th.setAttribute("aria-sort", on ? (state.order === "asc" ? "ascending" : "descending") : "none");
      th.querySelector(".sort-arrow").textContent = on ? (state.order === "asc" ? "▲" : "▼") : "";
    }
  }

  // ---------------------------------------------------------------- live, open by id

  onLiveEvent(ev) {
    if (!currentWindow().live || !matchesAll(ev) || this.byId.has(ev.id)) return;
    if (this.snap && Date.parse(ev.timestamp) <= this.snap.end) return; // already in the snapshot
    this.newer += 1;
    this._paintNewer();
  }

  _paintNewer() {
    const btn = $("#explore-newer-notice");
    btn.hidden = !this.newer;
    btn.textContent = `${this.newer} new matching event${this.newer === 1 ? "" : "s"}: show`;
  }

  /** Open the event with this id, or the run at the root of this trace. */
  async goto(value) {
    const msg = $("#goto-msg");
    if (!value) return;
    msg.textContent = "Looking…";
    try {
      const byId = await api.events({ id: value, limit: 1 }, "goto");
      if (byId.events?.length) {
        msg.textContent = "";
        this.detail.open(byId.events[0]);
        return;
      }
      const trace = await api.events({ trace_id: value, limit: 1000 }, "goto");
      const evs = trace.events || [];
      const root = evs.find((e) => e.kind === "task" && !e.parent_id) || evs.find((e) => e.kind === "task") || evs[evs.length - 1];
      if (root) {
        msg.textContent = `Trace ${value}: ${evs.length} event${evs.length === 1 ? "" : "s"}.`;
        this.detail.open(root);
      } else {
        msg.textContent = `No event or trace has the id ${value}.`;
      }
    } catch (err) {
      if (!api.isAbort(err)) msg.textContent = "Lookup failed; try again.";
    }
  }
}
