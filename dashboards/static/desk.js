// The alarm desk (/desk): every alarm that still needs someone — not yet closed (销号) —
// by priority, unacknowledged first, newest first; ack / shelve / feedback / verify
// from the row or the keyboard; live over the stream; a sound for new critical alarms.
// In a flood, "Acknowledge shown" acknowledges the unacknowledged alarms the filters
// show, top first, at most BULK_MAX per go, with one reason (POST /api/alarms/ack).
//
// Data: GET /api/enterprises (names, grids), GET /api/alarms?closed=false, the stream's
// `alarm` events. The server already sorts; the desk sorts again so a live update lands
// in its place.
import {
  api, el, fmtAge, fmtShortTime, fmtTime, initPage, may, openStream, priorityBadge, PRIORITY_RANK, t,
} from "/static/common.js";
import {
  ACTION_KEYS, actionButtons, actionsFor, isUnacked, runAction, showModal,
} from "/static/alarm-actions.js";

const ALARM_TYPES = [
  "HH", "H", "L", "LL", "ROC", "TREND", "ANOMALY", "STALE", "STUCK", "FAULT",
  "GATEWAY_OFFLINE", "SUSPENDED_LOAD", "SYSTEM",
];
const STATE_FILTERS = [
  "unacked", "active_unack", "active_ack", "cleared_unack", "cleared", "shelved", "suppressed",
  "awaiting_feedback", "awaiting_verification",
];
const MUTE_KEY = "hz.desk.muted";
const LIST_LIMIT = 1000;
const BULK_MAX = 100; // the server's limit per request

const desk = {
  me: null,
  enterprises: new Map(), // id -> {name, grid}
  alarms: new Map(), // id -> alarm JSON
  selected: null, // alarm id
  muted: localStorage.getItem(MUTE_KEY) === "1",
  audio: null,
  cues: 0,
  pending: false,
  loaded: false,
};

const byId = (id) => document.getElementById(id);

// --- order and filters ---------------------------------------------------------------

export function compareAlarms(a, b) {
  const rank = (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9);
  if (rank !== 0) return rank;
  const unacked = Number(isUnacked(b)) - Number(isUnacked(a));
  if (unacked !== 0) return unacked;
  if (a.raised_at !== b.raised_at) return a.raised_at < b.raised_at ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

function filters() {
  return {
    enterprise: byId("filter-enterprise").value,
    grid: byId("filter-grid").value,
    type: byId("filter-type").value,
    state: byId("filter-state").value,
  };
}

function shown(alarm, f) {
  if (f.enterprise && alarm.enterprise !== f.enterprise) return false;
  if (f.grid && (desk.enterprises.get(alarm.enterprise)?.grid ?? "") !== f.grid) return false;
  if (f.type && alarm.type !== f.type) return false;
  if (f.state === "unacked") return isUnacked(alarm);
  if (f.state === "awaiting_feedback" || f.state === "awaiting_verification") return alarm.disposal === f.state;
  if (f.state && alarm.state !== f.state) return false;
  return true;
}

function visibleAlarms() {
  const f = filters();
  return [...desk.alarms.values()].filter((a) => shown(a, f)).sort(compareAlarms);
}

function fillSelect(select, values, label) {
  const keep = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const value of values) {
    const option = el("option", "", label(value));
    option.value = value;
    select.append(option);
  }
  select.value = values.includes(keep) ? keep : "";
}

function setupFilters() {
  const params = new URLSearchParams(location.search);
  const enterprises = [...desk.enterprises.keys()].sort();
  fillSelect(byId("filter-enterprise"), enterprises, (id) => `${id} ${desk.enterprises.get(id).name}`);
  const grids = [...new Set([...desk.enterprises.values()].map((e) => e.grid).filter(Boolean))].sort();
  fillSelect(byId("filter-grid"), grids, (g) => g);
  fillSelect(byId("filter-type"), ALARM_TYPES, (type) => `${type} · ${t(`type.${type}`)}`);
  fillSelect(byId("filter-state"), STATE_FILTERS, (s) => t(`filter.state.${s}`));
  // A user of one enterprise (or one grid) has nothing to choose there.
  byId("filter-enterprise").closest("label").hidden = enterprises.length < 2;
  byId("filter-grid").closest("label").hidden = grids.length < 2;
  for (const name of ["enterprise", "grid", "type", "state"]) {
    const select = byId(`filter-${name}`);
    if (params.has(name)) select.value = params.get(name);
    select.addEventListener("change", () => {
      const next = new URLSearchParams(location.search);
      if (select.value) next.set(name, select.value);
      else next.delete(name);
      history.replaceState(null, "", `${location.pathname}${next.size ? `?${next}` : ""}`);
      render();
    });
  }
}

// --- rendering ---------------------------------------------------------------------------

function message(text, kind = "error") {
  const box = byId("desk-message");
  box.className = `hz-message ${kind}`;
  box.textContent = text || "";
}

function valueText(alarm) {
  if (alarm.value === null || alarm.value === undefined) return "";
  const limit = alarm.limit === null || alarm.limit === undefined ? "" : ` / ${alarm.limit}`;
  return `${alarm.value}${limit}`;
}

function row(alarm) {
  const tr = el("tr", `alarm-row prio-row-${alarm.priority}`);
  tr.dataset.id = alarm.id;
  tr.dataset.state = alarm.state;
  tr.tabIndex = -1;
  if (isUnacked(alarm)) tr.classList.add("unacked");
  if (alarm.id === desk.selected) {
    tr.classList.add("selected");
    tr.setAttribute("aria-selected", "true");
  }
  const enterprise = desk.enterprises.get(alarm.enterprise);
  const raised = el("td", "time");
  raised.append(el("span", "", fmtShortTime(alarm.raised_at)), el("span", "age", fmtAge(alarm.raised_at)));
  raised.title = fmtTime(alarm.raised_at);
  const where = el("td", "where");
  where.append(el("span", "inst", alarm.installation), el("span", "tag", alarm.tag));
  const ent = el("td", "enterprise", enterprise ? enterprise.name : alarm.enterprise);
  ent.title = alarm.enterprise;
  const state = el("td", "state");
  state.append(el("span", `state-chip state-${alarm.state}`, t(`state.${alarm.state}`)));
  const disposal = el("td", "disposal");
  if (alarm.disposal && alarm.disposal !== "none") {
    disposal.append(el("span", `disp disp-${alarm.disposal}`, t(`disposal.${alarm.disposal}`)));
    if (alarm.disposal === "awaiting_feedback" && alarm.feedback_due) {
      const due = el("span", "due", t("disposal.due", { at: fmtShortTime(alarm.feedback_due) }));
      if (Date.parse(alarm.feedback_due) < Date.now()) due.classList.add("overdue");
      disposal.append(due);
    }
  }
  if (alarm.escalation > 0) disposal.append(el("span", "escalated", t("disposal.escalated", { n: alarm.escalation })));
  const actions = el("td", "actions");
  actions.append(
    actionButtons(alarm, (updated) => update(updated), (text) => message(text)),
  );
  const open = el("a", "open", t("desk.details"));
  open.href = `/alarms/${encodeURIComponent(alarm.id)}`;
  actions.append(open);
  const prio = el("td", "prio");
  prio.append(priorityBadge(alarm.priority));
  tr.append(
    prio, raised, ent, where,
    el("td", "type", alarm.type),
    state,
    el("td", "num value", valueText(alarm)),
    el("td", "message", alarm.message),
    disposal,
    actions,
  );
  tr.addEventListener("click", () => select(alarm.id));
  tr.addEventListener("dblclick", () => location.assign(open.href));
  return tr;
}

function render() {
  desk.pending = false;
  const alarms = visibleAlarms();
  if (desk.selected && !alarms.some((a) => a.id === desk.selected)) desk.selected = null;
  byId("desk-rows").replaceChildren(...alarms.map(row));
  const empty = byId("desk-empty");
  empty.hidden = alarms.length > 0;
  empty.textContent = desk.alarms.size ? t("desk.noneFiltered") : t("desk.none");
  const all = [...desk.alarms.values()];
  const unacked = all.filter(isUnacked).length;
  const critical = all.filter((a) => a.priority === "critical" && isUnacked(a)).length;
  byId("desk-counts").textContent = t("desk.counts", { total: all.length, unacked, critical, shown: alarms.length });
  const bulk = byId("ack-shown");
  const shownUnacked = alarms.filter(isUnacked).length;
  bulk.hidden = !may("ack");
  bulk.disabled = shownUnacked === 0;
  bulk.textContent = t("bulk.button", { n: shownUnacked });
  document.title = unacked ? `(${unacked}) ${t("desk.title")} — hazwatch` : `${t("desk.title")} — hazwatch`;
}

function scheduleRender() {
  if (desk.pending) return;
  desk.pending = true;
  requestAnimationFrame(render);
}

function select(id) {
  desk.selected = id;
  for (const tr of byId("desk-rows").children) {
    const on = tr.dataset.id === id;
    tr.classList.toggle("selected", on);
    if (on) {
      tr.setAttribute("aria-selected", "true");
      tr.scrollIntoView({ block: "nearest" });
    } else tr.removeAttribute("aria-selected");
  }
}

// --- live updates and sound -----------------------------------------------------------

function update(alarm) {
  const before = desk.alarms.get(alarm.id);
  if (alarm.disposal === "closed") desk.alarms.delete(alarm.id);
  else desk.alarms.set(alarm.id, alarm);
  const fresh = alarm.state === "active_unack" && (!before || before.state !== "active_unack");
  if (fresh && alarm.priority === "critical") cue();
  scheduleRender();
}

function cue() {
  if (desk.muted) return;
  try {
    desk.audio ??= new AudioContext();
    const ctx = desk.audio;
    if (ctx.state === "suspended") ctx.resume();
    // Two short soft tones: noticeable, not alarming in itself.
    for (const [offset, freq] of [[0, 880], [0.22, 660]]) {
      const start = ctx.currentTime + offset;
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.18);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start);
      osc.stop(start + 0.2);
    }
    desk.cues += 1;
    document.body.dataset.cues = String(desk.cues);
  } catch {
    // No audio device: the row and the title count still show the alarm.
  }
}

function showMute() {
  const button = byId("mute");
  button.textContent = desk.muted ? t("desk.soundOff") : t("desk.soundOn");
  button.setAttribute("aria-pressed", String(desk.muted));
  button.classList.toggle("muted", desk.muted);
}

function toggleMute() {
  desk.muted = !desk.muted;
  localStorage.setItem(MUTE_KEY, desk.muted ? "1" : "0");
  if (!desk.muted) {
    desk.audio ??= new AudioContext();
    desk.audio.resume();
  }
  showMute();
}

async function loadAlarms() {
  const alarms = await api(`/api/alarms?closed=false&limit=${LIST_LIMIT}`);
  desk.alarms = new Map(alarms.map((a) => [a.id, a]));
  if (alarms.length >= LIST_LIMIT) message(t("desk.truncated", { n: LIST_LIMIT }), "info");
  scheduleRender();
}

// The list is (re)read each time the stream opens: subscribed first, so nothing raised
// in between is missed, and what a reconnect missed is caught up. A stream that never
// opens still gets the list once.
function showConnection(up) {
  const badge = byId("connection");
  badge.textContent = up ? t("desk.live") : t("desk.reconnecting");
  badge.className = `connection ${up ? "live" : "down"}`;
}

function live(up, opened) {
  showConnection(up);
  if (up || (!opened && !desk.loaded)) {
    desk.loaded = true;
    loadAlarms()
      .then(() => {
        document.body.dataset.ready = "1";
      })
      .catch((error) => message(error.message));
  }
}

// --- acknowledging what is shown (a flood) -------------------------------------------

// The reason, asked in a modal form; resolves with it, or null when cancelled.
function askReason(count, left) {
  const dialog = el("dialog", "action-dialog action-bulk");
  dialog.id = "dialog-bulk";
  const form = el("form");
  form.method = "dialog";
  const reason = el("input");
  Object.assign(reason, { type: "text", name: "reason", required: true, maxLength: 500 });
  const label = el("label");
  label.append(el("span", "", t("bulk.reason")), reason);
  const cancel = el("button", "btn", t("action.cancel"));
  cancel.type = "button";
  const submit = el("button", "btn primary", t("bulk.submit", { n: count }));
  submit.type = "submit";
  const buttons = el("div", "actions");
  buttons.append(cancel, submit);
  form.append(el("h2", "", t("bulk.title", { n: count })));
  if (left > 0) form.append(el("p", "dialog-subject", t("bulk.limited", { max: BULK_MAX, left })));
  form.append(label, buttons);
  dialog.append(form);
  return showModal(dialog, cancel, (finish) => finish(reason.value.trim() || null));
}

async function ackShown() {
  if (!may("ack")) return;
  const unacked = visibleAlarms().filter(isUnacked);
  if (!unacked.length) return message(t("bulk.none"), "info");
  const batch = unacked.slice(0, BULK_MAX);
  const reason = await askReason(batch.length, unacked.length - batch.length);
  if (!reason) return;
  try {
    const result = await api("/api/alarms/ack", { method: "POST", body: { ids: batch.map((a) => a.id), reason } });
    for (const alarm of result.acknowledged) update(alarm);
    const left = unacked.length - batch.length;
    let text = t("bulk.done", { done: result.acknowledged.length, refused: result.refused.length });
    if (left > 0) text += ` ${t("bulk.more", { left })}`;
    message(text, result.refused.length ? "error" : "info");
  } catch (error) {
    message(t("action.failed", { detail: error.message }));
  }
}

// --- keyboard --------------------------------------------------------------------------

function move(step) {
  const rows = [...byId("desk-rows").children];
  if (!rows.length) return;
  const at = rows.findIndex((tr) => tr.dataset.id === desk.selected);
  const next = at < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, at + step));
  select(rows[next].dataset.id);
}

async function act(action) {
  const alarm = desk.alarms.get(desk.selected);
  if (!alarm) return message(t("desk.selectFirst"), "info");
  if (!actionsFor(alarm).includes(action)) {
    return message(t("desk.notOffered", { action: t(`${action}.title`), state: t(`state.${alarm.state}`) }), "info");
  }
  try {
    const updated = await runAction(action, alarm);
    if (updated) {
      message("");
      update(updated);
    }
  } catch (error) {
    message(error.message);
  }
}

function keyboard(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select, dialog")) return;
  const action = Object.keys(ACTION_KEYS).find((name) => ACTION_KEYS[name] === event.key);
  if (event.key === "j") move(1);
  else if (event.key === "k") move(-1);
  else if (action) act(action);
  else if (event.key === "m") toggleMute();
  else if (event.key === "A") ackShown();
  else if (event.key === "?") byId("help").showModal();
  else if (event.key === "Enter" && desk.selected) location.assign(`/alarms/${encodeURIComponent(desk.selected)}`);
  else return;
  event.preventDefault();
}

// --- start ----------------------------------------------------------------------------

async function start() {
  desk.me = await initPage("desk");
  showMute();
  byId("mute").addEventListener("click", toggleMute);
  byId("help-button").addEventListener("click", () => byId("help").showModal());
  byId("ack-shown").addEventListener("click", ackShown);
  document.addEventListener("keydown", keyboard);
  showConnection(false);
  try {
    const enterprises = await api("/api/enterprises");
    desk.enterprises = new Map(enterprises.map((e) => [e.id, { name: e.name, grid: e.grid }]));
  } catch (error) {
    message(error.message);
  }
  setupFilters();
  openStream({ alarm: update }, live, "/api/stream?view=desk");
  // Ages ("5 min") move on without events.
  setInterval(scheduleRender, 30_000);
}

start().catch((error) => message(error.message));
