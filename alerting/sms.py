"""SMS through an HTTP gateway, with a configurable request template.

Gateways differ in every detail, so the request is a template (``[alerting.sms]``):
``url``, ``method``, ``content_type``, ``headers`` and a ``body`` in which ``{phone}``,
``{text}`` and ``{key}`` (the idempotency key) are replaced — JSON-escaped when the
content type is JSON, form-encoded otherwise. The text is the message's plain text,
cut to ``max_chars``. 2xx is success; other 4xx answers are permanent (dead-lettered),
5xx and transport errors are retried.

>>> fill('{"to": "{phone}", "text": "{text}"}', {"phone": "138", "text": 'a "b"'}, json=True)
'{"to": "138", "text": "a \\\\"b\\\\""}'
>>> fill("to={phone}&text={text}", {"phone": "+86 138", "text": "高液位"}, json=False)
'to=%2B86+138&text=%E9%AB%98%E6%B6%B2%E4%BD%8D'
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from urllib.parse import quote_plus

import httpx

from alerting.notifiers import Notice, http_failure, transport_failure, url_origin
from alerting.recipients import Directory
from alerting.targets import TargetGuard
from hazwatch.alertpolicy import SmsSettings
from hazwatch.errors import NotifierError


def fill(template: str, values: Mapping[str, str], *, json: bool) -> str:
    """Replace ``{name}`` placeholders, escaping each value for the body's format."""
    out = template
    for name, value in values.items():
        escaped = jsonlib.dumps(value, ensure_ascii=False)[1:-1] if json else quote_plus(value)
        out = out.replace("{" + name + "}", escaped)
    return out


class SmsNotifier:
    name = "sms"

    def __init__(
        self,
        settings: SmsSettings,
        client: httpx.AsyncClient,
        directory: Directory,
        guard: TargetGuard,
    ) -> None:
        self._settings = settings
        self._client = client
        self._directory = directory
        self._guard = guard
        self.origin = url_origin(settings.url)

    async def send(self, notice: Notice) -> None:
        s = self._settings
        person = self._directory.person(notice.recipient)
        phone = person.contact.phone if person is not None else ""
        if not phone:
            raise NotifierError(
                f"sms: {notice.recipient} has no phone number (any more)", permanent=True
            )
        await self._guard.check(s.url)
        text = notice.text().text[: s.max_chars]
        values = {"phone": phone, "text": text, "key": notice.key}
        body = fill(s.body, values, json="json" in s.content_type)
        headers = {name: value.get_secret_value() for name, value in s.headers.items()}
        headers["content-type"] = s.content_type
        headers["idempotency-key"] = notice.key
        try:
            response = await self._client.request(
                s.method, s.url, content=body.encode(), headers=headers
            )
        except httpx.HTTPError as exc:
            raise transport_failure("sms", s.url, self.origin, exc) from exc
        if not response.is_success:
            raise http_failure("sms", self.origin, response)
