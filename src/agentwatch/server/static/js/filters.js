// The filter bar: one chip per active filter, each clearing its filter.

import { $, h, replace } from "./dom.js";
import { agentColor } from "./format.js";
import { FILTER_LABELS, clearFilters, setFilter, state } from "./state.js";

export function renderFilterBar() {
  const bar = $("#filterbar");
  const entries = Object.entries(state.filters);
  bar.hidden = entries.length === 0;
  const chips = entries.map(([dim, value]) =>
    h(
      "span",
      { class: "chip", dataset: { dim } },
      dim === "agent_name" ? h("span", { class: "chip-dot", style: { "--agent": agentColor(value) } }) : null,
      h("span", { class: "chip-dim" }, `${FILTER_LABELS[dim]}:`),
      h("span", { class: "chip-value" }, value),
      h(
        "button",
        {
          type: "button",
          class: "chip-clear",
          "aria-label": `Clear ${FILTER_LABELS[dim]} filter`,
          title: "Clear this filter",
          on: { click: () => setFilter(dim, null) },
        },
        "×",
      ),
    ),
  );
  replace(
    $("#filter-chips"),
    chips,
    entries.length > 1
      ? h("button", { type: "button", class: "link", on: { click: clearFilters } }, "Clear all")
      : null,
  );
}
