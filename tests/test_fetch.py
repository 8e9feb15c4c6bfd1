"""Safe URL download: unsafe address classes refused (also via DNS and redirects), caps enforced."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEFAULT_VOICE_WAV
from f5_worker import audio, fetch
from f5_worker.errors import JobError
from f5_worker.fetch import fetch_url, is_public_address

REF_WAV = DEFAULT_VOICE_WAV.read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    seen_hosts: list = []

    def do_GET(self):  # noqa: N802
        self.seen_hosts.append(self.headers.get("Host"))
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        route(self)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A loopback HTTP server; tests add routes as ``{path: handler(request)}``."""
    handler = type("Handler", (_Handler,), {"routes": {}, "seen_hosts": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.routes = handler.routes
    httpd.seen_hosts = handler.seen_hosts
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def serve_bytes(data: bytes, content_type: str = "application/octet-stream", length: int | None = None):
    def route(req):
        req.send_response(200)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(data) if length is None else length))
        req.end_headers()
        req.wfile.write(data)
    return route


def redirect_to(location: str):
    def route(req):
        req.send_response(302)
        req.send_header("Location", location)
        req.send_header("Content-Length", "0")
        req.end_headers()
    return route


def get(url: str, max_bytes: int = 10_000_000, timeout_s: float = 5.0) -> bytes:
    return fetch_url(url, field="ref_audio_url", max_bytes=max_bytes, timeout_s=timeout_s)


@pytest.fixture
def private_allowed(monkeypatch):
    monkeypatch.setenv("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS", "true")


@pytest.fixture
def private_refused(monkeypatch):
    monkeypatch.delenv("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS", raising=False)


@pytest.fixture
def loopback_counts_as_public(monkeypatch, private_refused):
    """Stand-in for a public server: only 127.0.0.1 itself is let through, every other rule stays."""
    real = fetch.is_public_address
    monkeypatch.setattr(fetch, "is_public_address", lambda ip: ip == ipaddress.ip_address("127.0.0.1") or real(ip))


# --- address classes --------------------------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("http://127.0.0.1/a.wav", "127.0.0.1"),                         # loopback
    ("http://localhost:8080/a.wav", "127.0.0.1"),                    # hostname resolving to loopback
    ("http://[::1]/a.wav", "::1"),                                   # IPv6 loopback
    ("http://10.1.2.3/a.wav", "10.1.2.3"),                           # private
    ("http://172.16.0.1/a.wav", "172.16.0.1"),
    ("http://192.168.1.1/a.wav", "192.168.1.1"),
    ("http://[fd00::1]/a.wav", "fd00::1"),                           # IPv6 unique local
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),  # cloud metadata (link-local)
    ("http://[fe80::1]/a.wav", "fe80::1"),                           # IPv6 link-local
    ("http://100.100.100.200/latest", "100.100.100.200"),            # shared space (Alibaba metadata)
    ("http://0.0.0.0/a.wav", "0.0.0.0"),                             # unspecified
    ("http://2130706433/a.wav", "127.0.0.1"),                        # decimal IPv4 trick
    ("http://0x7f.1/a.wav", "127.0.0.1"),                            # hex/short IPv4 trick
    ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe"),        # IPv4-mapped IPv6
    ("http://224.0.0.1/a.wav", "224.0.0.1"),                         # multicast
], ids=lambda v: v if "//" in str(v) else None)
def test_unsafe_addresses_refused(private_refused, url, shown):
    with pytest.raises(JobError) as err:
        get(url)
    assert err.value.field == "ref_audio_url"
    assert "refusing to download" in err.value.problem and shown in err.value.problem


@pytest.mark.parametrize("url, problem", [
    ("file:///etc/passwd", "only http and https"),
    ("ftp://example.com/a.wav", "only http and https"),
    ("gopher://example.com/", "only http and https"),
    ("/relative/path.wav", "only http and https"),
    ("http:///nohost", "URL has no host"),
    ("http://user:secret@example.com/a.wav", "credentials"),
    ("http://example.com:99999/", "not a valid URL"),
])
def test_bad_urls_refused(url, problem):
    with pytest.raises(JobError, match=f"^ref_audio_url: .*{problem}"):
        get(url)


@given(st.ip_addresses())
def test_only_global_unicast_counts_as_public(ip):
    if not is_public_address(ip):
        return
    if isinstance(ip, ipaddress.IPv6Address):  # wrappers of IPv4 are judged by the IPv4 address
        if ip.ipv4_mapped or ip.sixtofour or ip.teredo:
            ip = ip.ipv4_mapped or ip.sixtofour or ip.teredo[1]
        elif ip in ipaddress.ip_network("64:ff9b::/96"):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    assert ip.is_global and not ip.is_private and not ip.is_loopback and not ip.is_link_local
    assert not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


def test_public_addresses_pass():
    for text in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert is_public_address(ipaddress.ip_address(text)), text
    for text in ("169.254.169.254", "fd00:ec2::254", "::2", "fec0::1", "240.0.0.1",
                 "::ffff:10.0.0.1", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1"):
        assert not is_public_address(ipaddress.ip_address(text)), text


# --- through a real HTTP server ----------------------------------------------------------------------

def test_local_server_only_with_opt_in(server, monkeypatch):
    server.routes["/ref.bin"] = serve_bytes(REF_WAV, "application/octet-stream")  # no .wav, no audio/* type
    url = server.base + "/ref.bin"
    monkeypatch.delenv("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS", raising=False)
    with pytest.raises(JobError, match="refusing to download from '127.0.0.1'"):
        get(url)
    assert server.seen_hosts == []  # refused before connecting

    monkeypatch.setenv("RUNPOD_ALLOW_PRIVATE_DOWNLOAD_URLS", "true")
    data = get(url)
    assert data == REF_WAV
    wave, rate = audio.decode_audio(data, "ref_audio_url")  # recognised by decoding, not by name
    assert rate == 24000 and len(wave) / rate == pytest.approx(5.333, abs=0.01)


def test_redirect_to_metadata_refused(server, loopback_counts_as_public):
    server.routes["/ok"] = serve_bytes(b"fine")
    server.routes["/to-metadata"] = redirect_to("http://169.254.169.254/latest/meta-data/iam")
    server.routes["/to-localhost"] = redirect_to("http://127.0.0.2:1/secret")
    server.routes["/to-file"] = redirect_to("file:///etc/passwd")
    server.routes["/relative"] = redirect_to("/ok")
    assert get(server.base + "/ok") == b"fine"
    assert get(server.base + "/relative") == b"fine"  # an allowed redirect is followed
    with pytest.raises(JobError, match="refusing to download from '169.254.169.254'"):
        get(server.base + "/to-metadata")
    with pytest.raises(JobError, match="refusing to download from '127.0.0.2'"):
        get(server.base + "/to-localhost")
    with pytest.raises(JobError, match="only http and https"):
        get(server.base + "/to-file")


def test_redirect_loop_is_bounded(server, private_allowed):
    server.routes["/loop"] = redirect_to("/loop")
    with pytest.raises(JobError, match="more than 5 redirects"):
        get(server.base + "/loop")
    assert len(server.seen_hosts) == 6


def fake_dns(monkeypatch, name: str, port: int, ips: list[str]) -> list[str]:
    """Answer ``name`` with ``ips`` in turn (the last from then on); other names resolve as usual.
    Returns the lookups of ``name`` as they happen."""
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, *args, **kwargs):
        if host != name:
            return real_getaddrinfo(host, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ips[min(len(lookups), len(ips)) - 1], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_connection_is_pinned_to_the_checked_address(server, loopback_counts_as_public, monkeypatch):
    """DNS rebinding: the name is resolved once; a later, different answer is never used."""
    server.routes["/ref"] = serve_bytes(b"pinned")
    port = server.server_address[1]
    answers = fake_dns(monkeypatch, "voices.example", port, ["127.0.0.1", "169.254.169.254"])
    assert get(f"http://voices.example:{port}/ref") == b"pinned"
    assert answers == ["voices.example"]  # one lookup, the checked answer was used to connect
    assert server.seen_hosts == [f"voices.example:{port}"]  # the server still saw the real host name


def test_a_non_ascii_host_name_is_sent_in_its_ascii_form(server, loopback_counts_as_public, monkeypatch):
    """It used to reach http.client raw and come back as an internal UnicodeEncodeError."""
    server.routes["/ref"] = serve_bytes(b"idn")
    port = server.server_address[1]
    looked_up = fake_dns(monkeypatch, "xn--r8jz45g.jp", port, ["127.0.0.1"])  # 例え.jp
    assert get(f"http://例え.jp:{port}/ref") == b"idn"
    assert looked_up == ["xn--r8jz45g.jp"] and server.seen_hosts == [f"xn--r8jz45g.jp:{port}"]
    with pytest.raises(JobError, match="^ref_audio_url: not a valid host name"):
        get("http://" + "a" * 70 + "é.example/ref")  # a label over 63 characters cannot be encoded


def test_any_private_answer_refuses_the_host(loopback_counts_as_public, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 80)),
    ])
    with pytest.raises(JobError, match=r"resolves to .*\(10\.0\.0\.5\)"):
        get("http://mixed.example/a.wav")


def test_size_cap_by_header_and_by_body(server, private_allowed):
    server.routes["/big"] = serve_bytes(b"x" * 5000)
    server.routes["/liar"] = serve_bytes(b"x" * 5000, length=None)

    def no_length(req):
        req.send_response(200)
        req.send_header("Connection", "close")
        req.end_headers()
        req.wfile.write(b"y" * 300_000)

    server.routes["/nolength"] = no_length
    with pytest.raises(JobError, match="5000 bytes, over the 1000 byte limit"):
        get(server.base + "/big", max_bytes=1000)
    with pytest.raises(JobError, match="over the 100000 byte limit"):
        get(server.base + "/nolength", max_bytes=100_000)
    assert len(get(server.base + "/nolength", max_bytes=300_000)) == 300_000


_HEAD = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 40) for i in range(50))


@pytest.mark.parametrize("fast, slow", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"z" * 1000),  # the body
    (b"", _HEAD),  # the status line
    (_HEAD[:17], _HEAD[17:]),  # the headers
], ids=["body", "status line", "headers"])
def test_time_cap_covers_a_trickling_server(server, private_allowed, fast, slow):
    """Each byte comes inside the socket timeout, so only a deadline over the whole download stops it
    (the status line and headers used to escape it: 20 s against a 2 s limit)."""
    def trickle(req):
        try:
            req.wfile.write(fast)
            for i in range(len(slow)):
                req.wfile.write(slow[i:i + 1])
                req.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    server.routes["/trickle"] = trickle
    started = time.monotonic()
    with pytest.raises(JobError, match="took longer than 1 s"):
        get(server.base + "/trickle", timeout_s=1.0)
    assert time.monotonic() - started < 2.0


def test_http_errors_and_refused_connections(server, private_allowed):
    with pytest.raises(JobError, match="HTTP 404"):
        get(server.base + "/missing")
    server.routes["/empty"] = serve_bytes(b"")
    with pytest.raises(JobError, match="empty file"):
        get(server.base + "/empty")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed_port = s.getsockname()[1]
    s.close()
    with pytest.raises(JobError, match="could not connect to '127.0.0.1'"):
        get(f"http://127.0.0.1:{closed_port}/a.wav")
    with pytest.raises(JobError, match="cannot resolve host"):
        get("http://no-such-host.invalid/a.wav")


def test_https_is_pinned_and_still_verifies_the_host_name(tmp_path, loopback_counts_as_public, monkeypatch):
    """TLS to the pinned address: the certificate must match the URL's host name (SNI included)."""
    import datetime
    import ssl

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("voices.example")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("voices.example")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    handler = type("Handler", (_Handler,), {"routes": {"/ref": serve_bytes(b"over tls")}, "seen_hosts": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem")
    sni = []
    context.sni_callback = lambda sock, server_name, ctx: sni.append(server_name)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = httpd.server_address[1]
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        if host in ("voices.example", "other.example") else real_getaddrinfo(host, *a, **k)))
    monkeypatch.setattr(fetch.certifi, "where", lambda: str(tmp_path / "ca.pem"))
    try:
        assert get(f"https://voices.example:{port}/ref") == b"over tls"
        assert sni == ["voices.example"] and handler.seen_hosts == [f"voices.example:{port}"]
        mismatch = "TLS error talking to 'other.example' .hostname 'other.example' doesn't match"
        with pytest.raises(JobError, match=mismatch):
            get(f"https://other.example:{port}/ref")  # certificate is for voices.example
    finally:
        httpd.shutdown()
        httpd.server_close()
