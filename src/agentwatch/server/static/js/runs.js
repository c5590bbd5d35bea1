// Task-run totals (cost, tokens, steps of the whole subtree) for the rows
// that show runs: the feed, the explorer. Requests are batched and cached;
// a run's totals are final once it is stored (its event comes last).

import * as api from "./api.js";

const BATCH = 100; // ids per request (the API takes up to 200)
const WAIT_MS = 50; // gather the rows of one render into one request

export class RunTotals {
  constructor() {
    this.cache = new Map(); // run id -> totals
    this.waiting = new Map(); // run id -> [resolve]
    this.timer = null;
  }

  /** Totals of a run, from the cache or the next batch; null when the API does not know it. */
  get(id) {
    if (this.cache.has(id)) return Promise.resolve(this.cache.get(id));
    return new Promise((resolve) => {
      if (!this.waiting.has(id)) this.waiting.set(id, []);
      this.waiting.get(id).push(resolve);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this._flush(), WAIT_MS);
    });
  }

  peek(id) {
    return this.cache.get(id);
  }

  async _flush() {
    const ids = [...this.waiting.keys()];
    const waiting = new Map(this.waiting);
    this.waiting.clear();
    for (let i = 0; i < ids.length; i += BATCH) {
      const part = ids.slice(i, i + BATCH);
      let runs = {};
      try {
        runs = (await api.runTotals(part)).runs || {};
      } catch (err) {
        console.warn("run totals failed", err);
      }
      for (const id of part) {
        const t = runs[id] || null;
        if (t) this.cache.set(id, t);
        for (const resolve of waiting.get(id) || []) resolve(t);
      }
    }
  }
}

export const runTotals = new RunTotals();
