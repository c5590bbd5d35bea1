// The overview's three time-series charts (Chart.js 4 and its date-fns
// adapter, both vendored, loaded as classic scripts): cost (bars, stackable
// by model or agent) with tokens, latency p50/p95, requests with errors and
// the error rate.
//
// What they promise: a real time axis (dates where the range spans days);
// a bucket without LLM calls is a gap, never a line drawn across it; a point
// that has no neighbour is drawn as a dot; lines are straight or monotone,
// so they never overshoot; tooltips name the bucket's time range and its
// call count; empty charts keep sane ticks. Dragging across a chart zooms.

import { axisLabel, countTick, int, moneyExact, moneyTick, ms, msTick, timeRange } from "./format.js";
import { dragZoom } from "./zoom.js";

const CHART_JS = "vendor/chart.umd.js";
const ADAPTER = "vendor/chartjs-adapter-date-fns/chartjs-adapter-date-fns.bundle.min.js";

let Chart = window.Chart;
let loading = null;

function script(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`${src} failed to load`));
    document.head.append(s);
  });
}

/**
 * Chart.js, then its date adapter (which needs it), as classic scripts.
 * The overview calls this right after sending its data requests: the ~200 KB
 * of Chart.js then download and compile while the server answers, instead
 * of delaying the requests (an async tag in the page ran in the middle of
 * the module graph) or following them. Views without charts never load it.
 */
export function loadChartJs() {
  if (!loading) {
    loading = (window.Chart ? Promise.resolve() : script(CHART_JS))
      .then(() => script(ADAPTER))
      .then(() => {
        Chart = window.Chart;
        setDefaults();
      });
    loading.catch(() => {}); // reported where it is awaited
  }
  return loading;
}

const C = {
  grid: "rgba(148, 163, 184, 0.10)",
  tick: "#8b95a7",
  cost: "#2dd4bf",
  costFill: "rgba(45, 212, 191, 0.55)",
  tokens: "#a78bfa",
  p50: "#38bdf8",
  p95: "#f59e0b",
  band: "rgba(245, 158, 11, 0.12)",
  ok: "rgba(56, 189, 248, 0.55)",
  err: "rgba(239, 68, 68, 0.8)",
  rate: "#f87171",
  other: "rgba(148, 163, 184, 0.45)",
};

function setDefaults() {
  Chart.defaults.color = C.tick;
  Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue("--font").trim() || "system-ui";
  Chart.defaults.font.size = 11;
  Chart.defaults.borderColor = C.grid;
}

// Calls `onDrawn(name)` after the first complete draw that has data: the page
// marks itself ready from these callbacks (used by the tests and the benchmark).
function drawnPlugin(name, onDrawn) {
  let reported = false;
  return {
    id: `drawn-${name}`,
    afterRender(chart) {
      if (reported || !chart.data.labels?.length) return;
      reported = true;
      onDrawn(name, chart);
    },
  };
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** Per-point radii: a dot where a value has no neighbour on one side (a lone point, a segment's end). */
function sparseRadii(d) {
  return d.map((v, i) => {
    if (!isNum(v)) return 0;
    const prevGap = i > 0 && !isNum(d[i - 1]);
    const nextGap = i < d.length - 1 && !isNum(d[i + 1]);
    return d.length === 1 || prevGap || nextGap ? 3 : 0;
  });
}

/** Set each line dataset's point radii from its data (an array: cheaper to draw than a function). */
function markSparse(chart) {
  for (const ds of chart.data.datasets) {
    if ((ds.type || chart.config.type) === "line") ds.pointRadius = sparseRadii(ds.data);
  }
}

function bucketTitle(items) {
  if (!items.length) return "";
  const meta = items[0].chart.$aw;
  const i = items[0].dataIndex;
  if (!meta || meta.starts[i] === undefined) return "";
  const n = meta.requests[i] || 0;
  return `${timeRange(meta.starts[i], meta.starts[i] + meta.bucketMs)} · ${int(n)} call${n === 1 ? "" : "s"}`;
}

function baseOptions() {
  return {
    responsive: true,
    maintainAspectRatio: false,
    // The first paint is immediate; later refreshes animate (enabled after the first draw).
    animation: false,
    events: ["mousedown", "mousemove", "mouseout", "click", "touchstart", "touchmove"],
    interaction: { mode: "index", intersect: false },
    plugins: {
      legend: {
        position: "top",
        align: "end",
        labels: { boxWidth: 10, boxHeight: 10, usePointStyle: true, pointStyle: "rectRounded", padding: 12 },
      },
      tooltip: {
        backgroundColor: "rgba(15, 20, 30, 0.95)",
        borderColor: "rgba(148, 163, 184, 0.25)",
        borderWidth: 1,
        padding: 10,
        titleColor: "#e5e7eb",
        bodyColor: "#cbd5e1",
        callbacks: { title: bucketTitle },
      },
    },
    elements: {
      point: { radius: 0, hoverRadius: 4, hitRadius: 6 },
      line: { tension: 0, borderWidth: 2 },
    },
    scales: {
      x: {
        type: "time",
        offset: false,
        stacked: true,
        grid: { display: false },
        // The unit only shapes the scale's own ticks, which afterBuildTicks
        // replaces; a coarse one keeps that first pass short.
        time: { unit: "day" },
        // Ticks on round local times (every 3 h, every midnight...), not wherever autoSkip leaves them.
        afterBuildTicks(scale) {
          const n = Math.max(2, Math.floor(scale.width / 56));
          scale.ticks = niceTimeTicks(scale.min, scale.max, n).map((value) => ({ value, major: isMidnight(value) }));
        },
        ticks: {
          maxRotation: 0,
          autoSkip: true,
          autoSkipPadding: 24,
          source: "auto",
          major: { enabled: true },
          font: (ctx) => (ctx.tick && ctx.tick.major ? { weight: "600" } : undefined),
          callback(value) {
            return axisLabel(value, this.chart.$aw?.dayTicks);
          },
        },
      },
    },
  };
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY];

const isMidnight = (t) => {
  const d = new Date(t);
  return d.getHours() === 0 && d.getMinutes() === 0;
};

/** At most `n` ticks in [min, max] on round local times: multiples of the step from midnight, or midnights. */
export function niceTimeTicks(min, max, n) {
  if (!(max > min)) return [];
  const step = STEPS.find((s) => (max - min) / s <= n) || 30 * DAY;
  const out = [];
  const d = new Date(min);
  d.setHours(0, 0, 0, 0);
  if (step < DAY) {
    // From the local midnight before `min`, in steps (restarting each midnight, so DST shifts stay aligned).
    for (let day = d; day.getTime() <= max; day.setDate(day.getDate() + 1)) {
      const base = day.getTime();
      for (let t = base; t < base + DAY && t <= max; t += step) {
        if (t >= min) out.push(t);
      }
    }
  } else {
    const days = Math.round(step / DAY);
    if (d.getTime() < min) d.setDate(d.getDate() + 1);
    for (; d.getTime() <= max; d.setDate(d.getDate() + days)) out.push(d.getTime());
  }
  return out;
}

export class Charts {
  /** onDrawn(name) after each chart's first draw; onZoom(fromMs, toMs) after a drag. */
  constructor(onDrawn, onZoom) {
    this.onDrawn = onDrawn;
    this.onZoom = onZoom;
    this.cost = null;
    this.latency = null;
    this.requests = null;
  }

  _plugins(name) {
    return [drawnPlugin(name, this.onDrawn), dragZoom((a, b) => this.onZoom(a, b))];
  }

  _createCost(canvas) {
    const opts = baseOptions();
    opts.scales.y = {
      position: "left",
      stacked: true,
      beginAtZero: true,
      title: { display: true, text: "cost (USD)" },
      ticks: { callback: (v) => moneyTick(v) },
      grid: { color: C.grid },
    };
    opts.scales.y1 = {
      position: "right",
      beginAtZero: true,
      title: { display: true, text: "tokens" },
      ticks: { precision: 0, callback: (v) => countTick(v) },
      grid: { drawOnChartArea: false },
    };
    opts.plugins.tooltip.callbacks.label = (item) =>
      item.dataset.yAxisID === "y1"
        ? ` tokens: ${int(item.parsed.y)}`
        : ` ${item.dataset.label === "Cost" ? "cost" : item.dataset.label}: ${moneyExact(item.parsed.y)}`;
    return new Chart(canvas, {
      type: "bar",
      data: { labels: [], datasets: [costDataset("Cost", C.costFill, C.cost), tokensDataset()] },
      options: opts,
      plugins: this._plugins("cost-chart"),
    });
  }

  _createLatency(canvas) {
    const opts = baseOptions();
    opts.scales.x.stacked = false;
    opts.scales.y = {
      beginAtZero: true,
      // Headroom above the highest point: a flat line at the top would sit on
      // the chart's edge, half its dots cut off.
      grace: "8%",
      title: { display: true, text: "latency" },
      ticks: { callback: (v) => msTick(v) },
      grid: { color: C.grid },
    };
    opts.plugins.tooltip.callbacks.label = (item) => ` ${item.dataset.label}: ${ms(item.parsed.y)}`;
    const line = { type: "line", spanGaps: false, cubicInterpolationMode: "monotone", fill: false };
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: [
          { ...line, label: "p50", data: [], borderColor: C.p50, backgroundColor: C.p50, order: 1 },
          {
            ...line,
            label: "p95",
            data: [],
            borderColor: C.p95,
            backgroundColor: C.p95,
            // Dashed and drawn on top: where p95 equals p50 both colours still show.
            borderDash: [6, 4],
            order: 0,
            // Shade the band between p95 and p50.
            fill: { target: 0, above: C.band, below: C.band },
          },
        ],
      },
      options: opts,
      plugins: this._plugins("latency-chart"),
    });
  }

  _createRequests(canvas) {
    const opts = baseOptions();
    opts.scales.y = {
      stacked: true,
      beginAtZero: true,
      title: { display: true, text: "requests" },
      ticks: { precision: 0, callback: (v) => countTick(v) },
      grid: { color: C.grid },
    };
    opts.scales.y1 = {
      position: "right",
      beginAtZero: true,
      suggestedMax: 10,
      max: 100,
      title: { display: true, text: "error rate" },
      ticks: { callback: (v) => `${Number(v.toPrecision(3))}%` },
      grid: { drawOnChartArea: false },
    };
    opts.plugins.tooltip.callbacks.label = (item) =>
      item.dataset.yAxisID === "y1" ? ` error rate: ${item.parsed.y.toFixed(1)}%` : ` ${item.dataset.label}: ${int(item.parsed.y)}`;
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: [],
        datasets: [
          { type: "bar", label: "succeeded", data: [], yAxisID: "y", stack: "req", backgroundColor: C.ok, borderRadius: 2, order: 2 },
          { type: "bar", label: "failed", data: [], yAxisID: "y", stack: "req", backgroundColor: C.err, borderRadius: 2, order: 2 },
          {
            type: "line",
            label: "error rate",
            data: [],
            yAxisID: "y1",
            borderColor: C.rate,
            backgroundColor: C.rate,
            borderWidth: 1.75,
            spanGaps: false,
            order: 1,
          },
        ],
      },
      options: opts,
      plugins: this._plugins("requests-chart"),
    });
  }

  /** Create the charts (without data) if they do not exist yet. */
  prepare() {
    if (!this.cost) this.cost = this._createCost(document.getElementById("cost-chart"));
    if (!this.latency) this.latency = this._createLatency(document.getElementById("latency-chart"));
    if (!this.requests) this.requests = this._createRequests(document.getElementById("requests-chart"));
  }

  /**
   * Draw a timeseries response. `stack` (optional): [{name, cost: [...], color}]
   * for cost stacked by group, the remainder shown as "other".
   */
  update(series, { stack = null } = {}) {
    this.prepare();
    const starts = (series.timestamps || []).map((t) => Date.parse(t));
    const bucketMs = (series.bucket_minutes || 1) * 60_000;
    const requests = series.requests || [];
    const none = (i) => !(requests[i] > 0);
    // Each value sits at the middle of its bucket; x runs from the first bucket's start to the last one's end.
    const labels = starts.map((t) => t + bucketMs / 2);
    const spanMs = starts.length ? starts[starts.length - 1] + bucketMs - starts[0] : 0;
    const meta = { starts, bucketMs, requests, dayTicks: spanMs > 3 * 86_400_000 };
    const gap = (values) => values.map((v, i) => (none(i) || !isNum(v) ? null : v));
    const empty = requests.every((n) => !n);

    // A single call in a bucket: its percentiles are its own latency (the
    // binned p50/p95 would read up to 0.5% off the exact average).
    const avg = series.avg_latency || [];
    const single = (values) => values.map((v, i) => (requests[i] === 1 && isNum(avg[i]) ? avg[i] : v));

    const cost = this.cost;
    const tokens = tokensDataset(gap(series.tokens || []));
    if (stack && stack.length) {
      const total = series.cost || [];
      const sets = stack.map((g) => costDataset(g.name, g.color, g.color, gap(g.cost)));
      const other = total.map((v, i) => {
        const rest = (v || 0) - stack.reduce((s, g) => s + (g.cost[i] || 0), 0);
        return rest > 1e-9 ? rest : 0;
      });
      if (other.some((v) => v > 0)) sets.push(costDataset("other", C.other, C.other, gap(other)));
      cost.data.datasets = [...sets, tokens];
      cost.options.plugins.legend.display = true;
    } else {
      cost.data.datasets = [costDataset("Cost", C.costFill, C.cost, gap(series.cost || [])), tokens];
    }
    cost.options.scales.y.suggestedMax = empty ? 0.01 : undefined;
    cost.options.scales.y1.suggestedMax = empty ? 1000 : undefined;

    const lat = this.latency;
    lat.data.datasets[0].data = gap(single(series.latency_p50 || []));
    lat.data.datasets[1].data = gap(single(series.latency_p95 || []));
    lat.options.scales.y.suggestedMax = empty ? 1000 : undefined;

    const req = this.requests;
    const errors = series.errors || [];
    req.data.datasets[0].data = gap(requests.map((n, i) => n - (errors[i] || 0)));
    req.data.datasets[1].data = gap(errors.map((e) => e || null));
    req.data.datasets[2].data = requests.map((n, i) => (n > 0 ? (100 * (errors[i] || 0)) / n : null));
    req.options.scales.y.suggestedMax = empty ? 10 : undefined;

    for (const chart of [cost, lat, req]) {
      markSparse(chart);
      chart.$aw = meta;
      chart.data.labels = labels;
      chart.options.scales.x.min = starts.length ? starts[0] : undefined;
      chart.options.scales.x.max = starts.length ? starts[starts.length - 1] + bucketMs : undefined;
      const animate = chart.options.animation !== false;
      chart.update(animate ? undefined : "none");
      // After the first paint, refreshes animate smoothly.
      if (!animate) chart.options.animation = { duration: 400, easing: "easeOutQuart" };
    }
  }
}

function costDataset(label, fill, border, data = []) {
  return {
    type: "bar",
    label,
    data,
    yAxisID: "y",
    stack: "cost",
    backgroundColor: fill,
    borderColor: border,
    borderWidth: 0,
    borderRadius: 2,
    order: 2,
  };
}

function tokensDataset(data = []) {
  return {
    type: "line",
    label: "Tokens",
    data,
    yAxisID: "y1",
    borderColor: C.tokens,
    backgroundColor: C.tokens,
    borderDash: [6, 4],
    borderWidth: 1.75,
    spanGaps: false,
    fill: false,
    order: 1,
  };
}
