// An enterprise's risk colour as a badge (colour AND its name) and its reason in the
// user's language, from the facts the server sends with it (risk_cause): the map, the
// enterprise and installation pages show the same words.

import { el, t } from "/static/common.js";

export function riskBadge(risk) {
  const badge = el("span", `badge risk risk-${risk}`);
  badge.append(el("span", "risk-dot"), el("span", "risk-text", t(`risk.${risk}`)));
  return badge;
}

// The reason in the user's language, from the server's facts (risk_cause).
export function riskReason(summary) {
  const cause = summary.risk_cause;
  if (!cause) return t("risk.reason.none");
  const key = cause.grade === null ? "risk.reason.installation" : "risk.reason.grade";
  let text = t(key, {
    colour: t(`risk.${summary.risk}`),
    type: cause.type,
    tag: cause.tag,
    grade: cause.grade,
    installation: cause.installation,
  });
  if (cause.open_alarms > 1) text += t("risk.reason.more", { n: cause.open_alarms - 1 });
  return text;
}
