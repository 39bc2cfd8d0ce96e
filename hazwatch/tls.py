"""TLS for every MQTT client of hazwatch: one ``ssl.SSLContext``, built from settings.

The ingest's own connection (``ingest.connection``), the alarm notifier and the
scenario runner (aiomqtt) and the simulators (paho) all take their context from
:func:`mqtt_ssl_context`, so ``[mqtt] ca_file``, ``cert_file``, ``key_file`` and
``tls_insecure`` mean the same everywhere:

- the broker's certificate must chain to ``ca_file`` (default: the system's CAs)
  and, unless ``tls_insecure``, name the host of the ``mqtts://`` url;
- ``cert_file``/``key_file`` are this client's certificate for a broker that
  requires one (mutual TLS);
- TLS 1.2 at least (the ``ssl`` module's default context).

A file that cannot be loaded is a ``ConfigError`` naming the key, at start-up. A
handshake that fails is described by :func:`tls_failure` in one line that says
which side refused and which setting to look at.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from hazwatch.errors import ConfigError
from hazwatch.settings import MqttSettings


def mqtt_ssl_context(mqtt: MqttSettings) -> ssl.SSLContext | None:
    """The context for ``mqtt``; ``None`` for a plain ``mqtt://`` url."""
    if not mqtt.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=_path(mqtt.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt.ca_file: cannot load {mqtt.ca_file}: {_reason(exc)}") from exc
    if mqtt.cert_file is not None:
        try:
            context.load_cert_chain(str(mqtt.cert_file), _path(mqtt.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"mqtt.cert_file/key_file: cannot load {mqtt.cert_file}"
                f"{f' with {mqtt.key_file}' if mqtt.key_file else ''}: {_reason(exc)}"
            ) from exc
    if mqtt.tls_insecure:
        context.check_hostname = False  # the chain is still verified
    # paho (under aiomqtt too) leaves the socket open when the handshake fails: a
    # refused certificate would leak a file descriptor per reconnect attempt.
    context.sslsocket_class = _ClosingSSLSocket
    return context


class _ClosingSSLSocket(ssl.SSLSocket):
    """An ``SSLSocket`` that closes itself when its handshake fails for good."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # a non-blocking handshake in progress: not a failure
        except BaseException:
            self.close()
            raise


def tls_failure(exc: ssl.SSLError | OSError, mqtt: MqttSettings) -> str:
    """One line for a failed TLS connection: who refused what, and the key to check."""
    broker = f"{mqtt.host}:{mqtt.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = f"mqtt.ca_file {mqtt.ca_file}" if mqtt.ca_file else "the system's CAs"
        return (
            f"TLS: the broker {broker} presented a certificate this client does not accept: "
            f"{exc.verify_message or _reason(exc)} (trusted: {trusted})"
        )
    reason = _reason(exc)
    mine = f"mqtt.cert_file {mqtt.cert_file}" if mqtt.cert_file else "no client certificate"
    if isinstance(exc, ConnectionResetError):
        # TLS 1.3: the broker checks the client's certificate after the handshake and
        # hangs up; its own log says why (expired, unknown CA, none sent)
        reason = "it closed the connection after the TLS handshake"
    elif not ("alert" in reason or "certificate" in reason):
        return f"TLS with the broker {broker} failed: {reason}"
    return f"TLS: the broker {broker} refused this client ({reason}; sent: {mine})"


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return getattr(exc, "strerror", None) or str(exc)
