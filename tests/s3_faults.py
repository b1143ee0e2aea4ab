"""A fault-injecting HTTP proxy in front of a moto server, on 127.0.0.1: what a flaky S3 connection does.

``FaultyProxy(upstream, cut_every=2, fail_every=3, cut_key="in/model.tar.gz")`` forwards every request to
``upstream`` and
- answers every ``fail_every``-th request with a 503 SlowDown (as S3 does under load; botocore retries it);
- cuts every ``cut_every``-th GET of an object whose key ends with ``cut_key`` in the middle of its body: the
  status line and headers announce the whole Content-Length, half the body is sent, then the connection is
  closed (botocore raises ``ResponseStreamingError: IncompleteRead`` while reading the body, after the call
  itself succeeded, so botocore's own retries never see it);
- with ``trickle`` set, sends the body of every GET of ``cut_key`` in 64 KiB pieces ``trickle`` seconds apart (a
  slow connection: a download that is still running when the test acts); ``trickled`` counts the bytes sent so.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
import urllib.parse
from typing import Any

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")


class FaultyProxy:
    #: how much of a cut body is sent (0: none of it, so a retry makes no progress)
    _fraction = 0.5

    def __init__(self, upstream: str, *, cut_every: int = 0, fail_every: int = 0, cut_key: str = "",
                 trickle: float = 0.0) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.cut_every = cut_every
        self.fail_every = fail_every
        self.cut_key = cut_key
        self.trickle = trickle
        self.trickled = 0
        self.requests = 0
        self.gets_of_key = 0
        self.cuts = 0
        self.failures = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(h.path).path
        with self._lock:
            self.requests += 1
            fail = self.fail_every and self.requests % self.fail_every == 0
            cut = slow = False
            if not fail and h.command == "GET" and self.cut_key and path.endswith(self.cut_key):
                slow = self.trickle > 0
                self.gets_of_key += 1
                cut = bool(self.cut_every) and self.gets_of_key % self.cut_every == 0
            self.failures += bool(fail)
        if fail:
            h.send_response(503)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(SLOW_DOWN)))
            h.end_headers()
            h.wfile.write(SLOW_DOWN)
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(h.command, h.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if cut and len(data) * self._fraction < 1 and self._fraction:
            cut = False
        h.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(key, value)
        # a HEAD answer announces the object's length; anything else the body's
        h.send_header("Content-Length", response.getheader("Content-Length", "0") if h.command == "HEAD"
                      else str(len(data)))
        if cut:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command == "HEAD":
            return
        if cut:
            with self._lock:
                self.cuts += 1
            h.wfile.write(data[: int(len(data) * self._fraction)])
            h.wfile.flush()
            h.close_connection = True
            return
        if slow:
            self._trickle(h, data)
            return
        h.wfile.write(data)

    def _trickle(self, h: http.server.BaseHTTPRequestHandler, data: bytes) -> None:
        piece = 64 << 10
        for start in range(0, len(data), piece):
            try:
                h.wfile.write(data[start:start + piece])
                h.wfile.flush()
            except OSError:  # the client went away (cancelled, killed): not the proxy's error
                h.close_connection = True
                return
            with self._lock:
                self.trickled += len(data[start:start + piece])
            time.sleep(self.trickle)
