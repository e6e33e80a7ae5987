"""The share gate: an authenticating reverse proxy in front of a shared service.

    python3 -m ood_mt.gate --listen HOST:PORT --upstream http://127.0.0.1:PORT|unix:/PATH \\
        --secret-file FILE [--policy ollama [--allow-model-management]] [--ready-file FILE] [--access-log]
    python3 -m ood_mt.gate --write-secret FILE     # a fresh secret, file mode 0600, exits
    python3 -m ood_mt.gate --check                 # exit 0 when the gate can run here (aiohttp importable)

The service listens on the node's loopback (or a Unix socket); the gate listens on the shared
port and passes on only requests that carry the share's secret, either

- as the first path segment, `/<secret>/...` (stripped before forwarding, so a client that only
  takes a base URL works with `http://node:port/<secret>`), or
- as `Authorization: Bearer <secret>` (that header is not forwarded).

Anything else gets a plain 404 (401 for a wrong bearer token) and never reaches the service.
The secret is read from a file that only its owner can read (or from stdin with `-`), never from
argv or the environment; it never appears in the gate's log (docs/gate.md).

Only the standard library and aiohttp (>= 3.8, Debian 12's python3-aiohttp) are used, so the
compute nodes' system python3 runs this file. Exit codes: 0 stopped cleanly, 1 runtime failure
(cannot listen), 2 bad arguments or secret file, 3 aiohttp missing.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import inspect
import logging
import os
import posixpath
import re
import secrets
import signal
import socket
import stat
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from aiohttp import ClientSession, web

PROG = "ood-mt gate"
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NO_AIOHTTP = 3

# What a secret looks like: URL-safe characters only (it is a path segment), long enough to
# be unguessable. `--write-secret` makes 43 characters (32 random bytes, base64url).
SECRET_RE = re.compile(r"[A-Za-z0-9_-]{32,256}")
SECRET_FILE_MAX_BYTES = 4096

# RFC 9110 7.6.1 connection-specific headers, plus the ones the gate sets itself.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    )
)
# Request headers never passed upstream: the gate sets Host and the X-Forwarded-* itself,
# answers Expect itself; a client's Forwarded/X-Forwarded-* would be a forgery.
REQUEST_DROP = HOP_BY_HOP | {
    "host", "expect", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
    "x-forwarded-prefix", "x-real-ip",
}
WEBSOCKET_DROP = REQUEST_DROP | {
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
    "content-length",
}
# Response headers the gate's own HTTP layer writes (body framing).
RESPONSE_DROP = HOP_BY_HOP | {"content-length"}

# Ollama's model-management API (docs/api.md of ollama): refused under `--policy ollama`
# unless --allow-model-management.
OLLAMA_MODEL_MANAGEMENT = ("/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", "/api/blobs")
POLICIES = ("none", "ollama")

SMALL_BODY = 1 << 16  # bodies up to this size (with a Content-Length) are read and sent in one write
READ_BUFSIZE = 1 << 20
CONNECT_TIMEOUT_S = 30.0

log = logging.getLogger("ood_mt.gate")


class GateConfigError(Exception):
    """A bad argument or secret file; the message names it and the fix."""


# ---------------------------------------------------------------------------------------------
# Pure helpers (no aiohttp): the secret, addresses, the path rules.


def read_secret(path: str) -> str:
    """The secret in PATH (or on stdin for "-"): one line, SECRET_RE, in a file only its owner reads."""
    if path == "-":
        text = sys.stdin.readline()
        where = "stdin"
    else:
        where = f"secret file {path}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise GateConfigError(
                f"{where}: cannot open it ({exc.strerror}); fix: create it with "
                f"`python3 -m ood_mt.gate --write-secret {path}` (a symlink is refused)"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise GateConfigError(f"{where}: not a regular file; fix: point --secret-file at a plain file")
            if info.st_uid != os.geteuid():
                raise GateConfigError(
                    f"{where}: owned by uid {info.st_uid}, not by the user running the gate ({os.geteuid()}); "
                    f"fix: create it as that user with `python3 -m ood_mt.gate --write-secret FILE`"
                )
            if info.st_mode & 0o077:
                raise GateConfigError(
                    f"{where}: mode {stat.S_IMODE(info.st_mode):04o} lets other users read it; "
                    f"fix: chmod 600 {path} (and make a fresh secret: the old one may have been read)"
                )
            data = os.read(fd, SECRET_FILE_MAX_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > SECRET_FILE_MAX_BYTES:
            raise GateConfigError(f"{where}: larger than {SECRET_FILE_MAX_BYTES} bytes; fix: one line, the secret")
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise GateConfigError(f"{where}: not ASCII; fix: one line of [A-Za-z0-9_-]") from None
    secret = text[:-1] if text.endswith("\n") else text
    if not SECRET_RE.fullmatch(secret):
        raise GateConfigError(
            f"{where}: the secret must be one line of 32 to 256 characters from [A-Za-z0-9_-] "
            f"(got {len(secret)} characters); fix: `python3 -m ood_mt.gate --write-secret FILE`"
        )
    return secret


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def write_secret(path: str) -> None:
    """Create PATH (must not exist) holding a fresh secret and a newline, mode 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise GateConfigError(
            f"--write-secret {path}: the file exists; fix: remove it first (a secret is made fresh for "
            f"every publication)"
        ) from None
    except OSError as exc:
        raise GateConfigError(f"--write-secret {path}: cannot create it ({exc.strerror})") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (new_secret() + "\n").encode("ascii"))
    finally:
        os.close(fd)


def parse_listen(value: str) -> Tuple[str, int]:
    """HOST:PORT (IPv6 as [ADDR]:PORT); port 0 picks a free port (reported in the ready line)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise GateConfigError(f"--listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:8080 or [::]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


@dataclass(frozen=True)
class Upstream:
    """Where the service listens: base URL for the client and, for a Unix socket, its path."""

    base: str  # scheme://host[:port], no path
    unix_path: Optional[str] = None

    @property
    def netlocs(self) -> Tuple[str, ...]:
        """Host[:port] spellings by which the service may name itself in a Location header."""
        netloc = urlsplit(self.base).netloc
        host, _, port = netloc.rpartition(":")
        names = {netloc}
        if port and host in ("127.0.0.1", "localhost", "[::1]"):
            names.update(f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]"))
        return tuple(sorted(names))


def parse_upstream(value: str) -> Upstream:
    if value.startswith("unix:"):
        path = value[len("unix:"):]
        if not path.startswith("/"):
            raise GateConfigError(f"--upstream {value!r}: a Unix socket needs an absolute path, unix:/run/x.sock")
        return Upstream(base="http://localhost", unix_path=path)
    parts = urlsplit(value)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise GateConfigError(
            f"--upstream {value!r}: expected http://127.0.0.1:PORT (no path) or unix:/PATH"
        )
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise GateConfigError(f"--upstream {value!r}: bad port") from None
    return Upstream(base=f"http://{parts.netloc}")


def split_target(raw: str) -> Tuple[str, str]:
    """(path, '?query' or '') of a request target in origin-form."""
    path, sep, query = raw.partition("?")
    return path, (sep + query)


def strip_secret(path: str, secret: str) -> Optional[str]:
    """The path without a leading /<secret> segment, or None when it does not start with it.

    The comparison is constant-time in the secret's content (hmac.compare_digest)."""
    if not path.startswith("/"):
        return None
    end = path.find("/", 1)
    first = path[1:] if end < 0 else path[1:end]
    if not hmac.compare_digest(first.encode("utf-8", "surrogateescape"), secret.encode("ascii")):
        return None
    return "/" if end < 0 else path[end:]


def bearer_matches(header: Optional[str], secret: str) -> Optional[bool]:
    """None: no bearer token; True/False: a bearer token that is / is not the secret."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), secret.encode("ascii"))


def normalized(path: str) -> str:
    """The path as a server would route it: percent-decoded, slashes collapsed, dot segments
    resolved, no trailing slash, lower case (for policy checks only)."""
    decoded = unquote(path)
    norm = posixpath.normpath("/" + decoded.replace("\\", "/"))
    norm = re.sub(r"/+", "/", norm)
    return norm.rstrip("/").lower() or "/"


def policy_refuses(policy: str, allow_model_management: bool, path: str) -> bool:
    if policy != "ollama" or allow_model_management:
        return False
    norm = normalized(path)
    return any(norm == p or norm.startswith(p + "/") for p in OLLAMA_MODEL_MANAGEMENT)


def connection_tokens(headers: Any) -> set:
    """Header names listed in Connection (they are hop-by-hop too)."""
    names = set()
    for value in headers.getall("Connection", []):
        names.update(t.strip().lower() for t in value.split(",") if t.strip())
    return names


def sane_close_code(code: Optional[int]) -> int:
    if code is None or not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
        return 1000
    return code


class RedactingFormatter(logging.Formatter):
    """Defence in depth: the gate never logs a path prefix, and this drops the secret from any line."""

    def __init__(self, secret: str) -> None:
        super().__init__("%(asctime)s ood-mt gate: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
        self._secrets = [secret]

    def add_secret(self, secret: str) -> None:
        """A rotated secret: redacted from now on too (the old one stays redacted)."""
        self._secrets.append(secret)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "[secret]")
        return text


class QuietErrors(logging.Filter):
    """aiohttp's tracebacks for malformed requests quote the request's bytes: log one plain line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = "%s (%s)", (record.getMessage(), type(record.exc_info[1]).__name__)
            record.exc_info, record.exc_text = None, None
        return True


# ---------------------------------------------------------------------------------------------
# The proxy (aiohttp).


def plain_server(handler: Any, **kwargs: Any) -> Any:
    """aiohttp's low-level server whose own error answers (malformed HTTP) carry no detail or version."""
    from aiohttp import web
    from aiohttp.web_protocol import RequestHandler

    class PlainErrors(RequestHandler):
        def handle_error(self, request: Any, status: int = 500, exc: Any = None, message: Any = None) -> Any:
            resp = super().handle_error(request, status, exc, None)
            if isinstance(resp, web.Response):
                resp.text = f"{resp.status} {resp.reason}\n"
                resp.headers["Server"] = "ood-mt-gate"
            return resp

    class PlainServer(web.Server):
        def __call__(self) -> RequestHandler:
            return PlainErrors(self, loop=self._loop, **self._kwargs)

    return PlainServer(handler, **kwargs)


@dataclass
class Settings:
    listen: Tuple[str, int]
    upstream: Upstream
    secret: str
    policy: str = "none"
    allow_model_management: bool = False
    access_log: bool = False
    ready_file: Optional[str] = None
    secret_file: Optional[str] = None


class Gate:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.session: Optional[ClientSession] = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Tuple[Any, str]:
        import aiohttp
        from aiohttp import web

        connector: aiohttp.BaseConnector
        if self.s.upstream.unix_path:
            connector = aiohttp.UnixConnector(path=self.s.upstream.unix_path, limit=0)
        else:
            connector = aiohttp.TCPConnector(limit=0, use_dns_cache=True)
        session_kw: dict = {
            "connector": connector,
            "auto_decompress": False,
            "cookie_jar": aiohttp.DummyCookieJar(),
            "timeout": aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=None),
        }
        if "read_bufsize" in inspect.signature(aiohttp.ClientSession).parameters:
            session_kw["read_bufsize"] = READ_BUFSIZE
        self.session = aiohttp.ClientSession(**session_kw)

        server_kw: dict = {"access_log": None}
        if "handler_cancellation" in inspect.signature(web.Server).parameters:
            server_kw["handler_cancellation"] = True  # a client that goes away stops the upstream stream
        server = plain_server(self.handle, **server_kw)
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        host, port = self.s.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(1024)
        sock.setblocking(False)
        site = web.SockSite(runner, sock)
        await site.start()
        bound = sock.getsockname()
        shown = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        return runner, shown

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    # -- one request --------------------------------------------------------------------------

    def _reject(self, request: web.BaseRequest, status: int, started: float) -> web.Response:
        reasons = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
        resp = web_response(status, text=reasons[status] + "\n",
                            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
        # The path is never logged for a refused request: it may hold a near-miss of the secret.
        log.info("%s %s refused %d (%.1f ms)", request.remote, request.method, status,
                 (time.monotonic() - started) * 1000)
        return resp

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        raw_path, query = split_target(request.raw_path)
        forwarded_path = strip_secret(raw_path, self.s.secret)
        via_path = forwarded_path is not None
        bearer = bearer_matches(request.headers.get("Authorization"), self.s.secret)
        if not via_path and not bearer:
            return self._reject(request, 401 if bearer is False else 404, started)
        if not via_path:
            forwarded_path = raw_path
        assert forwarded_path is not None
        if policy_refuses(self.s.policy, self.s.allow_model_management, forwarded_path):
            return self._reject(request, 403, started)
        if via_path and forwarded_path == "/" and "/" not in raw_path[1:] and request.method in ("GET", "HEAD"):
            # /<secret> -> /<secret>/ so that a page's relative links keep the prefix
            return web_response(308, headers={"Location": raw_path + "/" + query})
        target = forwarded_path + query
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        try:
            if upgrade and request.method == "GET":
                resp = await self._websocket(request, target, drop_auth=bool(bearer))
            else:
                resp = await self._http(request, target, drop_auth=bool(bearer), via_path=via_path)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the service is down or refused the connection
            log.warning("%s %s %s: upstream unreachable (%s)", request.remote, request.method, forwarded_path,
                        type(exc).__name__)
            return web_response(502, text="Bad Gateway\n")
        if self.s.access_log:
            log.info("%s %s %s %d (%.1f ms)", request.remote, request.method, forwarded_path, resp.status,
                     (time.monotonic() - started) * 1000)
        return resp

    def _upstream_headers(self, request: web.BaseRequest, drop: frozenset, drop_auth: bool) -> Any:
        from multidict import CIMultiDict

        skip = drop | connection_tokens(request.headers)
        headers: CIMultiDict = CIMultiDict()
        for name, value in request.headers.items():
            low = name.lower()
            if low in skip or (drop_auth and low == "authorization"):
                continue
            headers.add(name, value)
        if request.remote:
            headers["X-Forwarded-For"] = request.remote
        headers["X-Forwarded-Proto"] = "http"
        if request.host:
            headers["X-Forwarded-Host"] = request.host
        return headers

    def _location(self, value: str, via_path: bool) -> str:
        """Keep the service's redirects inside the secret prefix."""
        if not via_path:
            return value
        prefix = "/" + self.s.secret
        if value.startswith("/") and not value.startswith("//"):
            return prefix + value
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc in self.s.upstream.netlocs:
            rest = parts.path or "/"
            return prefix + rest + (f"?{parts.query}" if parts.query else "") + (
                f"#{parts.fragment}" if parts.fragment else "")
        return value

    async def _http(self, request: web.BaseRequest, target: str, drop_auth: bool, via_path: bool) -> web.StreamResponse:
        import aiohttp
        from aiohttp import web
        from multidict import CIMultiDict
        from yarl import URL

        assert self.session is not None
        headers = self._upstream_headers(request, REQUEST_DROP, drop_auth)
        if request.headers.get("Expect", "").lower() == "100-continue":
            # Only now, with the secret checked, does the client get to send its body.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        data: Optional[AsyncIterator[bytes]] = None
        if request.body_exists:
            data = _body(request)
        url = URL(self.s.upstream.base + target, encoded=True)
        upstream = await self.session.request(
            request.method, url, headers=headers, data=data, allow_redirects=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        try:
            skip = RESPONSE_DROP | connection_tokens(upstream.headers)
            headers = CIMultiDict()
            for name, value in upstream.headers.items():
                low = name.lower()
                if low in skip:
                    continue
                headers.add(name, self._location(value, via_path) if low == "location" else value)
            length_text = upstream.headers.get("Content-Length")
            length = int(length_text) if length_text is not None and length_text.isdigit() else None
            has_body = request.method != "HEAD" and upstream.status not in (204, 304)
            if has_body and length is not None and length <= SMALL_BODY:
                # a small body: read it, then headers and body leave in one write
                small = web.Response(status=upstream.status, reason=upstream.reason, body=await upstream.read(),
                                     headers=headers)
                upstream.release()
                return small
            resp.headers.extend(headers)
            if length is not None:
                resp.content_length = length
            await resp.prepare(request)
            if has_body:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            await resp.write_eof()
        except (ConnectionError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # The client went away or the service broke off: end both sides, never a clean-looking end.
            upstream.close()
            log.info("%s %s: stream ended early (%s)", request.remote, request.method, type(exc).__name__)
            if request.transport is not None:
                request.transport.close()
            return resp
        except BaseException:
            upstream.close()
            raise
        upstream.release()
        return resp

    async def _websocket(self, request: web.BaseRequest, target: str, drop_auth: bool) -> web.StreamResponse:
        import aiohttp
        from aiohttp import web
        from yarl import URL

        assert self.session is not None
        headers = self._upstream_headers(request, WEBSOCKET_DROP, drop_auth)
        protocols = tuple(p.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", [])
                          for p in v.split(",") if p.strip())
        url = URL(self.s.upstream.base + target, encoded=True)
        try:
            upstream = await self.session.ws_connect(url, headers=headers, protocols=protocols, max_msg_size=0,
                                                     autoping=True, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status if 400 <= exc.status < 600 else 502, text="WebSocket refused\n")
        client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                       max_msg_size=0, autoping=True)
        try:
            await client.prepare(request)
            await _pump_both(client, upstream)
        except (ConnectionError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.info("%s WebSocket ended early (%s)", request.remote, type(exc).__name__)
        finally:
            await upstream.close()
            await client.close()
        return client


def web_response(status: int, text: str = "", headers: Optional[dict] = None) -> web.Response:
    """A plain response of the gate's own (no detail, no server version)."""
    from aiohttp import web

    resp = web.Response(status=status, text=text, headers=headers)
    resp.headers["Server"] = "ood-mt-gate"
    return resp


async def _body(request: web.BaseRequest) -> AsyncIterator[bytes]:
    """The request body as it arrives (never read whole into memory)."""
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return
        yield chunk


async def _pump(source: Any, sink: Any) -> None:
    import aiohttp

    async for msg in source:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
        else:  # CLOSE/CLOSING/CLOSED/ERROR end the iteration in aiohttp; anything else is control
            continue
    await sink.close(code=sane_close_code(source.close_code))


async def _pump_both(client: Any, upstream: Any) -> None:
    tasks = [asyncio.ensure_future(_pump(client, upstream)), asyncio.ensure_future(_pump(upstream, client))]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()


# ---------------------------------------------------------------------------------------------
# Command line.


def aiohttp_missing() -> Optional[str]:
    try:
        import aiohttp
    except ImportError as exc:
        return (
            f"{PROG}: aiohttp is not installed for {sys.executable} ({exc}); the service must not be shared "
            f"without its gate. Fix: install Debian's python3-aiohttp (or `pip install aiohttp`) on this node"
        )
    major, minor = (int(x) for x in aiohttp.__version__.split(".")[:2])
    if (major, minor) < (3, 8):
        return f"{PROG}: aiohttp {aiohttp.__version__} is too old for {sys.executable}; the gate needs 3.8 or later"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m ood_mt.gate", description=__doc__.split("\n\n")[0],
        epilog="The secret is read from --secret-file (mode 0600, owned by you) or stdin (-), never from "
               "argv or the environment. See docs/gate.md.",
    )
    parser.add_argument("--listen", metavar="HOST:PORT", help="where the gate listens (the shared port)")
    parser.add_argument("--upstream", metavar="URL", help="http://127.0.0.1:PORT or unix:/PATH (the service)")
    parser.add_argument("--secret-file", metavar="FILE", help="file holding the secret (mode 0600), or - for stdin")
    parser.add_argument("--policy", choices=POLICIES, default="none",
                        help="ollama: refuse Ollama's model-management endpoints (pull, push, create, copy, "
                             "delete, blobs)")
    parser.add_argument("--allow-model-management", action="store_true",
                        help="with --policy ollama: let receivers use the model-management endpoints")
    parser.add_argument("--ready-file", metavar="FILE", help="also write the ready line to FILE once listening")
    parser.add_argument("--access-log", action="store_true",
                        help="log every passed request (method, path without the secret, status, time)")
    parser.add_argument("--check", action="store_true", help="exit 0 if the gate can run here, 3 if aiohttp is missing")
    parser.add_argument("--write-secret", metavar="FILE", help="create FILE (mode 0600) with a fresh secret and exit")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    missing = [f"--{n.replace('_', '-')}" for n in ("listen", "upstream", "secret_file") if not getattr(args, n)]
    if missing:
        raise GateConfigError(f"missing {', '.join(missing)}; see python3 -m ood_mt.gate --help")
    if args.allow_model_management and args.policy != "ollama":
        raise GateConfigError("--allow-model-management only applies with --policy ollama")
    return Settings(
        listen=parse_listen(args.listen), upstream=parse_upstream(args.upstream),
        secret=read_secret(args.secret_file), policy=args.policy,
        allow_model_management=args.allow_model_management, access_log=args.access_log,
        ready_file=args.ready_file, secret_file=None if args.secret_file == "-" else args.secret_file,
    )


def _write_ready(path: str, line: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(line + "\n")
    os.replace(tmp, path)


def reload_secret(settings: Settings, formatter: Optional[RedactingFormatter]) -> None:
    """SIGHUP: read --secret-file again (the share agent rotated it, docs/gate.md "Rotation"). From
    the next request on only the new secret passes; a bad file keeps the old one and says why."""
    if settings.secret_file is None:
        log.info("SIGHUP ignored: the secret came from stdin")
        return
    try:
        secret = read_secret(settings.secret_file)
    except GateConfigError as exc:
        log.info("SIGHUP: secret not changed: %s", exc)
        return
    if formatter is not None:
        formatter.add_secret(secret)
    settings.secret = secret
    log.info("SIGHUP: secret rotated; the previous secret is refused from now on")


async def _serve(settings: Settings, formatter: Optional[RedactingFormatter] = None) -> int:
    gate = Gate(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_secret, settings, formatter)
    try:
        runner, shown = await gate.start()
    except OSError as exc:
        await gate.close()
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    policy = settings.policy + (" (model management allowed)" if settings.allow_model_management else "")
    line = f"ready on {shown}"
    log.info("%s, upstream %s, policy %s", line, settings.upstream.unix_path or settings.upstream.base, policy)
    if settings.ready_file:
        _write_ready(settings.ready_file, line)
    print(f"{PROG}: {line}", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await runner.cleanup()
        await gate.close()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.write_secret:
            write_secret(args.write_secret)
            return 0
        problem = aiohttp_missing()
        if problem:
            print(problem, file=sys.stderr)
            return EXIT_NO_AIOHTTP
        if args.check:
            import aiohttp

            print(f"{PROG}: ok (aiohttp {aiohttp.__version__}, {sys.executable})")
            return 0
        settings = _settings(args)
    except GateConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler = logging.StreamHandler(sys.stderr)
    formatter = RedactingFormatter(settings.secret)
    handler.setFormatter(formatter)
    handler.addFilter(QuietErrors())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    for name in ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.client", "asyncio"):
        other = logging.getLogger(name)
        other.addHandler(handler)
        other.setLevel(logging.WARNING)
        other.propagate = False
    return asyncio.run(_serve(settings, formatter))


if __name__ == "__main__":
    sys.exit(main())
