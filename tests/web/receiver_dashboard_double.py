"""TEST DOUBLE of the receiver's OOD dashboard origin, for the shared-web-apps origin test.

Open OnDemand's per-user nginx (PUN) cannot run here, so this small server stands in for
the two things a hostile page would want from the receiver's dashboard origin: the files
API (``GET /pun/sys/dashboard/files/api/v1/fs/<path>``) and a job submission
(``POST /pun/sys/dashboard/batch_connect/sys/<app>/session_contexts``), both behind the
receiver's session cookie; a submission also needs the page's CSRF token, as Rails
requires. It also proxies ``/rnode/<host>/<port>/...`` to the node, as OOD's own virtual
host does, so a test can show what a shared page does when it IS opened on this origin.

What is under test is not this server but the browser (a real headless Chromium) and the
kit's own choices: which address a receiver's card opens, and the Apache virtual host the
OOD role installs for it.
"""

from __future__ import annotations

import http.server
import re
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Optional

SESSION_COOKIE = "_ood_session_double"
FILES_PREFIX = "/pun/sys/dashboard/files/api/v1/fs/"
FORM_PATH = re.compile(r"^/pun/sys/dashboard/batch_connect/sys/[a-z0-9_]+/session_contexts/new$")
SUBMIT_PATH = re.compile(r"^/pun/sys/dashboard/batch_connect/sys/[a-z0-9_]+/session_contexts$")
RNODE = re.compile(r"^/rnode/([A-Za-z0-9.-]+)/([0-9]{1,5})(/.*)?$")


@dataclass
class DashboardDouble:
    """The receiver's session and what the double saw happen with it."""

    files: dict[str, str]
    session: str = field(default_factory=lambda: secrets.token_hex(16))
    csrf: str = field(default_factory=lambda: secrets.token_hex(16))
    file_reads: list[str] = field(default_factory=list)
    submissions: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    server: Optional[http.server.ThreadingHTTPServer] = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self) -> DashboardDouble:
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:  # keep pytest output readable
                return

            def _signed_in(self) -> bool:
                cookies = self.headers.get("Cookie") or ""
                return f"{SESSION_COOKIE}={double.session}" in [c.strip() for c in cookies.split(";")]

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain",
                       headers: Optional[dict[str, str]] = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/login":
                    target = urllib.parse.parse_qs(url.query).get("next", ["/"])[0]
                    # No SameSite attribute: what an Apache/mod_auth_openidc session cookie
                    # usually is (Chromium then treats it as Lax).
                    self._reply(302, b"", headers={"Set-Cookie": f"{SESSION_COOKIE}={double.session}; Path=/; "
                                                                 "HttpOnly", "Location": target})
                    return
                if url.path.startswith(FILES_PREFIX):
                    wanted = "/" + url.path[len(FILES_PREFIX):]
                    if not self._signed_in():
                        double.refused.append(f"files {wanted}: no session")
                        self._reply(401, b"sign in first")
                        return
                    double.file_reads.append(wanted)
                    content = double.files.get(wanted)
                    self._reply(200 if content is not None else 404, (content or "").encode())
                    return
                if FORM_PATH.match(url.path):
                    if not self._signed_in():
                        self._reply(401, b"sign in first")
                        return
                    page = f'<html><head><meta name="csrf-token" content="{double.csrf}"></head></html>'
                    self._reply(200, page.encode(), "text/html")
                    return
                rnode = RNODE.match(url.path)
                if rnode:
                    self._proxy(rnode, url.query)
                    return
                self._reply(404, b"not found")

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
                if not SUBMIT_PATH.match(url.path):
                    self._reply(404, b"not found")
                    return
                if not self._signed_in():
                    double.refused.append(f"submit {url.path}: no session")
                    self._reply(401, b"sign in first")
                    return
                if form.get("authenticity_token", [""])[0] != double.csrf:
                    double.refused.append(f"submit {url.path}: bad CSRF token")
                    self._reply(422, b"invalid authenticity token")
                    return
                double.submissions.append(url.path)
                self._reply(200, b"job submitted as the receiver")

            def _proxy(self, rnode: re.Match[str], query: str) -> None:
                host, port, rest = rnode.group(1), rnode.group(2), rnode.group(3) or "/"
                target = f"http://{host}:{port}{rest}" + (f"?{query}" if query else "")
                try:
                    with urllib.request.urlopen(target, timeout=10) as answer:
                        self._reply(answer.status, answer.read(), answer.headers.get("Content-Type", "text/html"))
                except urllib.error.HTTPError as exc:
                    self._reply(exc.code, exc.read())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
