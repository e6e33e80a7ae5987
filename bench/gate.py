#!/usr/bin/env python3
"""Gate overhead against the service alone, in the same run (issue 12's benchmark).

    .venv/bin/python bench/gate.py [--gate-python /usr/bin/python3] [--requests 3000] [--stream-mb 512]

Starts a small aiohttp service on 127.0.0.1 (a separate process) and `python -m ood_mt.gate` in
front of it, then measures, direct and through the gate, alternating rounds:

- latency of small requests, one keep-alive connection, sequential: p50 and p99 (Python client);
- requests per second of small requests, keep-alive, concurrency 16 (ApacheBench `ab` when
  installed, else the Python client);
- throughput of one long streamed response (chunked, 64 KiB writes), MB/s.

Targets (issue 12): at most 5 % throughput loss, at most 2 ms added p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_CODE = r"""
import asyncio, sys, time
from aiohttp import web
CHUNK = b"x" * 65536
async def small(request):
    return web.Response(text="ok")
async def stream(request):
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await resp.prepare(request)
    rate = float(request.query.get("rate", "0")) * (1 << 20)  # bytes/s, 0: as fast as possible
    started = time.monotonic()
    for i in range(int(request.query["mb"]) * 16):
        await resp.write(CHUNK)
        if rate and (ahead := (i + 1) * len(CHUNK) / rate - (time.monotonic() - started)) > 0:
            await asyncio.sleep(ahead)
    await resp.write_eof()
    return resp
app = web.Application()
app.router.add_get("/small", small)
app.router.add_get("/stream", stream)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


async def latencies(url: str, n: int) -> List[float]:
    import aiohttp

    out = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for i in range(n + 50):
            started = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
            if i >= 50:  # warm-up
                out.append(time.perf_counter() - started)
    return out


async def rps_python(url: str, n: int, concurrency: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        left = [n]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                async with session.get(url) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def rps(url: str, n: int, concurrency: int) -> float:
    ab = shutil.which("ab")
    if not ab:
        return asyncio.run(rps_python(url, n, concurrency))
    out = subprocess.run([ab, "-q", "-k", "-n", str(n), "-c", str(concurrency), url], capture_output=True, text=True,
                         check=True).stdout
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    if not failed or failed.group(1) != "0" or "Non-2xx responses" in out:
        raise SystemExit(f"ab saw failures against {url}:\n{out}")
    match = re.search(r"Requests per second:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


async def stream_mbps(url: str) -> float:
    import aiohttp

    total = 0
    async with aiohttp.ClientSession(read_bufsize=1 << 20) as session:
        started = time.perf_counter()
        async with session.get(url) as resp:
            async for chunk in resp.content.iter_any():
                total += len(chunk)
        return total / (1 << 20) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate-python", default=sys.executable, help="python that runs the gate")
    parser.add_argument("--requests", type=int, default=3000, help="sequential requests per latency round")
    parser.add_argument("--rps-requests", type=int, default=20000, help="requests per req/s round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream-mb", type=int, default=512)
    parser.add_argument("--paced-mb", type=int, default=256, help="size of the paced stream")
    parser.add_argument("--paced-rate", type=float, default=110,
                        help="MB/s the service produces the paced stream at (110: about a 1 Gb/s link)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    up_port, gate_port = free_port(), free_port()
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        secret_file = Path(tmp) / "secret"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        subprocess.run([args.gate_python, "-m", "ood_mt.gate", "--write-secret", str(secret_file)], env=env, check=True)
        secret = secret_file.read_text().strip()
        try:
            procs.append(subprocess.Popen([sys.executable, "-c", UPSTREAM_CODE, str(up_port)]))
            procs.append(subprocess.Popen(
                [args.gate_python, "-m", "ood_mt.gate", "--listen", f"127.0.0.1:{gate_port}",
                 "--upstream", f"http://127.0.0.1:{up_port}", "--secret-file", str(secret_file)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(up_port)
            wait_port(gate_port)
            bases = {"service alone": f"http://127.0.0.1:{up_port}",
                     "through the gate": f"http://127.0.0.1:{gate_port}/{secret}"}
            lat: Dict[str, List[float]] = {k: [] for k in bases}
            rates: Dict[str, List[float]] = {k: [] for k in bases}
            mbps: Dict[str, List[float]] = {k: [] for k in bases}
            paced: Dict[str, List[float]] = {k: [] for k in bases}
            for _ in range(args.rounds):
                for name, base in bases.items():
                    lat[name] += asyncio.run(latencies(f"{base}/small", args.requests))
                    rates[name].append(rps(f"{base}/small", args.rps_requests, args.concurrency))
                    mbps[name].append(asyncio.run(stream_mbps(f"{base}/stream?mb={args.stream_mb}")))
                    paced[name].append(asyncio.run(stream_mbps(
                        f"{base}/stream?mb={args.paced_mb}&rate={args.paced_rate}")))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)

    def pct(values: List[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    rows: List[Tuple[str, ...]] = []
    summary = {}
    for name in bases:
        summary[name] = (pct(lat[name], 0.5), pct(lat[name], 0.99), statistics.median(rates[name]),
                         statistics.median(mbps[name]), statistics.median(paced[name]))
        p50, p99, rate, mb, pmb = summary[name]
        rows.append((name, f"{p50:.3f}", f"{p99:.3f}", f"{rate:.0f}", f"{mb:.0f}", f"{pmb:.1f}"))
    import aiohttp

    print(f"gate python {args.gate_python}; client/service aiohttp {aiohttp.__version__}; {os.cpu_count()} CPUs; "
          f"{args.rounds} alternating rounds; latency: {args.requests} sequential requests per round; "
          f"req/s: {args.rps_requests} requests, concurrency {args.concurrency}, "
          f"{'ab -k' if shutil.which('ab') else 'python client'}; stream: {args.stream_mb} MB chunked, as fast as "
          f"possible; paced: {args.paced_mb} MB produced at {args.paced_rate:g} MB/s")
    header = ("", "p50 ms", "p99 ms", "req/s", "stream MB/s", "paced MB/s")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    alone, gated = summary["service alone"], summary["through the gate"]
    print(f"added p50 {gated[0] - alone[0]:.3f} ms (target <= 2 ms); added p99 {gated[1] - alone[1]:.3f} ms; "
          f"req/s loss {100 * (1 - gated[2] / alone[2]):.1f} %; "
          f"stream throughput loss {100 * (1 - gated[3] / alone[3]):.1f} % unpaced, "
          f"{100 * (1 - gated[4] / alone[4]):.1f} % paced (target <= 5 %)")


if __name__ == "__main__":
    main()
