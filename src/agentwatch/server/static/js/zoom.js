// Drag across a chart to zoom: a Chart.js plugin that draws the selected
// band while the mouse is down and hands the band's time range to `onZoom`.

const MIN_PX = 8; // a shorter drag is a click, not a selection

export function dragZoom(onZoom) {
  return {
    id: "aw-drag-zoom",
    afterEvent(chart, args) {
      const e = args.event;
      const area = chart.chartArea;
      if (!area) return;
      const sel = chart.$zoom || (chart.$zoom = { x0: null, x1: null });
      const clamp = (x) => Math.min(Math.max(x, area.left), area.right);
      if (e.type === "mousedown") {
        if (e.x < area.left || e.x > area.right || e.y < area.top || e.y > area.bottom) return;
        sel.x0 = sel.x1 = e.x;
        // The button may be released outside the canvas: listen on the window.
        window.addEventListener("mouseup", () => finish(chart, onZoom), { once: true });
      } else if (e.type === "mousemove" && sel.x0 !== null) {
        sel.x1 = clamp(e.x);
        args.changed = true;
      }
    },
    afterDraw(chart) {
      const sel = chart.$zoom;
      if (!sel || sel.x0 === null || Math.abs(sel.x1 - sel.x0) < 2) return;
      const { ctx, chartArea: a } = chart;
      const left = Math.min(sel.x0, sel.x1);
      const width = Math.abs(sel.x1 - sel.x0);
      ctx.save();
      ctx.fillStyle = "rgba(45, 212, 191, 0.14)";
      ctx.strokeStyle = "rgba(45, 212, 191, 0.7)";
      ctx.fillRect(left, a.top, width, a.bottom - a.top);
      ctx.strokeRect(left + 0.5, a.top + 0.5, width - 1, a.bottom - a.top - 1);
      ctx.restore();
    },
  };
}

function finish(chart, onZoom) {
  const sel = chart.$zoom;
  if (!sel || sel.x0 === null) return;
  const lo = Math.min(sel.x0, sel.x1);
  const hi = Math.max(sel.x0, sel.x1);
  sel.x0 = sel.x1 = null;
  chart.draw();
  if (hi - lo < MIN_PX) return;
  const x = chart.scales.x;
  onZoom(x.getValueForPixel(lo), x.getValueForPixel(hi));
}
