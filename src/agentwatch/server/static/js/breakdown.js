// The breakdown panel: tabs by agent, model, task (these filter the whole
// page), provider, user (these open the explorer) and session (opens the
// session view); sortable columns; error rate as a coloured bar. Fixed
// column widths keep a long name from pushing the numbers out of view.

import { $$, h, replace } from "./dom.js";
import { agentColor, errorLevel, int, money, moneyExact, ms, pct } from "./format.js";
import { Roving } from "./keynav.js";

const COLUMNS = [
  { key: "name", label: "Name", type: "text" },
  { key: "requests", label: "Requests", type: "num" },
  { key: "avg_latency", label: "Avg", title: "Average latency", type: "num" },
  { key: "latency_p95", label: "p95", type: "num" },
  { key: "total_cost", label: "Cost", type: "num" },
  { key: "error_rate", label: "Error rate", type: "num" },
];

// What a row click does, per tab.
const ACTION = {
  agent_name: "Filter the page by",
  model: "Filter the page by",
  task_name: "Filter the page by",
  provider: "Explore the calls of",
  user_id: "Explore the calls of",
  session_id: "Open session",
};
const NONE_LABEL = { provider: "(no provider)", user_id: "(no user)", session_id: "(no session)" };

export class Breakdown {
  constructor({ table, onRow }) {
    this.table = table;
    this.onRow = onRow;
    this.rows = [];
    this.group = "agent_name";
    this.sort = { key: "total_cost", dir: "desc" };
    this._buildHead();
    this.roving = new Roving(table.tBodies[0], "tr[data-name]", (tr) => this.onRow(this.group, tr.dataset.name));
  }

  _buildHead() {
    const cells = COLUMNS.map((c) =>
      h(
        "th",
        { scope: "col", class: `col-${c.key}` + (c.type === "num" ? " num" : ""), dataset: { key: c.key }, title: c.title || null },
        h(
          "button",
          { type: "button", class: "sort", on: { click: () => this.sortBy(c.key) } },
          c.label,
          h("span", { class: "sort-arrow", "aria-hidden": "true" }),
        ),
      ),
    );
    replace(this.table.tHead, h("tr", null, cells));
    this._paintSortState();
  }

  _paintSortState() {
    for (const th of $$("th", this.table.tHead)) {
      const active = th.dataset.key === this.sort.key;
      th.setAttribute("aria-sort", active ? (this.sort.dir === "asc" ? "ascending" : "descending") : "none");
      th.querySelector(".sort-arrow").textContent = active ? (this.sort.dir === "asc" ? "▲" : "▼") : "";
    }
  }

  sortBy(key) {
    if (this.sort.key === key) this.sort.dir = this.sort.dir === "asc" ? "desc" : "asc";
    else this.sort = { key, dir: key === "name" ? "asc" : "desc" };
    this._paintSortState();
    this._renderBody();
  }

  render(group, rows, activeName) {
    this.group = group;
    this.rows = Array.isArray(rows) ? rows : [];
    this.activeName = activeName;
    this._renderBody();
  }

  _renderBody() {
    const { key, dir } = this.sort;
    const sign = dir === "asc" ? 1 : -1;
    const sorted = [...this.rows].sort((a, b) => {
      const x = a[key];
      const y = b[key];
      if (key === "name") return sign * String(x ?? "").localeCompare(String(y ?? ""));
      // Missing numbers sort last whatever the direction.
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return sign * (x - y) || String(a.name).localeCompare(String(b.name));
    });
    const body = this.table.tBodies[0];
    this.table.dataset.group = this.group;
    this.roving.update(() => {
      if (!sorted.length) {
        replace(body, h("tr", { class: "empty-row" }, h("td", { colspan: COLUMNS.length }, "No LLM calls in this range.")));
      } else {
        replace(body, sorted.map((r) => this._row(r)));
      }
    });
  }

  _row(r) {
    const rate = Number(r.error_rate) || 0;
    const missing = r.name === null || r.name === undefined;
    const shown = missing ? NONE_LABEL[this.group] || "(none)" : String(r.name);
    const name =
      this.group === "agent_name"
        ? h("span", { class: "badge agent", style: { "--agent": agentColor(r.name) } }, shown)
        : h("span", { class: "name" + (missing ? " muted" : "") }, shown);
    return h(
      "tr",
      {
        // Rows without a value (calls with no user, say) can be read, not followed.
        dataset: missing ? { none: "true" } : { name: r.name },
        class: this.activeName === r.name ? "active" : "",
        tabindex: missing ? null : "-1",
        title: missing ? shown : `${ACTION[this.group]} ${r.name}`,
      },
      h("td", { class: "cell-name", title: shown }, name),
      h("td", { class: "num", dataset: { value: r.requests } }, int(r.requests)),
      h("td", { class: "num" }, ms(r.avg_latency)),
      h("td", { class: "num" }, ms(r.latency_p95)),
      h("td", { class: "num", dataset: { value: r.total_cost }, title: moneyExact(r.total_cost) }, money(r.total_cost)),
      h(
        "td",
        { class: "num", dataset: { value: rate } },
        h(
          "span",
          { class: "cell-error" },
          h(
            "span",
            { class: "error-bar", dataset: { level: errorLevel(rate) } },
            // Full width at 25% errors: the scale where the three levels are easy to tell apart.
            h("span", { class: "error-fill", style: { width: `${Math.max(2, Math.min(100, rate * 4))}%` } }),
          ),
          h("span", { class: "error-pct", dataset: { level: errorLevel(rate) } }, pct(rate)),
        ),
      ),
    );
  }
}

export function hintFor(group, limited) {
  const what = {
    agent_name: "Click a row to filter the whole page.",
    model: "Click a row to filter the whole page.",
    task_name: "Click a row to filter the whole page.",
    provider: "Click a row to explore that provider's calls.",
    user_id: "Click a row to explore that user's calls.",
    session_id: "Click a row to open the session.",
  }[group];
  return limited ? `${what} The ${limited} costliest are shown.` : what;
}

/** Wire the tab buttons: a click or the arrow keys select a tab; `onTab(group)`. */
export function bindTabs(onTab) {
  const tabs = $$("#breakdown-tabs [role=tab]");
  for (const btn of tabs) btn.addEventListener("click", () => onTab(btn.dataset.group));
  document.getElementById("breakdown-tabs").addEventListener("keydown", (e) => {
    const keys = { ArrowRight: 1, ArrowLeft: -1, Home: "first", End: "last" };
    if (!(e.key in keys)) return;
    e.preventDefault();
    const i = tabs.findIndex((t) => t.getAttribute("aria-selected") === "true");
    const step = keys[e.key];
    const j = step === "first" ? 0 : step === "last" ? tabs.length - 1 : (i + step + tabs.length) % tabs.length;
    tabs[j].focus();
    onTab(tabs[j].dataset.group);
  });
}

export function paintTabs(group) {
  for (const btn of $$("#breakdown-tabs [role=tab]")) {
    const on = btn.dataset.group === group;
    btn.setAttribute("aria-selected", on ? "true" : "false");
    btn.tabIndex = on ? 0 : -1;
  }
  document.getElementById("breakdown-table").dataset.group = group;
}
