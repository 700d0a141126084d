"""A minimal SMTP server on a free loopback port that keeps every message it accepts.

Enough of RFC 5321 for smtplib (EHLO, MAIL, RCPT, DATA, QUIT; no TLS, no AUTH), so the
SMTP provider's notifier is tested over the real protocol.
"""

from __future__ import annotations

import contextlib
import email
import socketserver
import threading
from collections.abc import Iterator
from email.message import Message


class _Handler(socketserver.StreamRequestHandler):
    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 sink ESMTP")
        while line := self.rfile.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 sink")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 end with <CRLF>.<CRLF>")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.messages.append(email.message_from_bytes(b"".join(data)))  # type: ignore[attr-defined]
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("502 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def smtp_sink() -> Iterator[tuple[int, list[Message]]]:
    """Yields (port, messages received so far)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.messages = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], server.messages  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def body(msg: Message) -> str:
    """The text of every part, decoded."""
    parts = msg.walk() if msg.is_multipart() else [msg]
    out = []
    for p in parts:
        payload = p.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append(payload.decode(p.get_content_charset() or "utf-8"))
    return "\n".join(out)
