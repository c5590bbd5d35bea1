// The live stream (/api/stream, Server-Sent Events), shared by every view:
// one EventSource, its state (connecting, connected, reconnecting) and the
// events it brings, handed to whoever subscribed.

import { STREAM_URL } from "./api.js";

// Reconnect delay when the browser gives up on the stream (the server also
// sends `retry: 3000` for the browser's own reconnects).
const RECONNECT_MS = 3000;

export class LiveStream {
  constructor(url = STREAM_URL) {
    this.url = url;
    this.source = null;
    this.timer = null;
    this.hadError = false;
    this.status = "connecting";
    this.received = 0;
    this.eventFns = new Set();
    this.statusFns = new Set();
  }

  /** fn(event) for every event streamed. */
  onEvent(fn) {
    this.eventFns.add(fn);
  }

  /** fn(status, recovered): recovered is true when connected again after a drop. */
  onStatus(fn) {
    this.statusFns.add(fn);
  }

  _status(status, recovered = false) {
    this.status = status;
    for (const fn of this.statusFns) fn(status, recovered);
  }

  connect() {
    clearTimeout(this.timer);
    this.source?.close();
    const src = new EventSource(this.url);
    this.source = src;
    src.onopen = () => {
      const recovered = this.hadError;
      this.hadError = false;
      this._status("connected", recovered);
    };
    src.onmessage = (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        return; // not an event (comments never reach onmessage; be lenient anyway)
      }
      if (!ev || !ev.id) return;
      this.received += 1;
      for (const fn of this.eventFns) fn(ev);
    };
    src.onerror = () => {
      this.hadError = true;
      this._status("reconnecting");
      // CONNECTING: the browser retries by itself (server-sent `retry: 3000`).
      // CLOSED: it gave up (e.g. an HTTP error while the server restarts); retry ourselves.
      if (src.readyState === EventSource.CLOSED) {
        src.close();
        this.timer = setTimeout(() => this.connect(), RECONNECT_MS);
      }
    };
  }
}
