"""The SSRF guard: webhook, robot and SMS URLs may not point inside the network.

A URL from the config or the registry is where hazwatch will POST alarm data; one that
names (or resolves to) a loopback, private, link-local, multicast or reserved address
could reach internal services (a cloud metadata endpoint, an admin port). Such URLs
are refused unless ``[alerting] allow_private`` lists the host or a network holding
the address. The check runs when a notification is sent, on every address the host
resolves to (a name may change what it resolves to); the refusal is permanent for that
notification (dead-lettered, listed) and names what to allow.

>>> guard = TargetGuard(["10.1.0.0/16"])
>>> guard.refusal("10.1.2.3"), guard.refusal("8.8.8.8")
(None, None)
>>> guard.refusal("127.0.0.1")
'127.0.0.1 is a loopback address'
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from hazwatch.errors import NotifierError

_KINDS = (
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_private", "private"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_unspecified", "unspecified"),
)


class TargetGuard:
    """Refuses internal targets except those allowed (hosts, addresses or CIDRs)."""

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._hosts.add(entry.lower())

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP) may not be a target; ``None``: it may."""
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
        if any(ip in net for net in self._networks):
            return None
        for attribute, kind in _KINDS:
            if getattr(ip, attribute):
                return f"{address} is a {kind} address"
        return None

    async def check(self, url: str) -> None:
        """Raise a permanent ``NotifierError`` when ``url`` may not be posted to."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise NotifierError(f"no host in the target URL ({parts.scheme}://...)", permanent=True)
        if host in self._hosts:
            return
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, parts.port or 443, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise NotifierError(f"cannot resolve {host}: {exc}") from exc
            addresses = sorted({str(info[4][0]) for info in infos})
        for address in addresses:
            why = self.refusal(address)
            if why is not None:
                raise NotifierError(
                    f"refused to send to {parts.scheme}://{host}: {why} "
                    "(allow it in [alerting] allow_private if it is meant)",
                    permanent=True,
                )
