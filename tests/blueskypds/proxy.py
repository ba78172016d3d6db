"""A forwarding proxy in front of the real PDS, which loses answers on script.

An answer lost after the server acted (a dropped connection, a gateway's 500) is what exactly-once
posting must survive, and no server can be asked to lose its own answer. This proxy forwards each
request to the PDS as it came, so the PDS really acts, and only then drops or replaces the answer:
the post is on the server, the client does not know. It also logs every call, so tests can count
logins and lookups as they do with the fakes.
"""

from __future__ import annotations

import http.client
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from fakes import Answer, Fault, LocalServer

#: Headers about one connection, not the request: the proxy's own connections set them.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "content-length", "proxy-connection"})
INTERNAL_ERROR = Answer(500, {"error": "InternalServerError", "message": "Internal Server Error"})


class LossyProxy(LocalServer):
    """Forwards XRPC requests to ``upstream``; :meth:`fail_next` scripts the fate of the next call of one method."""

    name = "pds-proxy"

    def __init__(self, upstream: str, *, answer_delay: float = 0.0) -> None:
        super().__init__()
        self.upstream = urlsplit(upstream)
        #: Seconds between the PDS's answer and passing it on: widens the window in which a kill
        #: leaves the post on the server and the daemon not knowing.
        self.answer_delay = answer_delay
        self.log: list[tuple[str, str, int]] = []
        self._faults: dict[str, list[Fault]] = {}

    def fail_next(self, nsid: str, answer: Answer = INTERNAL_ERROR, *, act_first: bool = True) -> None:
        """The next ``nsid`` call is answered with ``answer`` (status 0: the connection drops): after
        the PDS acted on it (``act_first``), or instead of forwarding it, as a failing gateway does."""
        self._faults.setdefault(nsid, []).append(Fault(answer, act_first))

    def calls(self) -> list[tuple[str, str, int]]:
        """Every call in order, as (method, NSID, the status the client got; 0 for none)."""
        return list(self.log)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._forward(self)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; tests read proxy.calls()
                pass

        return Handler

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        nsid = urlsplit(handler.path).path.removeprefix("/xrpc/")
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else None
        faults = self._faults.get(nsid)
        fault = faults.pop(0) if faults else None
        answer: tuple[int, list[tuple[str, str]], bytes] | None = None
        if fault is None or fault.act_first:
            answer = self._upstream(handler, body)
            time.sleep(self.answer_delay)
        if fault is not None:
            answer = None if fault.answer.status == 0 else (fault.answer.status, [("content-type", "application/json")], json.dumps(fault.answer.body).encode())
        self.log.append((handler.command, nsid, 0 if answer is None else answer[0]))
        if answer is None:
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        status, headers, data = answer
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed while the PDS acted
            handler.close_connection = True

    def _upstream(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        """The PDS's own answer to the request: status, headers, body."""
        connection = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=60)
        try:
            headers = {name: value for name, value in handler.headers.items() if name.lower() not in HOP_BY_HOP}
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, [(n, v) for n, v in response.getheaders() if n.lower() not in HOP_BY_HOP], response.read()
        finally:
            connection.close()
