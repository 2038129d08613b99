// Draws KSM's red-black trees. The API lists a tree in order (content order)
// with each element's depth; in-order positions and depths determine the
// binary tree: a node's parent is the nearest node at depth - 1 reachable
// without crossing a shallower node (to the left: it is that node's right
// child; to the right: its left child).
import { s } from "./dom.js";

export function parents(depths) {
  const parent = depths.map(() => -1);
  for (let i = 0; i < depths.length; i++) {
    const d = depths[i];
    if (d === 0) continue;
    for (let j = i - 1; j >= 0 && depths[j] >= d - 1; j--) {
      if (depths[j] === d - 1) {
        parent[i] = j;
        break;
      }
    }
    if (parent[i] >= 0) continue;
    for (let j = i + 1; j < depths.length && depths[j] >= d - 1; j++) {
      if (depths[j] === d - 1) {
        parent[i] = j;
        break;
      }
    }
  }
  return parent;
}

const BOX_W = 236;
const GAP_X = 14;
const LINE_H = 14;
const GAP_Y = 34;

// nodes: [{depth, lines: [string...], classes: "css classes", testid, attrs}]
// Returns an <svg> with one <g class="tree-node ..."> per node.
export function drawTree(nodes, { testid } = {}) {
  if (nodes.length === 0) return null;
  const par = parents(nodes.map((n) => n.depth));
  const heights = nodes.map((n) => 10 + LINE_H * n.lines.length);
  const maxDepth = Math.max(...nodes.map((n) => n.depth));
  const rowH = [];
  for (let d = 0; d <= maxDepth; d++)
    rowH.push(Math.max(0, ...nodes.filter((n) => n.depth === d).map((n, i) => 10 + LINE_H * n.lines.length)));
  const rowY = [];
  let y = 6;
  for (let d = 0; d <= maxDepth; d++) {
    rowY.push(y);
    y += rowH[d] + GAP_Y;
  }
  const width = nodes.length * (BOX_W + GAP_X) + GAP_X;
  const svg = s("svg", {
    class: "tree",
    width,
    height: y - GAP_Y + 8,
    viewBox: `0 0 ${width} ${y - GAP_Y + 8}`,
    "data-testid": testid,
  });
  const pos = nodes.map((n, i) => ({ x: GAP_X + i * (BOX_W + GAP_X), y: rowY[n.depth] }));
  nodes.forEach((n, i) => {
    if (par[i] < 0) return;
    const p = pos[par[i]];
    svg.append(
      s("line", {
        class: "tree-edge",
        x1: p.x + BOX_W / 2,
        y1: p.y + heights[par[i]],
        x2: pos[i].x + BOX_W / 2,
        y2: pos[i].y,
      }),
    );
  });
  nodes.forEach((n, i) => {
    const g = s("g", {
      class: `tree-node ${n.classes ?? ""}`,
      transform: `translate(${pos[i].x},${pos[i].y})`,
      "data-testid": n.testid,
      ...(n.attrs ?? {}),
    });
    g.append(s("rect", { width: BOX_W, height: heights[i], rx: 5, ry: 5 }));
    n.lines.forEach((line, k) =>
      g.append(
        s("text", { x: 7, y: 16 + k * LINE_H, class: k === 0 ? "title" : "" }, line),
      ),
    );
    svg.append(g);
  });
  return svg;
}
