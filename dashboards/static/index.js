// The overview: every enterprise the user sees, one tile each, from the stream's
// per-enterprise summaries (GET /api/stream?view=overview, docs/contract.md "Live stream
// views") — never from its points, so a province of 1,000 enterprises × 100 points draws
// in the time of 1,000 small tiles, and the stream carries one list a second of the
// summaries that changed instead of every reading.
//
// Each tile: the risk colour with its word, open alarms by priority (badge colour AND
// text), unacknowledged count, stale values (how many, and how old the oldest is: the
// server's age at the summary's time plus the time since it arrived), points without
// data, gateways offline. Tiles needing attention come first. A click opens the
// enterprise's page. When the stream is down the page says so and since when: the
// figures are then not current, never silently.
//
// Every text from the server goes through textContent (common.js el()).

import { api, el, fmtAge, fmtTime, initPage, openStream, priorityBadge, t } from "/static/common.js";

const RISKS = ["red", "orange", "yellow", "blue"];
const RISK_RANK = { red: 0, orange: 1, yellow: 2, blue: 3 };
const PRIORITIES = ["critical", "high", "medium", "low"];
const INGEST_REFRESH_MS = 15000;
const SORT_DELAY_MS = 1000;
const TICK_MS = 1000;

const ov = {
  tiles: new Map(), // enterprise id -> {tile, parts, s, receivedAt}
  pending: new Map(), // enterprise id -> {s, receivedAt}, drawn at the next frame
  frame: 0,
  sortTimer: null,
  grids: new Set(),
  downSince: null,
  shell: false, // the shell (user, language, texts) is loaded
  live: false, // the stream is open
};

function byId(id) {
  return document.getElementById(id);
}

function message(text, kind = "error") {
  const box = byId("ov-message");
  box.textContent = text || "";
  box.className = `hz-message ${kind}`;
}

// "12 s" under a minute, then as common.js fmtAge ("5 min", "2 h 10 min").
function fmtSeconds(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return t("overview.seconds", { n: s });
  return fmtAge(Date.now() - s * 1000);
}

// --- tiles -----------------------------------------------------------------------------

function buildTile(eid) {
  const tile = el("a", "tile");
  tile.href = `/enterprises/${encodeURIComponent(eid)}`;
  tile.dataset.id = eid;
  const head = el("div", "tile-head");
  const risk = el("span", "risk");
  const name = el("span", "tile-name");
  head.append(risk, name);
  const meta = el("div", "tile-meta");
  const alarms = el("div", "tile-alarms");
  const stale = el("div", "tile-stale");
  const noData = el("div", "tile-nodata");
  const gateways = el("div", "tile-gateways");
  tile.append(head, meta, alarms, stale, noData, gateways);
  return { tile, parts: { risk, name, meta, alarms, stale, noData, gateways }, s: null, receivedAt: 0 };
}

function staleText(entry, now) {
  const s = entry.s;
  if (s.stale_points === 0 || s.worst_stale_s === null) return "";
  const age = s.worst_stale_s + (now - entry.receivedAt) / 1000;
  return t("overview.stale", { n: s.stale_points, age: fmtSeconds(age) });
}

function updateTile(entry, s, receivedAt) {
  entry.s = s;
  entry.receivedAt = receivedAt;
  const p = entry.parts;
  const attention = needsAttention(s);
  entry.tile.className = `tile tile-${s.risk}${attention ? " attention" : ""}${
    s.stale_points > 0 ? " has-stale" : ""
  }`;
  entry.tile.dataset.at = s.at;
  entry.tile.dataset.stale = String(s.stale_points);
  p.risk.className = `risk risk-${s.risk}`;
  p.risk.textContent = t(`risk.${s.risk}`);
  p.name.textContent = s.name;
  entry.tile.title = `${s.name} (${s.enterprise})`;
  const meta = [s.enterprise, `${t("filter.grid")} ${s.grid}`];
  p.meta.replaceChildren(el("span", null, meta.join(" · ")));
  if (s.status === "suspended") p.meta.append(el("span", "suspended", t("overview.suspended")));

  p.alarms.replaceChildren();
  if (s.open_alarm_count === 0) {
    p.alarms.append(el("span", "quiet", t("overview.noAlarms")));
  } else {
    for (const priority of PRIORITIES) {
      const n = s.alarms[priority] || 0;
      if (n === 0) continue;
      const chip = el("span", "count");
      chip.append(priorityBadge(priority), el("span", "n", n));
      p.alarms.append(chip);
    }
    if (s.unacked > 0) p.alarms.append(el("span", "unacked", t("overview.unacked", { n: s.unacked })));
  }
  p.stale.textContent = staleText(entry, receivedAt);
  p.stale.hidden = p.stale.textContent === "";
  p.noData.textContent = s.no_data > 0 ? t("overview.noData", { n: s.no_data }) : "";
  p.noData.hidden = s.no_data === 0;
  p.gateways.textContent =
    s.gateways_offline > 0 ? t("overview.gatewaysOffline", { n: s.gateways_offline }) : "";
  p.gateways.hidden = s.gateways_offline === 0;
  entry.tile.hidden = !matches(s);
}

function needsAttention(s) {
  return s.risk !== "blue" || s.stale_points > 0 || s.gateways_offline > 0 || s.status === "suspended";
}

// --- filters and order -------------------------------------------------------------------

function matches(s) {
  const text = byId("ov-search").value.trim().toLowerCase();
  if (text && !s.name.toLowerCase().includes(text) && !s.enterprise.toLowerCase().includes(text)) {
    return false;
  }
  const grid = byId("ov-grid").value;
  if (grid && s.grid !== grid) return false;
  return !byId("ov-attention").checked || needsAttention(s);
}

function refilter() {
  let shown = 0;
  for (const entry of ov.tiles.values()) {
    entry.tile.hidden = !matches(entry.s);
    if (!entry.tile.hidden) shown += 1;
  }
  const empty = byId("ov-empty");
  empty.hidden = shown > 0 || ov.tiles.size === 0;
  empty.textContent = t("overview.noneFiltered");
}

function compare(a, b) {
  const x = a.s;
  const y = b.s;
  return (
    RISK_RANK[x.risk] - RISK_RANK[y.risk] ||
    y.unacked - x.unacked ||
    y.open_alarm_count - x.open_alarm_count ||
    y.gateways_offline - x.gateways_offline ||
    y.stale_points - x.stale_points ||
    (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)
  );
}

// The order is CSS `order` on each tile: a re-sort moves no DOM node.
function sortTiles() {
  ov.sortTimer = null;
  const entries = [...ov.tiles.values()].sort(compare);
  entries.forEach((entry, i) => {
    entry.tile.style.order = String(i);
  });
}

function scheduleSort() {
  if (ov.sortTimer === null) ov.sortTimer = setTimeout(sortTiles, SORT_DELAY_MS);
}

function renderTotals() {
  const counts = { red: 0, orange: 0, yellow: 0, blue: 0 };
  let stale = 0;
  for (const { s } of ov.tiles.values()) {
    counts[s.risk] += 1;
    if (s.stale_points > 0) stale += 1;
  }
  const box = byId("ov-totals");
  box.replaceChildren(el("span", "total", t("overview.enterprises", { n: ov.tiles.size })));
  for (const risk of RISKS) {
    const chip = el("span", `risk risk-${risk}`, `${t(`risk.${risk}`)} ${counts[risk]}`);
    box.append(chip);
  }
  if (stale > 0) box.append(el("span", "total stale-total", t("overview.staleEnterprises", { n: stale })));
}

function addGrid(grid) {
  if (ov.grids.has(grid)) return;
  ov.grids.add(grid);
  const select = byId("ov-grid");
  const option = el("option", null, grid);
  option.value = grid;
  const after = [...select.options].slice(1).find((o) => o.value > grid);
  select.insertBefore(option, after || null);
}

// --- live --------------------------------------------------------------------------------

// A `summaries` item: every enterprise at connect, then those that changed (once a second).
function onSummaries(data) {
  if (ov.tiles.size === 0 && ov.pending.size === 0) performance.mark("hz-first-summary");
  const receivedAt = performance.now();
  for (const s of data.summaries) ov.pending.set(s.enterprise, { s, receivedAt });
  scheduleFlush();
}

// Drawn at the next frame, once the shell (texts, time zone) is there.
function scheduleFlush() {
  if (ov.shell && !ov.frame && ov.pending.size) ov.frame = requestAnimationFrame(flush);
}

function flush() {
  ov.frame = 0;
  const fresh = [];
  for (const [eid, { s, receivedAt }] of ov.pending) {
    let entry = ov.tiles.get(eid);
    if (!entry) {
      entry = buildTile(eid);
      ov.tiles.set(eid, entry);
      fresh.push(entry.tile);
    }
    updateTile(entry, s, receivedAt);
    addGrid(s.grid);
  }
  ov.pending.clear();
  if (fresh.length) byId("ov-tiles").append(...fresh);
  if (fresh.length && ov.tiles.size === fresh.length) sortTiles(); // the first draw: at once
  else scheduleSort();
  renderTotals();
  document.body.dataset.tiles = String(ov.tiles.size);
  document.body.dataset.ready = "1";
  performance.mark("hz-drawn"); // (benchmarks read the marks: bench/console_browser.py)
}

// Once a second: the ages of stale values grow; a stream that is down says for how long.
function tick() {
  const now = performance.now();
  for (const entry of ov.tiles.values()) {
    if (entry.s.stale_points > 0) entry.parts.stale.textContent = staleText(entry, now);
  }
  if (ov.downSince !== null) {
    message(t("overview.streamDown", { since: fmtTime(ov.downSince), age: fmtSeconds((Date.now() - ov.downSince) / 1000) }));
  }
}

function showConnection(up) {
  const badge = byId("connection");
  badge.textContent = up ? t("desk.live") : t("desk.reconnecting");
  badge.className = `connection ${up ? "live" : "down"}`;
  document.querySelector(".ov-main").classList.toggle("not-current", !up);
  if (up) {
    ov.downSince = null;
    message("");
  } else if (ov.downSince === null) {
    ov.downSince = Date.now();
    tick();
  }
}

async function loadIngest() {
  const box = byId("ov-ingest");
  try {
    const rejects = await api("/api/ingest/rejects");
    const link = el("a", rejects.rejected_total > 0 || rejects.unknown_tags.length > 0 ? "warn" : null);
    link.href = "/api/ingest/rejects";
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = t("overview.ingest", {
      rejected: rejects.rejected_total,
      unknown: rejects.unknown_tags.length,
    });
    box.replaceChildren(link);
  } catch (error) {
    box.textContent = t("overview.ingestFailed", { detail: error.message });
  }
}

// --- start -------------------------------------------------------------------------------

async function start() {
  // The stream opens while the shell loads (in parallel: the summaries wait for it).
  // A (re)opened stream starts with every summary: nothing else to reload.
  let source = null;
  const connect = () => openStream({ summaries: onSummaries }, onLive, "/api/stream?view=overview");
  const onLive = (up, missed, why) => {
    ov.live = up;
    if (ov.shell) showConnection(up);
    if (why === "resync") {
      // Summaries are sent when they change: after a drop, connect again for the
      // snapshot of every enterprise that a new stream starts with.
      source.close();
      source = connect();
    }
  };
  source = connect();
  await initPage("overview");
  performance.mark("hz-shell");
  ov.shell = true;
  showConnection(ov.live);
  ov.downSince = null; // connecting, not yet down
  message("");
  for (const id of ["ov-search", "ov-grid", "ov-attention"]) {
    byId(id).addEventListener("input", refilter);
  }
  byId("ov-filters").addEventListener("submit", (event) => event.preventDefault());
  scheduleFlush();
  setInterval(tick, TICK_MS);
  await loadIngest();
  setInterval(loadIngest, INGEST_REFRESH_MS);
}

start().catch((error) => message(error.message));
