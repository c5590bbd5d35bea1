// Number, time and colour formatting shared by every panel.

const intFmt = new Intl.NumberFormat("en-US");
const compactFmt = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export function int(n) {
  return n === null || n === undefined || Number.isNaN(n) ? "—" : intFmt.format(Math.round(n));
}

export function compact(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Math.abs(n) < 10000 ? intFmt.format(Math.round(n)) : compactFmt.format(n);
}

/** Token counts for tight columns: 950, 3.4K, 1.2M. */
export function tokens(n) {
  const v = Number(n) || 0;
  return v < 1000 ? String(Math.round(v)) : compactFmt.format(v);
}

/** Axis ticks: "$0.035", "$2.5", "$1,200" (never two equal labels). */
export function moneyTick(n) {
  if (!n) return "$0";
  if (Math.abs(n) >= 1000) return "$" + intFmt.format(Math.round(n));
  return "$" + Number(n.toPrecision(3));
}

export function money(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  if (n === 0) return "$0.00";
  const a = Math.abs(n);
  if (a < 0.01) return "$" + n.toFixed(4);
  if (a < 1000) return "$" + n.toFixed(2);
  return "$" + intFmt.format(Math.round(n));
}

/** Milliseconds as "850 ms", "1.24 s", "2m 05s". */
export function ms(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
  const m = Math.floor(v / 60000);
  const s = Math.round((v % 60000) / 1000);
  return `${m}m ${String(s).padStart(2, "0")}s`;
}

export function pct(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return `${Number(v).toFixed(digits)}%`;
}

export function ago(seconds) {
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  return `${Math.floor(seconds / 3600)}h ago`;
}

export function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

export function dateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString([], {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

/** Axis label for a bucket start, at a granularity that suits the range. */
export function bucketLabel(iso, range) {
  const d = new Date(iso);
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  if (range === "1h" || range === "24h") return hm;
  if (range === "7d") return `${d.toLocaleDateString([], { weekday: "short" })} ${hm}`;
  return d.toLocaleDateString([], { month: "short", day: "numeric" });
}

// A fixed palette keeps agent colours distinct on the dark background; a
// stable hash of the name picks one, so an agent keeps its colour everywhere
// and across reloads.
const PALETTE = [
  "#38bdf8", "#f472b6", "#a3e635", "#fbbf24", "#c084fc", "#2dd4bf",
  "#fb923c", "#818cf8", "#f87171", "#4ade80", "#e879f9", "#facc15",
];

export function hash(str) {
  let h = 2166136261;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

export function agentColor(name) {
  return PALETTE[hash(String(name)) % PALETTE.length];
}

/** Success-rate badge level: green at 95% and above, amber from 85%, red below. */
export function rateLevel(successRate) {
  if (successRate === null || successRate === undefined) return "none";
  if (successRate >= 95) return "good";
  if (successRate >= 85) return "warn";
  return "bad";
}

/** Error-rate bar level: green under 5%, amber 5-15%, red over 15%. */
export function errorLevel(errorRate) {
  if (errorRate < 5) return "good";
  if (errorRate <= 15) return "warn";
  return "bad";
}
