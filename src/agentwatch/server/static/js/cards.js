// The four metric cards: cost (with sparkline), requests (with success-rate
// badge), latency (p50 large, p95 and the average below) and active agents
// (clickable tags), each with its change against the previous period of the
// same length ("+12% vs previous 24 h").

import { $, h, replace, setText, svg } from "./dom.js";
import { agentColor, compact, int, money, moneyExact, ms, pct, rateLevel, signed } from "./format.js";

const has = (v) => v !== null && v !== undefined;

/** p50 and p95 as shown: for a single call, its own latency (the binned percentiles read up to 0.5% off). */
export function shownLatency(s) {
  if (s.total_requests === 1 && has(s.avg_latency_ms)) {
    return { p50: s.avg_latency_ms, p95: s.avg_latency_ms };
  }
  return { p50: s.latency_p50, p95: s.latency_p95 };
}

export function renderCards(summary, series, { onAgent, activeAgent }) {
  for (const el of document.querySelectorAll(".card.is-loading")) el.classList.remove("is-loading");
  $(".cards").setAttribute("aria-busy", "false");

  // Cost
  const cost = $("#cost-value");
  cost.dataset.value = String(summary.total_cost ?? 0);
  cost.title = moneyExact(summary.total_cost ?? 0);
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
  badge.dataset.value = has(rate) ? String(rate) : "";
  setText(badge, has(rate) ? `${pct(rate)} ok` : "no calls");
  const errors = summary.errors ?? 0;
  const runs = summary.task_runs ?? 0;
  setText(
    "#requests-sub",
    `${int(errors)} error${errors === 1 ? "" : "s"}` + (runs ? ` · ${int(runs)} task run${runs === 1 ? "" : "s"}` : ""),
  );

  // Latency
  const { p50, p95 } = shownLatency(summary);
  const p50El = $("#p50-value");
  p50El.dataset.value = has(p50) ? String(p50) : "";
  setText(p50El, ms(p50));
  const p95El = $("#p95-value");
  p95El.dataset.value = has(p95) ? String(p95) : "";
  setText(p95El, ms(p95));
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
        "aria-pressed": activeAgent === name ? "true" : "false",
        on: { click: () => onAgent(name) },
      },
      name,
    ),
  );
  replace($("#agent-tags"), tags.length ? tags : h("span", { class: "muted" }, "none in this range"));
}

/**
 * The "vs previous period" line of each card. `previous` is the summary of
 * the window just before (null: no previous window, e.g. all time;
 * undefined: not known yet); `label` names the window length ("24 h").
 */
export function renderDeltas(current, previous, label) {
  const cards = {
    cost: [current.total_cost, previous?.total_cost, "neutral"],
    requests: [current.total_requests, previous?.total_requests, "neutral"],
    latency: [shownLatency(current).p50, previous ? shownLatency(previous).p50 : undefined, "lower-better"],
    agents: [(current.active_agents || []).length, previous ? (previous.active_agents || []).length : undefined, "count"],
  };
  for (const [name, [cur, prev, kind]] of Object.entries(cards)) {
    const el = $(`#${name}-delta`);
    if (previous === null) {
      el.hidden = true;
      continue;
    }
    el.hidden = false;
    if (previous === undefined) {
      el.dataset.trend = "unknown";
      setText(el, "\u00a0");
      continue;
    }
    const { text, trend, value } = delta(cur, prev, kind, label);
    el.dataset.trend = trend;
    el.dataset.tone = tone(trend, kind);
    el.dataset.value = value === null ? "" : String(value);
    setText(el, text);
  }
}

function delta(cur, prev, kind, label) {
  const vs = `vs previous ${label}`;
  if (kind === "count") {
    const d = (cur || 0) - (prev || 0);
    return { text: `${signed(d)} ${vs}`, trend: d > 0 ? "up" : d < 0 ? "down" : "flat", value: d };
  }
  if (!has(cur) && !has(prev)) return { text: `none now or in the previous ${label}`, trend: "flat", value: null };
  if (!has(prev) || prev === 0) {
    if (!cur) return { text: `±0% ${vs}`, trend: "flat", value: 0 };
    return { text: `new: none in the previous ${label}`, trend: "up", value: null };
  }
  if (!has(cur)) return { text: `none now, some in the previous ${label}`, trend: "down", value: null };
  const p = (100 * (cur - prev)) / prev;
  const trend = Math.abs(p) < 0.05 ? "flat" : p > 0 ? "up" : "down";
  return { text: `${signed(p, "%")} ${vs}`, trend, value: Math.round(p * 10) / 10 };
}

function tone(trend, kind) {
  if (kind !== "lower-better" || trend === "flat") return "neutral";
  return trend === "up" ? "bad" : "good";
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
