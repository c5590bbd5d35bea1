// The overview's data-quality panel: how many LLM calls of the window carry
// estimated numbers (usage not reported, fallback price, partial streams)
// and how many ingest requests were refused, from GET /api/metrics/quality.
// Every count links to the list of the events it counts.

import { getJSON, isAbort, windowParams } from "./api.js";
import { authReady } from "./auth.js";
import { $, h, replace } from "./dom.js";
import { currentWindow, onChange, state } from "./state.js";

const REFRESH_MS = 30_000;
const ROWS = [
  ["usage_missing", "No usage reported", "by_provider", "provider"],
  ["fallback_price", "Fallback price (unknown model)", "by_model", "model"],
  ["partial", "Streams ended early", "by_provider", "provider"],
];
const SHOWN = 5; // names listed per count

function link(href, text, title) {
  return h("a", { href, target: "_blank", rel: "noopener", title }, text);
}

function pct(n, total) {
  return total ? ` (${((100 * n) / total).toFixed(n * 1000 < total ? 2 : 1)}%)` : "";
}

function render(panel, q) {
  const items = ROWS.map(([flag, label, group, what]) => {
    const c = q[flag];
    const names = c[group].slice(0, SHOWN).map((r) =>
      h("li", null, link(r.link, `${r.name ?? `no ${what}`}: ${r.count}`, `The calls of ${r.name ?? `no ${what}`}`)),
    );
    return h(
      "div",
      { class: "quality-item", dataset: { flag } },
      h("dt", { title: c.what }, label),
      h("dd", null, c.count ? link(c.link, String(c.count), "List these calls") : "0", h("span", { class: "muted" }, pct(c.count, q.llm_calls))),
      names.length ? h("dd", null, h("ul", { class: "quality-names" }, names)) : null,
    );
  });
  const rej = q.rejected;
  items.push(
    h(
      "div",
      { class: "quality-item", dataset: { flag: "rejected" } },
      h("dt", { title: rej.what }, "Refused at ingest"),
      h("dd", null, `${rej.requests} requests`, h("span", { class: "muted" }, ` (${rej.events} invalid events named)`)),
      rej.by_code.length ? h("dd", { class: "muted small" }, rej.by_code.map((r) => `HTTP ${r.code}: ${r.requests}`).join(", ")) : null,
    ),
  );
  replace(panel.querySelector(".quality-list"), items);
  panel.querySelector(".quality-total").textContent = `of ${q.llm_calls} LLM calls in this window`;
}

async function refresh(panel) {
  if (state.view !== "overview") return;
  try {
    const q = await getJSON("api/metrics/quality", windowParams(currentWindow()), "quality");
    render(panel, q);
    panel.dataset.state = "ok";
  } catch (err) {
    if (!isAbort(err)) panel.dataset.state = "error";
  }
}

function mount() {
  const slot = $("#quality-slot");
  if (!slot) return;
  const panel = h(
    "article",
    { class: "panel quality-panel", id: "quality-panel", "aria-labelledby": "quality-title" },
    h(
      "header",
      { class: "panel-head" },
      h("h2", { id: "quality-title" }, "Data quality"),
      h("span", { class: "muted small quality-total" }),
    ),
    h("dl", { class: "quality-list" }),
    h("p", { class: "muted small hint" }, "Numbers that are estimates, and events the server refused. Each count opens the calls it counts."),
  );
  replace(slot, [panel]);
  // Data only once signed in (or no key is needed), like the views (main.js).
  authReady.then(() => {
    onChange((changed) => {
      if (changed.has("view") || changed.has("range") || changed.has("from") || changed.has("to")) refresh(panel);
    });
    setInterval(() => refresh(panel), REFRESH_MS);
    refresh(panel);
  });
}

mount();
