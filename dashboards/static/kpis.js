// /kpis: the alarm system's ISA-18.2 figures over a chosen period (GET /api/kpis),
// scoped by the server to the enterprises the user sees.

import {
  api, currentUser, el, fmtTime, fromZoneInput, initPage, t, toZoneInput,
} from "/static/common.js";

const PRESETS = [
  ["24h", 24 * 3_600_000],
  ["7d", 7 * 24 * 3_600_000],
  ["30d", 30 * 24 * 3_600_000],
];
const fromInput = document.getElementById("from");
const toInput = document.getElementById("to");
const message = document.getElementById("message");

function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return Number(value).toFixed(digits);
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 120) return t("dur.s", { n: Math.round(seconds) });
  if (seconds < 7200) return t("dur.min", { n: (seconds / 60).toFixed(1) });
  return t("dur.h", { n: (seconds / 3600).toFixed(1) });
}

function table(id, columns, rows, empty) {
  const root = document.getElementById(id);
  root.replaceChildren();
  if (!rows.length) {
    root.append(el("p", "kpi-empty", empty || t("kpi.none")));
    return;
  }
  const tbl = el("table", "points kpi-table");
  tbl.dataset.kpi = id;
  const head = el("tr");
  for (const [label, , cls] of columns) head.append(el("th", cls || "", t(label)));
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const [, value, cls] of columns) {
      const cell = el("td", cls || "");
      const v = value(row);
      if (v instanceof Node) cell.append(v);
      else cell.textContent = v;
      tr.append(cell);
    }
    tbody.append(tr);
  }
  tbl.append(thead, tbody);
  root.append(tbl);
}

function card(label, value, id, alert = false) {
  const box = el("div", `kpi-card${alert ? " alert" : ""}`);
  const figure = el("div", "kpi-figure", value);
  figure.id = id;
  box.append(figure, el("div", "kpi-label", t(label)));
  return box;
}

function enterpriseLink(row) {
  const link = el("a", "", row.enterprise);
  link.href = `/enterprises/${encodeURIComponent(row.enterprise)}`;
  return link;
}

function alarmName(row) {
  return `${row.installation} / ${row.tag} ${row.type}`;
}

function render(k) {
  const total = k.rate.reduce((s, r) => s + r.alarms, 0);
  const worstFlood = Math.max(0, ...k.rate.map((r) => r.flood_pct));
  const worstRate = Math.max(0, ...k.rate.map((r) => r.per_10min_mean));
  const acks = k.response.by_grid.reduce((s, r) => s + r.acknowledged, 0);
  const ackMean = acks
    ? k.response.by_grid.reduce((s, r) => s + (r.mean_ack_s || 0) * r.acknowledged, 0) / acks
    : null;
  document.getElementById("cards").replaceChildren(
    card("kpi.card.alarms", String(total), "kpi-total"),
    card("kpi.card.rate", fmtNumber(worstRate, 2), "kpi-rate", worstRate > k.rules.flood_alarms / 10),
    card("kpi.card.flood", `${fmtNumber(worstFlood, 1)} %`, "kpi-flood", worstFlood > 1),
    card("kpi.card.chattering", String(k.chattering.length), "kpi-chattering", k.chattering.length > 0),
    card("kpi.card.standing", String(k.standing.length), "kpi-standing", k.standing.length > 0),
    card("kpi.card.ack", fmtDuration(ackMean), "kpi-ack"),
  );
  document.getElementById("kpi-scope").textContent = t("kpi.scope", {
    n: k.enterprises, from: fmtTime(k.start), to: fmtTime(k.end), tz: currentUser()?.tz || "",
  });
  if (k.truncated) {
    message.textContent = t("kpi.truncated");
    message.className = "hz-message error";
  }
  table("rate", [
    ["kpi.col.position", (r) => r.position || t("kpi.noGrid")],
    ["kpi.col.alarms", (r) => String(r.alarms), "num"],
    ["kpi.col.mean10", (r) => fmtNumber(r.per_10min_mean, 2), "num"],
    ["kpi.col.max10", (r) => String(r.per_10min_max), "num"],
    ["kpi.col.flood", (r) => `${fmtNumber(r.flood_pct, 1)} %`, "num"],
  ], k.rate);
  const responseCols = (label) => [
    [label, (r) => r.id || t("kpi.noGrid")],
    ["kpi.col.acked", (r) => String(r.acknowledged), "num"],
    ["kpi.col.unacked", (r) => String(r.unacknowledged), "num"],
    ["kpi.col.mttAck", (r) => fmtDuration(r.mean_ack_s), "num"],
    ["kpi.col.feedback", (r) => String(r.feedback), "num"],
    ["kpi.col.mttFeedback", (r) => fmtDuration(r.mean_feedback_s), "num"],
  ];
  const response = document.getElementById("response");
  response.replaceChildren(el("div", "", ""), el("div", "", ""));
  response.children[0].id = "response-grid";
  response.children[1].id = "response-enterprise";
  table("response-grid", responseCols("kpi.col.grid"), k.response.by_grid);
  table("response-enterprise", responseCols("kpi.col.enterprise"), k.response.by_enterprise);
  table("top", [
    ["kpi.col.rank", (r) => String(k.top.indexOf(r) + 1), "num"],
    ["kpi.col.enterprise", enterpriseLink],
    ["kpi.col.alarm", alarmName],
    ["kpi.col.count", (r) => String(r.count), "num"],
    ["kpi.col.share", (r) => `${fmtNumber(r.share_pct, 1)} %`, "num"],
  ], k.top);
  document.getElementById("chatter-help").textContent = t("kpi.chattering.help", {
    n: k.rules.chatter_count, s: k.rules.chatter_window_s,
  });
  table("chattering", [
    ["kpi.col.enterprise", enterpriseLink],
    ["kpi.col.alarm", alarmName],
    ["kpi.col.count", (r) => String(r.count), "num"],
    ["kpi.col.maxWindow", (r) => String(r.max_in_window), "num"],
  ], k.chattering);
  document.getElementById("standing-help").textContent = t("kpi.standing.help", { h: k.rules.standing_h });
  table("standing", [
    ["kpi.col.enterprise", enterpriseLink],
    ["kpi.col.alarm", (r) => {
      const link = el("a", "", alarmName(r));
      link.href = `/alarms/${encodeURIComponent(r.alarm_id)}`;
      return link;
    }],
    ["kpi.col.raised", (r) => fmtTime(r.raised_at)],
    ["kpi.col.activeH", (r) => fmtNumber(r.active_h, 1), "num"],
    ["kpi.col.still", (r) => (r.still_active ? t("kpi.yes") : t("kpi.no"))],
  ], k.standing);
}

async function load(fromMs, toMs) {
  message.textContent = "";
  message.className = "hz-message";
  try {
    render(await api(`/api/kpis?from=${fromMs}&to=${toMs}`));
    document.body.dataset.ready = "1";
  } catch (error) {
    message.textContent = error.message;
    message.className = "hz-message error";
  }
}

async function main() {
  await initPage("kpis");
  const presets = document.getElementById("presets");
  for (const [label, span] of PRESETS) {
    const b = el("button", "btn range", t(`range.${label}`));
    b.type = "button";
    b.addEventListener("click", () => {
      const now = Date.now();
      fromInput.value = toZoneInput(now - span);
      toInput.value = toZoneInput(now);
      load(now - span, now);
    });
    presets.append(b);
  }
  document.getElementById("period").addEventListener("submit", (e) => {
    e.preventDefault();
    load(fromZoneInput(fromInput.value), fromZoneInput(toInput.value));
  });
  const params = new URLSearchParams(location.search);
  const now = Date.now();
  const toMs = Number(params.get("to")) || now;
  const fromMs = Number(params.get("from")) || toMs - PRESETS[0][1];
  fromInput.value = toZoneInput(fromMs);
  toInput.value = toZoneInput(toMs);
  await load(fromMs, toMs);
}

main();
