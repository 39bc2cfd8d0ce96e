"""E-mail: one message per person, a plain-text and an HTML part, over SMTP (aiosmtplib).

The site's relay is reached with STARTTLS (port 587, the default), implicit TLS (465)
or in the clear (``security = "none"``, a relay on the same host); ``ca_file`` trusts a
private CA. Each message carries ``Message-ID: <key@hazwatch>`` — the notification's
idempotency key — so a mail system can drop a redelivered copy.

A refusal of the recipient (SMTP 5xx to ``RCPT TO``, or any 5xx) is permanent: that
notification is dead-lettered, the others go on. A 4xx, a timeout or a refused
connection is retried by the outbox.
"""

from __future__ import annotations

import re
import ssl
from email.message import EmailMessage

import aiosmtplib

from alerting.notifiers import Notice
from alerting.recipients import Directory
from hazwatch.alertpolicy import EmailSettings
from hazwatch.errors import NotifierError

_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class EmailNotifier:
    name = "email"

    def __init__(self, settings: EmailSettings, directory: Directory) -> None:
        self._settings = settings
        self._directory = directory
        self._tls: ssl.SSLContext | None = None
        self._ca_file = settings.ca_file

    def _context(self) -> ssl.SSLContext | None:
        """Built on first use: a missing CA file fails the send (retried), not the start."""
        if self._tls is None and self._ca_file:
            try:
                self._tls = ssl.create_default_context(cafile=self._ca_file)
            except OSError as exc:
                raise NotifierError(f"email: cannot read ca_file {self._ca_file}: {exc}") from exc
        return self._tls

    def message(self, notice: Notice, address: str) -> EmailMessage:
        text = notice.text()
        message = EmailMessage()
        message["From"] = self._settings.sender
        message["To"] = address
        message["Subject"] = text.title
        message["Message-ID"] = f"<{_KEY_CHARS.sub('.', notice.key)}@hazwatch>"
        message.set_content(text.text)
        message.add_alternative(text.html, subtype="html")
        return message

    async def send(self, notice: Notice) -> None:
        person = self._directory.person(notice.recipient)
        address = person.contact.email if person is not None else ""
        if not address:
            raise NotifierError(
                f"email: {notice.recipient} has no e-mail address (any more)", permanent=True
            )
        s = self._settings
        try:
            await aiosmtplib.send(
                self.message(notice, address),
                hostname=s.host,
                port=s.port,
                username=s.username or None,
                password=s.password.get_secret_value() or None,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=self._context(),
                timeout=s.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise NotifierError(
                f"email: {s.host} refused the recipient {notice.recipient}: {exc}", permanent=True
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise NotifierError(
                f"email: {s.host} answered {exc.code} {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise NotifierError(f"email: {s.host}:{s.port}: {type(exc).__name__}: {exc}") from exc
