"""WebhookNotifier against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from alerting.notifiers import Notice, WebhookNotifier
from alerting.targets import TargetGuard
from hazwatch.errors import NotifierError
from hazwatch.models import AlarmEvent
from tests.receivers import ScriptedReceiver
from tests.servers import free_port

LOOPBACK = TargetGuard(["127.0.0.1"])
"""The receivers listen on loopback, which the SSRF guard refuses unless allowed."""


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def test_posts_the_event_json_with_an_idempotency_key(
    http: httpx.AsyncClient, event: AlarmEvent
) -> None:
    async with ScriptedReceiver() as receiver:
        notifier = WebhookNotifier(
            receiver.url("/hook?token=s3cret"), http, name="duty-room", guard=LOOPBACK
        )
        await notifier.send(Notice.of(event))
        [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook?token=s3cret")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "01KANXTMVVWNRR89RWGZDEPE5H:1"
    assert request.json() == event.model_dump(mode="json")
    assert request.json()["alarm"]["message"] == "Tank 101 level 11.2 m above HH 11.0 m"
    assert notifier.name == "duty-room"


async def test_a_non_2xx_answer_is_an_error_that_hides_the_url(
    http: httpx.AsyncClient, event: AlarmEvent
) -> None:
    async with ScriptedReceiver(statuses=(500, 404)) as receiver:
        notifier = WebhookNotifier(receiver.url("/hook?token=s3cret"), http, guard=LOOPBACK)
        for status in ("500", "404"):
            with pytest.raises(NotifierError, match=f"answered {status}") as failed:
                await notifier.send(Notice.of(event))
            assert f"http://127.0.0.1:{receiver.port}" in str(failed.value)
            assert "s3cret" not in str(failed.value)
        await notifier.send(Notice.of(event))  # then 204
    assert [r.status for r in receiver.requests] == [500, 404, 204]


async def test_a_transport_error_is_an_error_that_hides_the_url(
    http: httpx.AsyncClient, event: AlarmEvent
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook/s3cret-path?token=s3cret"
    notifier = WebhookNotifier(url, http, guard=LOOPBACK)
    with pytest.raises(NotifierError, match="ConnectError") as failed:
        await notifier.send(Notice.of(event))
    assert "s3cret" not in str(failed.value)
    assert isinstance(failed.value.__cause__, httpx.ConnectError)


def test_names_are_stable_unique_and_free_of_secrets(http: httpx.AsyncClient) -> None:
    a = WebhookNotifier("https://hooks.example.com/a?token=s3cret", http)
    assert a.name == WebhookNotifier("https://hooks.example.com/a?token=s3cret", http).name
    assert a.name != WebhookNotifier("https://hooks.example.com/b?token=s3cret", http).name
    assert a.name.startswith("webhook:hooks.example.com:")
    assert "s3cret" not in a.name
    assert a.origin == "https://hooks.example.com"


def test_only_http_urls_are_accepted(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="'ftp'") as refused:
        WebhookNotifier("ftp://user:s3cret@example.com/x", http)
    assert "s3cret" not in str(refused.value)
