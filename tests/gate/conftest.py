"""Real servers for the gate tests: an aiohttp upstream in a thread, the gate as a real process.

The upstream records every request it sees (so a test can show a refused request never reached
it) and the moments it sent stream chunks (so a test can show chunks arrive before the stream ended).
The gate runs as `python -m ood_mt.gate` under both the venv's python (pip's aiohttp) and Debian's
/usr/bin/python3 (python3-aiohttp 3.8, what compute nodes run).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from aiohttp import WSMsgType, web

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
SYSTEM_PYTHON = "/usr/bin/python3"
PYTHONS = {"venv": sys.executable, "debian": SYSTEM_PYTHON}
READY_TIMEOUT_S = 20.0


@dataclass
class Upstream:
    """An aiohttp test service on 127.0.0.1 (or a Unix socket), run in its own thread and loop."""

    unix_path: Optional[str] = None
    port: int = 0
    requests: List[Dict[str, Any]] = field(default_factory=list)
    events: Dict[str, float] = field(default_factory=dict)
    sent: List[float] = field(default_factory=list)
    first_body_byte: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"http://127.0.0.1:{self.port}"

    def seen(self) -> List[Dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def start(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the test upstream did not start"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site: web.BaseSite
        if self.unix_path:
            site = web.UnixSite(runner, self.unix_path)
        else:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            site = web.SockSite(runner, sock)
        await site.start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        record = {"method": request.method, "target": request.raw_path, "headers": dict(request.headers),
                  "headers_all": list(request.headers.items()), "peer": request.transport.get_extra_info("peername")
                  if request.transport else None}
        with self.lock:
            self.requests.append(record)
        name = request.path.strip("/").split("/")[0]
        handler = getattr(self, f"h_{name}", None) if name else None
        if handler is None:
            return web.json_response(record | {"peer": list(record["peer"] or [])})
        return await handler(request)

    async def h_ndjson(self, request: web.Request) -> web.StreamResponse:
        """Ollama-like chat stream: N lines, DELAY seconds apart."""
        n, delay = int(request.query.get("n", "5")), float(request.query.get("delay", "0.4"))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i in range(n):
            await resp.write(json.dumps({"message": {"content": f"token{i}"}, "done": i == n - 1}).encode() + b"\n")
            with self.lock:
                self.sent.append(time.monotonic())
            await asyncio.sleep(delay)
        self.events["ndjson_done"] = time.monotonic()
        await resp.write_eof()
        return resp

    async def h_sse(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i in range(4):
            await resp.write(f"event: tick\ndata: {i}\n\n".encode())
            with self.lock:
                self.sent.append(time.monotonic())
            await asyncio.sleep(0.4)
        await resp.write_eof()
        return resp

    async def h_forever(self, request: web.Request) -> web.StreamResponse:
        """A stream that only ends when the reader goes away (an LLM generating)."""
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b'{"token":"x"}\n')
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            self.events["forever_stopped"] = time.monotonic()
            raise

    async def h_upload(self, request: web.Request) -> web.StreamResponse:
        digest, size = hashlib.sha256(), 0
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            if size == 0:
                self.events["upload_first_byte"] = time.monotonic()
                self.first_body_byte.set()
            digest.update(chunk)
            size += len(chunk)
        self.events["upload_done"] = time.monotonic()
        return web.json_response({"size": size, "sha256": digest.hexdigest(),
                                  "content_length": request.headers.get("Content-Length"),
                                  "transfer_encoding": request.headers.get("Transfer-Encoding")})

    async def h_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("shiny", "chat"), max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                if msg.data == "bye":
                    await ws.close(code=4001, message=b"bye")
                    break
                await ws.send_str("echo:" + msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        self.events["ws_closed"] = time.monotonic()
        return ws

    async def h_redirect(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/echo/after?x=1"})

    async def h_redirect_abs(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"http://{request.host}/echo/abs?a=1#part"})

    async def h_redirect_away(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "https://example.org/x"})

    async def h_cookies(self, request: web.Request) -> web.StreamResponse:
        resp = web.Response(text="cookies")
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; Path=/")
        return resp

    async def h_gzip(self, request: web.Request) -> web.StreamResponse:
        body = gzip.compress(b"compressed body " * 100)
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async def h_empty(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    up.start()
    try:
        yield up
    finally:
        up.stop()


@dataclass
class RunningGate:
    proc: subprocess.Popen
    port: int
    secret: str
    secret_file: Path
    log: Path
    python: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        """What a receiver gets: the gate's URL with the secret prefix."""
        return f"{self.url}/{self.secret}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def peak_rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def gate_env() -> Dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "LANG": "C.UTF-8"}


def wait_ready(proc: subprocess.Popen, ready_file: Path, log: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready_file.exists():
            line = ready_file.read_text().strip()
            assert line.startswith("ready on 127.0.0.1:"), line
            return int(line.rsplit(":", 1)[1])
        if proc.poll() is not None:
            raise AssertionError(f"the gate exited {proc.returncode} before ready:\n{log.read_text()}")
        time.sleep(0.02)
    raise AssertionError(f"the gate was not ready within {READY_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture(params=sorted(PYTHONS), ids=lambda name: f"py-{name}")
def gate_python(request: pytest.FixtureRequest) -> str:
    return PYTHONS[str(request.param)]


StartGate = Callable[..., RunningGate]


@pytest.fixture
def start_gate(tmp_path: Path, gate_python: str) -> Iterator[StartGate]:
    """start_gate(upstream_url, *extra_args) -> RunningGate; stopped (and its exit checked) at teardown."""
    started: List[RunningGate] = []

    def _start(upstream_url: str, *extra: str) -> RunningGate:
        n = len(started)
        secret_file = tmp_path / f"secret{n}"
        made = subprocess.run([gate_python, "-m", "ood_mt.gate", "--write-secret", str(secret_file)],
                              env=gate_env(), capture_output=True, text=True, check=False)
        assert made.returncode == 0, made.stderr
        ready, log = tmp_path / f"ready{n}", tmp_path / f"gate{n}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [gate_python, "-m", "ood_mt.gate", "--listen", "127.0.0.1:0", "--upstream", upstream_url,
                 "--secret-file", str(secret_file), "--ready-file", str(ready), *extra],
                stdout=err, stderr=err, env=gate_env())
        gate = RunningGate(proc, wait_ready(proc, ready, log), secret_file.read_text().strip(), secret_file, log,
                           gate_python)
        started.append(gate)
        return gate

    yield _start
    for gate in started:
        code = gate.stop()
        assert code == 0, f"the gate exited {code}:\n{gate.log_text()}"


def assert_secret_not_logged(gate: RunningGate) -> None:
    text = gate.log_text()
    assert gate.secret not in text
    assert "[secret]" not in text, "the redacting formatter had to step in: some log line carried the secret"
    for size in (12,):
        for i in range(0, len(gate.secret) - size + 1):
            assert gate.secret[i:i + size] not in text, "a part of the secret is in the log"


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    d = tmp_path / "secrets"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    return d
