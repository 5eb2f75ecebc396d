// Times in the viewer's choice of zone: UTC (as the server renders them), the browser's zone,
// or the task's own (data-tz). The choice is a cookie, so it holds across pages and tabs;
// times that arrive in live updates are converted as they land.
const COOKIE = "et_tz";
const CHOICES = ["utc", "browser", "task"];

export function choice() {
  const found = document.cookie.match(/(?:^|;\s*)et_tz=([a-z]+)/);
  return found && CHOICES.includes(found[1]) ? found[1] : "utc";
}

function format(date, zone) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(date);
  const v = Object.fromEntries(parts.map((p) => [p.type, p.value]));
  return `${v.year}-${v.month}-${v.day} ${v.hour}:${v.minute}:${v.second}`;
}

export function localize(root = document) {
  const wanted = choice();
  const browser = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  for (const el of root.querySelectorAll("time[datetime]")) {
    const date = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) continue;
    let zone = wanted === "browser" ? browser : wanted === "task" && el.dataset.tz ? el.dataset.tz : "UTC";
    let text;
    try { text = format(date, zone); } catch { zone = "UTC"; text = format(date, zone); }
    // Only real changes: the observer below sees its own writes, and must settle.
    if (el.textContent !== text) el.textContent = text;
    if (el.title !== zone) el.title = zone;
  }
  document.documentElement.dataset.tz = wanted;
}

export function setupTimes() {
  const select = document.querySelector("[data-tz-select]");
  if (select) {
    select.value = choice();
    select.addEventListener("change", () => {
      document.cookie = `${COOKIE}=${select.value}; path=/; max-age=31536000; samesite=strict`;
      localize();
    });
  }
  localize();
  const main = document.getElementById("main");
  if (main) new MutationObserver(() => localize(main)).observe(main, { childList: true, subtree: true, characterData: true });
}
