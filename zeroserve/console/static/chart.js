// Small SVG time-series charts (no library): lines or steps over time, one or two y axes, shaded bands.
// SVG rather than canvas: it scales with the page, and screen readers and tests can read what is drawn.

import { clock, svg } from "./dom.js";

const W = 720, H = 200, PAD = { left: 44, right: 48, top: 12, bottom: 24 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * step) return m * step;
  return 10 * step;
}

function pathOf(points, x, y, step) {
  let d = "";
  let previous = null;
  for (const [t, v] of points) {
    if (v === null || v === undefined) { previous = null; continue; }
    if (previous === null) d += `M${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    else if (step) d += `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`;
    else d += `L${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    previous = v;
  }
  return d;
}

// series: [{name, values: [[time, value|null]], css, step, axis: "left"|"right", unit}]
// bands: [[from, to]] times to shade (panic), label: what the chart shows (for screen readers).
export function timeChart({ label, series, bands = [], from, to }) {
  const x = (t) => PAD.left + ((t - from) / Math.max(to - from, 1)) * (W - PAD.left - PAD.right);
  const axes = {};
  for (const side of ["left", "right"]) {
    const values = series.filter((s) => (s.axis || "left") === side).flatMap((s) => s.values.map((p) => p[1]));
    const max = niceMax(Math.max(0, ...values.filter((v) => v !== null && v !== undefined)));
    axes[side] = { max, y: (v) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom) };
  }
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label },
    svg("title", {}, label));
  for (const [start, end] of bands) {
    root.append(svg("rect", { class: "band", x: x(start), y: PAD.top, width: Math.max(x(end) - x(start), 2),
                              height: H - PAD.top - PAD.bottom }));
  }
  for (const fraction of [0, 0.5, 1]) {
    const yy = H - PAD.bottom - fraction * (H - PAD.top - PAD.bottom);
    root.append(svg("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy }));
    const leftUnit = series.find((s) => (s.axis || "left") === "left");
    const rightUnit = series.find((s) => s.axis === "right");
    if (leftUnit) root.append(svg("text", { class: "tick", x: PAD.left - 4, y: yy + 4, "text-anchor": "end" },
      formatTick(axes.left.max * fraction)));
    if (rightUnit) root.append(svg("text", { class: "tick", x: W - PAD.right + 4, y: yy + 4 },
      `${formatTick(axes.right.max * fraction)}${rightUnit.unit || ""}`));
  }
  root.append(svg("text", { class: "tick", x: PAD.left, y: H - 6 }, clock(from)));
  root.append(svg("text", { class: "tick", x: W - PAD.right, y: H - 6, "text-anchor": "end" }, clock(to)));
  for (const s of series) {
    const y = axes[s.axis || "left"].y;
    root.append(svg("path", { class: `line ${s.css}`, d: pathOf(s.values, x, y, s.step), "data-series": s.name }));
  }
  return root;
}

function formatTick(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

// Periods where `panicking` held, as [from, to] times, from points one `interval` apart.
export function panicBands(points, interval) {
  const bands = [];
  for (const p of points) {
    const last = bands[bands.length - 1];
    if (!p.panicking) continue;
    if (last && p.time - last[1] <= interval * 1.5) last[1] = p.time;
    else bands.push([p.time - interval, p.time]);
  }
  return bands;
}
