// hazwatch operator console: one page, no build step, no external resources.
//
// Data: GET /api/enterprises, /api/enterprises/{eid}, /api/alarms?active=true,
// /api/ingest/rejects; live updates from the SSE stream /api/stream
// (event: reading | alarm | gateway). Risk colours and limit states come computed from
// the server; the page only shows them.
//
// Safety: every text from the server goes through textContent; no markup is ever
// built from data.
"use strict";

// All user-visible strings, in one place (to be translated for the operators).
const STRINGS = {
  title: "hazwatch — monitoring centre",
  connectionLive: "Live",
  connectionDown: "Reconnecting…",
  enterprises: "Enterprises",
  alarmsTitle: (n) => `Open alarms (${n})`,
  noAlarms: "No open alarms.",
  noPoints: "No points registered.",
  loading: "Loading…",
  ackCommentLabel: "Ack comment (optional):",
  ack: "Ack",
  acking: "…",
  ackFailed: (id, detail) => `Acknowledging ${id} failed: ${detail}`,
  loadFailed: (what, detail) => `Could not load ${what}: ${detail}`,
  ingestTitle: "Ingest",
  rejected: (n) => `Rejected messages: ${n}`,
  unknownTags: (n) => `Unknown tags: ${n}`,
  rejectsLink: "details",
  footerNote: "Logged-in users only; each sees its own enterprises.",
  footerAdvisory: "Platform alarms are advisory; they never replace the plant's DCS/SIS alarms.",
  grid: "Grid",
  suspended: "SUSPENDED",
  openAlarms: (n) => `${n} open`,
  gateways: "Gateways",
  noGateways: "no gateway seen yet",
  risk: { red: "Red", orange: "Orange", yellow: "Yellow", blue: "Blue" },
  priority: { critical: "Critical", high: "High", medium: "Medium", low: "Low" },
  state: {
    active_unack: "Active – unacked",
    active_ack: "Active – acked",
    cleared_unack: "Cleared – unacked",
    cleared: "Cleared",
    shelved: "Shelved",
    suppressed: "Suppressed",
  },
  gatewayState: { online: "online", offline: "OFFLINE", unknown: "status unknown" },
  limitState: { HH: "HH", H: "H", normal: "", L: "L", LL: "LL" },
  quality: { good: "", uncertain: "uncertain", bad: "bad" },
  pointColumns: ["Tag", "Name", "Value", "Unit", "Limit", "Time"],
  alarmColumns: [
    "", "Time", "Priority", "Type", "Enterprise", "Inst.", "Tag", "State", "Value / limit",
    "Message",
  ],
};

const ACKABLE = new Set(["active_unack", "cleared_unack"]);
const OPEN = new Set(["active_unack", "active_ack", "cleared_unack", "shelved", "suppressed"]);
const INGEST_REFRESH_MS = 15000;
const RISK_REFRESH_DELAY_MS = 1000;

const state = {
  enterprises: new Map(), // eid -> {summary, card, parts}
  points: new Map(), // `${eid} ${tag}` -> {point, cells}
  alarms: new Map(), // id -> alarm JSON
  riskTimer: null,
};

// --- small helpers -------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function byId(id) {
  return document.getElementById(id);
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

// Times are shown in the browser's (the operators') local time zone.
// "full": YYYY-MM-DD HH:MM:SS; "short": MM-DD HH:MM:SS; "clock": HH:MM:SS.
function formatTime(iso, style = "full") {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (style === "clock") return clock;
  const day = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  if (style === "short") return `${day} ${clock}`;
  return `${d.getFullYear()}-${day} ${clock}`;
}

// Date above time, to keep the alarm table narrow.
function stackedTimeCell(className, iso) {
  const cell = el("td", className);
  const [day, clock] = formatTime(iso, "short").split(" ");
  cell.append(el("span", "day", day), el("span", "clock-time", clock ?? ""));
  if (iso) cell.title = formatTime(iso);
  return cell;
}

function formatValue(v) {
  if (v === null || v === undefined) return "—";
  return Number(v).toLocaleString(undefined, { maximumFractionDigits: 3 });
}

let csrfToken = null;

// Every state-changing request carries the session's CSRF token (from /api/me);
// a lost session sends the browser to the login page.
async function fetchJSON(url, options) {
  const opts = { credentials: "same-origin", ...(options || {}) };
  if (opts.method && opts.method !== "GET") {
    if (csrfToken === null) csrfToken = (await fetchJSON("/api/me")).csrf;
    opts.headers = { ...(opts.headers || {}), "X-CSRF-Token": csrfToken };
  }
  const response = await fetch(url, opts);
  if (response.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
    throw new Error("logged out");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

function showMessage(text) {
  byId("alarm-message").textContent = text || "";
}

// --- enterprises and points ----------------------------------------------------------

function pointKey(eid, tag) {
  return `${eid} ${tag}`;
}

function buildCard(summary) {
  const card = el("details", "enterprise");
  card.open = true;
  const head = el("summary", "enterprise-head");
  const risk = el("span", "risk");
  const name = el("span", "enterprise-name");
  const meta = el("span", "enterprise-meta");
  const alarms = el("span", "enterprise-alarms");
  head.append(risk, name, meta, alarms);
  const gateways = el("div", "gateways");
  const body = el("div", "enterprise-body", STRINGS.loading);
  card.append(head, gateways, body);
  return { card, parts: { risk, name, meta, alarms, gateways, body } };
}

function updateCard(entry) {
  const s = entry.summary;
  const p = entry.parts;
  p.risk.className = `risk risk-${s.risk}`;
  p.risk.textContent = STRINGS.risk[s.risk] || s.risk;
  p.name.textContent = `${s.name} (${s.id})`;
  const status = s.status === "suspended" ? ` · ${STRINGS.suspended}` : "";
  p.meta.textContent = `${STRINGS.grid} ${s.grid}${status}`;
  p.meta.classList.toggle("suspended", s.status === "suspended");
  p.alarms.textContent = STRINGS.openAlarms(s.open_alarm_count);
}

function renderGateways(entry, gateways) {
  const box = entry.parts.gateways;
  box.replaceChildren(el("span", "gateways-label", `${STRINGS.gateways}:`));
  if (gateways.length === 0) {
    box.append(el("span", "gateway", STRINGS.noGateways));
    return;
  }
  for (const g of gateways) {
    const label = STRINGS.gatewayState[g.state] || g.state;
    const chip = el("span", `gateway gateway-${g.state}`, `${g.gateway} ${label}`);
    const seen = g.last_seen || g.ts;
    chip.title = seen ? formatTime(seen) : "";
    box.append(chip);
  }
  entry.gateways = gateways;
}

function setPointValue(cells, value, ts, quality, limitState) {
  cells.value.textContent = formatValue(value);
  const q = quality && quality in STRINGS.quality ? STRINGS.quality[quality] : quality || "";
  if (q) cells.value.append(el("span", "quality", ` (${q})`));
  cells.limit.textContent = limitState ? STRINGS.limitState[limitState] ?? limitState : "";
  cells.row.className = `point limit-${limitState || "none"} quality-${quality || "none"}`;
  cells.time.textContent = formatTime(ts, "clock");
  cells.time.title = ts ? formatTime(ts) : "";
}

function renderDetail(entry, detail) {
  const body = entry.parts.body;
  body.replaceChildren();
  for (const inst of detail.installations) {
    const section = el("section", "installation");
    section.append(el("h3", "installation-name", `${inst.name} (${inst.id}) · grade ${inst.grade}`));
    if (inst.points.length === 0) {
      section.append(el("p", "empty", STRINGS.noPoints));
      body.append(section);
      continue;
    }
    const table = el("table", "point-table");
    const headRow = el("tr");
    for (const label of STRINGS.pointColumns) headRow.append(el("th", null, label));
    table.append(el("thead"));
    table.tHead.append(headRow);
    const tbody = el("tbody");
    for (const p of inst.points) {
      const row = el("tr", "point");
      const tag = el("td", "tag", p.tag);
      const name = el("td", "point-name", p.name);
      name.title = limitsText(p);
      const cells = {
        row,
        value: el("td", "value"),
        unit: el("td", "unit", p.unit),
        limit: el("td", "limit"),
        time: el("td", "time"),
      };
      row.append(tag, name, cells.value, cells.unit, cells.limit, cells.time);
      const last = p.last;
      setPointValue(
        cells,
        last ? last.value : null,
        last ? last.ts : null,
        last ? last.quality : null,
        p.limit_state,
      );
      state.points.set(pointKey(detail.id, p.tag), { point: p, cells });
      tbody.append(row);
    }
    table.append(tbody);
    section.append(table);
    body.append(section);
  }
  renderGateways(entry, detail.gateways);
}

function limitsText(p) {
  const parts = [];
  for (const key of ["ll", "l", "h", "hh"]) {
    if (p[key] !== null && p[key] !== undefined) parts.push(`${key.toUpperCase()} ${p[key]}`);
  }
  return parts.join("  ");
}

async function loadEnterprises(withDetails) {
  let list;
  try {
    list = await fetchJSON("/api/enterprises");
  } catch (err) {
    showMessage(STRINGS.loadFailed(STRINGS.enterprises, err.message));
    return;
  }
  const container = byId("enterprise-list");
  for (const summary of list) {
    let entry = state.enterprises.get(summary.id);
    if (!entry) {
      entry = { summary, ...buildCard(summary) };
      state.enterprises.set(summary.id, entry);
      container.append(entry.card);
      withDetails = true;
    }
    entry.summary = summary;
    updateCard(entry);
  }
  if (withDetails) {
    await Promise.all(list.map((s) => loadDetail(state.enterprises.get(s.id))));
  }
}

async function loadDetail(entry) {
  try {
    const detail = await fetchJSON(`/api/enterprises/${encodeURIComponent(entry.summary.id)}`);
    renderDetail(entry, detail);
  } catch (err) {
    entry.parts.body.textContent = STRINGS.loadFailed(entry.summary.id, err.message);
  }
}

function scheduleRiskRefresh() {
  // Risk colours are derived on the server from open alarms: ask again, a little later,
  // once per burst of alarm events.
  if (state.riskTimer !== null) return;
  state.riskTimer = setTimeout(() => {
    state.riskTimer = null;
    loadEnterprises(false);
  }, RISK_REFRESH_DELAY_MS);
}

// --- alarms ------------------------------------------------------------------------------

function renderAlarmHead() {
  const head = byId("alarm-head");
  head.replaceChildren(...STRINGS.alarmColumns.map((label) => el("th", null, label)));
}

function enterpriseName(eid) {
  const entry = state.enterprises.get(eid);
  return entry ? entry.summary.name : eid;
}

function alarmRow(alarm) {
  const row = el("tr", `alarm priority-${alarm.priority} state-${alarm.state}`);
  row.dataset.id = alarm.id;
  const priority = el("td", "priority");
  priority.append(el("span", `badge badge-${alarm.priority}`, STRINGS.priority[alarm.priority] || alarm.priority));
  const valueLimit = `${formatValue(alarm.value)} / ${formatValue(alarm.limit)}`;
  const action = el("td", "action");
  if (ACKABLE.has(alarm.state)) {
    const button = el("button", "ack", STRINGS.ack);
    button.type = "button";
    button.addEventListener("click", () => acknowledge(alarm.id, button));
    action.append(button);
  }
  const enterprise = el("td", "enterprise-cell", enterpriseName(alarm.enterprise));
  enterprise.title = alarm.enterprise;
  row.append(
    action,
    stackedTimeCell("time", alarm.raised_at),
    priority,
    el("td", "type", alarm.type),
    enterprise,
    el("td", null, alarm.installation),
    el("td", "tag", alarm.tag),
    el("td", "state", STRINGS.state[alarm.state] || alarm.state),
    el("td", "value", valueLimit),
    el("td", "alarm-message", alarm.message),
  );
  return row;
}

function renderAlarms() {
  const open = [...state.alarms.values()].filter((a) => OPEN.has(a.state));
  open.sort((a, b) => (a.raised_at < b.raised_at ? 1 : a.raised_at > b.raised_at ? -1 : 0));
  byId("alarm-rows").replaceChildren(...open.map(alarmRow));
  byId("alarms-title").textContent = STRINGS.alarmsTitle(open.length);
  byId("alarms-empty").textContent = open.length === 0 ? STRINGS.noAlarms : "";
}

function applyAlarm(alarm) {
  if (OPEN.has(alarm.state)) {
    state.alarms.set(alarm.id, alarm);
  } else {
    state.alarms.delete(alarm.id); // closed: leaves the list of open alarms
  }
  renderAlarms();
}

async function loadAlarms() {
  try {
    const alarms = await fetchJSON("/api/alarms?active=true&limit=1000");
    state.alarms.clear();
    for (const alarm of alarms) state.alarms.set(alarm.id, alarm);
    renderAlarms();
  } catch (err) {
    showMessage(STRINGS.loadFailed("alarms", err.message));
  }
}

async function acknowledge(id, button) {
  button.disabled = true;
  button.textContent = STRINGS.acking;
  const input = byId("ack-comment");
  try {
    const alarm = await fetchJSON(`/api/alarms/${encodeURIComponent(id)}/ack`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ comment: input.value }),
    });
    input.value = "";
    showMessage("");
    applyAlarm(alarm); // the stream sends the same change; applying twice is harmless
  } catch (err) {
    showMessage(STRINGS.ackFailed(id, err.message));
    button.disabled = false;
    button.textContent = STRINGS.ack;
  }
}

// --- ingest ----------------------------------------------------------------------------

async function loadIngest() {
  try {
    const rejects = await fetchJSON("/api/ingest/rejects");
    byId("ingest-rejected").textContent = STRINGS.rejected(rejects.rejected_total);
    byId("ingest-rejected").classList.toggle("warn", rejects.rejected_total > 0);
    byId("ingest-unknown").textContent = STRINGS.unknownTags(rejects.unknown_tags.length);
    byId("ingest-unknown").classList.toggle("warn", rejects.unknown_tags.length > 0);
  } catch (err) {
    byId("ingest-rejected").textContent = STRINGS.loadFailed(STRINGS.ingestTitle, err.message);
  }
}

// --- live stream ---------------------------------------------------------------------------

function setConnection(live) {
  const node = byId("connection");
  node.textContent = live ? STRINGS.connectionLive : STRINGS.connectionDown;
  node.className = `connection ${live ? "connection-live" : "connection-down"}`;
}

// Only for reading events that come without "limit_state" (dashboards.feed.reading_item
// sends it): the same comparisons as dashboards/status.py limit_state.
function limitStateOf(p, v) {
  if (p.hh !== null && v >= p.hh) return "HH";
  if (p.h !== null && v >= p.h) return "H";
  if (p.ll !== null && v <= p.ll) return "LL";
  if (p.l !== null && v <= p.l) return "L";
  return "normal";
}

function onReading(data) {
  const entry = state.points.get(pointKey(data.enterprise, data.tag));
  if (!entry) return;
  const limit = data.limit_state ?? limitStateOf(entry.point, data.value);
  setPointValue(entry.cells, data.value, data.ts, data.quality, limit);
}

function onGateway(data) {
  const entry = state.enterprises.get(data.enterprise);
  if (!entry) return;
  const others = (entry.gateways || []).filter((g) => g.gateway !== data.gateway);
  others.push(data);
  others.sort((a, b) => (a.gateway < b.gateway ? -1 : 1));
  renderGateways(entry, others);
}

function parseEvent(event) {
  try {
    return JSON.parse(event.data);
  } catch (_) {
    return null;
  }
}

function connect() {
  const source = new EventSource("/api/stream");
  let everOpened = false;
  source.addEventListener("open", () => {
    setConnection(true);
    if (everOpened) {
      // Reconnected: events may have been missed meanwhile, so read the state again.
      loadAlarms();
      loadEnterprises(true);
    }
    everOpened = true;
  });
  source.addEventListener("error", () => setConnection(false));
  source.addEventListener("reading", (e) => {
    const data = parseEvent(e);
    if (data) onReading(data);
  });
  source.addEventListener("alarm", (e) => {
    const data = parseEvent(e);
    if (!data) return;
    applyAlarm(data);
    scheduleRiskRefresh();
  });
  source.addEventListener("gateway", (e) => {
    const data = parseEvent(e);
    if (data) onGateway(data);
  });
}

// --- start ---------------------------------------------------------------------------------

function tickClock() {
  byId("clock").textContent = formatTime(new Date().toISOString());
}

function applyStrings() {
  document.title = STRINGS.title;
  byId("title").textContent = STRINGS.title;
  byId("enterprises-title").textContent = STRINGS.enterprises;
  byId("ack-comment-label").textContent = STRINGS.ackCommentLabel;
  byId("ingest-title").textContent = STRINGS.ingestTitle;
  byId("ingest-link").textContent = STRINGS.rejectsLink;
  byId("footer-note").textContent = STRINGS.footerNote;
  byId("footer-advisory").textContent = STRINGS.footerAdvisory;
  renderAlarmHead();
  setConnection(false);
}

async function start() {
  applyStrings();
  tickClock();
  setInterval(tickClock, 1000);
  connect(); // subscribe first, then load: nothing between the two is lost
  await loadEnterprises(true);
  await loadAlarms();
  await loadIngest();
  setInterval(loadIngest, INGEST_REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
