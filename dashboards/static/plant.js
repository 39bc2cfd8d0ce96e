// The enterprise and installation pages: live values with limits and states over one
// SSE stream, and a trend chart of any point over a chosen range (uPlot, vendored) with
// its limit lines and the point's alarms as markers.
//
// One page for both (static/plant.html): /enterprises/{eid} shows every installation of
// the enterprise, /installations/{eid}/{iid} one of them; the ids come from the address.
//
// Data: GET /api/enterprises/{eid} (points with limits and last value),
// GET /api/points/{eid}/{tag}/history?start=&end= (the trend),
// GET /api/alarms?enterprise=&since= (markers), GET /api/stream?view=... (live).
// Every text from the server goes through textContent.

import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { api, currentUser, el, fmtTime, initPage, openStream, priorityBadge, t } from "/static/common.js";
import { riskBadge, riskReason } from "/static/risk.js";

const RANGES = [
  ["15m", 15 * 60_000],
  ["1h", 3_600_000],
  ["6h", 6 * 3_600_000],
  ["24h", 24 * 3_600_000],
  ["7d", 7 * 24 * 3_600_000],
];
const LIMITS = [
  ["hh", "#c62828"],
  ["h", "#e65100"],
  ["l", "#e65100"],
  ["ll", "#c62828"],
];
const PRIORITY_COLOUR = { critical: "#c62828", high: "#e65100", medium: "#b08900", low: "#1565c0" };
const STATE_CLASS = { HH: "st-hh", H: "st-h", normal: "st-normal", L: "st-l", LL: "st-ll" };

function fmtValue(value, unit) {
  if (value === null || value === undefined) return "—";
  const text = Math.abs(value) >= 1000 ? value.toFixed(0) : Number(value.toPrecision(4)).toString();
  return unit ? `${text} ${unit}` : text;
}

function limitsText(p) {
  const parts = [];
  for (const [key, label] of [["ll", "LL"], ["l", "L"], ["h", "H"], ["hh", "HH"]]) {
    if (p[key] !== null && p[key] !== undefined) parts.push(`${label} ${p[key]}`);
  }
  return parts.join(" · ") || "—";
}

class LiveTable {
  constructor(points, onPick) {
    this.rows = new Map();
    this.points = new Map(points.map((p) => [p.tag, p]));
    this.table = el("table", "points");
    const head = el("tr");
    for (const key of ["plant.col.tag", "plant.col.name", "plant.col.value", "plant.col.state", "plant.col.limits", "plant.col.time"]) {
      head.append(el("th", "", t(key)));
    }
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    for (const p of points) {
      const row = el("tr");
      row.dataset.tag = p.tag;
      const tagCell = el("td", "tag");
      const pick = el("button", "linkish", p.tag);
      pick.type = "button";
      pick.title = t("trend.show");
      pick.addEventListener("click", () => onPick(p.tag));
      tagCell.append(pick);
      const cells = {
        value: el("td", "value num"),
        state: el("td", "state"),
        time: el("td", "time"),
      };
      row.append(tagCell, el("td", "", p.name), cells.value, cells.state, el("td", "limits", limitsText(p)), cells.time);
      tbody.append(row);
      this.rows.set(p.tag, { row, ...cells });
      this.show(p.tag, p.last ? p.last.value : null, p.last ? p.last.ts : null, p.limit_state, p.last ? p.last.stale : false);
    }
    this.table.append(thead, tbody);
  }

  show(tag, value, ts, state, stale) {
    const r = this.rows.get(tag);
    const p = this.points.get(tag);
    if (!r || !p) return;
    r.value.textContent = fmtValue(value, p.unit);
    r.time.textContent = ts ? fmtTime(ts) : "—";
    r.state.replaceChildren();
    if (stale) {
      r.state.append(el("span", "state-badge st-stale", t("limit.stale")));
    } else if (state) {
      r.state.append(el("span", `state-badge ${STATE_CLASS[state] || ""}`, t(`limit.${state}`)));
    } else {
      r.state.append(el("span", "state-badge st-none", t("limit.none")));
    }
    r.row.classList.toggle("alarmed", state && state !== "normal");
    r.row.classList.toggle("stale", Boolean(stale));
  }
}

// --- trend chart ------------------------------------------------------------------------

class Trend {
  constructor(root, eid) {
    this.eid = eid;
    this.root = root;
    this.chart = null;
    this.point = null;
    this.rangeMs = 3_600_000;
    this.select = el("select", "trend-point");
    this.select.id = "trend-point";
    this.select.setAttribute("aria-label", t("trend.point"));
    this.ranges = el("div", "trend-ranges");
    for (const [label, ms] of RANGES) {
      const b = el("button", "btn range", t(`range.${label}`));
      b.type = "button";
      b.dataset.range = label;
      b.addEventListener("click", () => {
        this.rangeMs = ms;
        this.endMs = null;
        this.load();
      });
      this.ranges.append(b);
    }
    this.title = el("h3", "trend-title");
    this.note = el("p", "hz-message info trend-note");
    this.plot = el("div", "trend-plot");
    this.plot.id = "trend-plot";
    this.legend = el("div", "trend-legend");
    const bar = el("div", "trend-bar");
    bar.append(this.select, this.ranges);
    root.append(bar, this.title, this.plot, this.legend, this.note);
    this.select.addEventListener("change", () => this.pick(this.select.value));
    new ResizeObserver(() => {
      if (this.chart) this.chart.setSize(this.size());
    }).observe(this.plot);
  }

  setPoints(points) {
    this.points = new Map(points.map((p) => [p.tag, p]));
    this.select.replaceChildren();
    for (const p of points) {
      const option = el("option", "", `${p.tag} — ${p.name}`);
      option.value = p.tag;
      this.select.append(option);
    }
  }

  size() {
    return { width: Math.max(320, this.plot.clientWidth), height: 300 };
  }

  pick(tag) {
    this.point = this.points.get(tag);
    this.select.value = tag;
    return this.load();
  }

  async load() {
    const p = this.point;
    if (!p) return;
    for (const b of this.ranges.children) {
      b.classList.toggle("active", RANGES.find(([l]) => l === b.dataset.range)[1] === this.rangeMs);
    }
    const end = Date.now();
    const start = end - this.rangeMs;
    this.title.textContent = `${p.tag} — ${p.name}${p.unit ? ` (${p.unit})` : ""}`;
    this.note.textContent = t("trend.loading");
    this.note.className = "hz-message info trend-note";
    let history;
    let alarms;
    try {
      const q = `start=${start}&end=${end}`;
      [history, alarms] = await Promise.all([
        api(`/api/points/${encodeURIComponent(this.eid)}/${encodeURIComponent(p.tag)}/history?${q}`),
        api(`/api/alarms?enterprise=${encodeURIComponent(this.eid)}&since=${start - 7 * 24 * 3_600_000}&limit=1000`),
      ]);
    } catch (error) {
      this.note.textContent = `${t("trend.failed")}: ${error.message}`;
      this.note.className = "hz-message error trend-note";
      return;
    }
    const xs = history.points.map((q) => Date.parse(q.ts) / 1000);
    const ys = history.points.map((q) => q.value);
    const markers = [];
    for (const a of alarms) {
      if (a.tag !== p.tag) continue;
      const raised = Date.parse(a.raised_at);
      if (raised >= start && raised <= end) markers.push({ at: raised / 1000, alarm: a, kind: "raised" });
      const cleared = a.cleared_at ? Date.parse(a.cleared_at) : null;
      if (cleared !== null && cleared >= start && cleared <= end) markers.push({ at: cleared / 1000, alarm: a, kind: "cleared" });
    }
    this.draw(xs, ys, start / 1000, end / 1000, markers);
    this.note.textContent = xs.length
      ? t("trend.summary", { n: xs.length, step: Math.round(history.step_ms / 1000), alarms: markers.filter((m) => m.kind === "raised").length })
      : t("trend.empty");
  }

  draw(xs, ys, start, end, markers) {
    const p = this.point;
    const limits = LIMITS.filter(([key]) => p[key] !== null && p[key] !== undefined);
    const series = [
      {},
      { label: p.tag, stroke: "#2f4f86", width: 2, spanGaps: false },
      ...limits.map(([key, colour]) => ({ label: key.toUpperCase(), stroke: colour, width: 1, dash: [6, 4], points: { show: false } })),
    ];
    const data = [xs, ys, ...limits.map(([key]) => xs.map(() => p[key]))];
    // the limits stay visible even when the values are far from them
    const all = [...ys, ...limits.map(([key]) => p[key])].filter((v) => v !== null && v !== undefined);
    const lo = all.length ? Math.min(...all) : 0;
    const hi = all.length ? Math.max(...all) : 1;
    const pad = (hi - lo) * 0.08 || 1;
    const opts = {
      ...this.size(),
      series,
      scales: { x: { time: true, min: start, max: end }, y: { range: [lo - pad, hi + pad] } },
      axes: [{ values: axisFormatter((end - start) * 1000) }, { label: p.unit || "" }],
      legend: { show: true },
      hooks: { draw: [(u) => drawMarkers(u, markers)] },
    };
    if (this.chart) this.chart.destroy();
    this.plot.replaceChildren();
    this.chart = new uPlot(opts, data, this.plot);
    this.plot.dataset.points = String(xs.length);
    this.plot.dataset.markers = String(markers.length);
    this.legend.replaceChildren();
    for (const m of markers.filter((k) => k.kind === "raised")) {
      const item = el("span", "marker-item");
      item.append(priorityBadge(m.alarm.priority), el("span", "", ` ${m.alarm.type} ${fmtTime(m.alarm.raised_at)}`));
      const link = el("a", "", t("trend.alarm"));
      link.href = `/alarms/${encodeURIComponent(m.alarm.id)}`;
      item.append(" ", link);
      this.legend.append(item);
    }
  }
}

// Axis labels in the site's time zone, 24-hour: the day as well when the range spans days.
function axisFormatter(rangeMs) {
  const me = currentUser();
  const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (rangeMs > 24 * 3_600_000) Object.assign(options, { month: "2-digit", day: "2-digit" });
  let format;
  try {
    format = new Intl.DateTimeFormat(me ? me.lang : undefined, { ...options, timeZone: me && me.tz ? me.tz : undefined });
  } catch {
    format = new Intl.DateTimeFormat(undefined, options);
  }
  return (u, splits) => splits.map((s) => (s === null ? "" : format.format(new Date(s * 1000))));
}

function drawMarkers(u, markers) {
  const ctx = u.ctx;
  ctx.save();
  const top = u.bbox.top;
  const bottom = u.bbox.top + u.bbox.height;
  for (const m of markers) {
    const x = Math.round(u.valToPos(m.at, "x", true));
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.strokeStyle = PRIORITY_COLOUR[m.alarm.priority] || "#444";
    ctx.lineWidth = m.kind === "raised" ? 2 * devicePixelRatio : 1 * devicePixelRatio;
    ctx.setLineDash(m.kind === "raised" ? [] : [3 * devicePixelRatio, 3 * devicePixelRatio]);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    if (m.kind === "raised") {
      ctx.fillStyle = ctx.strokeStyle;
      ctx.font = `${11 * devicePixelRatio}px sans-serif`;
      const label = `▼ ${m.alarm.type}`;
      const width = ctx.measureText(label).width;
      const right = u.bbox.left + u.bbox.width;
      const lx = x + 3 * devicePixelRatio + width > right ? x - 3 * devicePixelRatio - width : x + 3 * devicePixelRatio;
      ctx.fillText(label, lx, top + 12 * devicePixelRatio);
    }
  }
  ctx.restore();
}

// --- the page ---------------------------------------------------------------------------

function streamView(eid, iid) {
  return iid ? `installation:${eid}/${iid}` : `enterprise:${eid}`;
}

async function startPlantPage({ page, eid, iid }) {
  await initPage(page);
  const header = document.getElementById("plant-header");
  const live = document.getElementById("live");
  const trendRoot = document.getElementById("trend");
  const message = document.getElementById("message");
  let detail;
  try {
    detail = await api(`/api/enterprises/${encodeURIComponent(eid)}`);
  } catch (error) {
    message.textContent = error.status === 404 ? t("plant.notFound", { id: eid }) : error.message;
    message.className = "hz-message error";
    return;
  }
  let installations = detail.installations;
  if (iid) {
    installations = installations.filter((i) => i.id === iid);
    if (!installations.length) {
      message.textContent = t("plant.notFound", { id: `${eid}/${iid}` });
      message.className = "hz-message error";
      return;
    }
  }
  const title = iid ? `${installations[0].name} (${iid}) — ${detail.name}` : `${detail.name} (${eid})`;
  document.title = `${title} — hazwatch`;
  const h1 = el("h1", "", title);
  const risk = el("div", "plant-risk");
  risk.id = "plant-risk";
  const facts = el("p", "plant-facts");
  header.replaceChildren(h1, risk, facts);
  const showRisk = (summary) => {
    const reason = riskReason(summary);
    const badge = riskBadge(summary.risk);
    badge.title = reason;
    risk.replaceChildren(badge, el("span", "risk-reason", reason));
  };
  showRisk(detail);
  const gridText = t("plant.grid", { grid: detail.grid });
  facts.replaceChildren(el("span", "", gridText));
  if (iid) {
    const back = el("a", "", t("plant.enterprise", { name: detail.name }));
    back.href = `/enterprises/${encodeURIComponent(eid)}`;
    facts.append(" · ", back);
  }

  const allPoints = [];
  const tables = [];
  const pickTrend = (tag) => {
    trend.pick(tag);
    trendRoot.scrollIntoView({ behavior: "smooth", block: "nearest" });
  };
  const trend = new Trend(trendRoot, eid);
  for (const inst of installations) {
    const section = el("section", "panel installation");
    const h2 = el("h2");
    if (iid) {
      h2.textContent = t("plant.points");
    } else {
      const link = el("a", "", `${inst.name} (${inst.id})`);
      link.href = `/installations/${encodeURIComponent(eid)}/${encodeURIComponent(inst.id)}`;
      h2.append(link);
    }
    h2.append(el("span", "grade", t("plant.grade", { grade: inst.grade })));
    const table = new LiveTable(inst.points, pickTrend);
    tables.push(table);
    section.append(h2, table.table);
    live.append(section);
    allPoints.push(...inst.points);
  }
  trend.setPoints(allPoints);
  if (allPoints.length) await trend.pick(allPoints[0].tag);
  document.body.dataset.ready = "1";

  const tableOf = (tag) => tables.find((tb) => tb.points.has(tag));
  let refreshing = null;
  const refreshRisk = () => {
    clearTimeout(refreshing);
    refreshing = setTimeout(async () => {
      try {
        showRisk(await api(`/api/enterprises/${encodeURIComponent(eid)}`));
      } catch {
        /* the next alarm tries again */
      }
    }, 500);
  };
  // Values and risk read again after a reconnect or a resync: the items missed meanwhile.
  const reload = async () => {
    try {
      const now = await api(`/api/enterprises/${encodeURIComponent(eid)}`);
      showRisk(now);
      for (const inst of now.installations) {
        for (const p of inst.points) {
          const tb = tableOf(p.tag);
          if (tb) tb.show(p.tag, p.last ? p.last.value : null, p.last ? p.last.ts : null, p.limit_state, p.last ? p.last.stale : false);
        }
      }
    } catch {
      /* the next reconnect or resync tries again */
    }
  };
  const status = document.getElementById("live-status");
  const onLive = (up, missed) => {
    status.textContent = t(up ? "live.connected" : "live.reconnecting");
    status.className = `live-status ${up ? "up" : "down"}`;
    if (up && missed) reload();
  };
  const handlers = {
    reading: (r) => {
      if (r.enterprise !== eid) return; // a stream without views sends everything
      const tb = tableOf(r.tag);
      if (tb) tb.show(r.tag, r.value, r.ts, r.limit_state, Boolean(r.stale));
    },
    stale: (s) => {
      if (s.enterprise !== eid) return;
      const tb = tableOf(s.tag);
      const row = tb && tb.rows.get(s.tag);
      if (row) row.row.classList.add("stale");
      if (row) row.state.replaceChildren(el("span", "state-badge st-stale", t("limit.stale")));
    },
    alarm: (a) => {
      if (a.enterprise !== eid) return;
      refreshRisk();
      if (trend.point && trend.point.tag === a.tag) trend.load();
    },
  };
  openStream(handlers, onLive, `/api/stream?view=${encodeURIComponent(streamView(eid, iid))}`);
}

const [, kind, eid, iid] = location.pathname.split("/").map(decodeURIComponent);
startPlantPage(
  kind === "installations" ? { page: "installation", eid, iid } : { page: "enterprise", eid },
);
