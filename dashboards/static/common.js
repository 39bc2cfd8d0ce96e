// The page shell every console page shares (ES module, no build step, no inline script:
// the CSP is default-src 'self').
//
//   import { initPage, api, t, fmtTime, priorityBadge, el } from "/static/common.js";
//   const me = await initPage("desk");   // nav bar, language, the signed-in user
//
// - api(path, opts): fetch + JSON; sends X-CSRF-Token (from /api/me) on every request
//   that is not GET/HEAD; a 401 sends the browser to /login; other errors throw ApiError
//   with the server's {"detail"} text and the status.
// - t(key, vars): the text of `key` in the user's language (static/i18n/<lang>.json,
//   English as the fallback), "{name}" replaced from vars.
// - fmtTime(ts): ISO 8601 or epoch ms, shown in the site's time zone (/api/me tz).
// - priorityBadge(priority): colour AND text, so it reads in greyscale and for the
//   colour-blind.
//
// Every text from the server goes through textContent: no markup is built from data.

export const LANGS = ["zh-CN", "en"];
const FALLBACK_LANG = "en";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

let me = null;
let dict = {};
let fallback = {};

// --- DOM -----------------------------------------------------------------------------

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// --- API -----------------------------------------------------------------------------

export async function api(path, opts = {}) {
  const method = (opts.method || "GET").toUpperCase();
  const headers = { Accept: "application/json", ...(opts.headers || {}) };
  let body = opts.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  if (method !== "GET" && method !== "HEAD" && me && me.csrf) {
    headers["X-CSRF-Token"] = me.csrf;
  }
  const response = await fetch(path, {
    method,
    headers,
    body,
    credentials: "same-origin",
    signal: opts.signal,
  });
  if (response.status === 401 && !opts.allow401) {
    toLogin();
    throw new ApiError(401, t("error.signedOut"));
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : text;
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

function toLogin() {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

// --- i18n ----------------------------------------------------------------------------

async function loadDict(lang) {
  const response = await fetch(`/static/i18n/${lang}.json`, { credentials: "same-origin" });
  if (!response.ok) return {};
  return response.json();
}

export async function setLanguage(lang) {
  const chosen = LANGS.includes(lang) ? lang : FALLBACK_LANG;
  const [own, en] = await Promise.all([
    loadDict(chosen),
    chosen === FALLBACK_LANG ? Promise.resolve(null) : loadDict(FALLBACK_LANG),
  ]);
  dict = own;
  fallback = en || own;
  document.documentElement.lang = chosen;
  return chosen;
}

export function t(key, vars) {
  let text = dict[key] ?? fallback[key] ?? key;
  if (vars) {
    text = text.replace(/\{(\w+)\}/g, (whole, name) =>
      name in vars && vars[name] !== null && vars[name] !== undefined ? String(vars[name]) : whole,
    );
  }
  return text;
}

// Fills every element carrying data-i18n (its text: the key's) or data-i18n-title /
// data-i18n-placeholder / data-i18n-aria-label (that attribute) under root.
export function translate(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const attr of ["title", "placeholder", "aria-label"]) {
    for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      node.setAttribute(attr, t(node.getAttribute(`data-i18n-${attr}`)));
    }
  }
}

// --- time ----------------------------------------------------------------------------

// Times read the same in both languages and leave no doubt about day and month:
// 2026-12-07 14:05:09, in the site's zone (not the browser's).
let zoneParts = null;

function buildFormats(tz) {
  const options = {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  };
  try {
    zoneParts = new Intl.DateTimeFormat("en-GB", { ...options, timeZone: tz || undefined });
  } catch {
    zoneParts = new Intl.DateTimeFormat("en-GB", options); // an unknown zone name: the browser's
  }
}

function parts(date) {
  if (zoneParts === null) buildFormats(null);
  const out = {};
  for (const part of zoneParts.formatToParts(date)) out[part.type] = part.value;
  return out;
}

function toDate(ts) {
  if (ts === null || ts === undefined || ts === "") return null;
  const date = typeof ts === "number" ? new Date(ts) : new Date(String(ts));
  return Number.isNaN(date.getTime()) ? null : date;
}

// <input type="datetime-local"> values ("2026-12-07T14:05") in the site's zone, not the
// browser's: what an operator types is the site's clock, like every time shown.
export function toZoneInput(ms) {
  const p = parts(new Date(ms));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

function zoneOffsetMs(ms) {
  const p = parts(new Date(ms));
  const wall = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
  return wall - Math.floor(ms / 1000) * 1000;
}

// The instant (epoch ms) of a site-zone input value; NaN for an empty or bad one.
export function fromZoneInput(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(text || "");
  if (!m) return Number.NaN;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  const guess = wall - zoneOffsetMs(wall);
  return wall - zoneOffsetMs(guess); // the offset at the instant itself (a DST change between)
}

// The full date and time in the site's time zone; "—" for none.
export function fmtTime(ts) {
  const date = toDate(ts);
  if (date === null) return "—";
  const p = parts(date);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

// Only the clock time when it is today in the site's zone, else the full date and time.
export function fmtShortTime(ts) {
  const date = toDate(ts);
  if (date === null) return "—";
  const p = parts(date);
  const today = parts(new Date());
  const time = `${p.hour}:${p.minute}:${p.second}`;
  const sameDay = p.year === today.year && p.month === today.month && p.day === today.day;
  return sameDay ? time : `${p.year}-${p.month}-${p.day} ${time}`;
}

// "5 min", "2 h 10 min": how long since ts.
export function fmtAge(ts, now = Date.now()) {
  const date = toDate(ts);
  if (date === null) return "";
  const minutes = Math.max(0, Math.floor((now - date.getTime()) / 60000));
  if (minutes < 1) return t("age.now");
  if (minutes < 60) return t("age.minutes", { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return t("age.hours", { h: hours, m: minutes % 60 });
  return t("age.days", { n: Math.floor(hours / 24) });
}

// --- priority ------------------------------------------------------------------------

export const PRIORITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
const PRIORITY_MARK = { critical: "▲▲", high: "▲", medium: "◆", low: "▽" };

export function priorityBadge(priority) {
  const known = priority in PRIORITY_RANK ? priority : "low";
  const badge = el("span", `badge prio prio-${known}`);
  badge.append(el("span", "prio-mark", PRIORITY_MARK[known]), el("span", "prio-text", t(`priority.${known}`)));
  badge.title = t(`priority.${known}`);
  return badge;
}

// --- the signed-in user and the nav bar ---------------------------------------------

export function currentUser() {
  return me;
}

// What a role may do, as the server decides it (dashboards/auth.py Caller.may); the
// page only hides the buttons the server would refuse anyway.
const ROLE_ACTIONS = {
  admin: ["admin"],
  operator: ["ack", "shelve", "verify", "comment", "suppress"],
  grid_officer: ["ack", "verify", "comment"],
  enterprise: ["ack", "feedback", "comment"],
};

export function may(action) {
  return Boolean(me && (ROLE_ACTIONS[me.role] || []).includes(action));
}

const NAV = [
  ["overview", "/", "nav.overview"],
  ["desk", "/desk", "nav.desk"],
  ["map", "/map", "nav.map"],
  ["kpis", "/kpis", "nav.kpis"],
];

function renderNav(active) {
  let bar = document.getElementById("hz-nav");
  if (!bar) {
    bar = el("nav", "hz-nav");
    bar.id = "hz-nav";
    document.body.prepend(bar);
  }
  bar.replaceChildren();
  bar.setAttribute("aria-label", t("nav.label"));
  const brand = el("a", "hz-brand", "hazwatch");
  brand.href = "/";
  const links = el("ul", "hz-links");
  for (const [name, href, key] of NAV) {
    const item = el("li");
    const link = el("a", name === active ? "active" : "", t(key));
    link.href = href;
    link.dataset.nav = name;
    if (name === active) link.setAttribute("aria-current", "page");
    item.append(link);
    links.append(item);
  }
  const user = el("span", "hz-user");
  user.id = "hz-user";
  user.append(el("span", "hz-username", me.username), el("span", "hz-role", t(`role.${me.role}`)));

  const langLabel = el("label", "hz-lang");
  const langText = el("span", "visually-hidden", t("nav.language"));
  const select = el("select");
  select.id = "hz-lang";
  for (const lang of LANGS) {
    const option = el("option", "", t(`lang.${lang}`));
    option.value = lang;
    option.selected = lang === me.lang;
    select.append(option);
  }
  select.addEventListener("change", () => changeLanguage(select.value));
  langLabel.append(langText, select);

  const logout = el("button", "hz-logout", t("nav.logout"));
  logout.type = "button";
  logout.id = "hz-logout";
  logout.addEventListener("click", async () => {
    try {
      await api("/api/logout", { method: "POST", allow401: true });
    } finally {
      location.assign("/login");
    }
  });
  bar.append(brand, links, user, langLabel, logout);
}

async function changeLanguage(lang) {
  await api("/api/me", { method: "PUT", body: { lang } });
  // Every text of the page follows the language: reloading redraws them all at once.
  location.reload();
}

// Sets up a page: the user (401 → /login), the language, the time zone, the nav bar
// with `active` marked, and every data-i18n text. Returns the user.
export async function initPage(active) {
  me = await api("/api/me");
  me.lang = await setLanguage(me.lang);
  buildFormats(me.tz);
  renderNav(active);
  translate(document);
  return me;
}

// --- the live stream -----------------------------------------------------------------

// Subscribes to the server-sent events: handlers maps an event name ("alarm",
// "reading", "gateway") to a function of its parsed data. onLive(true|false) is told
// when the stream is up or down; `onLive(true, true)` says the page may have missed
// items and should read its state again: after a reconnect, and when the server says
// the page fell behind (`resync`: its oldest items were dropped) — at most once per
// RESYNC_MS in a flood, so the re-reads do not add to it (then with a third argument,
// "resync"). Returns the EventSource.
const RESYNC_MS = 2000;

export function openStream(handlers, onLive = () => {}, path = "/api/stream") {
  const source = new EventSource(path, { withCredentials: true });
  let opened = false;
  let resyncAt = 0;
  let resyncTimer = null;
  source.addEventListener("open", () => {
    onLive(true, opened);
    opened = true;
  });
  source.addEventListener("error", () => onLive(false, opened));
  source.addEventListener("resync", () => {
    if (resyncTimer !== null) return; // one re-read is already due
    const wait = Math.max(0, resyncAt + RESYNC_MS - Date.now());
    resyncTimer = setTimeout(() => {
      resyncTimer = null;
      resyncAt = Date.now();
      onLive(true, true, "resync");
    }, wait);
  });
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      handle(data);
    });
  }
  return source;
}
