"""Exchange throughput: the suite's drivers next to this machine's raw ceiling.

Four client/server pairs per transport, each client in its own process
(``--jobs 2`` runs two at once, as ``pytest -n 2`` would), for a fixed time:

- raw client -> minimal server: the ceiling (a socket loop against a server
  that does nothing but answer one fixed ServerToAgent);
- suite driver -> minimal server: the driver's own cost, as a ratio of the ceiling;
- raw client -> reference server, and suite driver -> reference server: what a
  real run against the bundled target sustains.

    python -m benchmarks.throughput [--seconds 3] [--jobs 1 --jobs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import emit
from conformance.messages import heartbeat, new_uid
from conformance.wire import ServerToAgent

REPLY = ServerToAgent(instance_uid=bytes(16), capabilities=0x1).SerializeToString()
HTTP_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: "
    + str(len(REPLY)).encode()
    + b"\r\n\r\n"
    + REPLY
)
BODY = heartbeat(bytes(range(16)), 1).SerializeToString()
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# -- the minimal servers ---------------------------------------------------------


class _MinimalHttp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            found = _LENGTH.search(self.buffer[:end])
            size = int(found.group(1)) if found else 0
            if len(self.buffer) < end + 4 + size:
                return
            self.buffer = self.buffer[end + 4 + size :]
            self.transport.write(HTTP_REPLY)


async def _serve(kind: str) -> None:
    if kind == "http":
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_MinimalHttp, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    else:
        from websockets.asyncio.server import ServerConnection, serve

        framed = b"\x00" + REPLY

        async def answer(conn: ServerConnection) -> None:
            async for _ in conn:
                await conn.send(framed)

        ws_server = await serve(answer, "127.0.0.1", 0, compression=None, ping_interval=None)
        port = next(iter(ws_server.sockets)).getsockname()[1]
    print(f"READY http://127.0.0.1:{port}/v1/opamp", flush=True)
    await asyncio.Event().wait()


# -- the clients -------------------------------------------------------------------


def _raw_http(url: str, seconds: float) -> int:
    host, port = _host_port(url)
    request = (
        f"POST /v1/opamp HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/x-protobuf\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    count = 0
    with socket.create_connection((host, port), timeout=5) as sock:
        deadline = time.monotonic() + seconds
        buffer = b""
        while time.monotonic() < deadline:
            sock.sendall(request)
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                buffer += sock.recv(65536)
            found = _LENGTH.search(buffer[:end])
            size = int(found.group(1)) if found else 0
            while len(buffer) < end + 4 + size:
                buffer += sock.recv(65536)
            buffer = buffer[end + 4 + size :]
            count += 1
    return count


def _raw_ws(url: str, seconds: float) -> int:
    host, port = _host_port(url)
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET /v1/opamp HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    mask = os.urandom(4)
    payload = b"\x00" + BODY
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    frame = bytes([0x82, 0x80 | len(payload)]) + mask + masked
    count = 0
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(handshake)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        buffer = buffer[buffer.index(b"\r\n\r\n") + 4 :]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sock.sendall(frame)
            while True:
                while len(buffer) < 2:
                    buffer += sock.recv(65536)
                size, start = buffer[1] & 0x7F, 2
                if size == 126:
                    while len(buffer) < 4:
                        buffer += sock.recv(65536)
                    size, start = int.from_bytes(buffer[2:4], "big"), 4
                elif size == 127:
                    while len(buffer) < 10:
                        buffer += sock.recv(65536)
                    size, start = int.from_bytes(buffer[2:10], "big"), 10
                while len(buffer) < start + size:
                    buffer += sock.recv(65536)
                opcode = buffer[0] & 0x0F
                buffer = buffer[start + size :]
                if opcode == 0x2:
                    break
            count += 1
    return count


def _driver(transport: str) -> Callable[[str, float], int]:
    def run(url: str, seconds: float) -> int:
        from conformance.drivers.http import HttpDriver
        from conformance.drivers.ws import WsDriver

        uid = new_uid()
        count = 0
        if transport == "http":
            driver: HttpDriver | WsDriver = HttpDriver(url)
        else:
            driver = WsDriver(url.replace("http://", "ws://"))
        with driver:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                exchange = driver.send(heartbeat(uid, count))
                if exchange.reply is None:
                    raise RuntimeError(f"no reply: {exchange.problem} {exchange.detail}")
                count += 1
        return count

    return run


CLIENTS: dict[str, Callable[[str, float], int]] = {
    "raw-http": _raw_http,
    "raw-ws": _raw_ws,
    "driver-http": _driver("http"),
    "driver-ws": _driver("ws"),
}


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


# -- orchestration -----------------------------------------------------------------


def _start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("READY "):
            return proc, line.split()[1]
    proc.kill()
    raise RuntimeError(f"server did not start: {command}")


def _clients(kind: str, url: str, seconds: float, jobs: int) -> float:
    """Exchanges per second of ``jobs`` client processes at once."""
    command = [sys.executable, "-m", "benchmarks.throughput", "client", kind, url, str(seconds)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    total = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"client {kind} failed")
        total += int(out.strip().splitlines()[-1])
    return total / seconds


def measure(seconds: float, jobs_list: list[int]) -> dict[str, Any]:
    me = [sys.executable, "-m", "benchmarks.throughput"]
    results: dict[str, Any] = {"seconds_per_measurement": seconds}
    for transport in ("http", "ws"):
        minimal, minimal_url = _start([*me, "serve", transport])
        reference, reference_base = _start(
            [sys.executable, "-m", "fixtures.reference.server", "--port", "0"]
        )
        reference_url = reference_base + "/v1/opamp"
        try:
            rows: dict[str, Any] = {}
            for jobs in jobs_list:
                row = {
                    "raw_to_minimal": _clients(f"raw-{transport}", minimal_url, seconds, jobs),
                    "driver_to_minimal": _clients(
                        f"driver-{transport}", minimal_url, seconds, jobs
                    ),
                    "raw_to_reference": _clients(f"raw-{transport}", reference_url, seconds, jobs),
                    "driver_to_reference": _clients(
                        f"driver-{transport}", reference_url, seconds, jobs
                    ),
                }
                row = {k: round(v, 1) for k, v in row.items()}
                row["driver_share_of_ceiling"] = round(
                    row["driver_to_minimal"] / row["raw_to_minimal"], 3
                )
                rows[f"jobs_{jobs}"] = row
            results[transport] = rows
        finally:
            for proc in (minimal, reference):
                proc.kill()
                proc.wait(timeout=10)
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        asyncio.run(_serve(args[1]))
        return 0
    if args[:1] == ["client"]:
        print(CLIENTS[args[1]](args[2], float(args[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, action="append")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args(args)
    return emit(measure(options.seconds, options.jobs or [1, 2]), options.out)


if __name__ == "__main__":
    raise SystemExit(main())
