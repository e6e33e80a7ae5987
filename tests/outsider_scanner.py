"""An outsider's attempt on the shared services: scan ports, try each open one (issue 12).

Stdlib only, run as the outsider by tests/apps/test_run_outsider.py (real Slurm on this host)
and by the Molecule lab's end-to-end share (molecule/default/tests/test_default.py). Reads a
JSON spec on stdin: {"targets": [[address, [ports]]...] (each a port, or [first, last]),
"markers": [texts only a service shows], "model": LLM model name}; prints
{"open": {address: [ports]}, "answers": [...]}, one answer per open port and request tried
(status 0 when the request failed).
"""
from __future__ import annotations

import http.client
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

TRIES = [("GET", "/", None), ("GET", "/api/tags", None), ("GET", "/api/version", None),
         ("POST", "/api/chat", "chat"), ("POST", "/api/generate", "generate"),
         ("POST", "/api/pull", "pull"), ("GET", "/websocket/", None), ("GET", "/shared/shiny.js", None)]


def open_ports(addr: str, ports: list[int]) -> list[int]:
    def probe(port: int) -> int | None:
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
        s.settimeout(0.5)
        try:
            return port if s.connect_ex((addr, port)) == 0 else None
        finally:
            s.close()

    with ThreadPoolExecutor(32) as pool:
        return [p for p in pool.map(probe, ports) if p]


def body(kind: str | None, model: str) -> str | None:
    if kind == "chat":
        return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False})
    if kind == "generate":
        return json.dumps({"model": model, "prompt": "hi", "stream": False})
    if kind == "pull":
        return json.dumps({"model": "x", "stream": False})
    return None


def main() -> None:
    spec = json.load(sys.stdin)
    markers = spec["markers"]
    found: dict[str, list[int]] = {}
    answers = []
    for addr, ports in spec["targets"]:
        expanded = [p for item in ports for p in (range(item[0], item[1] + 1) if isinstance(item, list) else [item])]
        found[addr] = open_ports(addr, expanded)
        for port in found[addr]:
            for method, path, kind in TRIES:
                data = body(kind, spec.get("model", ""))
                try:
                    conn = http.client.HTTPConnection(addr, port, timeout=3)
                    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
                    response = conn.getresponse()
                    text = response.read(65536).decode("utf-8", "replace")
                    answers.append({"addr": addr, "port": port, "method": method, "path": path,
                                    "status": response.status, "marker": [m for m in markers if m in text]})
                except Exception as exc:  # every failure is an answer of status 0
                    answers.append({"addr": addr, "port": port, "method": method, "path": path, "status": 0,
                                    "error": type(exc).__name__, "marker": []})
    print(json.dumps({"open": found, "answers": answers}))


if __name__ == "__main__":
    main()
