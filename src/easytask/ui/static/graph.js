// The dependency graph of a group: laid out by dagre, drawn as SVG, coloured live from the
// member table the live channel keeps current (rows with data-node and data-state).
const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function draw(svg, data) {
  const g = new window.dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 70, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of data.nodes) g.setNode(n.id, { width: Math.max(120, n.label.length * 7.5 + 20), height: 46 });
  data.edges.forEach((e, i) => g.setEdge(e.from, e.to, { width: 16, height: 16, labelpos: "c" }, `e${i}`));
  window.dagre.layout(g);
  const size = g.graph();
  svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
  svg.setAttribute("width", String(Math.min(size.width, 1400)));
  const defs = el("defs", {}, svg);
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" }, defs);
  el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }, marker);
  const edges = el("g", { class: "edges" }, svg);
  data.edges.forEach((e, i) => {
    const info = g.edge(e.from, e.to, `e${i}`);
    const d = info.points.map((p, j) => `${j ? "L" : "M"} ${p.x} ${p.y}`).join(" ");
    const group = el("g", { class: "edge", "data-from": e.from, "data-to": e.to, "data-letter": e.letter }, edges);
    el("path", { d, "marker-end": "url(#arrow)" }, group);
    el("circle", { cx: info.x, cy: info.y, r: "9", class: "edge-label-bg" }, group);
    const label = el("text", { x: info.x, y: info.y + 4, "text-anchor": "middle", class: "edge-label" }, group);
    label.textContent = e.letter;
    el("title", {}, group).textContent = `${e.to} waits for ${e.from} in state ${e.letter}`;
  });
  const nodes = el("g", { class: "nodes" }, svg);
  for (const n of data.nodes) {
    const pos = g.node(n.id);
    const link = el("a", { href: n.href, class: `node kind-${n.kind}`, "data-node": n.id }, nodes);
    el("rect", { x: pos.x - pos.width / 2, y: pos.y - pos.height / 2, width: pos.width, height: pos.height, rx: "6" }, link);
    const name = el("text", { x: pos.x, y: pos.y - 4, "text-anchor": "middle", class: "node-name" }, link);
    name.textContent = n.label;
    const state = el("text", { x: pos.x, y: pos.y + 13, "text-anchor": "middle", class: "node-state" }, link);
    state.textContent = n.state || "no run";
  }
}

function colour(svg, table) {
  const states = new Map();
  for (const row of table.querySelectorAll("[data-node]")) states.set(row.dataset.node, row.dataset.state || "");
  const ended = new Set(["FAILED", "TERMINATED", "REJECTED"]); // ended without success
  const failed = new Set([...states].filter(([, s]) => ended.has(s)).map(([id]) => id));
  for (const node of svg.querySelectorAll("a.node")) {
    const s = states.get(node.dataset.node) || "";
    node.setAttribute("class", `node ${node.classList.contains("kind-group") ? "kind-group" : "kind-task"} state-fill-${s || "NONE"}`);
    node.querySelector(".node-state").textContent = s || "no run";
    const upstream = failed.has(node.dataset.node) && svg.querySelector(`.edge[data-from="${CSS.escape(node.dataset.node)}"]`);
    node.classList.toggle("failed-upstream", Boolean(upstream));
  }
  for (const edge of svg.querySelectorAll(".edge")) {
    edge.classList.toggle("edge-failed", failed.has(edge.dataset.from));
  }
}

function setup() {
  const svg = document.getElementById("graph");
  const source = document.getElementById("graph-data");
  const table = document.querySelector("[data-graph-states]");
  if (!svg || !source || !table || !window.dagre) return;
  draw(svg, JSON.parse(source.textContent));
  colour(svg, table);
  new MutationObserver(() => colour(svg, table)).observe(table, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  svg.dataset.ready = "true";
}

setup();
