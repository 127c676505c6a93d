// A small inline SVG chart: bars of events delivered per received day, and a line of the lag of the
// last delivered file as the page saw it change. Each has a text table for screen readers.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// barChart draws points [{label, value}] as bars; title names it for assistive technology.
export function barChart(title, points, unit) {
  const w = 560, hgt = 180, pad = 36;
  const root = svg("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": title, class: "chart" });
  root.append(svg("title", {}, title));
  const max = Math.max(1, ...points.map((p) => p.value));
  const bw = points.length ? Math.min(60, (w - 2 * pad) / points.length - 8) : 0;
  root.append(svg("line", { x1: pad, y1: hgt - pad, x2: w - 8, y2: hgt - pad, class: "axis" }));
  if (points.length) root.append(svg("text", { x: 4, y: 14, class: "tick" }, `${max.toLocaleString()} ${unit}`));
  points.forEach((p, i) => {
    const x = pad + 4 + i * (bw + 8);
    const bh = ((hgt - 2 * pad) * p.value) / max;
    root.append(svg("rect", { x, y: hgt - pad - bh, width: bw, height: bh, class: "bar" }));
    root.append(svg("text", { x: x + bw / 2, y: hgt - pad - bh - 4, class: "value", "text-anchor": "middle" }, p.value.toLocaleString()));
    root.append(svg("text", { x: x + bw / 2, y: hgt - pad + 14, class: "tick", "text-anchor": "middle" }, p.label));
  });
  if (!points.length) root.append(svg("text", { x: w / 2, y: hgt / 2, class: "tick", "text-anchor": "middle" }, "nothing delivered yet"));
  return root;
}

// lineChart draws points [{t: Date, value}] as a line over time.
export function lineChart(title, points, unit) {
  const w = 560, hgt = 180, pad = 36;
  const root = svg("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": title, class: "chart" });
  root.append(svg("title", {}, title));
  root.append(svg("line", { x1: pad, y1: hgt - pad, x2: w - 8, y2: hgt - pad, class: "axis" }));
  if (!points.length) {
    root.append(svg("text", { x: w / 2, y: hgt / 2, class: "tick", "text-anchor": "middle" }, "no delivery seen yet"));
    return root;
  }
  const max = Math.max(...points.map((p) => p.value), 0.001);
  const t0 = points[0].t.getTime();
  const span = Math.max(1, points[points.length - 1].t.getTime() - t0);
  const xy = points.map((p) => [pad + ((w - pad - 16) * (p.t.getTime() - t0)) / span, hgt - pad - ((hgt - 2 * pad) * p.value) / max]);
  root.append(svg("polyline", { points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), class: "line" }));
  xy.forEach(([x, y]) => root.append(svg("circle", { cx: x, cy: y, r: 3, class: "dot" })));
  root.append(svg("text", { x: 4, y: 14, class: "tick" }, `${max.toFixed(1)} ${unit}`));
  root.append(svg("text", { x: pad, y: hgt - pad + 14, class: "tick" }, points[0].t.toISOString().slice(11, 19)));
  root.append(svg("text", { x: w - 8, y: hgt - pad + 14, class: "tick", "text-anchor": "end" }, points[points.length - 1].t.toISOString().slice(11, 19)));
  return root;
}
