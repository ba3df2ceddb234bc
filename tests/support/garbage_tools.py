"""A tool server that answers garbage of every kind, for the chaos tests: a raw asyncio HTTP/1.1
server on 127.0.0.1 in a thread (raw, so that it can truncate bodies and reset connections).

Paths (any method; the request body is read by its Content-Length):

    /charset    200, ``application/json; charset=utf8mb4`` (a charset Python does not know)
    /latin1     200, ``text/plain; charset=latin-1`` with a non-ASCII byte
    /truncated  200, Content-Length 1000 but 10 bytes, then the connection closes
    /badjson    200, ``application/json`` that is not JSON (and a NUL, a lone surrogate escape)
    /huge       200, 10 MB
    /drip       200, one byte every 0.2 s for 60 s (slower than any test's tool timeout)
    /reset      the connection is reset (RST) without an answer
    /redirect   302 to /charset
    /binary     200, ``application/octet-stream`` with bytes that are not UTF-8

``hits[(path, idempotency_key)]`` counts the requests that reached each path.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import Counter

PATHS = ("charset", "latin1", "truncated", "badjson", "huge", "drip", "reset", "redirect", "binary")
HUGE_BYTES = 10 * 1024 * 1024


def _answer(status: str, content_type: str, body: bytes, length: int | None = None) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body) if length is None else length}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


class GarbageToolServer:
    def __init__(self) -> None:
        self.hits: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "GarbageToolServer":
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", 0), self.loop)
        self._server = future.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def total(self) -> int:
        with self.lock:
            return sum(self.hits.values())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1].split("?")[0].strip("/")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            with self.lock:
                self.hits[(path, headers.get("idempotency-key", ""))] += 1
            await self._garbage(path, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _garbage(self, path: str, writer: asyncio.StreamWriter) -> None:
        if path == "charset":
            writer.write(_answer("200 OK", "application/json; charset=utf8mb4", '{"temp": "12 °C"}'.encode()))
        elif path == "latin1":
            writer.write(_answer("200 OK", "text/plain; charset=latin-1", b"caf\xe9"))
        elif path == "truncated":
            writer.write(_answer("200 OK", "application/json", b'{"temp": 1', length=1000))
        elif path == "badjson":
            writer.write(_answer("200 OK", "application/json", b'{"temp": \x00 "\\ud83d" ,,, ]'))
        elif path == "huge":
            writer.write(_answer("200 OK", "text/plain", b"x" * HUGE_BYTES))
        elif path == "drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 300\r\n\r\n")
            for _ in range(300):
                writer.write(b".")
                await writer.drain()
                await asyncio.sleep(0.2)
        elif path == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST
        elif path == "redirect":
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: /charset\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif path == "binary":
            writer.write(_answer("200 OK", "application/octet-stream", bytes(range(256))))
        else:
            writer.write(_answer("404 Not Found", "text/plain", b"no such garbage"))
        await writer.drain()
