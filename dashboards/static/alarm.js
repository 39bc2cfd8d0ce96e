// One alarm's page (/alarms/{id}): what, where, its state and disposal loop, the actions
// the user may take, and its history — transitions (who, when, comment), escalations
// (督办 tiers and whom they told) and every notification's delivery. Live: refreshed
// when the stream reports a change of this alarm.
//
// Data: GET /api/alarms/{id} (with transitions and notifications), GET /api/enterprises.
import { api, el, fmtTime, initPage, openStream, priorityBadge, t } from "/static/common.js";
import { actionButtons } from "/static/alarm-actions.js";

const alarmId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const byId = (id) => document.getElementById(id);
let enterpriseName = () => null;

function message(text, kind = "error") {
  const box = byId("alarm-message");
  box.className = `hz-message ${kind}`;
  box.textContent = text || "";
}

function facts(list, pairs) {
  list.replaceChildren(
    ...pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([key, value]) => {
        const item = el("div");
        item.append(el("dt", "", t(key)), el("dd", "", value));
        return item;
      }),
  );
}

function cells(tr, values) {
  for (const [className, value] of values) tr.append(el("td", className, value ?? ""));
  return tr;
}

function rows(tableId, emptyId, items, build) {
  byId(tableId).tBodies[0].replaceChildren(...items.map(build));
  if (emptyId) byId(emptyId).hidden = items.length > 0;
}

function render(alarm) {
  document.title = `${alarm.type} ${alarm.tag} — hazwatch`;
  byId("alarm-priority").replaceChildren(priorityBadge(alarm.priority));
  byId("alarm-title").textContent = `${alarm.type} · ${alarm.installation} / ${alarm.tag}`;
  byId("alarm-text").textContent = alarm.message;
  byId("alarm-actions").replaceChildren(
    actionButtons(alarm, (updated) => load(updated.id), (text) => message(text)),
  );
  const limit = alarm.limit === null || alarm.limit === undefined ? "" : ` / ${alarm.limit}`;
  facts(byId("alarm-facts"), [
    ["col.enterprise", enterpriseName(alarm.enterprise) ? `${enterpriseName(alarm.enterprise)} (${alarm.enterprise})` : alarm.enterprise],
    ["col.state", t(`state.${alarm.state}`)],
    ["col.value", alarm.value === null || alarm.value === undefined ? "" : `${alarm.value}${limit}`],
    ["alarm.raisedAt", fmtTime(alarm.raised_at)],
    ["alarm.clearedAt", alarm.cleared_at ? fmtTime(alarm.cleared_at) : null],
    ["alarm.shelvedUntil", alarm.shelved_until ? fmtTime(alarm.shelved_until) : null],
    ["alarm.escalation", alarm.escalation ? String(alarm.escalation) : null],
    ["alarm.id", alarm.id],
  ]);
  const feedback = alarm.feedback;
  const verification = alarm.verification;
  facts(byId("loop-facts"), [
    ["col.disposal", t(`disposal.${alarm.disposal}`)],
    ["alarm.feedbackDue", alarm.feedback_due ? fmtTime(alarm.feedback_due) : null],
    ["feedback.cause", feedback ? feedback.cause : null],
    ["feedback.measures", feedback ? feedback.measures : null],
    ["alarm.feedbackBy", feedback ? `${feedback.by} · ${fmtTime(feedback.at)}` : null],
    ["verify.verdict", verification ? t(verification.accepted ? "verify.accepted" : "verify.rejected") : null],
    ["verify.comment", verification ? verification.comment : null],
    ["alarm.verifiedBy", verification ? `${verification.by} · ${fmtTime(verification.at)}` : null],
    ["alarm.closedAt", alarm.closed_at ? fmtTime(alarm.closed_at) : null],
  ]);

  rows("transitions", null, alarm.transitions, (step) =>
    cells(el("tr", `kind-${step.kind}`), [
      ["when", fmtTime(step.at)],
      [`kind-${step.kind}`, t(`kind.${step.kind}`)],
      ["", `${step.from ? `${t(`state.${step.from}`)} → ` : ""}${t(`state.${step.to}`)}`],
      ["", step.user || t("alarm.system")],
      ["", step.comment || ""],
    ]),
  );

  const bySeq = new Map();
  for (const note of alarm.notifications) {
    if (!bySeq.has(note.seq)) bySeq.set(note.seq, []);
    bySeq.get(note.seq).push(note);
  }
  const escalations = alarm.transitions.filter((step) => step.kind === "escalated");
  rows("escalations", "escalations-empty", escalations, (step, index) => {
    const told = [
      ...new Set((bySeq.get(step.seq) || []).map((n) => (n.recipient && n.recipient !== n.channel ? `${n.channel}: ${n.recipient}` : n.channel))),
    ];
    return cells(el("tr"), [
      ["when", fmtTime(step.at)],
      ["", String(index + 1)],
      ["", told.join(", ")],
      ["", step.comment || ""],
    ]);
  });

  const kindOf = new Map(alarm.transitions.map((step) => [step.seq, step.kind]));
  rows("notifications", "notifications-empty", alarm.notifications, (note) =>
    cells(el("tr"), [
      ["", kindOf.has(note.seq) ? `${note.seq} · ${t(`kind.${kindOf.get(note.seq)}`)}` : String(note.seq)],
      ["", note.channel],
      ["", note.recipient || "—"],
      ["", t(`purpose.${note.purpose}`)],
      [`status-${note.status}`, t(`status.${note.status}`)],
      ["num", String(note.attempts)],
      ["when", note.delivered_at ? fmtTime(note.delivered_at) : ""],
      ["", note.last_error || ""],
    ]),
  );
}

// Deliveries change no alarm state, so the stream says nothing of them: while one is
// pending, the page reads the alarm again now and then.
const PENDING_REFRESH_MS = 3000;
let pendingTimer = null;

async function load() {
  try {
    const alarm = await api(`/api/alarms/${encodeURIComponent(alarmId)}`);
    render(alarm);
    document.body.dataset.ready = "1";
    clearTimeout(pendingTimer);
    if (alarm.notifications.some((note) => note.status === "pending")) {
      pendingTimer = setTimeout(load, PENDING_REFRESH_MS);
    }
  } catch (error) {
    message(error.status === 404 ? t("alarm.notFound", { id: alarmId }) : error.message);
  }
}

async function start() {
  await initPage("desk");
  try {
    const enterprises = await api("/api/enterprises");
    enterpriseName = (id) => enterprises.find((e) => e.id === id)?.name ?? null;
  } catch {
    // Names are a nicety: the id is shown instead.
  }
  await load();
  // Read again once subscribed (a change between the first read and the subscription
  // would be missed otherwise), and after every reconnect.
  openStream(
    { alarm: (changed) => changed.id === alarmId && load() },
    (up) => up && load(),
    "/api/stream?view=desk",
  );
}

start().catch((error) => message(error.message));
