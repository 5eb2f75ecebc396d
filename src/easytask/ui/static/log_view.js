// EasyTask log viewer: each stream shown through a bounded window of its stored copy, paged by
// byte offset from the server (Start, Earlier, Later, End); live output appended while the
// window reaches the end; follow mode (scrolling up pauses it); tabs or side by side; matches
// of the search marked. Output is always text: ansi_up escapes it and only adds colour classes.
import { AnsiUp } from "./vendor/ansi_up/ansi_up.js?v=6.0.6";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const panes = new Map(); // stream name -> pane state
let box = null;

function converter() {
  const ansi = new AnsiUp();
  ansi.use_classes = true;
  ansi.escape_html = true;
  ansi.url_allowlist = Object.create(null); // task output never becomes a link (no inherited keys)
  return ansi;
}

/** The follow specs the live channel subscribes with: one per log box still to follow. */
export function logPanes() {
  const out = [];
  for (const el of document.querySelectorAll("[data-log]")) {
    if (el.dataset.final === "true" && el.dataset.followed !== "live") continue;
    const spec = { run_id: el.dataset.log };
    for (const pre of el.querySelectorAll("pre[data-stream]")) {
      spec[pre.dataset.stream] = Number(pre.dataset.offset || 0);
    }
    out.push(spec);
  }
  return out;
}

/** A live-channel message about output: a piece of a stream, or the end of following. */
export function applyLog(msg) {
  if (msg.log_end !== undefined) {
    const el = document.querySelector(`[data-log="${CSS.escape(msg.log_end)}"]`);
    if (el) { el.dataset.final = "true"; el.dataset.followed = "done"; }
    if (el === box) ended();
    return;
  }
  if (!box || box.dataset.log !== msg.log) return;
  const pane = panes.get(msg.stream);
  if (!pane) return;
  const from = pane.followFrom; // live pieces follow on from what the channel was asked for
  pane.followFrom = Math.max(pane.followFrom, msg.end);
  pane.pre.dataset.offset = String(pane.followFrom);
  pane.size = Math.max(pane.size, msg.end);
  if (pane.stop >= from && pane.stop < msg.end && !pane.loading) {
    const skip = pane.stop - from;
    const text = skip ? decoder.decode(encoder.encode(msg.text).slice(skip)) : msg.text;
    pane.pre.insertAdjacentHTML("beforeend", pane.ansi.ansi_to_html(text));
    pane.text += text;
    pane.stop = msg.end;
    if (pane.text.length > 2 * windowSize()) trim(pane);
    if (following()) bottom(pane);
  }
  show(pane);
}

function windowSize() {
  return Number(box?.dataset.window || 262144);
}

function following() {
  const follow = document.querySelector("[data-follow]");
  return follow ? follow.checked && !follow.disabled : false;
}

function followState() {
  const el = document.querySelector("[data-follow-state]");
  const follow = document.querySelector("[data-follow]");
  if (!el || !follow) return;
  el.textContent = follow.disabled ? "run ended" : follow.checked ? "following" : "paused";
  el.dataset.state = follow.disabled ? "ended" : follow.checked ? "on" : "off";
}

function pause() {
  const follow = document.querySelector("[data-follow]");
  if (follow && follow.checked) { follow.checked = false; followState(); }
}

function ended() {
  const follow = document.querySelector("[data-follow]");
  if (follow) { follow.checked = false; follow.disabled = true; }
  followState();
}

/** Keep the page's share of a followed stream bounded: drop whole lines from the front. */
function trim(pane) {
  const keep = windowSize();
  let cut = pane.text.indexOf("\n", pane.text.length - keep);
  cut = cut < 0 ? pane.text.length - keep : cut + 1;
  pane.start += encoder.encode(pane.text.slice(0, cut)).length;
  render(pane, [[pane.text.slice(cut), false]]);
}

const CHUNK_LINES = 64;

/** The window's pieces as HTML in runs of lines (``span.chunk``): the browser lays out only
 * the runs in view, so a window full of escape sequences still opens at once. */
function render(pane, pieces) {
  pane.ansi = converter();
  const out = [];
  let html = "";
  let lines = 0;
  let text = "";
  for (const [piece, marked] of pieces) {
    text += piece;
    if (marked) { html += `<mark>${pane.ansi.ansi_to_html(piece)}</mark>`; continue; }
    let rest = piece;
    for (;;) {
      let cut = -1;
      for (let n = lines; n < CHUNK_LINES; n += 1) {
        cut = rest.indexOf("\n", cut + 1);
        if (cut < 0) break;
      }
      if (cut < 0) break;
      html += pane.ansi.ansi_to_html(rest.slice(0, cut + 1));
      out.push(`<span class="chunk">${html}</span>`);
      html = "";
      lines = 0;
      rest = rest.slice(cut + 1);
    }
    html += pane.ansi.ansi_to_html(rest);
    lines += (rest.match(/\n/g) || []).length;
  }
  if (html) out.push(`<span class="chunk">${html}</span>`);
  pane.text = text;
  pane.pre.innerHTML = out.join("");
}

function scrollTo(pane, top) {
  pane.pre.scrollTop = top;
  pane.lastTop = pane.pre.scrollTop;
}

function bottom(pane) {
  scrollTo(pane, pane.pre.scrollHeight);
  // Runs of lines laid out only once in view may change the height: once more when drawn.
  requestAnimationFrame(() => scrollTo(pane, pane.pre.scrollHeight));
}

function firstMark(pane) {
  const mark = pane.pre.querySelector("mark");
  if (!mark) return false;
  const pre = pane.pre;
  const y = mark.getBoundingClientRect().top - pre.getBoundingClientRect().top + pre.scrollTop;
  scrollTo(pane, Math.max(0, y - pre.clientHeight / 3));
  return true;
}

/** The pane's range, size, cut notes and which moves make sense now. */
function show(pane) {
  const section = pane.section;
  const first = pane.start <= 0;
  const last = pane.stop >= pane.size;
  section.querySelector("[data-range]").textContent =
    `bytes ${pane.start}–${pane.stop} of ${pane.size}`;
  const size = section.querySelector("[data-size]");
  if (size) size.textContent = `${pane.size} bytes`;
  // The links also work opened in a new tab: the page shows the window at ``at`` (less a
  // quarter window of context), so they point at the same windows as the buttons.
  const w = windowSize();
  const at = { start: 0, earlier: Math.max(0, pane.start - w + w / 4), later: pane.stop + w / 4 };
  for (const [where, off] of [["start", first], ["earlier", first], ["later", last], ["end", last]]) {
    const link = section.querySelector(`[data-go="${where}"]`);
    if (!link) continue;
    link.setAttribute("aria-disabled", off ? "true" : "false");
    const query = where === "end" ? "" : `?${new URLSearchParams({ stream: pane.stream, at: String(at[where]) })}`;
    link.href = `${location.pathname}${query}#log-${pane.stream}`;
  }
  for (const [where, bytes] of [["before", pane.cutBefore], ["after", pane.cutAfter]]) {
    const note = section.querySelector(`[data-cut="${where}"]`);
    if (!note) continue;
    note.hidden = !bytes;
    note.textContent = `${bytes} bytes cut ${where} this (the scheduler keeps the first and last 5 MiB)`;
  }
  pane.pre.dataset.start = String(pane.start);
  pane.pre.dataset.stop = String(pane.stop);
  pane.pre.dataset.sizeBytes = String(pane.size);
}

async function fetchWindow(pane, params) {
  const query = new URLSearchParams({ ...params, length: String(windowSize()) });
  if (box.dataset.q) query.set("q", box.dataset.q);
  const url = `/runs/${encodeURIComponent(box.dataset.log)}/log/${pane.stream}/window?${query}`;
  const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (answer.redirected || answer.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error("logged out");
  }
  if (!answer.ok) throw new Error(`window of ${pane.stream}: HTTP ${answer.status}`);
  return answer.json();
}

/** Move a pane's window: to the start, the bytes before or after it, or the end. */
async function go(pane, where) {
  if (pane.loading) return;
  if (where !== "end") pause();
  const params = {
    start: { offset: "0" },
    earlier: { before: String(pane.start) },
    later: { offset: String(pane.stop) },
    end: { before: "" },
  }[where];
  pane.loading = true;
  pane.section.setAttribute("aria-busy", "true");
  try {
    let win = await fetchWindow(pane, params);
    // The end of the stored copy may lag what the live channel already sent: ask again.
    for (let i = 0; where === "end" && win.end < pane.followFrom && i < 3; i += 1) {
      win = await fetchWindow(pane, params);
    }
    render(pane, win.pieces);
    pane.start = win.offset;
    pane.stop = win.end;
    pane.size = Math.max(win.size, pane.followFrom);
    pane.cutBefore = win.cut_before;
    pane.cutAfter = win.cut_after;
    show(pane);
    if (firstMark(pane)) return;
    if (where === "earlier" || where === "end") bottom(pane); else scrollTo(pane, 0);
  } catch (err) {
    console.error(err);
  } finally {
    pane.loading = false;
    pane.section.removeAttribute("aria-busy");
  }
}

function setupPane(section) {
  const pre = section.querySelector("pre[data-stream]");
  const pieces = [];
  const walk = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    pieces.push([walk.currentNode.data, walk.currentNode.parentNode.nodeName === "MARK"]);
  }
  const pane = {
    section, pre, stream: pre.dataset.stream, ansi: converter(), text: "", lastTop: 0,
    start: Number(pre.dataset.start), stop: Number(pre.dataset.stop),
    size: Number(pre.dataset.sizeBytes), followFrom: Number(pre.dataset.offset),
    cutBefore: 0, cutAfter: 0, loading: false,
  };
  const before = section.querySelector('[data-cut="before"]');
  const after = section.querySelector('[data-cut="after"]');
  pane.cutBefore = before && !before.hidden ? Number.parseInt(before.textContent, 10) || 0 : 0;
  pane.cutAfter = after && !after.hidden ? Number.parseInt(after.textContent, 10) || 0 : 0;
  panes.set(pane.stream, pane);
  render(pane, pieces);
  show(pane);
  section.querySelector(".log-nav").addEventListener("click", (event) => {
    const link = event.target.closest("[data-go]");
    if (!link) return;
    event.preventDefault();
    if (link.getAttribute("aria-disabled") !== "true") go(pane, link.dataset.go);
  });
  // Scrolling up pauses following: by wheel, keys or dragging the scroll bar (not the moves
  // the browser makes itself as runs of lines come into view).
  pre.addEventListener("wheel", (event) => { if (event.deltaY < 0) pause(); }, { passive: true });
  pre.addEventListener("keydown", (event) => {
    if (["ArrowUp", "PageUp", "Home"].includes(event.key)) pause();
  });
  pre.addEventListener("pointerdown", () => { pane.dragging = true; });
  window.addEventListener("pointerup", () => { pane.dragging = false; });
  pre.addEventListener("scroll", () => {
    if (pane.dragging && pre.scrollTop < pane.lastTop - 2) pause();
    pane.lastTop = pre.scrollTop;
  }, { passive: true });
  return pane;
}

function setupLayout() {
  const toggle = document.querySelector("[data-layout]");
  const tabs = document.querySelector(".log-tabs");
  if (!toggle || !tabs) return;
  const select = (stream) => {
    for (const tab of tabs.querySelectorAll("[data-tab]")) {
      const on = tab.dataset.tab === stream;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
    }
    for (const pane of panes.values()) {
      pane.section.hidden = box.dataset.layout === "tabs" && pane.stream !== stream;
      if (!pane.section.hidden && following()) bottom(pane); // a hidden pane could not scroll
    }
  };
  const current = () => tabs.querySelector('[aria-selected="true"]')?.dataset.tab || "stdout";
  const layout = (name) => {
    box.dataset.layout = name;
    toggle.setAttribute("aria-pressed", name === "tabs" ? "true" : "false");
    tabs.hidden = name !== "tabs";
    if (name === "tabs") {
      for (const pane of panes.values()) pane.section.setAttribute("role", "tabpanel");
    } else {
      for (const pane of panes.values()) pane.section.removeAttribute("role");
    }
    select(current());
  };
  toggle.addEventListener("click", () => {
    const name = box.dataset.layout === "tabs" ? "side" : "tabs";
    try { localStorage.setItem("et_log_layout", name); } catch { /* private mode */ }
    layout(name);
  });
  tabs.addEventListener("click", (event) => {
    const tab = event.target.closest("[data-tab]");
    if (tab) select(tab.dataset.tab);
  });
  tabs.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const all = [...tabs.querySelectorAll("[data-tab]")];
    const i = all.findIndex((t) => t.dataset.tab === current());
    const next = all[(i + (event.key === "ArrowRight" ? 1 : all.length - 1)) % all.length];
    select(next.dataset.tab);
    next.focus();
  });
  if (box.dataset.at) select(box.dataset.at);
  let saved = "side";
  try { saved = localStorage.getItem("et_log_layout") || "side"; } catch { /* private mode */ }
  layout(saved === "tabs" ? "tabs" : "side");
}

/** The log page's panes: rendered from the window the server put in the page. */
export function setupLogs() {
  box = document.querySelector("[data-log]");
  if (!box) return;
  for (const section of box.querySelectorAll(".log-pane")) setupPane(section);
  for (const pane of panes.values()) {
    if (!(box.dataset.at === pane.stream && firstMark(pane))) bottom(pane);
  }
  const follow = document.querySelector("[data-follow]");
  follow?.addEventListener("change", () => {
    followState();
    if (!follow.checked) return;
    for (const pane of panes.values()) {
      if (pane.stop < pane.followFrom || pane.stop < pane.size) go(pane, "end"); else bottom(pane);
    }
  });
  followState();
  setupLayout();
}
