"""HTTP plumbing of the fake PSP: the threaded server (optional TLS), request
and response objects, routing to the provider modules, recording and fault
injection."""

import email.utils
import json
import os
import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import adyen
import alipay
import control
import faults as faults_mod
import generic_api
import merchant
import outbox as outbox_mod
import paypal
import store as store_mod
import stripe
import wechatpay

MAX_BODY_BYTES = 1 << 20
MAX_CONNECTIONS = 1024


class Request:
    """One parsed HTTP request."""

    def __init__(self, method, raw_path, header_items, body):
        self.method = method
        self.raw_path = raw_path
        path, _, self.query = raw_path.partition("?")
        self.path = urllib.parse.unquote(path)
        self.header_items = header_items
        self.body = body
        self._lower = {}
        for k, v in header_items:
            lk = k.lower()
            self._lower[lk] = self._lower[lk] + ", " + v if lk in self._lower else v

    def header(self, name, default=None):
        """A header's value (case-insensitive; repeats joined with ", ")."""
        return self._lower.get(name.lower(), default)

    def headers_json(self):
        """Headers as a JSON object, names as received, repeats joined with ", "."""
        out = {}
        for k, v in self.header_items:
            out[k] = out[k] + ", " + v if k in out else v
        return out

    def query_params(self):
        """The query string's parameters (last one wins)."""
        return dict(urllib.parse.parse_qsl(self.query, keep_blank_values=True))

    def content_type(self):
        """The media type without parameters, lower case."""
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()


class Response:
    """One HTTP answer."""

    def __init__(self, status, body=b"", content_type="application/json", headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.headers = list(headers or [])
        if content_type and status not in (204, 304):
            self.headers.insert(0, ("Content-Type", content_type))


def json_response(status, obj, headers=None, content_type="application/json"):
    """A compact JSON answer."""
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return Response(status, body, content_type, headers)


class App:
    """The fake PSP's state: configuration, memory, faults."""

    def __init__(self, cfg, fast=False, verbose=False, max_records=100000):
        self.cfg = cfg
        self.store = store_mod.Store(fast=fast, max_records=max_records)
        self.faults = faults_mod.Faults(latency_ms=cfg.latency_ms)
        self.verbose = verbose
        self.stopping = threading.Event()
        self.base_url = None
        self.merchants = {code: dict(m) for code, m in cfg.merchants.items()}
        self.outbox = outbox_mod.Outbox(self, {"paypal": paypal, "adyen": adyen, "stripe": stripe,
                                                    "generic": generic_api})

    def route(self, req):
        """(route name, Response, verdict) for a provider request."""
        # paypal before stripe: both live under /v1/ (PayPal only /v1/oauth2/ and /v1/notifications/)
        for module in (paypal, adyen, stripe, alipay, wechatpay, generic_api, merchant):
            out = module.handle(self, req)
            if out is not None:
                return out
        return "unknown", json_response(404, {"error": {"type": "not_found",
                                                        "message": f"no route for {req.method} {req.path}"}}), "no_route"


_date_cache = [0, ""]


def http_date():
    """The Date header value, computed at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, email.utils.formatdate(now, usegmt=True)
    return _date_cache[1]


class BodyError(Exception):
    """A request body that cannot be read."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """Reads a request, applies faults, routes it, records it, answers."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-psp/1.0"
    timeout = 120

    def log_message(self, fmt, *args):
        """Access log only in verbose mode."""
        if self.server.app.verbose:
            super().log_message(fmt, *args)

    def do_GET(self):
        """Every method goes through _dispatch."""
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _read_body(self):
        """The request body (Content-Length or chunked), at most MAX_BODY_BYTES."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BodyError(400, "bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise BodyError(413, "body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BodyError(400, "bad Content-Length") from None
        if n < 0:
            raise BodyError(400, "bad Content-Length")
        if n > MAX_BODY_BYTES:
            raise BodyError(413, "body too large")
        body = self.rfile.read(n)
        if len(body) != n:
            raise BodyError(400, "body shorter than Content-Length")
        return body

    def _send(self, resp):
        """Write a complete answer in one write."""
        lines = [f"HTTP/1.1 {resp.status} {self.responses.get(resp.status, ('',))[0]}",
                 f"Server: {self.server_version}", f"Date: {http_date()}"]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        if resp.status not in (204, 304) and resp.status >= 200:
            lines.append(f"Content-Length: {len(resp.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        body = b"" if self.command == "HEAD" or resp.status in (204, 304) else resp.body
        try:
            self.wfile.write(head + body)
        except OSError:
            self.close_connection = True
        if self.server.app.verbose:
            self.log_request(resp.status, len(body))

    def _dispatch(self):
        """Handle one request end to end."""
        app = self.server.app
        try:
            body = self._read_body()
        except BodyError as e:
            self.close_connection = True
            self._send(json_response(e.status, {"error": {"type": "invalid_request", "message": str(e)}}))
            return
        req = Request(self.command, self.path, list(self.headers.items()), body)
        if req.path.startswith("/control/"):
            try:
                resp = control.handle(app, req)
            except Exception as e:  # a control bug must not kill the connection silently
                resp = json_response(500, {"error": f"{type(e).__name__}: {e}"})
            self._send(resp)
            return
        rec = app.store.begin(req.method, req.raw_path, req.headers_json(), body)
        if app.faults.latency_ms:
            self._sleep(app.faults.latency_ms)
        rule = app.faults.take(req.method, req.path)
        fault = None if rule is None else f"{rule.mode}#{rule.id}"
        if rule is not None and not rule.after:
            status = self._fault(rule, lambda st: app.store.finish(rec, "fault", st, "fault", None, fault))
            if status != "continue":
                return
        try:
            route, resp, verdict = app.route(req)
        except Exception as e:
            route, verdict = "error", "error"
            resp = json_response(500, {"error": {"type": "api_error",
                                                 "message": f"fake PSP bug: {type(e).__name__}: {e}"}})
        if rule is not None and rule.after:
            if rule.mode == "slow":
                self._sleep(rule.delay_ms)
            else:
                self._fault(rule, lambda st: app.store.finish(rec, route, st, verdict, None, fault + " after"))
                return
        # Recorded before it is sent: a client that reads the record right after
        # its answer must find the answer's status there.
        app.store.finish(rec, route, resp.status, verdict, resp.body, fault)
        self._send(resp)

    def _sleep(self, ms):
        """Sleep ms milliseconds unless the server stops."""
        self.server.app.stopping.wait(ms / 1000.0)

    def _fault(self, rule, record):
        """Apply a fault; returns "continue" (slow), the status sent, or 0 when nothing was answered.
        record(status) stores the outcome before anything reaches the client."""
        if rule.mode == "slow":
            self._sleep(rule.delay_ms)
            return "continue"
        if rule.mode == "status":
            record(rule.status)
            headers = []
            if rule.retry_after is not None:
                headers.append(("Retry-After", str(rule.retry_after)))
            body = rule.body if rule.body is not None else json.dumps(
                {"error": {"type": "api_error", "code": "injected_fault",
                           "message": f"injected {rule.status} (fault rule {rule.id})"}})
            self._send(Response(rule.status, body, rule.content_type, headers))
            return rule.status
        record(0)
        self.close_connection = True
        if rule.mode == "reset":
            self._reset()
        elif rule.mode == "hang":
            self._hang(rule.max_ms)
        elif rule.mode == "malformed":
            self._malformed(rule.kind)
        return 0

    def _reset(self):
        """Close the connection with a TCP RST, answering nothing."""
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(sock.detach())
        except OSError:
            pass

    def _hang(self, max_ms):
        """Answer nothing until the client closes the connection (or max_ms, or shutdown)."""
        sock = self.connection
        deadline = time.monotonic() + max_ms / 1000.0
        app = self.server.app
        while not app.stopping.is_set() and time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([sock], [], [], 0.2)
                if ready and not sock.recv(4096):
                    return
            except (OSError, ValueError):
                return

    def _malformed(self, kind):
        """Write a broken answer and close."""
        if kind == "garbage":
            data = b"\x16\x03\x01\x00\x05garbage \xff\xfe not an HTTP answer\r\n\r\n"
        elif kind == "truncated":
            data = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n"
                    b"\r\n{\"id\":\"pi_trunc")
        else:
            part = b"{\"id\": \"pi_bad\", \"object\": \"payment_in"
            data = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(part)).encode() + b"\r\n\r\n" + part)
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def finish(self):
        """Like StreamRequestHandler.finish, tolerant of a socket we already reset."""
        try:
            super().finish()
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    """A thread per connection; TLS handshakes happen in that thread, not in accept()."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address, app, tls_context=None):
        super().__init__(address, Handler)
        self.app = app
        self.tls_context = tls_context
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        """Refuse connections beyond MAX_CONNECTIONS instead of growing without bound."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        """Run one connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request, client_address):
        """Wrap the connection in TLS (in this thread) and hand it to the handler."""
        if self.tls_context is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        try:
            request.settimeout(30)
            tls = self.tls_context.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        """Quiet unless verbose: clients that vanish are normal here."""
        if self.app.verbose:
            super().handle_error(request, client_address)


def tls_context(cert_file, key_file):
    """A server TLS context: TLS 1.2 minimum."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def start(cfg, host="127.0.0.1", port=0, tls_cert=None, tls_key=None, fast=False,
          verbose=False, max_records=100000):
    """Create the server and serve it on a background thread; returns (server, thread).
    server.server_address[1] is the port; server.app.base_url the base URL."""
    app = App(cfg, fast=fast, verbose=verbose, max_records=max_records)
    ctx = tls_context(tls_cert, tls_key) if tls_cert else None
    srv = Server((host, port), app, ctx)
    app.base_url = f"{'https' if ctx else 'http'}://{host}:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                              name="fake-psp", daemon=True)
    thread.start()
    return srv, thread


def stop(srv):
    """Stop serving, release hanging handlers, close the socket."""
    srv.app.stopping.set()
    srv.shutdown()
    srv.server_close()
