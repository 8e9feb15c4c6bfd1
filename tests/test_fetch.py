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

from conftest import DEFAULT_VOICE_WAV, free_port
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


def serve_bytes(data: bytes, content_type: str = "application/octet-stream"):
    def route(req):
        req.send_response(200)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(data)))
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


def _teredo(client: str, server: str = "65.54.227.120") -> str:
    """A Teredo address (2001::/32) for ``client``; the client's IPv4 address is stored inverted."""
    inverted = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | inverted))


# Written out from the IANA special-purpose registries, not derived from ``ipaddress``, which the code under
# test uses itself.
REFUSED_ADDRESSES = [
    "10.0.0.1", "172.16.5.4", "172.31.255.254", "192.168.0.1", "fd00::1", "fc00::1",  # private / unique local
    "fd00:ec2::254",  # AWS metadata over IPv6
    "127.0.0.1", "127.255.255.254", "::1",  # loopback
    "169.254.169.254", "169.254.0.1", "fe80::1", "febf::1",  # link-local (cloud metadata)
    "224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1",  # multicast, global scope included
    "240.0.0.1", "255.255.255.255", "::7f00:1", "100::1",  # reserved, broadcast, discard-only
    "0.0.0.0", "0.1.2.3", "::",  # unspecified, "this network"
    "100.64.0.1", "100.127.255.254",  # shared address space (carrier NAT, some clouds' metadata)
    "192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1", "198.18.0.1",  # documentation, benchmarking
    "fec0::1",  # deprecated site-local
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:224.0.0.1",  # IPv4-mapped
    "2002:7f00:1::1", "2002:a9fe:a9fe::1",  # 6to4 around loopback / metadata
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64 around loopback / metadata
    _teredo("127.0.0.1"), _teredo("10.0.0.1"),  # Teredo around loopback / private, from a public server
]
PUBLIC_ADDRESSES = [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "151.101.1.69",
    "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808", _teredo("8.8.8.8"),  # wrappers of a public one
]


@pytest.mark.parametrize("text", REFUSED_ADDRESSES)
def test_non_public_addresses_are_refused(text):
    assert not is_public_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(text):
    assert is_public_address(ipaddress.ip_address(text))


_REFUSED_NETWORKS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.2.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2001:db8::/32",
)]
_PUBLIC_NETWORKS = [ipaddress.ip_network(n) for n in (
    "1.0.0.0/8", "8.0.0.0/8", "93.184.0.0/16", "151.101.0.0/16", "2606:4700::/32", "2a00:1450::/32",
)]


def _within(networks):
    return st.sampled_from(networks).flatmap(lambda net: st.integers(0, net.num_addresses - 1).map(net.__getitem__))


@given(st.one_of(_within(_REFUSED_NETWORKS).map(lambda ip: (ip, False)),
                 _within(_PUBLIC_NETWORKS).map(lambda ip: (ip, True))))
def test_verdict_follows_the_address_block_and_survives_ipv6_wrapping(case):
    """Any address of a listed block gets the block's verdict; an IPv4 address wrapped in IPv6 (mapped, 6to4,
    NAT64, Teredo) gets the verdict of the IPv4 address itself, in both directions."""
    ip, public = case
    assert is_public_address(ip) is public
    if isinstance(ip, ipaddress.IPv4Address):
        packed = int(ip)
        for wrapped in (f"::ffff:{ip}", str(ipaddress.IPv6Address((0x2002 << 112) | (packed << 80) | 1)),
                        f"64:ff9b::{ip}", _teredo(str(ip))):
            assert is_public_address(ipaddress.ip_address(wrapped)) is public, wrapped


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
    decoded = audio.decode(data, "ref_audio_url")  # recognised by decoding, not by name
    assert decoded.sample_rate == 24000 and len(decoded.wave) / decoded.sample_rate == pytest.approx(5.333, abs=0.01)


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


def lying_length(declared: str, body: bytes, chunked: bool = False):
    """A 200 whose Content-Length is ``declared``, whatever the body really is."""
    def route(req):
        req.send_response(200)
        req.send_header("Content-Length", declared)
        if chunked:  # the framing that counts; the Content-Length beside it is ignored by HTTP clients
            req.send_header("Transfer-Encoding", "chunked")
        req.send_header("Connection", "close")
        req.end_headers()
        if not chunked:
            req.wfile.write(body)
            return
        for i in range(0, len(body), 8192):
            piece = body[i:i + 8192]
            req.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        req.wfile.write(b"0\r\n\r\n")
    return route


@pytest.mark.parametrize("declared, chunked", [("100", True), ("-1", False), ("lots", False)],
                         ids=["small beside chunked", "negative", "not a number"])
def test_size_cap_holds_when_the_length_header_claims_less_than_the_body(server, private_allowed, declared, chunked):
    """The header passes the cap, so only counting what really arrives can stop the body."""
    server.routes["/liar"] = lying_length(declared, b"z" * 300_000, chunked)
    with pytest.raises(JobError, match="^ref_audio_url: file is over the 100000 byte limit"):
        get(server.base + "/liar", max_bytes=100_000)
    assert get(server.base + "/liar", max_bytes=300_000) == b"z" * 300_000  # the cap, not the lie, refused it


def test_size_cap_holds_when_the_length_header_claims_more_or_less_than_is_sent(server, private_allowed):
    server.routes["/says-small"] = lying_length("10", b"x" * 5000)
    server.routes["/says-big"] = lying_length("5000", b"x" * 10)
    assert get(server.base + "/says-small", max_bytes=1000) == b"x" * 10  # the message ends where it said
    with pytest.raises(JobError, match="5000 bytes, over the 1000 byte limit"):
        get(server.base + "/says-big", max_bytes=1000)


_HEAD = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 40) for i in range(4))


@pytest.mark.parametrize("fast, slow", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n", b"z" * 200),  # the body
    (b"", _HEAD),  # the status line
    (_HEAD[:17], _HEAD[17:]),  # the headers
], ids=["body", "status line", "headers"])
def test_time_cap_covers_a_trickling_server(server, private_allowed, fast, slow):
    """Each byte comes well inside the socket timeout, so only a deadline over the whole download stops it
    (the status line and headers used to escape it). Sending everything would take 10 times the deadline:
    without one, the download ends with the data or a parse error instead of the deadline's error."""
    sent, finished = [], threading.Event()

    def trickle(req):
        try:
            req.wfile.write(fast)
            for i in range(len(slow)):
                req.wfile.write(slow[i:i + 1])
                req.wfile.flush()
                sent.append(i)
                time.sleep(0.05)  # the server's pace, not a wait for the client
        except OSError:  # the client hung up
            pass
        finally:
            finished.set()

    server.routes["/trickle"] = trickle
    with pytest.raises(JobError, match="^ref_audio_url: download took longer than 1 s$"):
        get(server.base + "/trickle", timeout_s=1.0)
    assert finished.wait(timeout=60), "the request never reached the route, or it never ended"  # hang guard only
    assert len(sent) < len(slow)  # the client cut the connection: the server could not send everything


def test_http_errors_and_refused_connections(server, private_allowed):
    with pytest.raises(JobError, match="HTTP 404"):
        get(server.base + "/missing")
    server.routes["/empty"] = serve_bytes(b"")
    with pytest.raises(JobError, match="empty file"):
        get(server.base + "/empty")
    with pytest.raises(JobError, match="could not connect to '127.0.0.1'"):
        get(f"http://127.0.0.1:{free_port()}/a.wav")
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


def test_a_finished_download_ends_its_deadline_watcher(server, private_allowed):
    """Each download has a thread that shuts its sockets down at the deadline; one left waiting after the
    download would pile up, one per job, for the whole timeout (and could shut down a reused socket)."""
    server.routes["/ref.bin"] = serve_bytes(REF_WAV)

    def watchers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "fetch-deadline"]

    before = set(watchers())
    assert get(server.base + "/ref.bin", timeout_s=600.0) == REF_WAV
    waited = time.monotonic()
    while set(watchers()) - before and time.monotonic() - waited < 30.0:  # a hang guard; it ends at once
        time.sleep(0.05)
    assert set(watchers()) - before == set()
