// The live event feed: an SSE subscription to /api/stream, newest on top,
// capped so memory stays flat however long the page stays open.

import { STREAM_URL } from "./api.js";
import { $, h, replace } from "./dom.js";
import { agentColor, clock, money, ms, tokens } from "./format.js";

// Rows kept in the DOM (and events kept in memory for the detail view).
export const FEED_CAP = 100;
// Reconnect delay when the browser gives up on the stream (the server also
// sends `retry: 3000` for the browser's own reconnects).
const RECONNECT_MS = 3000;

export class Feed {
  constructor({ list, onSelect, onStatus, onEvent, filter }) {
    this.list = list;
    this.onSelect = onSelect;
    this.onStatus = onStatus;
    this.onEvent = onEvent;
    this.filter = filter;
    this.byId = new Map();
    this.source = null;
    this.timer = null;
    this.hadError = false;
    this.received = 0;
    list.addEventListener("click", (e) => this._click(e));
    list.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        this._click(e);
      }
    });
  }

  _click(e) {
    const row = e.target.closest("li[data-id]");
    if (!row) return;
    const ev = this.byId.get(row.dataset.id);
    if (ev) this.onSelect(ev);
  }

  /** Replace the list with events from the API (newest first). */
  load(events) {
    // Live events that arrived while the list was loading stay on top.
    const loaded = new Set(events.map((e) => e && e.id));
    const live = [...this.list.children]
      .map((li) => this.byId.get(li.dataset.id))
      .filter((e) => e && !loaded.has(e.id) && this.filter(e));
    this.byId.clear();
    const rows = [];
    for (const ev of [...live, ...events].slice(0, FEED_CAP)) {
      if (!ev || !ev.id || this.byId.has(ev.id)) continue;
      this.byId.set(ev.id, ev);
      rows.push(row(ev, false));
    }
    replace(this.list, rows);
    this._updateEmpty();
  }

  /** Add one live event on top; drop the oldest beyond the cap. */
  push(ev) {
    if (!ev || !ev.id || this.byId.has(ev.id) || !this.filter(ev)) return;
    this.byId.set(ev.id, ev);
    this.list.prepend(row(ev, true));
    while (this.list.children.length > FEED_CAP) {
      const last = this.list.lastElementChild;
      this.byId.delete(last.dataset.id);
      last.remove();
    }
    this._updateEmpty();
  }

  _updateEmpty() {
    const empty = $("#feed-empty");
    if (empty) empty.hidden = this.list.children.length > 0;
    const count = $("#feed-count");
    if (count) count.textContent = this.list.children.length ? `${this.list.children.length} shown` : "";
  }

  connect() {
    clearTimeout(this.timer);
    this.source?.close();
    const src = new EventSource(STREAM_URL);
    this.source = src;
    src.onopen = () => {
      this.onStatus("connected", this.hadError);
      this.hadError = false;
    };
    src.onmessage = (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        return; // not an event (comments never reach onmessage; be lenient anyway)
      }
      this.received += 1;
      this.push(ev);
      this.onEvent?.(ev);
    };
    src.onerror = () => {
      this.hadError = true;
      this.onStatus("reconnecting");
      // CONNECTING: the browser retries by itself (server-sent `retry: 3000`).
      // CLOSED: it gave up (e.g. an HTTP error while the server restarts); retry ourselves.
      if (src.readyState === EventSource.CLOSED) {
        src.close();
        this.timer = setTimeout(() => this.connect(), RECONNECT_MS);
      }
    };
  }
}

function kindPill(ev) {
  if (ev.kind === "task") return h("span", { class: "pill pill-task" }, "run");
  if (ev.kind === "tool") return h("span", { class: "pill pill-tool" }, "tool");
  return null;
}

function row(ev, fresh) {
  const ok = ev.status !== "error";
  const isLlm = !ev.kind || ev.kind === "llm";
  const label = isLlm ? ev.model : ev.kind === "tool" ? ev.metadata?.tool || ev.model || "tool" : ev.model || "";
  return h(
    "li",
    {
      class: "feed-row" + (fresh ? " fresh" : "") + (ok ? "" : " is-error") + (ev.parent_id ? " nested" : ""),
      dataset: { id: ev.id, kind: ev.kind || "llm", status: ev.status || "success" },
      tabindex: "0",
      role: "button",
      title: ok ? "Show details" : `Error: ${ev.error_message || "unknown"}`,
    },
    h("span", { class: "f-dot", "aria-label": ok ? "success" : "error" }),
    h("time", { class: "f-time", datetime: ev.timestamp }, clock(ev.timestamp)),
    h("span", { class: "badge agent", style: { "--agent": agentColor(ev.agent_name) } }, ev.agent_name),
    h("span", { class: "f-task" }, kindPill(ev), h("span", { class: "f-task-name" }, ev.task_name)),
    h("span", { class: "f-model" }, label),
    h(
      "span",
      { class: "f-tokens", title: "input / output tokens" },
      isLlm ? `${tokens(ev.input_tokens)} / ${tokens(ev.output_tokens)}` : "",
    ),
    h("span", { class: "f-cost" }, isLlm || ev.cost_usd ? money(ev.cost_usd ?? 0) : ""),
    h("span", { class: "f-latency" }, ms(ev.latency_ms)),
  );
}
