// The four metric cards: cost (with sparkline), requests (with success-rate
// badge), latency (p50 large, p95 below) and active agents (clickable tags).

import { $, h, replace, setText, svg } from "./dom.js";
import { agentColor, compact, int, money, ms, pct, rateLevel } from "./format.js";

export function renderCards(summary, series, { onAgent, activeAgent }) {
  // Cost
  const cost = $("#cost-value");
  cost.dataset.value = String(summary.total_cost ?? 0);
  setText(cost, money(summary.total_cost ?? 0));
  setText("#cost-sub", `${compact(summary.total_tokens ?? 0)} tokens`);
  renderSparkline($("#cost-spark"), series?.cost || []);

  // Requests
  const req = $("#requests-value");
  req.dataset.value = String(summary.total_requests ?? 0);
  setText(req, int(summary.total_requests ?? 0));
  const badge = $("#success-badge");
  const rate = summary.success_rate;
  badge.dataset.level = rateLevel(rate);
  badge.dataset.value = rate === null || rate === undefined ? "" : String(rate);
  setText(badge, rate === null || rate === undefined ? "no calls" : `${pct(rate)} ok`);
  const errors = summary.errors ?? 0;
  const runs = summary.task_runs ?? 0;
  setText(
    "#requests-sub",
    `${int(errors)} error${errors === 1 ? "" : "s"}` + (runs ? ` · ${int(runs)} task run${runs === 1 ? "" : "s"}` : ""),
  );

  // Latency
  const p50 = $("#p50-value");
  p50.dataset.value = summary.latency_p50 === null || summary.latency_p50 === undefined ? "" : String(summary.latency_p50);
  setText(p50, ms(summary.latency_p50));
  const p95 = $("#p95-value");
  p95.dataset.value = summary.latency_p95 === null || summary.latency_p95 === undefined ? "" : String(summary.latency_p95);
  setText(p95, ms(summary.latency_p95));
  setText("#avg-latency", ms(summary.avg_latency_ms));

  // Active agents
  const agents = Array.isArray(summary.active_agents) ? summary.active_agents : [];
  const count = $("#agents-value");
  count.dataset.value = String(agents.length);
  setText(count, int(agents.length));
  const tags = agents.map((name) =>
    h(
      "button",
      {
        type: "button",
        class: "tag" + (activeAgent === name ? " active" : ""),
        style: { "--agent": agentColor(name) },
        title: `Show only ${name}`,
        on: { click: () => onAgent(name) },
      },
      name,
    ),
  );
  replace($("#agent-tags"), tags.length ? tags : h("span", { class: "muted" }, "none in this range"));
}

/** A small SVG area sparkline; the values are numbers only. */
function renderSparkline(el, values) {
  const w = 120;
  const hgt = 32;
  const nums = values.map((v) => (typeof v === "number" && Number.isFinite(v) ? v : 0));
  el.replaceChildren();
  el.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  if (nums.length < 2) return;
  const max = Math.max(...nums) || 1;
  const step = w / (nums.length - 1);
  const pts = nums.map((v, i) => [i * step, hgt - 2 - (v / max) * (hgt - 4)]);
  const line = pts.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
  const defs = svg("defs");
  const grad = svg("linearGradient", { id: "spark-grad", x1: 0, y1: 0, x2: 0, y2: 1 });
  grad.append(
    svg("stop", { offset: "0%", "stop-color": "#2dd4bf", "stop-opacity": "0.45" }),
    svg("stop", { offset: "100%", "stop-color": "#2dd4bf", "stop-opacity": "0" }),
  );
  defs.append(grad);
  el.append(
    defs,
    svg("path", { d: `${line}L${w},${hgt}L0,${hgt}Z`, fill: "url(#spark-grad)" }),
    svg("path", { d: line, fill: "none", stroke: "#2dd4bf", "stroke-width": 1.5, "stroke-linejoin": "round" }),
  );
}
