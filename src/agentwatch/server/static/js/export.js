// The header's Export menu: the current view's events (its time window, the
// shared filters and, in the explorer, the explorer's own filters) as CSV
// or JSON Lines, through GET /api/export. The links are plain downloads:
// the browser streams the file to disk (the session cookie goes with them),
// so an export of millions of events never passes through this page.

import { $, h, replace } from "./dom.js";
import { EXPLORE_KEYS, currentWindow, onChange, state } from "./state.js";

const FORMATS = [
  ["csv", "CSV", "Spreadsheets; metadata as a JSON string"],
  ["jsonl", "JSONL", "One JSON event per line"],
];

/** The query string of GET /api/export for what the page shows now. */
export function exportParams(format, now = Date.now()) {
  const q = new URLSearchParams({ format });
  for (const [dim, value] of Object.entries(state.filters)) if (value) q.set(dim, value);
  if (state.view === "explore") {
    for (const param of Object.keys(EXPLORE_KEYS)) if (state.explore[param]) q.set(param, state.explore[param]);
  }
  const win = currentWindow(now);
  if (win.start !== null) q.set("since", new Date(win.start).toISOString());
  q.set("until", new Date(win.end).toISOString());
  return q;
}

function paint(menu) {
  for (const a of menu.querySelectorAll("a[data-format]")) {
    a.href = `api/export?${exportParams(a.dataset.format)}`;
  }
}

function mount() {
  const slot = $("#export-slot");
  if (!slot) return;
  const menu = h(
    "details",
    { class: "export-menu", id: "export-menu" },
    h("summary", { title: "Download the events of this view" }, "Export"),
    h(
      "div",
      { class: "export-list", role: "menu" },
      FORMATS.map(([fmt, label, hint]) =>
        h("a", { role: "menuitem", dataset: { format: fmt }, download: "", title: hint, href: "api/export" }, label),
      ),
    ),
  );
  replace(slot, [menu]);
  // Fresh links whenever the menu opens (a live range moves with the clock),
  // and just before a click follows one.
  menu.addEventListener("toggle", () => paint(menu));
  menu.addEventListener("click", (e) => {
    if (e.target.closest("a[data-format]")) {
      paint(menu);
      setTimeout(() => (menu.open = false), 0);
    }
  });
  onChange(() => paint(menu));
  paint(menu);
}

mount();
