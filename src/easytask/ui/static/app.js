// EasyTask dashboard: the live channel (topics with sequence numbers, followed output),
// confirmations, keyboard shortcuts, the theme switch and the task form's group toggle.
// No inline script anywhere: the Content-Security-Policy allows only files from this server.
import { applyLog, logPanes, setupLogs } from "./log_view.js";
import "./charts.js";
import { setupTimes } from "./times.js";

const seen = new Map(); // topic -> last sequence number applied
let socket = null;
let retry = 500;

function status(text, state) {
  const el = document.getElementById("live-status");
  if (el) { el.textContent = text; el.dataset.state = state; }
}

function topics() {
  return [...document.querySelectorAll("[data-live]")].map((el) => el.dataset.live);
}

function apply(msg) {
  if (msg.topic !== undefined) {
    seen.set(msg.topic, msg.seq);
    for (const el of document.querySelectorAll("[data-live]")) {
      if (el.dataset.live !== msg.topic) continue;
      if (window.Idiomorph) {
        window.Idiomorph.morph(el, msg.html, { morphStyle: "innerHTML" });
      } else {
        el.innerHTML = msg.html;
      }
    }
  } else if (msg.log !== undefined || msg.log_end !== undefined) {
    applyLog(msg);
  }
}

function connect() {
  if (socket || document.hidden) return;
  const wanted = topics();
  const logs = logPanes();
  if (!wanted.length && !logs.length) { status("", "idle"); return; }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/live`);
  let opened = false;
  socket = ws;
  status("connecting…", "connecting");
  ws.onopen = () => {
    opened = true;
    retry = 500;
    status("live", "live");
    for (const box of document.querySelectorAll("[data-log]")) {
      if (box.dataset.final !== "true") box.dataset.followed = "live";
    }
    ws.send(JSON.stringify({
      subscribe: wanted.map((topic) => ({ topic, seq: seen.get(topic) || 0 })),
      logs,
    }));
  };
  ws.onmessage = (event) => {
    try { apply(JSON.parse(event.data)); } catch (err) { console.error(err); }
  };
  ws.onclose = (event) => {
    socket = null;
    if (document.hidden) { status("paused", "paused"); return; }
    status("reconnecting…", "offline");
    const again = () => { setTimeout(connect, retry); retry = Math.min(retry * 2, 5000); };
    if (event.code === 4008) { // this user has too many live tabs: try again later
      status("paused: too many live tabs", "offline");
      setTimeout(connect, 30000);
      return;
    }
    if (event.code === 4401 || !opened) {
      // Refused or ended: /session refreshes an expired login, or says there is none.
      fetch("/session", { redirect: "manual", credentials: "same-origin" }).then((answer) => {
        if (answer.type === "opaqueredirect" || answer.status === 401) {
          location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
        } else {
          again();
        }
      }, again);
      return;
    }
    again();
  };
}

// Updates pause while the tab is hidden; coming back resubscribes (and so resyncs).
document.addEventListener("visibilitychange", () => {
  if (document.hidden) { if (socket) socket.close(1000, "hidden"); } else { connect(); }
});

function setupForms() {
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
    // A live part's forms are rendered once for every tab: they take this tab's CSRF value.
    const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
    for (const input of event.target.querySelectorAll("input[data-csrf]")) input.value = csrf;
  });
  const group = document.querySelector("[data-group-select]");
  const schedule = document.querySelector("[data-schedule-fields]");
  if (group && schedule) {
    const toggle = () => { schedule.hidden = group.value !== ""; };
    group.addEventListener("change", toggle);
    toggle();
  }
}

function setupTheme() {
  const button = document.querySelector("[data-theme-toggle]");
  button?.addEventListener("click", () => {
    const root = document.documentElement;
    const dark = root.dataset.theme === "dark" ||
      (root.dataset.theme === "auto" && matchMedia("(prefers-color-scheme: dark)").matches);
    root.dataset.theme = dark ? "light" : "dark";
    document.cookie = `et_theme=${root.dataset.theme}; path=/; max-age=31536000; samesite=strict`;
  });
}

function setupKeys() {
  const help = document.createElement("dialog");
  help.id = "shortcuts";
  help.setAttribute("aria-label", "Keyboard shortcuts");
  help.innerHTML = "<h2>Keyboard shortcuts</h2><dl class=\"fields\"><dt>/</dt><dd>focus the search field</dd>" +
    "<dt>?</dt><dd>show this list</dd><dt>Esc</dt><dd>close it</dd></dl>" +
    "<form method=\"dialog\"><button>Close</button></form>";
  document.body.appendChild(help);
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      const search = document.querySelector("[data-search]");
      if (search) { event.preventDefault(); search.focus(); }
    } else if (event.key === "?") {
      event.preventDefault();
      if (!help.open) help.showModal();
    }
  });
}

setupLogs();
setupForms();
setupTheme();
setupKeys();
setupTimes();
connect();
