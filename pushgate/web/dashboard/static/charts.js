// Charts drawn as SVG by our own code: stacked bars over time, lines over time, horizontal
// bars. Every data point is an element carrying data-series, data-value (and data-time) and a
// <title> tooltip, so a reader (or a test) can check what was drawn. Colours come from the
// stylesheet through the series-<name> classes.

import { h, s } from "./dom.js";

// Drawing units: text keeps its size when a chart is as wide as `width` on the screen.
const WIDTH = 640;
const HEIGHT = 220;
const MARGIN = { top: 12, right: 12, bottom: 26, left: 56 };
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
const plotWidth = (width) => width - MARGIN.left - MARGIN.right;

const seriesClass = (name) => "series-" + String(name).replace(/[^a-z0-9_-]/gi, "");

/** The smallest "nice" number (1, 2, 2.5, 5 × 10^n) at or above `value`. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function frame({ label, max: maxValue, format, times, timeLabel, width }) {
  const svg = s("svg", {
    class: "chart", viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": label,
    preserveAspectRatio: "xMidYMid meet",
  });
  const axes = s("g", { class: "axes" });
  for (const fraction of [0, 0.5, 1]) {
    const y = MARGIN.top + PLOT_H * (1 - fraction);
    axes.append(
      s("line", { class: "gridline", x1: MARGIN.left, x2: width - MARGIN.right, y1: y, y2: y }),
      s("text", { class: "tick", x: MARGIN.left - 6, y: y + 4, "text-anchor": "end" },
        format(maxValue * fraction)));
  }
  const picks = times.length <= 3 ? times.map((_, i) => i)
    : [0, Math.floor((times.length - 1) / 2), times.length - 1];
  for (const i of picks) {
    const x = MARGIN.left + plotWidth(width) * (i + 0.5) / times.length;
    axes.append(s("text", { class: "tick", x, y: HEIGHT - 8, "text-anchor": "middle" },
      timeLabel(times[i])));
  }
  svg.append(s("title", {}, label), axes);
  return svg;
}

function legend(names) {
  return h("ul", { class: "legend" }, names.map((name) =>
    h("li", {}, h("span", { class: "swatch " + seriesClass(name) }), name)));
}

function empty(label) {
  return h("p", { class: "note note-empty chart-empty", "data-chart": label },
    "No data in this period.");
}

/**
 * Bars over time, one stacked segment per series.
 * times: [Date], series: [{name, values: [number]}], format: value -> text.
 */
export function stackedBars({ label, times, series, format = String, timeLabel, width = WIDTH }) {
  const totals = times.map((_, i) => series.reduce((sum, x) => sum + (x.values[i] || 0), 0));
  if (!totals.some((t) => t > 0)) return empty(label);
  const max = niceMax(Math.max(...totals));
  const svg = frame({ label, max, format, times, timeLabel, width });
  const band = plotWidth(width) / times.length;
  const plot = s("g", { class: "plot" });
  times.forEach((when, i) => {
    let base = 0;
    for (const { name, values } of series) {
      const value = values[i] || 0;
      if (!value) continue;
      const height = PLOT_H * value / max;
      const y = MARGIN.top + PLOT_H * (1 - (base + value) / max);
      plot.append(s("rect", {
        class: "point bar " + seriesClass(name), x: MARGIN.left + i * band + band * 0.1,
        y, width: Math.max(band * 0.8, 1), height,
        "data-series": name, "data-value": value, "data-time": when.toISOString(),
      }, s("title", {}, `${timeLabel(when)} · ${name}: ${format(value)}`)));
      base += value;
    }
  });
  svg.append(plot);
  return h("figure", { class: "chart-box" }, svg, legend(series.map((x) => x.name)));
}

/** Lines over time, one per series; a null value is a gap. */
export function lines({
  label, times, series, format = String, timeLabel, max: fixedMax, width = WIDTH,
}) {
  const all = series.flatMap((x) => x.values).filter((v) => v !== null && v !== undefined);
  if (!all.length) return empty(label);
  const max = fixedMax ?? niceMax(Math.max(...all));
  const svg = frame({ label, max, format, times, timeLabel, width });
  const plot = s("g", { class: "plot" });
  const xAt = (i) => MARGIN.left + plotWidth(width) * (i + 0.5) / times.length;
  const yAt = (v) => MARGIN.top + PLOT_H * (1 - Math.min(v, max) / max);
  for (const { name, values } of series) {
    let path = "";
    let drawing = false;
    values.forEach((v, i) => {
      if (v === null || v === undefined) { drawing = false; return; }
      path += `${drawing ? "L" : "M"}${xAt(i).toFixed(1)},${yAt(v).toFixed(1)} `;
      drawing = true;
    });
    plot.append(s("path", { class: "line " + seriesClass(name), d: path.trim() }));
    values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      plot.append(s("circle", {
        class: "point dot " + seriesClass(name), cx: xAt(i), cy: yAt(v), r: 3,
        "data-series": name, "data-value": v, "data-time": times[i].toISOString(),
      }, s("title", {}, `${timeLabel(times[i])} · ${name}: ${format(v)}`)));
    });
  }
  svg.append(plot);
  return h("figure", { class: "chart-box" }, svg, legend(series.map((x) => x.name)));
}

/** One horizontal bar per item: [{name, value}]. */
export function hbars({ label, items, format = String }) {
  if (!items.length) return empty(label);
  const rowHeight = 28;
  const left = 110;
  const height = items.length * rowHeight + 8;
  const max = niceMax(Math.max(...items.map((x) => x.value), 0));
  const svg = s("svg", {
    class: "chart hbars", viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": label,
  }, s("title", {}, label));
  items.forEach(({ name, value }, i) => {
    const y = 4 + i * rowHeight;
    const width = (WIDTH - left - 90) * value / max;
    svg.append(
      s("text", { class: "tick", x: left - 8, y: y + 17, "text-anchor": "end" }, name),
      s("rect", { class: "track", x: left, y: y + 4, width: WIDTH - left - 90, height: 18 }),
      s("rect", {
        class: "point bar " + seriesClass(name), x: left, y: y + 4, width: Math.max(width, 0),
        height: 18, "data-series": name, "data-value": value,
      }, s("title", {}, `${name}: ${format(value)}`)),
      s("text", { class: "value", x: left + Math.max(width, 0) + 6, y: y + 17 }, format(value)));
  });
  return h("figure", { class: "chart-box" }, svg);
}
