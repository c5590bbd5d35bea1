// The event detail dialog: every field (costs at full precision), metadata
// and error as text; for a task run, its nested calls as a waterfall with the
// run's totals. The user and session lead on (explorer, session view); when
// the dialog closes, focus returns to where it was before it opened.

import * as api from "./api.js";
import { $, h, replace } from "./dom.js";
import { agentColor, compact, dateTime, int, moneyExact, ms } from "./format.js";
import { Roving } from "./keynav.js";

const FIELDS = [
  ["id", "ID"],
  ["kind", "Kind"],
  ["timestamp", "Time"],
  ["agent_name", "Agent"],
  ["task_name", "Task"],
  ["model", "Model"],
  ["provider", "Provider"],
  ["status", "Status"],
  ["latency_ms", "Latency"],
  ["cost_usd", "Cost"],
  ["input_tokens", "Input tokens"],
  ["output_tokens", "Output tokens"],
  ["cache_read_tokens", "Cache read tokens"],
  ["cache_write_tokens", "Cache write tokens"],
  ["reasoning_tokens", "Reasoning tokens"],
  ["trace_id", "Trace ID"],
  ["parent_id", "Parent ID"],
  ["user_id", "User"],
  ["session_id", "Session"],
];

function fieldValue(key, ev) {
  const v = ev[key];
  if (v === null || v === undefined || v === "") return null;
  const llm = (ev.kind || "llm") === "llm";
  // Zero token counts say nothing for runs and tools, nor cache/reasoning counts anywhere.
  if (key.endsWith("_tokens") && !v && (!llm || !["input_tokens", "output_tokens"].includes(key))) return null;
  // A run's cost is the sum of its calls, shown in the waterfall.
  if (key === "cost_usd" && !llm && !v) return null;
  if (key === "timestamp") return `${dateTime(v)}  (${v})`;
  if (key === "latency_ms") return ms(v);
  if (key === "cost_usd") return moneyExact(v);
  if (key.endsWith("_tokens")) return int(v);
  return String(v);
}

export class Detail {
  /** onOpen(id | null) follows what is shown (the URL keeps it); onUser(id), onSession(id) lead on. */
  constructor(dialog, { onOpen = () => {}, onUser = () => {}, onSession = () => {} } = {}) {
    this.dialog = dialog;
    this.body = $("#detail-body", dialog);
    this.title = $("#detail-title", dialog);
    this.seq = 0;
    this.opener = null;
    this.currentId = null;
    this.onOpen = onOpen;
    this.onUser = onUser;
    this.onSession = onSession;
    $("#detail-close", dialog).addEventListener("click", () => dialog.close());
    // Click on the backdrop closes.
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close();
    });
    dialog.addEventListener("close", () => {
      this.seq++;
      this.currentId = null;
      this.onOpen(null);
      // Back to where the user was (a feed row, an explorer row...), if it is still there.
      const back = this.opener;
      this.opener = null;
      if (back && back.isConnected) back.focus();
    });
  }

  /** Leave the dialog (for a link that goes to another view). */
  close() {
    if (this.dialog.open) this.dialog.close();
  }

  open(ev) {
    const seq = ++this.seq;
    if (!this.dialog.open) {
      const active = document.activeElement;
      this.opener = active && active !== document.body ? active : null;
    }
    const isRun = ev.kind === "task";
    replace(
      this.title,
      h("span", { class: "badge agent", style: { "--agent": agentColor(ev.agent_name) } }, ev.agent_name),
      h("span", { class: "detail-kind" }, isRun ? "Task run" : ev.kind === "tool" ? "Tool call" : "LLM call"),
      h("span", { class: "detail-task" }, ev.task_name),
      h("span", { class: `status-pill ${ev.status === "error" ? "bad" : "good"}` }, ev.status || "success"),
    );

    const dl = h("dl", { class: "fields" });
    for (const [key, label] of FIELDS) {
      const value = fieldValue(key, ev);
      if (value === null) continue;
      dl.append(h("dt", null, label), h("dd", { dataset: { field: key } }, value));
    }

    const parts = [];
    if (ev.status === "error" || ev.error_message) {
      parts.push(
        h(
          "section",
          { class: "detail-error" },
          h("h3", null, "Error"),
          h("pre", { class: "error-text", dataset: { field: "error_message" } }, ev.error_message || "(no message)"),
        ),
      );
    }
    if (isRun) {
      parts.push(h("section", { class: "waterfall", id: "waterfall" }, h("p", { class: "muted" }, "Loading nested calls…")));
    }
    parts.push(h("section", { class: "detail-fields" }, h("h3", null, "Fields"), dl));
    const meta = ev.metadata && typeof ev.metadata === "object" ? ev.metadata : {};
    parts.push(
      h(
        "section",
        { class: "detail-meta" },
        h("h3", null, "Metadata"),
        Object.keys(meta).length
          ? h("pre", { class: "json", dataset: { field: "metadata" } }, JSON.stringify(meta, null, 2))
          : h("p", { class: "muted" }, "No metadata."),
      ),
    );
    // Where to go from here: the parent run, the session, the user's other calls.
    const actions = [
      ev.parent_id
        ? h("button", { type: "button", class: "btn", on: { click: () => this.openById(ev.parent_id) } }, "Open parent run")
        : null,
      ev.session_id
        ? h("button", { type: "button", class: "btn", on: { click: () => this._leave(() => this.onSession(ev.session_id)) } }, "Open session")
        : null,
      ev.user_id
        ? h("button", { type: "button", class: "btn", on: { click: () => this._leave(() => this.onUser(ev.user_id)) } }, "This user's calls")
        : null,
    ].filter(Boolean);
    if (actions.length) parts.push(h("p", { class: "detail-actions" }, actions));
    replace(this.body, parts);
    if (!this.dialog.open) this.dialog.showModal();
    this.body.scrollTop = 0;
    this.currentId = ev.id;
    this.onOpen(ev.id);
    if (isRun) this._loadRun(ev, seq);
  }

  _leave(go) {
    this.opener = null; // the next view takes focus
    this.close();
    go();
  }

  /** Open the event with this id; false when there is none. */
  async openById(id) {
    try {
      const data = await api.events({ id, limit: 1 }, "detail");
      const found = (data.events || [])[0];
      if (found) this.open(found);
      return Boolean(found);
    } catch (err) {
      if (!api.isAbort(err)) console.warn("could not load event", err);
      return false;
    }
  }

  async _loadRun(run, seq) {
    let children = [];
    try {
      const params = run.trace_id ? { trace_id: run.trace_id, limit: 1000 } : { parent_id: run.id, limit: 1000 };
      const data = await api.events(params, "detail");
      children = data.events || [];
    } catch (err) {
      if (api.isAbort(err)) return;
      if (seq === this.seq) replace($("#waterfall", this.body), h("p", { class: "muted" }, "Could not load the nested calls."));
      return;
    }
    if (seq !== this.seq) return; // another event was opened meanwhile
    const el = $("#waterfall", this.body);
    if (el) replace(el, waterfall(run, children, (e) => this.open(e)));
  }
}

/** Descendants of `run` in depth-first order, with their depth. */
function descendants(run, events) {
  const byParent = new Map();
  for (const e of events) {
    if (!e.parent_id || e.id === run.id) continue;
    if (!byParent.has(e.parent_id)) byParent.set(e.parent_id, []);
    byParent.get(e.parent_id).push(e);
  }
  const out = [];
  const seen = new Set([run.id]);
  const walk = (id, depth) => {
    const kids = (byParent.get(id) || []).sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    for (const k of kids) {
      if (seen.has(k.id)) continue;
      seen.add(k.id);
      out.push({ ev: k, depth });
      walk(k.id, depth + 1);
    }
  };
  walk(run.id, 0);
  return out;
}

function waterfall(run, events, onOpen) {
  const items = descendants(run, events);
  const start = Date.parse(run.timestamp);
  // The run's span: its own duration, stretched if a child runs past it.
  let span = Math.max(Number(run.latency_ms) || 0, 1);
  for (const { ev } of items) {
    span = Math.max(span, Date.parse(ev.timestamp) - start + (Number(ev.latency_ms) || 0));
  }
  const llm = items.filter(({ ev }) => (ev.kind || "llm") === "llm").map(({ ev }) => ev);
  const totalCost = llm.reduce((s, e) => s + (Number(e.cost_usd) || 0), 0);
  const tokensIn = llm.reduce((s, e) => s + (Number(e.input_tokens) || 0), 0);
  const tokensOut = llm.reduce((s, e) => s + (Number(e.output_tokens) || 0), 0);
  const errors = items.filter(({ ev }) => ev.status === "error").length;

  const summary = h(
    "div",
    { class: "wf-summary" },
    stat("Duration", ms(run.latency_ms), "wf-duration"),
    stat("Total cost", moneyExact(totalCost), "wf-cost"),
    stat("LLM calls", int(llm.length), "wf-calls"),
    stat("Tokens in / out", `${compact(tokensIn)} / ${compact(tokensOut)}`, "wf-tokens"),
    stat("Failed steps", int(errors), "wf-errors"),
  );

  const ticks = h("div", { class: "wf-axis" });
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    ticks.append(h("span", { style: { left: `${f * 100}%` } }, ms(span * f)));
  }

  const rows = items.map(({ ev, depth }) => {
    const offset = Math.max(0, Date.parse(ev.timestamp) - start);
    const dur = Number(ev.latency_ms) || 0;
    const left = (offset / span) * 100;
    const width = Math.max((dur / span) * 100, 0.6);
    const kind = ev.kind || "llm";
    const name = kind === "tool" ? ev.metadata?.tool || ev.model || "tool" : kind === "task" ? ev.task_name : ev.model;
    return h(
      "li",
      {
        class: `wf-row kind-${kind}` + (ev.status === "error" ? " is-error" : ""),
        dataset: { id: ev.id },
        tabindex: "-1",
        role: "button",
        title: ev.error_message ? `Error: ${ev.error_message}` : "Show this call",
      },
      h(
        "span",
        { class: "wf-label", style: { "--depth": depth } },
        h("span", { class: `pill pill-${kind}` }, kind === "task" ? "run" : kind),
        h("span", { class: "wf-name" }, name),
      ),
      h(
        "span",
        { class: "wf-track" },
        h("span", { class: "wf-bar", style: { left: `${Math.min(left, 99.4)}%`, width: `${Math.min(width, 100 - Math.min(left, 99.4))}%` } }),
      ),
      h("span", { class: "wf-offset" }, `+${ms(offset)}`),
      h("span", { class: "wf-dur" }, ms(dur)),
      h("span", { class: "wf-tok" }, kind === "llm" ? `${compact(ev.input_tokens ?? 0)} / ${compact(ev.output_tokens ?? 0)}` : ""),
      h("span", { class: "wf-cost" }, kind === "llm" ? moneyExact(ev.cost_usd ?? 0) : ""),
    );
  });

  // One tab stop for the steps; the arrow keys move between them.
  const list = h("ol", { class: "wf-rows", "aria-label": "Steps" }, rows);
  const byId = new Map(items.map(({ ev }) => [ev.id, ev]));
  new Roving(list, "li[data-id]", (row) => onOpen(byId.get(row.dataset.id))).update(() => {});

  return [
    h("h3", null, "Waterfall"),
    summary,
    items.length
      ? h(
          "div",
          { class: "wf" },
          h(
            "div",
            { class: "wf-head" },
            h("span", null, "Step"),
            ticks,
            h("span", null, "Start"),
            h("span", null, "Duration"),
            h("span", null, "Tokens"),
            h("span", null, "Cost"),
          ),
          list,
        )
      : h("p", { class: "muted" }, "This run recorded no nested calls."),
  ];
}

function stat(label, value, id) {
  return h("div", { class: "wf-stat" }, h("span", { class: "wf-stat-label" }, label), h("span", { class: "wf-stat-value", id }, value));
}
