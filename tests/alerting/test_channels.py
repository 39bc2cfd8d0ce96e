"""Every channel against a real receiver on 127.0.0.1: the signed webhook, DingTalk and
WeCom group robots and the SMS gateway against an HTTP server, e-mail against aiosmtpd
with STARTTLS; the SSRF guard; the console printer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import httpx
import pytest

from alerting.channels import build_channels
from alerting.journal import Journal
from alerting.mail import EmailNotifier
from alerting.messages import MessageBuilder
from alerting.notifiers import ConsoleNotifier, Notice, WebhookNotifier
from alerting.recipients import Directory
from alerting.robots import RobotNotifier
from alerting.service import AlarmService
from alerting.sms import SmsNotifier
from alerting.targets import TargetGuard
from hazwatch.alertpolicy import EmailSettings, SmsSettings
from hazwatch.clock import SystemClock
from hazwatch.errors import NotifierError
from hazwatch.metrics import Metrics
from hazwatch.models import AlarmEvent, AlarmType, Condition, Registry, Robots
from hazwatch.settings import load_settings
from tests.alerting.conftest import T0
from tests.helpers import eventually
from tests.receivers import ScriptedReceiver, SmtpReceiver, self_signed_certificate

LOOPBACK = TargetGuard(["127.0.0.1"])
OK_JSON = b'{"errcode": 0, "errmsg": "ok"}'


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def registry_with(example_registry: Registry, **robots: Any) -> Registry:
    """The example registry with E001's robots and DingTalk / WeCom ids for its people."""
    e001 = example_registry.enterprises["E001"]
    contacts = {
        role: c.model_copy(update={"dingtalk": f"+86-139-000-{n}", "wecom": f"user{n}"})
        for n, (role, c) in enumerate(e001.contacts.items())
    }
    updated = e001.model_copy(update={"robots": Robots(**robots), "contacts": contacts})
    return example_registry.model_copy(
        update={"enterprises": {**example_registry.enterprises, "E001": updated}}
    )


def notice_for(
    event: AlarmEvent, registry: Registry, recipient: str, keys: tuple[str, ...]
) -> Notice:
    directory = Directory(registry)
    people = tuple(p for p in map(directory.person, keys) if p is not None)
    builder = MessageBuilder(registry, "zh-CN", "http://console.test/")
    return Notice(
        event=event,
        key=f"{event.alarm.id}:{event.seq}:{recipient}",
        recipient=recipient,
        people=people,
        message=builder.event(event),
    )


# --- webhook -------------------------------------------------------------------------


async def test_a_signed_webhook_can_be_checked_by_its_receiver(
    http: httpx.AsyncClient, event: AlarmEvent
) -> None:
    async with ScriptedReceiver() as receiver:
        notifier = WebhookNotifier(receiver.url(), http, secret="s3cret", guard=LOOPBACK)
        await notifier.send(Notice.of(event))
        [request] = receiver.requests
    timestamp = request.headers["x-hazwatch-timestamp"]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["x-hazwatch-signature"] == f"sha256={expected.hexdigest()}"
    assert request.headers["idempotency-key"] == f"{event.alarm.id}:1"
    assert request.json() == event.model_dump(mode="json")


async def test_internal_targets_are_refused_unless_allowed(
    http: httpx.AsyncClient, event: AlarmEvent
) -> None:
    async with ScriptedReceiver() as receiver:
        for url in (receiver.url(), f"http://localhost:{receiver.port}/hook"):
            with pytest.raises(NotifierError, match="loopback") as refused:
                await WebhookNotifier(url, http).send(Notice.of(event))
            assert refused.value.permanent
            assert "allow_private" in str(refused.value)
        for url in ("http://169.254.169.254/latest", "http://10.0.0.1/x", "http://[::1]/x"):
            with pytest.raises(NotifierError) as refused:
                await WebhookNotifier(url, http).send(Notice.of(event))
            assert refused.value.permanent
        assert receiver.requests == []  # nothing was sent
        allowed = WebhookNotifier(receiver.url(), http, guard=TargetGuard(["127.0.0.0/8"]))
        await allowed.send(Notice.of(event))
        assert len(receiver.requests) == 1


# --- group robots -------------------------------------------------------------------------


async def test_dingtalk_gets_a_signed_markdown_message_mentioning_the_people(
    http: httpx.AsyncClient, event: AlarmEvent, example_registry: Registry
) -> None:
    async with ScriptedReceiver(then=200, answer=OK_JSON) as receiver:
        registry = registry_with(
            example_registry,
            dingtalk=receiver.url("/robot/send?access_token=t0k"),
            dingtalk_secret="SECabc",
        )
        notifier = RobotNotifier("dingtalk", http, Directory(registry), LOOPBACK)
        notice = notice_for(event, registry, "E001", ("E001/duty", "E001/principal"))
        await notifier.send(notice)
        [request] = receiver.requests
    query = parse_qs(urlsplit(request.path).query)
    assert query["access_token"] == ["t0k"]
    timestamp = query["timestamp"][0]
    digest = hmac.new(b"SECabc", f"{timestamp}\nSECabc".encode(), hashlib.sha256).digest()
    assert unquote_plus(request.path.split("sign=")[1]) == base64.b64encode(digest).decode()
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("[紧急] HH 报警 — Example Chemical Co. / Tank farm")
    assert "超出限值 11 m +0.2 m" in body["markdown"]["text"]
    mobiles = [p.contact.dingtalk for p in notice.people]
    assert body["at"]["atMobiles"] == mobiles
    assert all(f"@{m}" in body["markdown"]["text"] for m in mobiles)


async def test_a_robot_error_code_is_permanent_but_rate_limits_are_retried(
    http: httpx.AsyncClient, event: AlarmEvent, example_registry: Registry
) -> None:
    answers = [b'{"errcode": 310000, "errmsg": "sign not match"}', b'{"errcode": 130101}']
    for answer, permanent in zip(answers, (True, False), strict=True):
        async with ScriptedReceiver(then=200, answer=answer) as receiver:
            registry = registry_with(example_registry, dingtalk=receiver.url("/robot"))
            notifier = RobotNotifier("dingtalk", http, Directory(registry), LOOPBACK)
            with pytest.raises(NotifierError, match="errcode") as failed:
                await notifier.send(notice_for(event, registry, "E001", ("E001/duty",)))
            assert failed.value.permanent is permanent


async def test_wecom_gets_a_text_message_mentioning_the_people(
    http: httpx.AsyncClient, event: AlarmEvent, example_registry: Registry
) -> None:
    async with ScriptedReceiver(then=200, answer=OK_JSON) as receiver:
        registry = registry_with(
            example_registry, wecom=receiver.url("/cgi-bin/webhook/send?key=k")
        )
        notifier = RobotNotifier("wecom", http, Directory(registry), LOOPBACK)
        await notifier.send(notice_for(event, registry, "E001", ("E001/duty", "E001/principal")))
        [request] = receiver.requests
    body = request.json()
    assert body["msgtype"] == "text"
    assert "Tank 101 level" in body["text"]["content"]
    assert sorted(body["text"]["mentioned_list"]) == ["user0", "user3"]


# --- SMS ----------------------------------------------------------------------------------


async def test_the_sms_gateway_gets_its_template_filled_in(
    http: httpx.AsyncClient, event: AlarmEvent, example_registry: Registry
) -> None:
    async with ScriptedReceiver() as receiver:
        settings = SmsSettings(
            url=receiver.url("/sms"),
            body='{"mobile": "{phone}", "content": "{text}", "ref": "{key}"}',
            headers={"authorization": "Bearer tok"},  # type: ignore[dict-item]
        )
        notifier = SmsNotifier(settings, http, Directory(example_registry), LOOPBACK)
        notice = notice_for(event, example_registry, "E001/principal", ())
        await notifier.send(notice)
        form = SmsSettings(
            url=receiver.url("/form"),
            content_type="application/x-www-form-urlencoded",
            body="to={phone}&msg={text}",
        )
        await SmsNotifier(form, http, Directory(example_registry), LOOPBACK).send(notice)
        json_request, form_request = receiver.requests
    body = json_request.json()
    assert body["mobile"] == "+86-000-0000-1001"
    assert body["content"].startswith("[紧急] HH 报警")
    assert body["ref"] == notice.key
    assert json_request.headers["authorization"] == "Bearer tok"
    fields = parse_qs(form_request.body.decode())
    assert fields["to"] == ["+86-000-0000-1001"]
    assert "Tank 101 level" in fields["msg"][0]


async def test_an_sms_gateway_4xx_is_permanent_and_a_5xx_is_retried(
    http: httpx.AsyncClient, event: AlarmEvent, example_registry: Registry
) -> None:
    async with ScriptedReceiver(statuses=(400, 503)) as receiver:
        notifier = SmsNotifier(
            SmsSettings(url=receiver.url()), http, Directory(example_registry), LOOPBACK
        )
        notice = notice_for(event, example_registry, "E001/principal", ())
        for permanent in (True, False):
            with pytest.raises(NotifierError) as failed:
                await notifier.send(notice)
            assert failed.value.permanent is permanent


# --- e-mail ---------------------------------------------------------------------------------


async def test_email_over_starttls_with_text_and_html_and_a_refused_recipient(
    tmp_path: Path, event: AlarmEvent, example_registry: Registry
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    refused = "principal@e001.example.invalid"
    with SmtpReceiver(cert, key, refuse=(refused,)) as smtp:
        settings = EmailSettings(
            host="127.0.0.1", port=smtp.port, ca_file=str(cert), sender="hazwatch@park.example"
        )
        notifier = EmailNotifier(settings, Directory(example_registry))
        with pytest.raises(NotifierError, match="refused the recipient") as failed:
            await notifier.send(notice_for(event, example_registry, "E001/principal", ()))
        assert failed.value.permanent
        technical = notice_for(event, example_registry, "E001/technical", ())
        await notifier.send(technical)
        [mail] = await smtp.wait_for(1)
    assert smtp.refused == [refused]
    assert mail.recipients == ["technical@e001.example.invalid"]
    assert mail.message["Subject"].startswith("[紧急] HH 报警")
    message_id = technical.key.replace(":", ".").replace("/", ".")
    assert mail.message["Message-ID"] == f"<{message_id}@hazwatch>"
    plain = mail.message.get_body(("plain",))
    html = mail.message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert "Tank 101 level" in plain.get_content()
    assert "<h3>" in html.get_content()


async def test_email_without_starttls_on_a_server_that_requires_it_fails_clearly(
    tmp_path: Path, event: AlarmEvent, example_registry: Registry
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with SmtpReceiver(cert, key) as smtp:
        settings = EmailSettings(host="127.0.0.1", port=smtp.port, security="none")
        notifier = EmailNotifier(settings, Directory(example_registry))
        with pytest.raises(NotifierError, match="530"):
            await notifier.send(notice_for(event, example_registry, "E001/technical", ()))
    assert smtp.mails == []


# --- console ---------------------------------------------------------------------------------


async def test_the_console_printer_says_who_gets_what(
    event: AlarmEvent, example_registry: Registry
) -> None:
    out = io.StringIO()
    builder = MessageBuilder(example_registry, "en", "http://console.test/", "UTC")
    directory = Directory(example_registry)
    people = tuple(p for p in map(directory.person, ("E001/duty", "grid/KS-03/officer/1")) if p)
    notice = Notice(
        event=event, key="k", recipient="console", people=people, message=builder.event(event)
    )
    await ConsoleNotifier(out, "en").send(notice)
    text = out.getvalue()
    assert "hazwatch → duty room (Duty room), grid officer (Grid officer Zhang) [event]" in text
    assert "[critical] HH alarm — Example Chemical Co. / Tank farm (grade 2 major hazard)" in text
    assert "11.2 m, +0.2 m past the limit 11 m (+1.8%)" in text
    assert "since 2025-11-22 14:00:00 +00:00" in text
    assert f"Console: http://console.test/alarms/{event.alarm.id}" in text


async def test_through_the_outbox_a_refused_recipient_is_dead_and_the_others_delivered(
    tmp_path: Path, example_registry: Registry
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with SmtpReceiver(cert, key, refuse=("principal@e001.example.invalid",)) as smtp:
        settings = load_settings(
            None,
            environ={},
            overrides={
                "alerting.email.host": "127.0.0.1",
                "alerting.email.port": smtp.port,
                "alerting.email.ca_file": str(cert),
            },
        )
        async with httpx.AsyncClient() as http:
            channels = build_channels(settings, example_registry, http, mqtt=False)
            assert [n.name for n in channels.notifiers] == ["email"]
            with Journal(tmp_path / "journal.db", ["email"], policy=channels.router) as journal:
                service = AlarmService(
                    journal,
                    channels.notifiers,
                    Metrics(),
                    SystemClock(),
                    people=channels.router.people_channels,
                    builder=MessageBuilder(example_registry, "en", "http://console.test/"),
                )
                [event] = service.handle(
                    [Condition("E001", "MH02", "R201_TT", AlarmType.HH, True,  # noqa: FBT003
                               150.0, 140.0, T0, "Reactor 201 150 degC above HH 140 degC")]
                )  # fmt: skip
                outbox = asyncio.create_task(service.run_outbox())
                try:
                    [mail] = await smtp.wait_for(1)

                    def settled() -> bool:
                        rows = journal.notifications(event.alarm.id)
                        return all(n["status"] != "pending" for n in rows)

                    await eventually(settled, what="nothing pending")
                finally:
                    outbox.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await outbox
                    service.close()
                rows = {
                    (n["channel"], n["recipient"]): n["status"]
                    for n in journal.notifications(event.alarm.id)
                }
                [dead] = [d for d in journal.dead_letters() if d["channel"] == "email"]
    assert mail.recipients == ["ks03-officer@example.invalid"]
    assert rows == {
        ("email", "E001/principal"): "dead",
        ("email", "grid/KS-03/officer/1"): "delivered",
        ("unreachable", "E001/duty"): "dead",  # the duty room has no e-mail address
    }
    assert dead["recipient"] == "E001/principal"
    assert "refused the recipient" in dead["last_error"]
    assert dead["attempts"] == 1  # refused for good: not retried
