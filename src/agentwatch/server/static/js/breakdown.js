// The breakdown panel: tabs by agent / model / task, sortable columns,
// error rate as a coloured bar, rows that filter the page when clicked.

import { $, $$, h, replace } from "./dom.js";
import { agentColor, errorLevel, int, money, ms, pct } from "./format.js";

const COLUMNS = [
  { key: "name", label: "Name", type: "text" },
  { key: "requests", label: "Requests", type: "num" },
  { key: "avg_latency", label: "Avg latency", type: "num" },
  { key: "latency_p95", label: "p95", type: "num" },
  { key: "total_cost", label: "Cost", type: "num" },
  { key: "error_rate", label: "Error rate", type: "num" },
];

export class Breakdown {
  constructor({ table, onRow }) {
    this.table = table;
    this.onRow = onRow;
    this.rows = [];
    this.group = "agent_name";
    this.sort = { key: "total_cost", dir: "desc" };
    this._buildHead();
    table.tBodies[0].addEventListener("click", (e) => this._rowClick(e));
    table.tBodies[0].addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        this._rowClick(e);
      }
    });
  }

  _buildHead() {
    const cells = COLUMNS.map((c) =>
      h(
        "th",
        { scope: "col", class: c.type === "num" ? "num" : "", dataset: { key: c.key } },
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

  _rowClick(e) {
    const tr = e.target.closest("tr[data-name]");
    if (tr) this.onRow(this.group, tr.dataset.name);
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
      if (key === "name") return sign * String(x).localeCompare(String(y));
      // Missing numbers sort last whatever the direction.
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return sign * (x - y) || String(a.name).localeCompare(String(b.name));
    });
    const body = this.table.tBodies[0];
    if (!sorted.length) {
      replace(body, h("tr", { class: "empty-row" }, h("td", { colspan: COLUMNS.length }, "No LLM calls in this range.")));
      return;
    }
    replace(body, sorted.map((r) => this._row(r)));
  }

  _row(r) {
    const rate = Number(r.error_rate) || 0;
    const name =
      this.group === "agent_name"
        ? h("span", { class: "badge agent", style: { "--agent": agentColor(r.name) } }, r.name)
        : h("span", { class: "name" }, r.name);
    return h(
      "tr",
      {
        dataset: { name: r.name },
        class: this.activeName === r.name ? "active" : "",
        tabindex: "0",
        title: `Filter the page by ${r.name}`,
      },
      h("td", { class: "cell-name" }, name),
      h("td", { class: "num", dataset: { value: r.requests } }, int(r.requests)),
      h("td", { class: "num" }, ms(r.avg_latency)),
      h("td", { class: "num" }, ms(r.latency_p95)),
      h("td", { class: "num", dataset: { value: r.total_cost } }, money(r.total_cost)),
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

/** Wire the tab buttons; `onTab(group)` is called on click. */
export function bindTabs(onTab) {
  for (const btn of $$("#breakdown-tabs [role=tab]")) {
    btn.addEventListener("click", () => onTab(btn.dataset.group));
  }
}

export function paintTabs(group) {
  for (const btn of $$("#breakdown-tabs [role=tab]")) {
    const on = btn.dataset.group === group;
    btn.setAttribute("aria-selected", on ? "true" : "false");
    btn.tabIndex = on ? 0 : -1;
  }
  $("#breakdown-table").dataset.group = group;
}
