"""What people read: an alarm event as a short message, in Chinese or English.

Every message says what (the alarm and its priority), where (enterprise, major hazard
installation and its grade, point), how far past the limit, since when (local time),
what is asked of the reader, and a link to the alarm in the console. One
:class:`Message` has the forms the channels need: a title, plain text (SMS, console,
e-mail), Markdown (DingTalk, WeCom) and HTML (e-mail).

>>> from hazwatch.models import Alarm
>>> alarm = Alarm(id="01J", enterprise="E9", installation="I1", tag="T1", type="HH",
...     priority="critical", state="active_unack", value=11.2, limit=11.0,
...     raised_at="2025-11-22T14:00:00.000Z", cleared_at=None, message="level high")
>>> builder = MessageBuilder(Registry(enterprises={}), "en", "http://c/", "UTC")
>>> print(builder.lines(alarm, "raised", "event", "", "")[0])
[critical] HH alarm — E9 / I1
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from hazwatch.models import Alarm, AlarmEvent, Registry, iso_to_ms

_T = {
    "en": {
        "critical": "critical",
        "high": "high",
        "medium": "medium",
        "low": "low",
        "alarm": "alarm",
        "grade": "grade {g} major hazard",
        "over": "{value:g} {unit}, {d:+g} {unit} past the limit {limit:g} {unit}{pct}",
        "value": "value {value:g} {unit}",
        "since": "since {t}",
        "cleared": "cleared at {t}",
        "raised": "Please check it and acknowledge it in the console.",
        "escalated": "ESCALATION (督办), {comment}. Please act now.",
        "reminded": "REMINDER: still unacknowledged.",
        "feedback": "Feedback from {user}: {comment}. Please verify it.",
        "rejected": "Verification rejected by {user}: {comment}. Please feed back again.",
        "unshelved": "Back from the shelf: please check it.",
        "unsuppressed": "Maintenance over and the condition is still present: please check it.",
        "other": "{kind}.",
        "due": "Feedback (cause and measures) due by {t}.",
        "link": "Console: {url}",
        "digest": "{n} alarms at {where} ({span})",
        "more": "… and {n} more",
        "local": "",
    },
    "zh-CN": {
        "critical": "紧急",
        "high": "重要",
        "medium": "一般",
        "low": "提示",
        "alarm": "报警",
        "grade": "{g}级重大危险源",
        "over": "当前值 {value:g} {unit}，超出限值 {limit:g} {unit} {d:+g} {unit}{pct}",
        "value": "当前值 {value:g} {unit}",
        "since": "发生时间 {t}",
        "cleared": "已于 {t} 恢复",
        "raised": "请立即核实处置，并在平台确认。",
        "escalated": "【督办】第{n}次督办：{why}，请立即处置。",
        "reminded": "【提醒】报警仍未确认。",
        "feedback": "企业已反馈（{user}）：{comment}。请核查。",
        "rejected": "核查未通过（{user}）：{comment}。请重新整改并反馈。",
        "unshelved": "搁置到期，报警重新生效，请核实。",
        "unsuppressed": "检修屏蔽结束，报警仍存在，请核实。",
        "other": "{kind}。",
        "due": "请于 {t} 前反馈原因和整改措施。",
        "link": "平台链接：{url}",
        "digest": "{where} 共 {n} 条报警（{span}）",
        "more": "……另有 {n} 条",
        "local": "",
    },
}


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    text: str
    markdown: str
    html: str


class MessageBuilder:
    """Builds messages from events, with the registry's names and the local time."""

    def __init__(
        self, registry: Registry, language: str, console_url: str, timezone: str = "Asia/Shanghai"
    ) -> None:
        self._registry = registry
        self.language = language if language in _T else "en"
        self._t = _T[self.language]
        self.console_url = console_url
        self._zone = ZoneInfo(timezone)

    def _time(self, iso: str) -> str:
        local = datetime.fromtimestamp(iso_to_ms(iso) / 1000, tz=self._zone)
        offset = local.strftime("%z")
        return local.strftime("%Y-%m-%d %H:%M:%S ") + f"{offset[:3]}:{offset[3:]}"

    def where(self, alarm: Alarm) -> str:
        enterprise = self._registry.enterprises.get(alarm.enterprise)
        if enterprise is None:
            return f"{alarm.enterprise} / {alarm.installation}"
        installation = next(
            (i for i in enterprise.installations if i.id == alarm.installation), None
        )
        if installation is None:
            return f"{enterprise.name} / {alarm.installation}"
        grade = self._t["grade"].format(g=installation.grade)
        return f"{enterprise.name} / {installation.name} ({grade})"

    def link(self, alarm: Alarm) -> str:
        return f"{self.console_url.rstrip('/')}/alarms/{alarm.id}"

    def lines(self, alarm: Alarm, kind: str, purpose: str, user: str, comment: str) -> list[str]:
        """Title, what, value, time, the ask, the deadline, the link."""
        t = self._t
        title = f"[{t[alarm.priority.value]}] {alarm.type.value} {t['alarm']} — {self.where(alarm)}"
        point = self._registry.point(alarm.enterprise, alarm.tag)
        name = f"{point.name} ({alarm.tag})" if point is not None else alarm.tag
        out = [title, f"{name}: {alarm.message}"]
        unit = point.unit if point is not None else ""
        if alarm.value is not None and alarm.limit is not None:
            d = round(alarm.value - alarm.limit, 6)
            pct = f" ({d / abs(alarm.limit):+.1%})" if alarm.limit else ""
            out.append(
                t["over"].format(value=alarm.value, unit=unit, limit=alarm.limit, d=d, pct=pct)
            )
        elif alarm.value is not None:
            out.append(t["value"].format(value=alarm.value, unit=unit))
        when = t["since"].format(t=self._time(alarm.raised_at))
        if alarm.cleared_at is not None:
            when += "; " + t["cleared"].format(t=self._time(alarm.cleared_at))
        out.append(when)
        key = "reminded" if purpose == "reminder" else kind
        why = "整改反馈已逾期" if "overdue" in comment else "报警仍未确认"
        ask = t.get(key, t["other"]).format(
            kind=kind, user=user or "hazwatch", comment=comment, n=alarm.escalation, why=why
        )
        out.append(ask)
        if alarm.feedback_due is not None and kind in {"raised", "escalated", "rejected"}:
            out.append(t["due"].format(t=self._time(alarm.feedback_due)))
        out.append(t["link"].format(url=self.link(alarm)))
        return out

    def event(self, event: AlarmEvent, purpose: str = "event") -> Message:
        lines = self.lines(event.alarm, event.kind, purpose, event.user, event.comment)
        return _message(lines)

    def digest(self, events: Sequence[AlarmEvent], total: int | None = None) -> Message:
        """Several alarms of one enterprise in one message (flood control): ``events``
        listed, of ``total`` (default: as many as listed)."""
        t = self._t
        total = len(events) if total is None else total
        first, last = events[0], events[-1]
        span = f"{self._time(first.at)} – {self._time(last.at)}"
        title = t["digest"].format(n=total, where=self.where(first.alarm), span=span)
        lines = [title]
        for e in events:
            a = e.alarm
            value = f" {a.value:g}" if a.value is not None else ""
            when = self._time(e.at)
            lines.append(
                f"- [{t[a.priority.value]}] {a.type.value} {a.tag}{value}: {e.kind} ({when})"
            )
        if total > len(events):
            lines.append(t["more"].format(n=total - len(events)))
        lines.append(t["link"].format(url=self.console_url))
        return _message(lines)


def _message(lines: list[str]) -> Message:
    title, body = lines[0], lines[1:]
    text = "\n".join(lines)
    markdown = f"### {title}\n\n" + "\n\n".join(body)
    items = "".join(f"<p>{html.escape(line)}</p>" for line in body)
    page = f"<html><body><h3>{html.escape(title)}</h3>{items}</body></html>"
    return Message(title=title, text=text, markdown=markdown, html=page)
