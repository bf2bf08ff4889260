"""A real herald for the tests, and plain-HTTP clients for its API and its event stream.

Every wait is bounded and fails with what did arrive, plus the end of herald's log.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import jwt
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

# herald's checkout: scripts/test runs a copy of these files from a temporary directory and
# says where the checkout is (its migrations and web files, as the wheel should carry them).
REPO = Path(os.environ.get("HERALD_REPO") or Path(__file__).resolve().parents[3])
WAIT = 15  # seconds: every bounded wait

_herald = None


class Herald:
    """`herald serve` on the test database, on a free port."""

    def __init__(self, database_url, allowed_origin):
        binary = os.environ.get("HERALD_BIN") or str(REPO / "target" / "debug" / "herald")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": database_url,
            "HERALD_JWT_SECRET": settings.HERALD_JWT_SECRET,
            "HERALD_BIND": "127.0.0.1:0",
            "HERALD_ALLOWED_ORIGINS": allowed_origin,
            "HERALD_DB_POOL_SIZE": "4",
            "HERALD_SHUTDOWN_SPREAD_SECS": "0",
            "RUST_LOG": "info,actix_web=warn",
        }
        self.log = []
        self.url = None
        self._listening = threading.Event()
        try:
            self.process = subprocess.Popen(
                [binary, "serve"], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError:
            raise RuntimeError(f"no herald at {binary}: build it (cargo build) or set HERALD_BIN")
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._listening.wait(WAIT) or self.url is None:
            self.stop()
            raise RuntimeError(f"herald did not start:\n{self.log_tail()}")
        deadline = time.monotonic() + WAIT
        while get(self.url + "/readyz")[0] != 200:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"herald not ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def _read_log(self):
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))
            if self.url is None and "listening url=" in line:
                self.url = line.split("listening url=", 1)[1].split()[0].rstrip("/")
                self._listening.set()
        self._listening.set()  # exited

    def log_tail(self, lines=30):
        return "\n".join(self.log[-lines:])

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _die_with_parent():
    # A test run that is killed outright must not leave herald serving (and holding the test
    # database open): Linux sends it SIGTERM when its parent dies.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The live server of the browser test: herald must allow its origin (CORS) from the start.
LIVE_SERVER_PORT = free_port()


def libpq_url(db):
    """A libpq URL for Django's connection settings `db`."""
    host, port = db.get("HOST") or "", str(db.get("PORT") or "")
    query = {k: v for k, v in (db.get("OPTIONS") or {}).items() if isinstance(v, str)}
    netloc = ""
    if db.get("USER"):
        netloc = quote(db["USER"], safe="")
        if db.get("PASSWORD"):
            netloc += ":" + quote(db["PASSWORD"], safe="")
        netloc += "@"
    if host.startswith("/"):
        query["host"] = host
        if port:
            query["port"] = port
    else:
        netloc += host + (f":{port}" if port else "")
    suffix = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{netloc}/{quote(db['NAME'], safe='')}{suffix}"


def start_herald():
    global _herald
    _herald = Herald(libpq_url(connection.settings_dict), f"http://127.0.0.1:{LIVE_SERVER_PORT}")
    override_settings(HERALD_URL=_herald.url).enable()


def stop_herald():
    if _herald is not None:
        _herald.stop()


def herald():
    """The running herald."""
    assert _herald is not None, "herald is started by runner.HeraldRunner"
    return _herald


def app_token(user="publisher", scope="publish", lifetime=300, **claims):
    """An app token (no `aud`), as a back-office service would hold, signed with the secret."""
    now = int(time.time())
    payload = {"sub": user, "exp": now + lifetime, **({"scope": scope} if scope else {}), **claims}
    return jwt.encode(payload, settings.HERALD_JWT_SECRET, algorithm="HS256")


def _request(method, url, token=None, body=None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), payload, headers)
        response = conn.getresponse()
        raw = response.read()
    except OSError:
        return None, None
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def get(url, token=None):
    """`(status, json)`, or `(None, None)` when nothing answers."""
    return _request("GET", url, token)


def post(url, token=None, body=None):
    return _request("POST", url, token, body)


def api(method, path, token=None, body=None, **query):
    """herald's API: `api("GET", "/api/notifications", token, limit=5)`."""
    url = herald().url + path + (f"?{urlencode(query)}" if query else "")
    return _request(method, url, token, body)


def publish(channel, title, **fields):
    """Publishes over herald's HTTP API (a committed row, written by another session)."""
    status, body = api("POST", "/api/notifications", app_token(),
                       {"channel": channel, "title": title, **fields})
    assert status == 201, (status, body)
    return body


class EventStream:
    """`GET /events`, read as a browser's EventSource would, with bounded waits."""

    def __init__(self, token, **query):
        self.url = herald().url
        parts = urlsplit(self.url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
        self._conn.request("GET", "/events?" + urlencode({"token": token, **query}),
                           headers={"Accept": "text/event-stream"})
        self._response = self._conn.getresponse()
        self.status = self._response.status
        self.seen = []
        if self.status != 200:
            self.error = json.loads(self._response.read() or b"null")
            self.close()

    def next(self, event, timeout=WAIT):
        """The data (JSON) of the next `event`; events of other types are passed over."""
        deadline = time.monotonic() + timeout
        name, data = None, []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(event, timeout)
            self._conn.sock.settimeout(remaining)
            try:
                line = self._response.readline()
            except (TimeoutError, socket.timeout):
                self._fail(event, timeout)
            if not line:
                raise AssertionError(f"stream ended while waiting for {event}; seen {self.seen}")
            line = line.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "":
                if name or data:
                    payload = json.loads("\n".join(data)) if data else None
                    self.seen.append((name, payload))
                    if name == event:
                        return payload
                name, data = None, []

    def count_reaches(self, n, timeout=WAIT):
        """Waits until the stream's latest `unread_count` is `n` (it may already be).

        A count is exact for the moment herald took it, so it may arrive before the
        notification that raised it (a recount that already saw the row): the order of the
        two is not part of the contract, the badge's value is.
        """
        counts = [data["unread_count"] for name, data in self.seen if name == "unread_count"]
        latest = counts[-1] if counts else None
        deadline = time.monotonic() + timeout
        while latest != n:
            latest = self.next("unread_count", max(deadline - time.monotonic(), 0.001))
            latest = latest["unread_count"]
        return latest

    def _fail(self, event, timeout):
        raise AssertionError(
            f"no {event} event within {timeout} s; seen {self.seen}\n"
            f"herald's log:\n{herald().log_tail()}"
        )

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
