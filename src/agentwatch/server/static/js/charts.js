// The two time-series charts (Chart.js 4, vendored, loaded as a classic script).

import { bucketLabel, compact, money, moneyTick, ms, tokens } from "./format.js";

// chart.umd.js is loaded with `async`, so the data requests do not wait for
// it to download and compile; drawing waits for it instead.
let Chart = window.Chart;
export const chartReady = Chart
  ? Promise.resolve()
  : new Promise((resolve, reject) => {
      const tag = document.getElementById("chartjs");
      const done = () => {
        Chart = window.Chart;
        if (Chart) {
          setDefaults();
          resolve();
        } else reject(new Error("Chart.js failed to load"));
      };
      if (window.Chart) done();
      else if (tag) {
        tag.addEventListener("load", done, { once: true });
        tag.addEventListener("error", done, { once: true });
      } else reject(new Error("Chart.js script tag missing"));
    });

const C = {
  grid: "rgba(148, 163, 184, 0.10)",
  tick: "#8b95a7",
  cost: "#2dd4bf",
  tokens: "#a78bfa",
  p50: "#38bdf8",
  p95: "#f59e0b",
  band: "rgba(245, 158, 11, 0.14)",
};

function setDefaults() {
  Chart.defaults.color = C.tick;
  Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue("--font").trim() || "system-ui";
  Chart.defaults.font.size = 11;
  Chart.defaults.borderColor = C.grid;
}
if (Chart) setDefaults();
chartReady.catch(() => {}); // reported where it is awaited

// Calls `onDrawn(name)` after the first complete draw that has data: the page
// marks itself ready from these callbacks (used by the tests and the benchmark).
function drawnPlugin(name, onDrawn) {
  let reported = false;
  return {
    id: `drawn-${name}`,
    afterRender(chart) {
      if (reported) return;
      if (!chart.data.labels?.length) return;
      reported = true;
      onDrawn(name, chart);
    },
  };
}

function costGradient(context) {
  const { chart } = context;
  const { ctx, chartArea } = chart;
  if (!chartArea) return "rgba(45, 212, 191, 0.2)";
  const g = ctx.createLinearGradient(0, chartArea.top, 0, chartArea.bottom);
  g.addColorStop(0, "rgba(45, 212, 191, 0.42)");
  g.addColorStop(0.6, "rgba(45, 212, 191, 0.10)");
  g.addColorStop(1, "rgba(45, 212, 191, 0.0)");
  return g;
}

function baseOptions() {
  return {
    responsive: true,
    maintainAspectRatio: false,
    // The first paint is immediate; later refreshes animate (enabled after the first draw).
    animation: false,
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
      },
    },
    elements: { point: { radius: 0, hoverRadius: 4, hitRadius: 6 }, line: { tension: 0.3, borderWidth: 2 } },
    scales: {
      x: {
        grid: { display: false },
        ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 18 },
      },
    },
  };
}

export class Charts {
  constructor(onDrawn) {
    this.onDrawn = onDrawn;
    this.cost = null;
    this.latency = null;
  }

  _createCost(canvas) {
    const opts = baseOptions();
    opts.scales.y = {
      position: "left",
      beginAtZero: true,
      title: { display: true, text: "cost (USD)" },
      ticks: { callback: (v) => moneyTick(v) },
      grid: { color: C.grid },
    };
    opts.scales.y1 = {
      position: "right",
      beginAtZero: true,
      title: { display: true, text: "tokens" },
      ticks: { callback: (v) => tokens(v) },
      grid: { drawOnChartArea: false },
    };
    opts.plugins.tooltip.callbacks = {
      label: (item) =>
        item.dataset.yAxisID === "y1"
          ? ` tokens: ${compact(item.parsed.y)}`
          : ` cost: ${money(item.parsed.y)}`,
    };
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: [
          {
            label: "Cost",
            data: [],
            yAxisID: "y",
            borderColor: C.cost,
            backgroundColor: costGradient,
            fill: "origin",
            order: 2,
          },
          {
            label: "Tokens",
            data: [],
            yAxisID: "y1",
            borderColor: C.tokens,
            backgroundColor: C.tokens,
            borderDash: [6, 4],
            borderWidth: 1.75,
            fill: false,
            order: 1,
          },
        ],
      },
      options: opts,
      plugins: [drawnPlugin("cost-chart", this.onDrawn)],
    });
  }

  _createLatency(canvas) {
    const opts = baseOptions();
    opts.scales.y = {
      beginAtZero: true,
      title: { display: true, text: "latency" },
      ticks: { callback: (v) => ms(v) },
      grid: { color: C.grid },
    };
    opts.plugins.tooltip.callbacks = { label: (item) => ` ${item.dataset.label}: ${ms(item.parsed.y)}` };
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: [
          { label: "p50", data: [], borderColor: C.p50, backgroundColor: C.p50, spanGaps: true, fill: false },
          {
            label: "p95",
            data: [],
            borderColor: C.p95,
            backgroundColor: C.band,
            spanGaps: true,
            // Shade the band between p95 and the p50 line below it.
            fill: { target: "-1", above: C.band, below: C.band },
          },
        ],
      },
      options: opts,
      plugins: [drawnPlugin("latency-chart", this.onDrawn)],
    });
  }

  /** Create both charts (without data) if they do not exist yet. */
  prepare() {
    if (!this.cost) this.cost = this._createCost(document.getElementById("cost-chart"));
    if (!this.latency) this.latency = this._createLatency(document.getElementById("latency-chart"));
  }

  /** Draw a timeseries response. */
  update(series, range) {
    const labels = (series.timestamps || []).map((t) => bucketLabel(t, range));
    this.prepare();

    const cost = this.cost;
    cost.data.labels = labels;
    cost.data.datasets[0].data = series.cost || [];
    cost.data.datasets[1].data = series.tokens || [];
    const lat = this.latency;
    lat.data.labels = labels;
    lat.data.datasets[0].data = series.latency_p50 || [];
    lat.data.datasets[1].data = series.latency_p95 || [];
    for (const chart of [cost, lat]) {
      const animate = chart.options.animation !== false;
      chart.update(animate ? undefined : "none");
      // After the first paint, refreshes animate smoothly.
      if (!animate) chart.options.animation = { duration: 450, easing: "easeOutQuart" };
    }
  }
}

