// Number, money, time and colour formatting shared by every panel.

const intFmt = new Intl.NumberFormat("en-US");
const compactFmt = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const cents = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
// 12 decimals: every digit the server keeps (6), and sums of many without float noise.
const exact = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 12 });

const missing = (n) => n === null || n === undefined || Number.isNaN(Number(n));

export function int(n) {
  return missing(n) ? "—" : intFmt.format(Math.round(n));
}

export function compact(n) {
  if (missing(n)) return "—";
  return Math.abs(n) < 10000 ? intFmt.format(Math.round(n)) : compactFmt.format(n);
}

/** Token counts for tight columns: 950, 3.4K, 1.2M. */
export function tokens(n) {
  const v = Number(n) || 0;
  return v < 1000 ? String(Math.round(v)) : compactFmt.format(v);
}

/** Axis ticks for counts: fractional steps keep a digit, so no two ticks read alike. */
export function countTick(v) {
  if (!v) return "0";
  if (Math.abs(v) >= 1000) return compactFmt.format(v);
  return String(Number(v.toPrecision(3)));
}

/** Axis ticks: "$0.035", "$2.5", "$1,200" (never two equal labels). */
export function moneyTick(n) {
  if (!n) return "$0";
  if (Math.abs(n) >= 1000) return "$" + intFmt.format(Math.round(n));
  return "$" + Number(n.toPrecision(3));
}

// Decimals that keep three significant digits of a value below 1 (at least 2, at most 12).
function decimalsFor(a) {
  return Math.min(12, Math.max(2, 2 - Math.floor(Math.log10(a))));
}

// "0.0600" -> "0.06", "0.500" -> "0.50": zeros beyond the second decimal go.
function trimZeros(s) {
  return s.replace(/(\.\d{2}\d*?)0+$/, "$1");
}

/**
 * Money, one format everywhere: two decimals from $1 up ("$12.35",
 * "$1,234.50"), three significant digits below $1 ("$0.0151", "$0.123",
 * "$0.000063"), "$0.00" for zero. A cost never reads as zero or with a
 * different first digit. Full precision: moneyExact.
 */
export function money(n) {
  if (missing(n)) return "—";
  n = Number(n);
  if (n === 0) return "$0.00";
  const a = Math.abs(n);
  const sign = n < 0 ? "-" : "";
  if (a >= 1) {
    return sign + "$" + cents.format(a);
  }
  return sign + "$" + trimZeros(a.toFixed(decimalsFor(a)));
}

/** Money at full precision (details, tooltips): "$0.015125", "$0.0000063". */
export function moneyExact(n) {
  if (missing(n)) return "—";
  n = Number(n);
  const sign = n < 0 ? "-" : "";
  return sign + "$" + exact.format(Math.abs(n));
}

/** Milliseconds as "850 ms", "1.24 s", "2m 05s". */
export function ms(v) {
  if (missing(v)) return "—";
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
  const m = Math.floor(v / 60000);
  const s = Math.round((v % 60000) / 1000);
  return `${m}m ${String(s).padStart(2, "0")}s`;
}

/** Axis ticks for latency: "0.5 ms", "200 ms", "1.5 s" (no two ticks alike). */
export function msTick(v) {
  if (!v) return "0 ms";
  if (v < 1000) return `${Number(v.toPrecision(3))} ms`;
  return `${Number((v / 1000).toPrecision(3))} s`;
}

export function pct(v, digits = 1) {
  if (missing(v)) return "—";
  return `${Number(v).toFixed(digits)}%`;
}

/** A signed change for card deltas: "+12%", "−3%", "+2", "±0%". */
export function signed(n, unit = "") {
  const a = Math.abs(n);
  if (a < 0.05) return `±0${unit}`;
  // A percentage rise past 1000% reads better as a factor: "×12".
  if (unit === "%" && n >= 1000) return `×${intFmt.format(Math.round(n / 100 + 1))}`;
  const round = a >= 10 || unit === "" || Math.abs(a - Math.round(a)) < 0.05;
  const v = round ? String(Math.round(a)) : a.toFixed(1);
  return `${n > 0 ? "+" : "−"}${v}${unit}`;
}

/** A duration for labels: "24 h", "7 d", "3 h 20 min", "45 min". */
export function span(msec) {
  const min = Math.round(msec / 60000);
  if (min < 60) return `${Math.max(1, min)} min`;
  const d = Math.floor(min / 1440);
  const h = Math.floor((min % 1440) / 60);
  const m = min % 60;
  if (d) return h ? `${d} d ${h} h` : `${d} d`;
  return m ? `${h} h ${m} min` : `${h} h`;
}

export function ago(seconds) {
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  return `${Math.floor(seconds / 3600)}h ago`;
}

// ------------------------------------------------------------------ time

// Formatters are built once: toLocale*String with options builds a new one
// per call, which is most of the cost of drawing a chart's ticks or 100 rows.
const fmt = {
  hm: new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
  hms: new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }),
  day: new Intl.DateTimeFormat([], { month: "short", day: "numeric" }),
  dayYear: new Intl.DateTimeFormat([], { month: "short", day: "numeric", year: "numeric" }),
  full: new Intl.DateTimeFormat([], {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }),
};

const hm = (d) => fmt.hm.format(d);

const sameDay = (a, b) =>
  a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

export function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return fmt.hms.format(d);
}

function dayLabel(d, now = new Date()) {
  return (d.getFullYear() !== now.getFullYear() ? fmt.dayYear : fmt.day).format(d);
}

/** A row's time: "14:05:09" today, "Nov 26 14:05:09" another day (with the year if not this one). */
export function rowTime(iso, now = new Date()) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return sameDay(d, now) ? fmt.hms.format(d) : `${dayLabel(d, now)} ${fmt.hms.format(d)}`;
}

export function dateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return fmt.full.format(d);
}

/** "Nov 26 14:05" (with the year when it is not this one). */
export function shortDateTime(msOrIso) {
  const d = new Date(msOrIso);
  if (Number.isNaN(d.getTime())) return String(msOrIso);
  return `${dayLabel(d)} ${hm(d)}`;
}

/** A bucket's time range for tooltips: "Nov 26 14:20 – 14:40", both dates when it spans days. */
export function timeRange(startMs, endMs) {
  const a = new Date(startMs);
  const lastMoment = new Date(endMs - 1);
  if (sameDay(a, lastMoment)) return `${shortDateTime(startMs)} – ${hm(new Date(endMs))}`;
  return `${shortDateTime(startMs)} – ${shortDateTime(endMs)}`;
}

/** Chart axis label: the date at local midnight (or on day-wide ticks), else the time. */
export function axisLabel(msec, dayTicks) {
  const d = new Date(msec);
  if (dayTicks || (d.getHours() === 0 && d.getMinutes() === 0)) return dayLabel(d);
  return hm(d);
}

/** <input type="datetime-local"> value (local time) from epoch ms, and back. */
export function toLocalInput(msec) {
  if (msec === null || msec === undefined) return "";
  const d = new Date(msec);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(value) {
  if (!value) return null;
  const t = new Date(value).getTime(); // a datetime-local value parses as local time
  return Number.isNaN(t) ? null : t;
}

/** Microseconds since the epoch from a server timestamp (sub-millisecond digits kept, for ordering). */
export function tsKey(iso) {
  const msec = Date.parse(iso);
  if (Number.isNaN(msec)) return 0;
  const frac = /\.(\d+)/.exec(iso);
  const micros = frac ? Number((frac[1] + "000000").slice(3, 6)) : 0;
  return msec * 1000 + micros;
}

// ------------------------------------------------------------------ colour

// A fixed palette keeps agent colours distinct on the dark background; a
// stable hash of the name picks one, so an agent keeps its colour everywhere
// and across reloads.
export const PALETTE = [
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
  if (missing(successRate)) return "none";
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
