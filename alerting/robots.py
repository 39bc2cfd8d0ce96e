"""Group robots: DingTalk (钉钉) and WeCom (企业微信) custom robots.

A notice to a robot names an organisation (an enterprise, ``grid/<id>``, ``platform``);
its robot URL comes from the registry (``[robots]``) or ``[alerting.robots]``, and the
people routed to are @mentioned by their ``dingtalk`` / ``wecom`` id (a mobile number
or a user id).

- DingTalk: a ``markdown`` message; when the robot has a signing secret, the URL gets
  ``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")),
  URL-encoded. DingTalk answers 200 with ``{"errcode": 0}`` on success; errcode 130101
  (sending too fast) is retried, other errcodes are permanent (a wrong token, keyword
  or signature does not heal by retrying).
- WeCom: a ``text`` message with ``mentioned_list`` / ``mentioned_mobile_list`` (its
  markdown cannot @mention by mobile); errcode 45009 (rate limit) is retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any
from urllib.parse import quote_plus

import httpx

from alerting.notifiers import Notice, http_failure, transport_failure, url_origin
from alerting.recipients import Directory
from alerting.targets import TargetGuard
from hazwatch.errors import NotifierError

_MOBILE = re.compile(r"^\+?[0-9][0-9 -]{5,}$")
_RETRIED_ERRCODES = {"dingtalk": {130101}, "wecom": {45009, 45033}}


def dingtalk_signed(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot URL with DingTalk's signature parameters.

    >>> dingtalk_signed("https://oapi.dingtalk.com/robot/send?access_token=t", "SEC1", 1)
    'https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1&sign=xLlywIuSvlBMcbHM7O4JN3u5Z7ES0PnaL8hM5mors%2Fg%3D'
    """
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest))
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign}"


class RobotNotifier:
    """Posts to the group robot of the notice's organisation (``kind``: ``dingtalk`` or
    ``wecom``)."""

    def __init__(
        self, kind: str, client: httpx.AsyncClient, directory: Directory, guard: TargetGuard
    ) -> None:
        if kind not in {"dingtalk", "wecom"}:
            raise ValueError(f"robot kind must be dingtalk or wecom, got {kind!r}")
        self.name = kind
        self._client = client
        self._directory = directory
        self._guard = guard

    async def send(self, notice: Notice) -> None:
        robots = self._directory.robots(notice.recipient)
        url = getattr(robots, self.name)
        if not url:
            raise NotifierError(
                f"{self.name}: {notice.recipient} has no {self.name} robot (any more)",
                permanent=True,
            )
        await self._guard.check(url)
        origin = url_origin(url)
        ids = [getattr(p.contact, self.name) for p in notice.people]
        ids = [i for i in ids if i]
        if self.name == "dingtalk":
            secret = robots.dingtalk_secret.get_secret_value()
            if secret:
                url = dingtalk_signed(url, secret, time.time_ns() // 1_000_000)
            body = _dingtalk(notice, ids)
        else:
            body = _wecom(notice, ids)
        try:
            response = await self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise transport_failure(self.name, url, origin, exc) from exc
        if not response.is_success:
            raise http_failure(self.name, origin, response)
        try:
            answer = response.json()
        except ValueError as exc:
            raise NotifierError(f"{self.name}: {origin} answered no JSON") from exc
        errcode = answer.get("errcode", 0) if isinstance(answer, dict) else 0
        if errcode != 0:
            raise NotifierError(
                f"{self.name}: {origin} answered errcode {errcode}: {answer.get('errmsg', '')}",
                permanent=errcode not in _RETRIED_ERRCODES[self.name],
            )


def _dingtalk(notice: Notice, ids: list[str]) -> dict[str, Any]:
    message = notice.text()
    mobiles = [i for i in ids if _MOBILE.match(i)]
    users = [i for i in ids if not _MOBILE.match(i)]
    mentions = " ".join(f"@{i}" for i in ids)  # DingTalk highlights only what the text names
    text = message.markdown + (f"\n\n{mentions}" if mentions else "")
    return {
        "msgtype": "markdown",
        "markdown": {"title": message.title, "text": text},
        "at": {"atMobiles": mobiles, "atUserIds": users, "isAtAll": False},
    }


def _wecom(notice: Notice, ids: list[str]) -> dict[str, Any]:
    message = notice.text()
    return {
        "msgtype": "text",
        "text": {
            "content": message.text,
            "mentioned_list": [i for i in ids if not _MOBILE.match(i)],
            "mentioned_mobile_list": [i for i in ids if _MOBILE.match(i)],
        },
    }
