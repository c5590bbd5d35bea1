// The alerts view (issue 13): the rules with their state (firing ones stand
// out), a form to create or edit one (a new rule starts from the filters of
// the page), and each rule's history. AlertBanner, on every view, says when
// anything fires. Reads need a read key, changes an admin key; the server
// answers 403 otherwise and the form shows it.

import { signInAgain } from "../auth.js";
import { $, h, replace, setText } from "../dom.js";
import { dateTime } from "../format.js";
import { state, urlFor } from "../state.js";

const METRICS = {
  cost: "Cost (USD)",
  requests: "Requests",
  tokens: "Tokens",
  error_rate: "Error rate (%)",
  latency_p50: "Latency p50 (ms)",
  latency_p95: "Latency p95 (ms)",
  calls_per_run: "LLM calls in one run",
};
const WINDOWS = ["5m", "15m", "1h", "6h", "24h", "7d", "day", "month"];
const WINDOW_LABELS = { day: "today (UTC)", month: "this month (UTC)" };
const OPERATORS = [">", ">=", "<", "<="];
const FILTERS = { agent_name: "Agent", task_name: "Task", model: "Model" };
const POLL_MS = 5000;
const WRITE_HEADERS = { Accept: "application/json", "Content-Type": "application/json", "X-Requested-With": "AgentWatch" };

async function call(method, path, body) {
  const resp = await fetch(path, {
    method,
    headers: method === "GET" ? { Accept: "application/json" } : WRITE_HEADERS,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401) signInAgain();
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = new Error(problem(resp.status, data));
    err.status = resp.status;
    err.fields = fieldsOf(data);
    throw err;
  }
  return data;
}

function fieldsOf(data) {
  const out = new Set();
  if (data && Array.isArray(data.detail)) {
    for (const d of data.detail) {
      const loc = (d.loc || []).filter((x) => x !== "body");
      if (loc.length) out.add(String(loc[0]));
    }
  }
  return out;
}

function problem(status, data) {
  if (data && Array.isArray(data.detail)) {
    return data.detail.map((d) => `${(d.loc || []).filter((x) => x !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  if (data && typeof data.detail === "string") return data.detail;
  return `HTTP ${status}`;
}

export function formatValue(metric, v) {
  if (v === null || v === undefined) return "no data";
  if (metric === "cost") return v === 0 || Math.abs(v) >= 0.1 ? `$${v.toFixed(2)}` : `$${v.toFixed(4)}`;
  if (metric === "error_rate") return `${v.toFixed(1)}%`;
  if (metric.startsWith("latency")) return `${Math.round(v).toLocaleString("en-US")} ms`;
  return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(2);
}

const windowText = (w) => WINDOW_LABELS[w] || `last ${w}`;
const filterText = (f) =>
  Object.entries(f || {})
    .map(([k, v]) => `${FILTERS[k] || k}: ${v}`)
    .join(", ") || "all calls";

/** The banner on every view while any rule fires. */
export class AlertBanner {
  constructor() {
    this.el = $("#alert-banner");
    this.timer = null;
    this.listeners = new Set();
  }

  start() {
    this.poll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  onData(fn) {
    this.listeners.add(fn);
  }

  async poll() {
    let data;
    try {
      data = await call("GET", "api/alerts");
    } catch {
      return; // no read access, or the server is away: the banner stays as it was
    }
    this.paint(data);
    for (const fn of this.listeners) fn(data);
  }

  paint(data) {
    const firing = data.alerts.filter((a) => a.state === "firing");
    this.el.hidden = firing.length === 0;
    if (!firing.length) return;
    const names = firing.map((a) => a.name).join(", ");
    replace(
      this.el,
      h("span", { class: "alert-banner-dot", "aria-hidden": "true" }),
      h("strong", null, firing.length === 1 ? "1 alert firing: " : `${firing.length} alerts firing: `),
      names,
      " ",
      h("a", { href: urlFor({ ...state, view: "alerts", cursor: null, open: null }), "data-view-link": "alerts" }, "Open alerts"),
    );
  }
}

export class AlertsView {
  constructor({ banner, status }) {
    this.section = $('section[data-view="alerts"]');
    this.title = $("#alerts-title");
    this.status = status;
    this.banner = banner;
    this.active = false;
    this.rules = [];
    this.selected = null; // the rule whose history is shown
    this.editing = null; // id of the rule in the form, or null for a new one
    this.list = $("#alerts-list");
    this.form = $("#alert-form");
    this.formError = $("#alert-form-error");
    this.history = $("#alert-history");
    this.buildForm();
    $("#alert-new").addEventListener("click", () => this.openForm(null));
    banner.onData((data) => {
      if (this.active) this.paint(data);
    });
  }

  enter() {
    this.active = true;
    const wanted = Number(new URLSearchParams(window.location.search).get("alert"));
    if (wanted) this.selected = wanted;
    this.load();
  }

  leave() {
    this.active = false;
  }

  onState() {}

  async load() {
    try {
      const data = await call("GET", "api/alerts");
      this.paint(data);
      this.banner.paint(data);
      this.status.updated(true);
    } catch (err) {
      this.section.dataset.state = "error";
      replace(this.list, h("p", { class: "muted" }, `Could not load the rules: ${err.message}`));
      this.status.updated(false);
    }
  }

  paint(data) {
    this.rules = data.alerts;
    this.section.dataset.state = "ready";
    this.section.dataset.firing = String(data.firing);
    if (!this.rules.length) {
      replace(this.list, h("p", { class: "muted", id: "alerts-empty" }, "No alert rules yet. Create one: a budget on cost, a ceiling on error rate or latency, a guard against runaway loops."));
    } else {
      // Firing rules first, then by name (the server's order).
      const firing = (r) => (r.state === "firing" ? 0 : 1);
      const rows = [...this.rules].sort((a, b) => firing(a) - firing(b)).map((r) => this.row(r));
      replace(
        this.list,
        h(
          "table",
          { class: "explore-table alerts-table", id: "alerts-table" },
          h("thead", null, h("tr", null, ["State", "Name", "Rule", "Filters", "Value", "Evaluated", ""].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", null, rows),
        ),
      );
    }
    if (this.selected !== null) this.showHistory(this.selected);
  }

  row(r) {
    const stateName = r.state || "pending";
    const rule = `${METRICS[r.metric] || r.metric} ${windowText(r.window)} ${r.operator} ${formatValue(r.metric, r.threshold)}`;
    return h(
      "tr",
      { class: `alert-row state-${stateName}`, dataset: { id: r.id, name: r.name, state: stateName } },
      h("td", null, h("span", { class: `alert-state alert-state-${stateName}` }, stateName.replace("_", " "))),
      h("td", { class: "alert-name" }, r.name),
      h("td", null, rule),
      h("td", null, filterText(r.filters)),
      h("td", { class: "num alert-value" }, r.state ? formatValue(r.metric, r.value) : "–"),
      h("td", null, r.evaluated_at ? dateTime(r.evaluated_at) : "not yet"),
      h(
        "td",
        { class: "alert-actions" },
        h("button", { type: "button", class: "btn btn-small", on: { click: () => this.showHistory(r.id) } }, "History"),
        h("button", { type: "button", class: "btn btn-small", on: { click: () => this.openForm(r) } }, "Edit"),
        h("button", { type: "button", class: "btn btn-small", on: { click: () => this.test(r) } }, "Test"),
        h("button", { type: "button", class: "btn btn-small", on: { click: () => this.remove(r) } }, "Delete"),
      ),
    );
  }

  buildForm() {
    const f = this.form;
    const sel = (name, options, labels = {}) =>
      h("select", { name, id: `alert-${name}` }, options.map((o) => h("option", { value: o }, labels[o] || o)));
    const field = (name, label, input) => h("label", { class: "alert-field", dataset: { field: name } }, h("span", null, label), input);
    replace(
      f,
      field("name", "Name", h("input", { name: "name", id: "alert-name", required: true, maxlength: 128 })),
      field("metric", "Metric", sel("metric", Object.keys(METRICS), METRICS)),
      field("window", "Window", sel("window", WINDOWS, WINDOW_LABELS)),
      field("operator", "Operator", sel("operator", OPERATORS)),
      field("threshold", "Threshold", h("input", { name: "threshold", id: "alert-threshold", type: "number", step: "any", required: true })),
      Object.entries(FILTERS).map(([k, label]) => field(k, label, h("input", { name: k, id: `alert-${k}`, placeholder: "any" }))),
      field("webhook_url", "Webhook URL (Slack incoming webhooks work)", h("input", { name: "webhook_url", id: "alert-webhook_url", type: "url", required: true, placeholder: "https://hooks.slack.com/services/…" })),
      field("secret", "Signing secret (optional)", h("input", { name: "secret", id: "alert-secret", type: "password", autocomplete: "off" })),
      field("renotify_minutes", "Repeat while firing, minutes (optional)", h("input", { name: "renotify_minutes", id: "alert-renotify_minutes", type: "number", min: 1 })),
      h(
        "div",
        { class: "alert-form-actions" },
        h("button", { type: "submit", class: "btn btn-primary", id: "alert-save" }, "Save rule"),
        h("button", { type: "button", class: "btn", on: { click: () => this.closeForm() } }, "Cancel"),
      ),
    );
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
  }

  openForm(rule) {
    this.editing = rule ? rule.id : null;
    const f = this.form;
    setText("#alert-form-title", rule ? `Edit ${rule.name}` : "New alert rule");
    f.elements.name.value = rule ? rule.name : "";
    f.elements.metric.value = rule ? rule.metric : "cost";
    f.elements.window.value = rule ? rule.window : "1h";
    f.elements.operator.value = rule ? rule.operator : ">";
    f.elements.threshold.value = rule ? String(rule.threshold) : "";
    // A new rule starts from the filters the page is showing.
    const filters = rule ? rule.filters : state.filters;
    for (const k of Object.keys(FILTERS)) f.elements[k].value = (filters && filters[k]) || "";
    f.elements.webhook_url.value = rule ? rule.webhook_url : "";
    f.elements.secret.value = "";
    f.elements.secret.placeholder = rule && rule.has_secret ? "unchanged (type to replace)" : "";
    f.elements.renotify_minutes.value = rule && rule.renotify_minutes ? String(rule.renotify_minutes) : "";
    this.formError.hidden = true;
    for (const el of f.querySelectorAll("[data-field]")) el.removeAttribute("data-invalid");
    $("#alert-editor").hidden = false;
    f.elements.name.focus();
  }

  closeForm() {
    $("#alert-editor").hidden = true;
    this.editing = null;
  }

  async save() {
    const f = this.form.elements;
    const filters = {};
    for (const k of Object.keys(FILTERS)) if (f[k].value.trim()) filters[k] = f[k].value.trim();
    const body = {
      name: f.name.value.trim(),
      metric: f.metric.value,
      window: f.window.value,
      operator: f.operator.value,
      threshold: f.threshold.value === "" ? null : Number(f.threshold.value),
      filters,
      webhook_url: f.webhook_url.value.trim(),
      renotify_minutes: f.renotify_minutes.value ? Number(f.renotify_minutes.value) : null,
    };
    if (body.threshold === null) delete body.threshold; // the server names it
    if (f.secret.value) body.secret = f.secret.value;
    try {
      if (this.editing === null) await call("POST", "api/alerts", body);
      else await call("PATCH", `api/alerts/${this.editing}`, body);
    } catch (err) {
      this.formError.hidden = false;
      this.formError.textContent = err.status === 403 ? "Changing rules needs an admin key." : err.message;
      for (const el of this.form.querySelectorAll("[data-field]")) {
        if (err.fields && err.fields.has(el.dataset.field)) el.dataset.invalid = "true";
        else el.removeAttribute("data-invalid");
      }
      return;
    }
    this.closeForm();
    await this.load();
  }

  async test(rule) {
    try {
      await call("POST", `api/alerts/${rule.id}/test`);
      this.flash(`Test notification queued for ${rule.name}.`);
    } catch (err) {
      this.flash(err.status === 403 ? "Sending a test needs an admin key." : err.message);
    }
    if (this.selected === rule.id) setTimeout(() => this.showHistory(rule.id), 1500);
  }

  async remove(rule) {
    if (!window.confirm(`Delete the rule ${rule.name} and its history?`)) return;
    try {
      await call("DELETE", `api/alerts/${rule.id}`);
    } catch (err) {
      this.flash(err.status === 403 ? "Deleting rules needs an admin key." : err.message);
      return;
    }
    if (this.selected === rule.id) this.selected = null;
    replace(this.history);
    await this.load();
  }

  flash(text) {
    const el = $("#alerts-note");
    el.textContent = text;
    el.hidden = false;
  }

  async showHistory(id) {
    this.selected = id;
    const rule = this.rules.find((r) => r.id === id);
    if (!rule) return;
    let data;
    try {
      data = await call("GET", `api/alerts/${id}/history`, undefined);
    } catch (err) {
      replace(this.history, h("p", { class: "muted" }, err.message));
      return;
    }
    const items = data.history.map((e) => {
      if (e.event === "state") {
        return h(
          "li",
          { class: `hist hist-state state-${e.state}` },
          h("time", null, dateTime(e.time)),
          ` ${e.previous || "new"} → ${e.state}`,
          e.value === null ? "" : ` at ${formatValue(rule.metric, e.value)}`,
        );
      }
      const what = e.outcome === "deferred" ? `${e.notification} held back (flapping)` : `${e.notification} notification, attempt ${e.attempt}: ${e.outcome}`;
      return h("li", { class: `hist hist-delivery outcome-${e.outcome}` }, h("time", null, dateTime(e.time)), ` ${what}`, e.detail && e.outcome !== "deferred" ? ` (${e.detail})` : "");
    });
    replace(
      this.history,
      h("h3", { id: "alert-history-title" }, `History of ${rule.name}`),
      items.length ? h("ol", { class: "alert-history-list" }, items) : h("p", { class: "muted" }, "Nothing yet: no state change, no notification."),
    );
  }
}
