"""Small real servers on 127.0.0.1 that misbehave on purpose, for driver tests.

Two kinds:

* :class:`RawServer`: a TCP accept loop on a thread; each connection is
  handed to a plain function that may answer anything (or nothing) on the
  socket. For what a well-behaved HTTP library cannot do: hang, trickle,
  drop the connection.
* :class:`AiohttpServer`: an :mod:`aiohttp` application on its own event
  loop thread. For well-formed HTTP and WebSocket answers with odd content.

Both are context managers and always stop their threads on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

from aiohttp import web

#: A raw connection handler: the accepted socket and an event set at shutdown.
RawHandler = Callable[[socket.socket, threading.Event], None]

_JOIN_TIMEOUT = 5.0


class RawServer:
    """Accept TCP connections and run ``handler`` on each in its own thread."""

    def __init__(self, handler: RawHandler) -> None:
        self._handler = handler
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        #: How many connections were accepted.
        self.accepted = 0

    def url(self, path: str = "/v1/opamp", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> RawServer:
        self._acceptor.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
                self._threads.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._handler(conn, self._stop)
        except OSError:
            pass  # the client went away; that is the point of most tests
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._acceptor.is_alive():
            self._acceptor.join(_JOIN_TIMEOUT)
        self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in threads:
            worker.join(_JOIN_TIMEOUT)
        stuck = [t for t in [self._acceptor, *threads] if t.is_alive()]
        assert not stuck, f"server threads did not stop: {stuck}"

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def raw_servers() -> Iterator[Callable[[RawHandler], RawServer]]:
    """Start raw servers with given handlers; every one is stopped on exit."""
    servers: list[RawServer] = []

    def start(handler: RawHandler) -> RawServer:
        servers.append(RawServer(handler).start())
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def read_http_request(conn: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    """Read one HTTP/1.1 request with a Content-Length body: (request line, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client closed before the request ended")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    line, *header_lines = head.split(b"\r\n")
    headers: dict[str, str] = {}
    for raw in header_lines:
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client closed inside the request body")
        body += chunk
    return line, headers, body


def refused_port() -> socket.socket:
    """A bound socket that does not listen: connecting to its port is refused.

    Keep the socket open while using the port so nothing else can take it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class AiohttpServer:
    """Serve an aiohttp application on 127.0.0.1 from a private event loop thread.

    Request bodies are not decompressed, so handlers see the bytes as sent.
    """

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def _setup(self) -> int:
        runner = web.AppRunner(
            self._app, shutdown_timeout=0.5, auto_decompress=False, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        port: int = runner.addresses[0][1]
        return port

    def start(self) -> AiohttpServer:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._setup(), self._loop).result(
            _JOIN_TIMEOUT
        )
        return self

    def stop(self) -> None:
        try:
            if self._runner is not None:
                cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
                cleanup.result(_JOIN_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_JOIN_TIMEOUT)
            assert not self._thread.is_alive(), "aiohttp loop thread did not stop"
            self._loop.close()

    def __enter__(self) -> AiohttpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
