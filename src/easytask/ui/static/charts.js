// EasyTask charts: a task's run durations (its last runs, the median, failures marked), drawn
// by the vendored uPlot, which is loaded only on a page that has a chart. The data comes from a
// JSON data block next to the chart: the Content-Security-Policy runs no inline script.
const charts = new Map(); // chart box -> uPlot instance

function loadUplot(src) {
  if (window.uPlot) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(script);
  });
}

function colours() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { muted: v("--muted"), line: v("--line"), accent: v("--accent"), failed: v("--s-failed") };
}

function seconds(value) {
  if (value < 60) return `${Number(value.toFixed(1))}s`;
  const m = Math.floor(value / 60);
  return m < 60 ? `${m}m ${Math.round(value % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}

function draw(box) {
  const block = document.querySelector(`[data-chart-data="${CSS.escape(box.dataset.chart)}"]`);
  if (!block) return;
  const data = JSON.parse(block.textContent);
  const xs = data.points.map((p) => p[0]);
  const ys = data.points.map((p) => p[1]);
  const failed = data.points.map((p) => (p[2] ? p[1] : null));
  const median = xs.map(() => data.median);
  const c = colours();
  const axis = { stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line, width: 1 } };
  const opts = {
    width: Math.max(280, box.clientWidth),
    height: 220,
    scales: {
      // One run alone: an hour either side, not uPlot's span of years around a single time.
      x: { time: true, range: (u, min, max) => (min === max ? [min - 3600, max + 3600] : [min, max]) },
      y: { range: (u, min, max) => [0, Math.max(max * 1.15, 1)] },
    },
    axes: [
      axis,
      { ...axis, size: 60, values: (u, ticks) => ticks.map(seconds) },
    ],
    series: [
      { label: "Started" },
      { label: "Duration", stroke: c.accent, width: 1.5, value: (u, v) => (v == null ? "–" : seconds(v)),
        points: { show: true, size: 6, fill: c.accent, stroke: c.accent } },
      { label: "Failed", stroke: c.failed, width: 0, paths: () => null,
        value: (u, v) => (v == null ? "–" : seconds(v)),
        points: { show: true, size: 12, width: 2, fill: c.failed, stroke: c.failed } },
      { label: "Median", stroke: c.muted, width: 1.5, dash: [6, 4], points: { show: false },
        value: (u, v) => (v == null ? "–" : seconds(v)) },
    ],
  };
  charts.get(box)?.destroy();
  box.replaceChildren();
  charts.set(box, new window.uPlot(opts, [xs, ys, failed, median], box));
}

function setup() {
  const boxes = [...document.querySelectorAll("[data-chart]")];
  if (!boxes.length) return;
  loadUplot(boxes[0].dataset.uplot).then(() => {
    for (const box of boxes) draw(box);
    // Colours follow the theme; the width follows the page.
    new MutationObserver(() => { for (const box of boxes) draw(box); })
      .observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    const resized = new ResizeObserver(() => {
      for (const box of boxes) {
        const chart = charts.get(box);
        const width = Math.max(280, box.clientWidth);
        if (chart && Math.abs(chart.width - width) > 4) chart.setSize({ width, height: 220 });
      }
    });
    for (const box of boxes) resized.observe(box);
  }, (err) => console.error(err));
}

setup();
