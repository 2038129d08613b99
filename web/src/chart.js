// The five KSM counters over time: one line each, one sample per refresh
// (after each step on a MANUAL machine; every second on a REALTIME one).
import { s, h } from "./dom.js";

export const COUNTERS = [
  ["pagesShared", "pages_shared"],
  ["pagesSharing", "pages_sharing"],
  ["pagesUnshared", "pages_unshared"],
  ["pagesVolatile", "pages_volatile"],
  ["fullScans", "full_scans"],
];

export function drawChart(samples) {
  const W = 420;
  const H = 130;
  const P = 26;
  const svg = s("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  if (samples.length === 0) return svg;
  const max = Math.max(1, ...samples.flatMap((x) => COUNTERS.map(([k]) => Number(x[k]))));
  const n = Math.max(samples.length - 1, 1);
  const X = (i) => P + ((W - 2 * P) * i) / n;
  const Y = (v) => H - P - ((H - 2 * P) * Number(v)) / max;
  svg.append(s("line", { class: "axis", x1: P, y1: H - P, x2: W - P, y2: H - P }));
  svg.append(s("line", { class: "axis", x1: P, y1: P, x2: P, y2: H - P }));
  svg.append(s("text", { x: 2, y: P + 4, class: "axis-label" }, String(max)));
  svg.append(s("text", { x: 2, y: H - P + 4, class: "axis-label" }, "0"));
  svg.append(s("text", { x: W - P - 60, y: H - 6, class: "axis-label" }, `${samples.length} samples`));
  COUNTERS.forEach(([k], c) => {
    const pts = samples.map((x, i) => `${X(i)},${Y(x[k])}`).join(" ");
    svg.append(s("polyline", { class: `series series-${c}`, points: pts }));
  });
  return svg;
}

export function legend() {
  return h(
    "div",
    { class: "legend" },
    COUNTERS.map(([, name], c) => h("span", { class: `key key-${c}` }, name)),
  );
}
