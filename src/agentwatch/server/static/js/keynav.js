// One tab stop for a list of rows (the WAI-ARIA "roving tabindex"): Tab
// enters the list on one row, the arrow keys, Home/End and PageUp/PageDown
// move between rows, Enter or Space opens the row. Used by the feed, the
// explorer, the breakdown, the session view and the waterfall.

const PAGE = 10;

export class Roving {
  /**
   * @param container element holding the rows
   * @param selector  CSS selector of a row (each with data-id or data-name)
   * @param onActivate fn(row, event) on click, Enter or Space
   */
  constructor(container, selector, onActivate) {
    this.container = container;
    this.selector = selector;
    this.onActivate = onActivate;
    this.current = null; // key of the row that holds the tab stop
    container.addEventListener("keydown", (e) => this._key(e));
    container.addEventListener("focusin", (e) => {
      const row = this._row(e.target);
      if (row) this._setCurrent(row);
    });
    container.addEventListener("click", (e) => {
      const row = this._row(e.target);
      if (!row) return;
      const control = e.target.closest("button, a, input, select, textarea");
      if (control && control !== row && row.contains(control)) return; // it handles its own click
      this._setCurrent(row);
      this.onActivate(row, e);
    });
  }

  _row(el) {
    const row = el instanceof Element ? el.closest(this.selector) : null;
    return row && this.container.contains(row) ? row : null;
  }

  rows() {
    return [...this.container.querySelectorAll(this.selector)];
  }

  key(row) {
    return row.dataset.id ?? row.dataset.name ?? null;
  }

  _setCurrent(row) {
    this.current = this.key(row);
    for (const r of this.rows()) r.tabIndex = r === row ? 0 : -1;
  }

  /** Re-render through `fn`; the tab stop (and focus, if a row had it) stays on the same row. */
  update(fn) {
    const active = document.activeElement;
    const hadFocus = active instanceof Element && this._row(active) === active;
    fn();
    const rows = this.rows();
    const cur = rows.find((r) => this.key(r) === this.current) || rows[0];
    for (const r of rows) r.tabIndex = r === cur ? 0 : -1;
    if (hadFocus && cur && document.activeElement !== cur) cur.focus({ preventScroll: true });
  }

  /** Give the tab stop (and focus) to the row with this key, if present. */
  focusKey(key) {
    const row = this.rows().find((r) => this.key(r) === key);
    if (row) {
      this._setCurrent(row);
      row.focus();
    }
    return Boolean(row);
  }

  _key(e) {
    const row = this._row(e.target);
    if (!row || row !== e.target) return; // keys inside a row's own controls are theirs
    const rows = this.rows();
    const i = rows.indexOf(row);
    let j;
    switch (e.key) {
      case "ArrowDown":
        j = Math.min(i + 1, rows.length - 1);
        break;
      case "ArrowUp":
        j = Math.max(i - 1, 0);
        break;
      case "Home":
        j = 0;
        break;
      case "End":
        j = rows.length - 1;
        break;
      case "PageDown":
        j = Math.min(i + PAGE, rows.length - 1);
        break;
      case "PageUp":
        j = Math.max(i - PAGE, 0);
        break;
      case "Enter":
      case " ":
        e.preventDefault();
        this.onActivate(row, e);
        return;
      default:
        return;
    }
    e.preventDefault();
    this._setCurrent(rows[j]);
    rows[j].focus();
    rows[j].scrollIntoView({ block: "nearest" });
  }
}
