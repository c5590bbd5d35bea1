// The session view: one session's runs and calls in time order, each run
// with its total cost and tokens (its nested calls included), and the
// session's totals. Reached from a session anywhere (breakdown tab, explorer
// column, detail dialog); the URL holds it (?view=session&sid=...).

import * as api from "../api.js";
import { $, h, replace, setText } from "../dom.js";
import { agentColor, dateTime, int, money, moneyExact, ms, rowTime, shortDateTime, span, tokens } from "../format.js";
import { Roving } from "../keynav.js";
import { state, urlFor } from "../state.js";

const COLUMNS = ["Time", "Kind", "Agent", "Task", "Model / steps", "Duration", "Tokens", "Cost"];

export class SessionView {
  constructor({ detail, status }) {
    this.section = $('section[data-view="session"]');
    this.title = $("#session-title");
    this.detail = detail;
    this.status = status;
    this.active = false;
    this.shown = null;
    this.byId = new Map();
    this.table = $("#session-table");
    replace(this.table.tHead, h("tr", null, COLUMNS.map((c, i) => h("th", { scope: "col", class: i >= 5 ? "num" : "" }, c))));
    this.roving = new Roving(this.table.tBodies[0], "tr[data-id]", (tr) => {
      const ev = this.byId.get(tr.dataset.id);
      if (ev) detail.open(ev);
    });
  }

  enter() {
    this.active = true;
    if (state.sid !== this.shown) this.load();
  }

  leave() {
    this.active = false;
  }

  onState(changed) {
    if (this.active && changed.has("sid")) this.load();
  }

  async load() {
    const sid = state.sid;
    this.shown = sid;
    this.section.dataset.state = "loading";
    $("#session-back").href = urlFor({ ...state, view: "explore", explore: { session_id: sid }, cursor: null, open: null, sid: null });
    setText(this.title, sid ? `Session ${sid}` : "Session");
    if (!sid) {
      setText("#session-meta", "No session chosen: open one from the breakdown's Session tab or from an event.");
      replace($("#session-stats"));
      replace(this.table.tBodies[0]);
      this.section.dataset.state = "ready";
      return;
    }
    let view;
    try {
      view = await api.session(sid);
    } catch (err) {
      if (api.isAbort(err)) return;
      const missing = err.status === 404;
      if (!missing) this.status.updated(false);
      setText("#session-meta", missing ? "No events carry this session id." : "Could not load the session; try again.");
      replace($("#session-stats"));
      replace(this.table.tBodies[0]);
      this.section.dataset.state = missing ? "missing" : "error";
      return;
    }
    if (sid !== state.sid) return;
    this.status.updated(true);
    this._render(view);
    this.section.dataset.state = "ready";
  }

  _render(view) {
    const t = view.totals;
    const first = Date.parse(view.first);
    const last = Date.parse(view.last);
    const who = view.user_ids.length ? `user ${view.user_ids.join(", ")}` : "no user";
    setText(
      "#session-meta",
      `${who} · ${view.agents.join(", ")} · ${shortDateTime(first)} – ${shortDateTime(last)} (${span(Math.max(last - first, 60_000))})` +
        (view.truncated ? " · only the first items are shown" : ""),
    );
    const stat = (label, value, id, title) =>
      h("div", { class: "wf-stat" }, h("span", { class: "wf-stat-label" }, label), h("span", { class: "wf-stat-value", id, title }, value));
    replace(
      $("#session-stats"),
      stat("Total cost", money(t.cost_usd), "session-cost", moneyExact(t.cost_usd)),
      stat("Task runs", int(t.task_runs), "session-runs"),
      stat("LLM calls", int(t.llm_calls), "session-calls"),
      stat("Tokens in / out", `${tokens(t.input_tokens)} / ${tokens(t.output_tokens)}`, "session-tokens"),
      // Failed runs or calls at the top level, and failed steps inside runs (a failed run's failing step counts in both).
      stat("Failed: items / steps", `${int(t.errors)} / ${int(t.failed_steps)}`, "session-errors"),
    );
    this.byId = new Map(view.items.map((it) => [it.event.id, it.event]));
    const now = new Date();
    this.roving.update(() =>
      replace(
        this.table.tBodies[0],
        view.items.length ? view.items.map((it) => this._row(it, now)) : h("tr", { class: "empty-row" }, h("td", { colspan: COLUMNS.length }, "Nothing at the top level of this session.")),
      ),
    );
  }

  _row({ event: ev, totals }, now) {
    const kind = ev.kind || "llm";
    const err = ev.status === "error";
    const isRun = kind === "task";
    const cost = isRun ? totals?.cost_usd : kind === "llm" ? ev.cost_usd : null;
    const tin = isRun ? totals?.input_tokens : ev.input_tokens;
    const tout = isRun ? totals?.output_tokens : ev.output_tokens;
    const what = isRun
      ? totals
        ? `${int(totals.llm_calls)} call${totals.llm_calls === 1 ? "" : "s"}` + (totals.tool_calls ? `, ${int(totals.tool_calls)} tool` : "")
        : ""
      : kind === "tool"
        ? ev.metadata?.tool || "tool"
        : ev.model;
    return h(
      "tr",
      { dataset: { id: ev.id, kind }, class: err ? "is-error" : "", tabindex: "-1", title: err ? `Error: ${ev.error_message || "unknown"}` : "Show details" },
      h("td", null, h("time", { datetime: ev.timestamp, title: dateTime(ev.timestamp) }, rowTime(ev.timestamp, now))),
      h("td", null, h("span", { class: `pill pill-${kind}` }, isRun ? "run" : kind), h("span", { class: `status-dot ${err ? "bad" : "good"}`, "aria-label": ev.status, title: ev.status })),
      h("td", null, h("span", { class: "badge agent", style: { "--agent": agentColor(ev.agent_name) } }, ev.agent_name)),
      h("td", { class: "x-task" }, h("span", { class: "cell-main", title: ev.task_name }, ev.task_name)),
      h("td", { class: "x-model", title: what || null }, what),
      h("td", { class: "num" }, ms(ev.latency_ms)),
      h("td", { class: "num" }, kind === "tool" ? "" : `${tokens(tin)} / ${tokens(tout)}`),
      h("td", { class: "num x-cost", title: cost === null || cost === undefined ? null : moneyExact(cost), dataset: { value: cost ?? "" } }, cost === null || cost === undefined ? "" : money(cost)),
    );
  }
}
