"""A web mailbox for the local stack: every email sent through (moto's) SES, newest first.

    GET    /api/messages  → {"items": [{"id", "from", "to", "subject", "text", "html", "sent_at"}]}
    DELETE /api/messages  → 204, the outbox is emptied

moto keeps only one body per `SendEmail` (the HTML one when both are sent) and no timestamp, so
`Mailbox.start()` wraps moto's SES `SendEmail` to keep the text part and the sending time too.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from local.http_server import LocalHttpServer

ACCOUNT_ID = "123456789012"

Message = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _SendEmailCapture:
    """Wraps moto's `EmailResponse.send_email` to remember both bodies and the time sent."""

    def __init__(self) -> None:
        self._original: Any = None

    def install(self) -> None:
        from moto.ses.responses import EmailResponse  # noqa: PLC0415

        if self._original is not None:
            return
        original = EmailResponse.send_email
        self._original = original

        def send_email(response: Any) -> Any:
            result = original(response)
            payload: Any = getattr(result, "result", None)
            message_id = payload.get("MessageId") if isinstance(payload, dict) else None
            for message in reversed(response.backend.sent_messages):
                if getattr(message, "id", None) == message_id:
                    message.text = response._get_param("Message.Body.Text.Data")
                    message.html = response._get_param("Message.Body.Html.Data")
                    message.sent_at = _now()
                    break
            return result

        setattr(EmailResponse, "send_email", send_email)  # noqa: B010

    def uninstall(self) -> None:
        from moto.ses.responses import EmailResponse  # noqa: PLC0415

        if self._original is not None:
            setattr(EmailResponse, "send_email", self._original)  # noqa: B010
            self._original = None


def _looks_like_html(body: str) -> bool:
    return bool(re.search(r"<(html|body|p|div|a|br|table)\b", body, flags=re.I))


def _addresses(destinations: Any) -> list[str]:
    if isinstance(destinations, dict):
        return [
            a
            for key in ("ToAddresses", "CcAddresses", "BccAddresses")
            for a in destinations.get(key) or []
        ]
    return [str(a) for a in destinations or []]


def _raw_view(raw_data: str) -> tuple[str, str | None, str | None]:
    parsed = email.message_from_string(raw_data, policy=email.policy.default)
    text = parsed.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    html = parsed.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    return (
        str(parsed.get("Subject", "")),
        text.get_content() if text is not None else None,
        html.get_content() if html is not None else None,
    )


class Mailbox:
    """Serves the SES outbox of one account/region of the moto backends in this process."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8025,
        region: str | None = None,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self._host = host
        self._port = port
        self._region = region
        self._account_id = account_id
        self._server: LocalHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._capture = _SendEmailCapture()
        self._first_seen: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        port = self._server.server_address[1] if self._server is not None else self._port
        return f"http://{self._host}:{port}"

    @property
    def region(self) -> str:
        return self._region or os.environ.get(
            "AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "eu-west-1")
        )

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the mailbox is already running")
        self._capture.install()
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="mailbox",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = None
        self._thread = None
        self._capture.uninstall()

    def __enter__(self) -> Mailbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _outbox(self) -> list[Any]:
        from moto.ses.models import ses_backends  # noqa: PLC0415

        return ses_backends[self._account_id][self.region].sent_messages  # type: ignore[no-any-return]

    def messages(self) -> list[Message]:
        """Every email sent so far, newest first."""
        return [self._view(message) for message in reversed(list(self._outbox()))]

    def clear(self) -> None:
        self._outbox().clear()
        with self._lock:
            self._first_seen.clear()

    def _sent_at(self, message: Any, message_id: str) -> str:
        sent_at = getattr(message, "sent_at", None)
        if sent_at:
            return str(sent_at)
        with self._lock:  # sent before the capture was installed: the first time we saw it
            return self._first_seen.setdefault(message_id, _now())

    def _view(self, message: Any) -> Message:
        message_id = str(getattr(message, "id", None) or getattr(message, "ids", [""])[0])
        subject: str = getattr(message, "subject", "") or ""
        text: str | None = getattr(message, "text", None)
        html: str | None = getattr(message, "html", None)
        if hasattr(message, "raw_data"):
            subject, text, html = _raw_view(message.raw_data)
        elif hasattr(message, "template"):
            subject, text = f"[template {message.template}]", str(message.template_data)
        elif text is None and html is None:
            body = str(getattr(message, "body", "") or "")
            html, text = (body, None) if _looks_like_html(body) else (None, body)
        return {
            "id": message_id,
            "from": message.source,
            "to": _addresses(message.destinations),
            "subject": subject,
            "text": text,
            "html": html,
            "sent_at": self._sent_at(message, message_id),
        }


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/") != "/api/messages":
            self._reply(404, {"error": "not found"})
            return
        self._reply(200, {"items": self.server.mailbox.messages()})

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path.rstrip("/") != "/api/messages":
            self._reply(404, {"error": "not found"})
            return
        self.server.mailbox.clear()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the local stack's console is for the service's own logs."""

    def _reply(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(LocalHttpServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], mailbox: Mailbox) -> None:
        super().__init__(address, _RequestHandler)
        self.mailbox = mailbox
