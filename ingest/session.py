"""Duties a codec has towards the MQTT session it is subscribed on (a Sparkplug host's).

Most codecs only decode. A Sparkplug B host application also has a session to keep:
a will on its own STATE topic registered in the very CONNECT that subscribes to the
Sparkplug topics, a clean session (the specification requires it), its STATE
published once subscribed, rebirth requests to edge nodes, and its STATE withdrawn
before a clean disconnect. :class:`SessionDuties` is that seam:
:class:`ingest.source.MqttSource` gives a codec with duties a connection of its own
(:func:`ingest.codecs.plan_connections`), asks for the will before each CONNECT,
runs :meth:`SessionDuties.run` while subscribed, and calls
:meth:`SessionDuties.leave` before it disconnects.

Why on the hot-path connection, not a second (aiomqtt) client: the STATE will must
belong to the connection that receives the Sparkplug messages — it tells edge nodes
that *this* subscriber is gone, which a second client's will could not.
"""

from __future__ import annotations

from typing import Protocol

from ingest.packets import Will


class SessionLink(Protocol):
    """What duties may do with the connection: publish (QoS 1 waits for the PUBACK)."""

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None: ...


class SessionDuties(Protocol):
    name: str
    """Names the connection's client id (``{mqtt.client_id}-{name}``)."""
    clean_session: bool

    def will(self) -> Will | None:
        """The will for the next CONNECT (called once per connection attempt)."""
        ...

    async def run(self, link: SessionLink) -> None:
        """From SUBACK until cancelled (the connection ends). Raising ends the connection."""
        ...

    async def leave(self, link: SessionLink) -> None:
        """Before a clean DISCONNECT (the will is then not published by the broker)."""
        ...
