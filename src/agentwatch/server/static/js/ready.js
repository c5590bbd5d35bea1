// Readiness marks for tests and the benchmark: each overview panel marks
// itself once it has painted real data; when all have, <html data-ready="true">
// and performance marks give the timings ("agentwatch:<part>", ":ready",
// ":painted" once the frame holding them was produced).

const root = document.documentElement;
const done = new Set();
export const READY_PARTS = ["cards", "cost-chart", "latency-chart", "requests-chart", "breakdown"];

export const afterNextFrame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

// Resolved when the cards, charts and breakdown have first drawn (or the
// empty state shows). The feed's rows are rendered after that, so their
// layout does not delay the first meaningful paint.
export const firstDraw = {};
firstDraw.promise = new Promise((resolve) => {
  firstDraw.resolve = resolve;
});

export function markReady(part) {
  if (done.has(part)) return;
  done.add(part);
  performance.mark(`agentwatch:${part}`);
  root.dataset[`ready${part.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`] = "true";
  if (READY_PARTS.every((p) => done.has(p)) && root.dataset.ready !== "true") {
    performance.mark("agentwatch:ready");
    root.dataset.ready = "true";
    afterNextFrame().then(() => {
      performance.mark("agentwatch:painted");
      root.dataset.painted = "true";
    });
    firstDraw.resolve();
  }
}

/** The fresh-server state is drawn: the page is as ready as it gets. */
export function markEmpty() {
  performance.mark("agentwatch:ready");
  root.dataset.ready = "empty";
  firstDraw.resolve();
}

/** Leaving the empty state: readiness is earned again by the panels. */
export function resetReady() {
  if (root.dataset.ready === "empty") delete root.dataset.ready;
}
