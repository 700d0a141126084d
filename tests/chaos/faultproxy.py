"""A small fault-injecting HTTP proxy for S3 traffic (boto3 → proxy → moto server).

Each request draws at most one fault, at configurable rates:

* ``error``: answer 500 InternalError, 503 SlowDown or 503 ServiceUnavailable without
  forwarding (the request never happened);
* ``error_after``: forward, then answer 500 instead of the real response (the request
  took effect, the client does not know);
* ``reset``: reset the TCP connection before forwarding;
* ``reset_after``: forward, then reset instead of answering (a lost response);
* ``truncate``: forward, send the headers with the full Content-Length and only part of
  the body, then reset (a body cut short);
* ``delay``: wait up to ``delay_max`` seconds before forwarding;
* ``conflict``: answer a conditional PUT (``If-None-Match``/``If-Match``) with 409
  ConditionalRequestConflict without forwarding, as S3 does while another conditional
  write of the key is in progress;
* ``denied``: answer 403 AccessDenied or ExpiredToken without forwarding (credentials
  expired or a policy changed mid-run: not retryable, the run must fail cleanly);
* ``stale_list``: forward a ListObjectsV2, then leave one listed key out of the answer (a
  listing that has not caught up: a store that is not strongly consistent).

``outage()`` answers every request with 503 SlowDown until it ends (the window in which
the moto server behind is restarted); ``in_flight`` lets the caller wait until no
request is being forwarded. Counts of every injected fault are kept in ``counts``.
No well-kept library does this in-process for HTTP/1.1 keep-alive clients (toxiproxy
is a separate Go service working at the TCP level only), hence these 300 lines.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
}
ERRORS = (
    (500, "InternalError", "We encountered an internal error. Please try again."),
    (503, "SlowDown", "Please reduce your request rate."),
    (503, "ServiceUnavailable", "Service is unable to handle request."),
)
DENIALS = (
    (403, "AccessDenied", "Access Denied"),
    (403, "ExpiredToken", "The provided token has expired."),
)
_CONTENTS = re.compile(rb"<Contents>.*?</Contents>", re.S)
_KEY_COUNT = re.compile(rb"<KeyCount>(\d+)</KeyCount>")


@dataclass
class FaultConfig:
    """Probability of each fault per request (at most one fault per request)."""

    error: float = 0.0
    error_after: float = 0.0
    reset: float = 0.0
    reset_after: float = 0.0
    truncate: float = 0.0
    delay: float = 0.0
    conflict: float = 0.0
    denied: float = 0.0
    stale_list: float = 0.0
    delay_max: float = 0.3

    @classmethod
    def uniform(cls, rate: float, delay_max: float = 0.3) -> FaultConfig:
        """Every kind at ``rate``, but ``denied`` at a tenth of it: each one fails its run
        (a run makes hundreds of requests), so at full rate no run would ever finish."""
        return cls(
            error=rate,
            error_after=rate,
            reset=rate,
            reset_after=rate,
            truncate=rate,
            delay=rate,
            conflict=rate,
            denied=rate / 10,
            stale_list=rate,
            delay_max=delay_max,
        )

    def kinds(self) -> list[tuple[str, float]]:
        return [
            ("error", self.error),
            ("error_after", self.error_after),
            ("reset", self.reset),
            ("reset_after", self.reset_after),
            ("truncate", self.truncate),
            ("delay", self.delay),
            ("conflict", self.conflict),
            ("denied", self.denied),
            ("stale_list", self.stale_list),
        ]


def _error_body(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>chaos-proxy</RequestId></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reset(self) -> None:
        """Close with RST: the client sees the connection die, not an HTTP answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, length: int) -> None:
        self.send_response_only(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = _error_body(code, message)
        headers = [("Content-Type", "application/xml")]
        self._send(status, headers, b"" if self.command == "HEAD" else body, len(body))

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._body()
        if proxy.in_outage:
            proxy.count("outage 503")
            self._error(503, "SlowDown", "Please reduce your request rate.")
            return
        fault = proxy.draw()
        if fault == "error":
            status, code, message = proxy.pick(ERRORS)
            self._error(status, code, message)
            return
        if fault == "reset":
            self._reset()
            return
        if fault == "denied":
            self._error(*proxy.pick(DENIALS))
            return
        if fault == "conflict":
            conditional = {k.lower() for k in self.headers} & {"if-none-match", "if-match"}
            if self.command == "PUT" and conditional:
                self._error(409, "ConditionalRequestConflict", "A conflicting operation is "
                            "currently in progress against this resource.")  # fmt: skip
                return
            proxy.uncount("conflict")  # not a conditional write: nothing to conflict with
            fault = None
        listing = self.command == "GET" and "list-type=2" in self.path
        if fault == "stale_list" and not listing:
            proxy.uncount("stale_list")
            fault = None
        if fault == "delay":
            time.sleep(proxy.uniform(0.0, proxy.config.delay_max))
        try:
            status, headers, data = proxy.forward(self.command, self.path, self.headers, body)
        except OSError:  # upstream down (being restarted): what S3 would say
            proxy.count("upstream unreachable (503)")
            self._error(503, "ServiceUnavailable", "Service is unable to handle request.")
            return
        if fault == "error_after":
            self._error(500, "InternalError", "We encountered an internal error. Please try again.")
        elif fault == "reset_after":
            self._reset()
        elif fault == "truncate" and len(data) > 1:
            self._send(status, headers, data[: len(data) // 2], len(data))
            self.wfile.flush()
            self._reset()
        else:
            if fault == "truncate":
                proxy.uncount("truncate")  # nothing to cut: not a fault after all
            if fault == "stale_list" and status == 200:
                data = proxy.stale(data)
            length = len(data)
            if self.command == "HEAD":
                length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
            self._send(status, headers, data, length)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy


class FaultProxy:
    """The proxy; ``url`` is the endpoint to give boto3 (``AWS_ENDPOINT_URL``).

    ``instances`` lists the running proxies (all are re-pointed when moto is replaced).
    """

    instances: ClassVar[list[FaultProxy]] = []

    def __init__(self, upstream: str, config: FaultConfig | None = None, seed: int = 0) -> None:
        self.upstream = upstream
        self.config = config or FaultConfig()
        self.counts: Counter = Counter()
        self.hidden: list[bytes] = []  # keys a stale listing left out
        self.requests = 0
        self.in_flight = 0
        self.in_outage = False
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        FaultProxy.instances.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        FaultProxy.instances.remove(self)
        self._server.shutdown()
        self._server.server_close()

    @property
    def faults(self) -> int:
        return sum(self.counts.values())

    def count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def uncount(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] -= 1

    def uniform(self, lo: float, hi: float) -> float:
        with self._lock:
            return self._rng.uniform(lo, hi)

    def pick(self, options: tuple) -> tuple:
        with self._lock:
            return self._rng.choice(options)

    def stale(self, listing: bytes) -> bytes:
        """``listing`` without one of its keys (at random); unchanged if it lists none."""
        found = list(_CONTENTS.finditer(listing))
        if not found:
            self.uncount("stale_list")
            return listing
        with self._lock:
            gone = self._rng.choice(found)
            self.hidden.append(gone.group(0).split(b"<Key>", 1)[1].split(b"</Key>", 1)[0])
        out = listing[: gone.start()] + listing[gone.end() :]
        return _KEY_COUNT.sub(lambda m: b"<KeyCount>%d</KeyCount>" % (int(m[1]) - 1), out)

    def draw(self) -> str | None:
        """The fault for one request (None: pass it through untouched)."""
        with self._lock:
            self.requests += 1
            roll, edge = self._rng.random(), 0.0
            for kind, rate in self.config.kinds():
                edge += rate
                if roll < edge:
                    self.counts[kind] += 1
                    return kind
        return None

    def forward(
        self, method: str, path: str, headers: object, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        with self._lock:
            self.in_flight += 1
            target = urlsplit(self.upstream)
        try:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                out = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}  # type: ignore[attr-defined]
                out["Content-Length"] = str(len(body))
                conn.request(method, path, body=body, headers=out)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            finally:
                conn.close()
        finally:
            with self._lock:
                self.in_flight -= 1

    def outage(self, on: bool) -> None:
        self.in_outage = on

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until no request is being forwarded upstream."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def retarget(self, upstream: str) -> None:
        with self._lock:
            self.upstream = upstream
