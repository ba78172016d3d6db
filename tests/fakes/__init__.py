"""Small fake remote services on 127.0.0.1 that speak the real HTTP API shapes.

The network is closed in tests, so the real client libraries (praw, tweepy, ...) are pointed at
these servers. A fake stands in only for the remote service, never for botkit's own code.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-answer (a SIGKILLed daemon, a timed-out request) are part of the
    tests, not errors: no traceback for them on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class LocalServer:
    """A fake service's HTTP server on 127.0.0.1 (a free port), served from a background thread.

    Subclasses say how requests are answered (:meth:`handler`); starting, stopping and the URL the
    client is pointed at are the same for every fake. Use as a context manager.
    """

    name = "fake"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._server = _QuietServer(("127.0.0.1", 0), self.handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class Answer:
    """One answer of a :class:`JsonService`: a status (0 drops the connection unanswered), JSON, headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Logged:
    """One request a :class:`JsonService` answered, for tests to assert on."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]
    status: int


@dataclass
class Fault:
    """A scripted failure of a service's next write; ``act_first`` makes the write, then fails the answer."""

    answer: Answer
    act_first: bool = False


class JsonService(LocalServer):
    """A fake JSON-over-HTTP service: requests parsed (JSON or form bodies) and logged, writes failed on
    script, answers sent or connections dropped. Subclasses answer in :meth:`route`, under a lock.
    """

    def __init__(self, *, answer_delay: float = 0.0) -> None:
        super().__init__()
        #: Seconds between acting on a request and answering: widens the window in which a crash
        #: leaves the client not knowing that its post went out.
        self.answer_delay = answer_delay
        self.requests: list[Logged] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any], headers: dict[str, str]) -> Answer:
        raise NotImplementedError

    def fail_next(self, answer: Answer, *, times: int = 1, act_first: bool = False) -> None:
        """Answer the service's next ``times`` writes with ``answer`` (status 0: drop the connection)."""
        self._faults += [Fault(answer, act_first) for _ in range(times)]

    def take_fault(self) -> Fault | None:
        """The next scripted fault, for a write route to apply (before or after acting)."""
        return self._faults.pop(0) if self._faults else None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                service._handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; tests read service.requests
                pass

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = _parse_body(raw, handler.headers.get("content-type") or "")
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query))
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            answer = self.route(handler.command, url.path, query, body, headers)
            self.requests.append(Logged(handler.command, url.path, query, body, headers, answer.status))
        if self.answer_delay:
            time.sleep(self.answer_delay)
        if answer.status == 0:
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        data = json.dumps(answer.body).encode()
        try:
            handler.send_response(answer.status)
            handler.send_header("content-type", "application/json; charset=utf-8")
            handler.send_header("content-length", str(len(data)))
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-request (the crash test)
            handler.close_connection = True


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """A JSON or form-encoded request body as a dict (repeated form keys keep their last value)."""
    if not raw:
        return {}
    if "json" in content_type:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
