"""Download a user-supplied URL without letting it reach the worker's own network.

A job may name a URL for its reference audio; a careless downloader would let
that URL read cloud metadata (169.254.169.254), services on loopback, or the
datacenter's private network. Here every hop (the first URL and each
redirect) is resolved once, every address it resolves to must be public, and
the connection is made to that very address (pinned), so a DNS answer that
changes between check and connect cannot slip through. TLS still verifies the
certificate against the hostname. Size and total time are capped.

``RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS=true`` (the variable runpod's own
downloader honours) turns the address check off, for tests and private setups.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3

from f5_worker import stopping
from f5_worker.config import private_downloads_allowed
from f5_worker.errors import JobError

MAX_REDIRECTS = 5
USER_AGENT = "f5-worker (+https://github.com/runpod-workers)"
_READ_BLOCK_BYTES = 64 * 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fetch-dns")


def is_public_address(ip: Address) -> bool:
    """True only for globally routable unicast addresses.

    ``is_global`` already excludes private, loopback, link-local (cloud
    metadata lives there), shared (100.64/10), reserved and documentation
    ranges; IPv6 wrappers of IPv4 addresses are unwrapped first.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return is_public_address(embedded)
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64 of an IPv4 address
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # deprecated fec0::/10, still not public
        return False
    return (
        ip.is_global
        and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved)
        and not (ip.is_multicast or ip.is_unspecified)
    )


def resolve(host: str, port: int, field: str, timeout_s: float = 10.0) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal resolves to itself).

    ``getaddrinfo`` has no timeout of its own, so it runs in a helper thread.
    """
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    ends = time.monotonic() + max(timeout_s, 0.001)
    while not concurrent.futures.wait([lookup], timeout=min(stopping.POLL_SECONDS, ends - time.monotonic())).done:
        if stopping.is_stopped():  # the lookup thread finishes on its own; nobody waits for it
            raise stopping.JobStopped("during the download")
        if time.monotonic() >= ends:
            raise JobError(field, f"resolving host {host!r} took longer than {timeout_s:g} s")
    try:
        infos = lookup.result()
    except (OSError, UnicodeError) as exc:
        raise JobError(field, f"cannot resolve host {host!r} ({exc})") from None
    addresses: list[Address] = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise JobError(field, f"host {host!r} has no addresses")
    return addresses


def _pinned_address(host: str, port: int, field: str, allow_private: bool, timeout_s: float) -> Address:
    addresses = resolve(host, port, field, timeout_s)
    if not allow_private:
        blocked = [str(ip) for ip in addresses if not is_public_address(ip)]
        if blocked:
            raise JobError(
                field,
                f"refusing to download from {host!r}: it resolves to a private, loopback, link-local "
                f"or otherwise non-public address ({', '.join(blocked)})",
            )
    return addresses[0]


def _split(url: str, field: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise JobError(field, f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise JobError(field, f"only http and https URLs are allowed, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise JobError(field, "URL has no host")
    if parts.username or parts.password:
        raise JobError(field, "URLs with credentials are not allowed")
    try:  # a non-ASCII name goes on the wire (Host, TLS server name) in its ASCII (punycode) form
        host = parts.hostname if parts.hostname.isascii() else parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise JobError(field, f"not a valid host name: {parts.hostname!r}") from None
    port = port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.scheme, host, port, target


def _pool(scheme: str, host: str, ip: Address, port: int, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    """A connection pool to the pinned address that still speaks TLS/Host for ``host``."""
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(ip), port, timeout=timeout, retries=False, maxsize=1,
            server_hostname=host, assert_hostname=host,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
        )
    return urllib3.HTTPConnectionPool(str(ip), port, timeout=timeout, retries=False, maxsize=1)


class _Deadline:
    """Shuts down every socket of a download when its time is up, or when its job is stopped.

    Socket timeouts bound each read, not the whole: a server that sends the status
    line, the headers, the TLS handshake or the body a byte at a time, just inside the
    timeout, could hold a job thread for ever (and, stopped by RunPod, leak it). A stopped
    job's download ends at once (``stopped``) instead of at its deadline, up to
    ``DOWNLOAD_TIMEOUT_S`` later.
    """

    def __init__(self, seconds: float, stop: threading.Event | None = None):
        self.expired = threading.Event()
        self.stopped = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, args=(max(0.0, seconds), stop), daemon=True,
                                         name="fetch-deadline")
        self._watcher.start()

    def _watch(self, seconds: float, stop: threading.Event | None) -> None:
        ends = time.monotonic() + seconds
        while True:
            left = ends - time.monotonic()
            if self._done.wait(max(0.0, min(left, stopping.POLL_SECONDS if stop is not None else left))):
                return
            if stop is not None and stop.is_set():
                self.stopped = True
                self._expire()
                return
            if time.monotonic() >= ends:
                self._expire()
                return

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired.is_set():
                self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired.set()
            for sock in self._sockets:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass

    def cancel(self) -> None:
        self._done.set()


def _watched(connection_cls: type, deadline: _Deadline) -> type:
    """urllib3's connection class, with each new socket (TCP, before any TLS) handed to ``deadline``."""

    class Watched(connection_cls):
        def _new_conn(self):
            sock = super()._new_conn()
            deadline.track(sock)
            return sock

    return Watched


def fetch_url(url: str, *, field: str, max_bytes: int, timeout_s: float) -> bytes:
    """GET ``url`` and return its body, or raise ``JobError(field, ...)`` saying why not.

    Redirects are followed by hand (at most ``MAX_REDIRECTS``) so each target is
    checked like the first URL. ``timeout_s`` bounds the whole download,
    redirects included; ``max_bytes`` bounds the body, whatever
    ``Content-Length`` claims.
    """
    watchdog = _Deadline(timeout_s, stopping.current_flag())
    try:
        return _fetch(url, field, max_bytes, timeout_s, watchdog)
    except JobError:
        if watchdog.stopped:  # the sockets were shut down because the job was stopped, not for its time
            raise stopping.JobStopped("during the download") from None
        raise
    except stopping.JobStopped:
        raise
    except Exception:  # noqa: BLE001 - a socket shut down by the watchdog fails wherever it was
        if watchdog.stopped:
            raise stopping.JobStopped("during the download") from None
        if watchdog.expired.is_set():
            raise JobError(field, f"download took longer than {timeout_s:g} s") from None
        raise
    finally:
        watchdog.cancel()


def _fetch(url: str, field: str, max_bytes: int, timeout_s: float, watchdog: _Deadline) -> bytes:
    allow_private = private_downloads_allowed()
    deadline = time.monotonic() + timeout_s
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        scheme, host, port, target = _split(current, field)
        ip = _pinned_address(host, port, field, allow_private, deadline - time.monotonic())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobError(field, f"download took longer than {timeout_s:g} s")
        pool = _pool(scheme, host, ip, port, urllib3.Timeout(connect=remaining, read=remaining))
        pool.ConnectionCls = _watched(pool.ConnectionCls, watchdog)
        netloc = f"[{host}]" if ":" in host else host
        if port != (443 if scheme == "https" else 80):
            netloc += f":{port}"
        try:
            response = pool.urlopen(
                "GET", target,
                headers={"Host": netloc, "User-Agent": USER_AGENT, "Accept": "audio/*, */*;q=0.5"},
                redirect=False, preload_content=False, decode_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            raise _connection_error(exc, field, host, timeout_s, watchdog) from None
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise JobError(field, f"HTTP {response.status} redirect without a Location")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise JobError(field, f"download failed: HTTP {response.status} from {host!r}")
            return _read_capped(response, field, max_bytes, timeout_s, watchdog)
        finally:
            response.release_conn()
            pool.close()
    raise JobError(field, f"more than {MAX_REDIRECTS} redirects")


@dataclass(frozen=True)
class DownloadLimits:
    """What every job's audio, sent by URL or as base64, is held to (``MAX_DOWNLOAD_BYTES``, ``DOWNLOAD_TIMEOUT_S``)."""

    max_bytes: int
    timeout_s: float

    def audio(self, url: str | None, b64: str | None, *, url_field: str = "audio_url",
              b64_field: str = "audio_base64") -> tuple[bytes, str]:
        return audio_bytes(url, b64, url_field=url_field, b64_field=b64_field, max_bytes=self.max_bytes,
                           timeout_s=self.timeout_s)


def audio_bytes(
    url: str | None, b64: str | None, *, url_field: str, b64_field: str, max_bytes: int, timeout_s: float
) -> tuple[bytes, str]:
    """A job's audio from whichever of its URL or base64 fields is set, with the field's name."""
    if url is not None:
        return fetch_url(url, field=url_field, max_bytes=max_bytes, timeout_s=timeout_s), url_field
    from f5_worker.audio import decode_base64

    return decode_base64(b64, b64_field), b64_field


def _connection_error(exc: Exception, field: str, host: str, timeout_s: float, watchdog: _Deadline) -> JobError:
    if watchdog.expired.is_set() or (isinstance(exc, urllib3.exceptions.TimeoutError)
                                     and not isinstance(exc, urllib3.exceptions.NewConnectionError)):
        return JobError(field, f"download took longer than {timeout_s:g} s")
    if isinstance(exc, urllib3.exceptions.SSLError):
        return JobError(field, f"TLS error talking to {host!r} ({_reason(exc)})")
    return JobError(field, f"could not connect to {host!r} ({_reason(exc)})")  # NewConnectionError included


def _read_capped(
    response: urllib3.BaseHTTPResponse, field: str, max_bytes: int, timeout_s: float, watchdog: _Deadline
) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise JobError(field, f"file is {int(declared)} bytes, over the {max_bytes} byte limit")
    body = bytearray()
    try:
        while True:
            block = response.read1(_READ_BLOCK_BYTES)
            if not block:
                break
            body += block
            if len(body) > max_bytes:
                raise JobError(field, f"file is over the {max_bytes} byte limit")
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if watchdog.expired.is_set():
            raise JobError(field, f"download took longer than {timeout_s:g} s") from None
        raise JobError(field, f"download interrupted ({_reason(exc)})") from None
    if watchdog.expired.is_set():  # shut down between reads: what came may be cut short
        raise JobError(field, f"download took longer than {timeout_s:g} s")
    if not body:
        raise JobError(field, "the URL returned an empty file")
    return bytes(body)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).split(": ", 1)[-1] if isinstance(reason, Exception) else str(reason)
    return text.strip()[:200] or type(exc).__name__
