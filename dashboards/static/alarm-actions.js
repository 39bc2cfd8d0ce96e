// The alarm actions, shared by the desk and the alarm's page: which a user may take on
// an alarm in its state, and the dialogs that take them (ack at once; shelve, feedback
// and verify ask for their reasons). The server decides; this only offers what it
// would accept, and shows its refusals (409 naming the state, 422 shelving too long).
import { api, ApiError, el, may, t } from "/static/common.js";

const UNACKED = new Set(["active_unack", "cleared_unack"]);
const SHELVABLE = new Set(["active_unack", "active_ack", "cleared_unack"]);

export function isUnacked(alarm) {
  return UNACKED.has(alarm.state);
}

// The actions a button is offered for, in the order they are shown.
export function actionsFor(alarm) {
  const offered = [];
  if (may("ack") && UNACKED.has(alarm.state)) offered.push("ack");
  if (may("shelve") && SHELVABLE.has(alarm.state)) offered.push("shelve");
  if (may("feedback") && alarm.disposal === "awaiting_feedback") offered.push("feedback");
  if (may("verify") && alarm.disposal === "awaiting_verification") offered.push("verify");
  return offered;
}

export const ACTION_KEYS = { ack: "a", shelve: "s", feedback: "f", verify: "v" };

// A readable sentence for a refusal; the server's detail is kept after it.
export function explain(error, action) {
  if (!(error instanceof ApiError)) return t("action.failed", { detail: String(error) });
  if (action === "shelve" && error.status === 422) {
    const max = /at most ([\d.]+)/.exec(error.detail);
    if (max) return t("shelve.tooLong", { max: max[1] });
  }
  if (error.status === 409) return t("action.conflict", { detail: error.detail });
  if (error.status === 404) return t("action.gone");
  if (error.status === 403) return t("action.forbidden");
  return t("action.failed", { detail: error.detail });
}

function field(labelKey, control) {
  const label = el("label");
  label.append(el("span", "", t(labelKey)), control);
  return label;
}

function textArea(name, max) {
  const area = el("textarea");
  area.name = name;
  area.required = true;
  area.maxLength = max;
  return area;
}

// A modal form; resolves with the server's alarm, or null when cancelled.
function dialogFor(action, alarm) {
  const dialog = el("dialog", `action-dialog action-${action}`);
  dialog.id = `dialog-${action}`;
  const form = el("form");
  form.method = "dialog";
  const title = el("h2", "", t(`${action}.title`));
  const subject = el("p", "dialog-subject", `${alarm.type} · ${alarm.tag} · ${alarm.message}`);
  const message = el("p", "hz-message error");
  message.setAttribute("role", "alert");
  form.append(title, subject);
  if (action === "shelve") {
    const reason = el("input");
    Object.assign(reason, { type: "text", name: "reason", required: true, maxLength: 500 });
    const minutes = el("input");
    Object.assign(minutes, { type: "number", name: "minutes", required: true, min: "1", step: "1", value: "60" });
    form.append(field("shelve.reason", reason), field("shelve.minutes", minutes));
  } else if (action === "feedback") {
    form.append(field("feedback.cause", textArea("cause", 2000)), field("feedback.measures", textArea("measures", 2000)));
  } else if (action === "verify") {
    const verdict = el("fieldset", "verdict");
    verdict.append(el("legend", "", t("verify.verdict")));
    for (const [value, key] of [["true", "verify.accept"], ["false", "verify.reject"]]) {
      const label = el("label", "radio");
      const radio = el("input");
      Object.assign(radio, { type: "radio", name: "accepted", value, required: true });
      label.append(radio, el("span", "", t(key)));
      verdict.append(label);
    }
    const comment = el("textarea");
    Object.assign(comment, { name: "comment", maxLength: 1000 });
    form.append(verdict, field("verify.comment", comment));
  }
  const cancel = el("button", "btn", t("action.cancel"));
  cancel.type = "button";
  cancel.value = "cancel";
  const submit = el("button", "btn primary", t(`${action}.submit`));
  submit.type = "submit";
  const buttons = el("div", "actions");
  buttons.append(cancel, submit);
  form.append(message, buttons);
  dialog.append(form);

  return showModal(dialog, cancel, async (finish) => {
    const data = new FormData(form);
    let body;
    if (action === "shelve") body = { reason: data.get("reason"), minutes: Number(data.get("minutes")) };
    if (action === "feedback") body = { cause: data.get("cause"), measures: data.get("measures") };
    if (action === "verify") body = { accepted: data.get("accepted") === "true", comment: data.get("comment") || "" };
    submit.disabled = true;
    message.className = "hz-message error";
    message.textContent = "";
    try {
      finish(await api(`/api/alarms/${encodeURIComponent(alarm.id)}/${action}`, { method: "POST", body }));
    } catch (error) {
      message.textContent = explain(error, action);
      submit.disabled = false;
    }
  });
}

// Shows `dialog` (holding one form) as a modal: its form's submit calls
// onSubmit(finish); resolves with what finish() is given, or null when `cancel` is
// clicked or Escape pressed. The dialog is removed once done.
export function showModal(dialog, cancel, onSubmit) {
  document.body.append(dialog);
  const form = dialog.querySelector("form");
  return new Promise((resolve) => {
    const finish = (result) => {
      dialog.close();
      dialog.remove();
      resolve(result);
    };
    cancel.addEventListener("click", () => finish(null));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(null);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      onSubmit(finish);
    });
    dialog.showModal();
    const first = form.querySelector("input, textarea");
    if (first) first.focus();
  });
}

// Runs one action on an alarm: resolves with the alarm in its new state, or null when
// the user cancelled; throws with a readable message when the server refused.
export async function runAction(action, alarm) {
  if (action === "ack") {
    try {
      return await api(`/api/alarms/${encodeURIComponent(alarm.id)}/ack`, { method: "POST", body: { comment: "" } });
    } catch (error) {
      throw new Error(explain(error, action));
    }
  }
  return dialogFor(action, alarm);
}

// The buttons of the actions offered on `alarm`; onDone(alarm) after one succeeded,
// onError(text) when it was refused.
export function actionButtons(alarm, onDone, onError) {
  const box = el("span", "alarm-actions");
  for (const action of actionsFor(alarm)) {
    const button = el("button", `btn act-${action}`, t(`${action}.button`));
    button.type = "button";
    button.dataset.action = action;
    button.title = `${t(`${action}.title`)} (${ACTION_KEYS[action]})`;
    button.addEventListener("click", async (event) => {
      event.stopPropagation();
      button.disabled = true;
      try {
        const updated = await runAction(action, alarm);
        if (updated) onDone(updated);
      } catch (error) {
        onError(error.message);
      } finally {
        button.disabled = false;
      }
    });
    box.append(button);
  }
  return box;
}
