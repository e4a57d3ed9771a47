"""Fetch a web page for the model, without letting it reach the machine's own network.

A model that can fetch arbitrary URLs can be steered (by a prompt or by a page it read) into
server-side request forgery: http://127.0.0.1:8080/admin, the cloud metadata service at
169.254.169.254, hosts on the private LAN. So by default:

- only http and https; redirects followed by hand, at most 5, each hop checked again;
- the host is resolved once, every address it resolves to must be public (tunnelled forms of
  private addresses, such as 6to4, Teredo and NAT64, count as private), and the connection goes
  to one of *those* addresses: there is no second lookup that a DNS server could answer
  differently (DNS rebinding). TLS still checks the certificate against the host name;
- one deadline covers the whole fetch, lookups, connecting, headers and body included: a
  watchdog closes the connection when it passes, so a server that trickles bytes cannot hold
  the tool (or its worker thread) past the limit;
- the body is streamed and cut at ``max_bytes``, so a huge download cannot fill memory or the
  context window.

The connection layer is httpcore (httpx's own), given a network backend that does the
resolving and checking; httpx parses URLs and headers.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpcore
import httpx
from langchain_core.tools import BaseTool

from agentrt.tool import tool

MAX_REDIRECTS = 5
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/xhtml")
_TEXT_SUFFIXES = ("+json", "+xml")
_USER_AGENT = "agentrt-http-get/0.1"
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agentrt-dns")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class Refused(PermissionError):
    """The policy does not allow this address."""


def make_http_get(
    allow_private: bool = False,
    max_bytes: int = 200_000,
    timeout_s: float = 15.0,
    allowed_hosts: set[str] | None = None,
) -> BaseTool:
    """An ``http_get`` tool with this policy.

    ``allow_private`` lets requests reach private, loopback and link-local addresses (tests,
    intranet deployments). ``allowed_hosts``, when given, is an allowlist: only these host names
    (exact, case-insensitive) may be fetched, on the first request and on every redirect.
    ``timeout_s`` bounds the whole fetch, redirects included.
    """
    hosts = None if allowed_hosts is None else {h.lower().rstrip(".") for h in allowed_hosts}

    @tool(timeout=timeout_s + 5.0)
    def http_get(url: str) -> str:
        """Fetch a web page or API response over HTTP(S) with a GET request and return its text.

        Returns the status code, the content type and the body as text (long bodies are cut
        off). Only public http:// and https:// addresses can be fetched. Binary content such as
        images or PDFs is not returned, only described.

        Args:
            url: The full URL to fetch, starting with http:// or https://.
        """
        return fetch(
            url, allow_private=allow_private, max_bytes=max_bytes, timeout_s=timeout_s, allowed_hosts=hosts
        )

    return http_get


class _Deadline:
    """The fetch's one deadline: the time left for each step, and a watchdog that shuts every
    socket of the fetch when it passes (a read blocked on a trickling server then returns)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.at = seconds, time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def watch(self, sock: socket.socket | None) -> None:
        if sock is not None:
            with self._lock:
                self._sockets.append(sock)
            if self.passed:
                self._expire()

    def _expire(self) -> None:
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cancel(self) -> None:
        self._timer.cancel()


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses it resolved and checked itself."""

    def __init__(self, deadline: _Deadline, allow_private: bool) -> None:
        self.deadline, self.allow_private = deadline, allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        addresses = resolve(host, port, self.deadline)
        if not self.allow_private:
            for address in addresses:
                if not is_public(address):
                    raise Refused(f"{host!r} resolves to {address}, a private, loopback, link-local or "
                                  "otherwise non-public address")
        error: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(str(address), port, timeout=self.deadline.left(),
                                             local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self.deadline.watch(stream.get_extra_info("socket"))
            return stream
        raise error or httpcore.ConnectError(f"no address to connect to for {host!r}")


def resolve(host: str, port: int, deadline: _Deadline) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to, looked up once, within the deadline."""
    try:
        infos = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(deadline.left())
    except FutureTimeout:
        raise TimeoutError from None
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"could not resolve the host {host!r}: {exc}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]  # drop an IPv6 zone id
    return list(dict.fromkeys(found))


def fetch(
    url: str, *, allow_private: bool, max_bytes: int, timeout_s: float, allowed_hosts: set[str] | None
) -> str:
    """GET ``url`` under the policy; the response as text for the model."""
    deadline = _Deadline(timeout_s)
    current = _parse(url)
    try:
        with httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), max_connections=1, retries=0,
                                     network_backend=_GuardedBackend(deadline, allow_private)) as pool:
            for _hop in range(MAX_REDIRECTS + 1):
                check_url(current, allowed_hosts=allowed_hosts)
                left = deadline.left()
                headers = [(b"Host", current.netloc), (b"User-Agent", _USER_AGENT.encode()),
                           (b"Accept-Encoding", b"identity")]
                timeouts = {"connect": left, "read": left, "write": left, "pool": left}
                with pool.stream("GET", str(current), headers=headers, extensions={"timeout": timeouts}) as raw:
                    response = httpx.Response(raw.status, headers=raw.headers, request=httpx.Request("GET", current))
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        current = _parse(str(current.join(location)))
                        continue
                    return _read(response, raw.iter_stream(), max_bytes, deadline)
    except Refused as exc:
        raise PermissionError(f"refusing to fetch {current}: {exc}") from None
    except (TimeoutError, httpcore.TimeoutException):
        raise ValueError(f"timed out fetching {current} (limit {timeout_s:g} s)") from None
    except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
        if deadline.passed:  # the watchdog closed the connection
            raise ValueError(f"timed out fetching {current} (limit {timeout_s:g} s)") from None
        if isinstance(exc, httpcore.ProtocolError):
            raise ValueError(f"could not fetch {current}: the server broke the HTTP protocol ({exc})") from None
        raise ValueError(f"could not fetch {current}: {exc}") from None
    finally:
        deadline.cancel()
    raise ValueError(f"too many redirects (more than {MAX_REDIRECTS}); last one pointed to {current}")


def check_url(url: httpx.URL, *, allowed_hosts: set[str] | None) -> None:
    """Refuse, with ``PermissionError``, a URL whose scheme or host the policy does not allow
    (its addresses are checked when connecting, by the one lookup that is used)."""
    if not url.scheme:
        raise ValueError(f"the URL {url} has no scheme: it must start with http:// or https://")
    if url.scheme not in ("http", "https"):
        raise PermissionError(f"only http:// and https:// URLs can be fetched, not {url.scheme}://")
    host = url.host.lower().rstrip(".")
    if not host:
        raise ValueError(f"the URL {url} has no host")
    if allowed_hosts is not None and host not in allowed_hosts:
        raise PermissionError(f"the host {host!r} is not in the list of allowed hosts")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routable address, looking through the IPv6 forms that carry an IPv4 address
    (mapped, 6to4, Teredo, NAT64, IPv4-compatible): each of them is as private as what it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return all(is_public(a) for a in embedded)
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global  # e.g. 100.64.0.0/10, carrier-grade NAT
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    if address.ipv4_mapped:
        return [address.ipv4_mapped]  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.sixtofour:
        return [address.sixtofour]  # 2002:7f00:1::
    if address.teredo:
        return list(address.teredo)  # (server, client)
    if address in _NAT64 or address in _NAT64_LOCAL:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return [ipaddress.IPv4Address(int(address))]
    return None


def _parse(url: str) -> httpx.URL:
    try:
        return httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from None


def _read(response: httpx.Response, chunks: Iterator[bytes], max_bytes: int, deadline: _Deadline) -> str:
    content_type = response.headers.get("content-type", "")
    head = (
        f"HTTP {response.status_code} {response.reason_phrase}\n"
        f"URL: {response.url}\n"
        f"Content-Type: {content_type or '(none)'}\n\n"
    )
    if content_type and not _is_text(content_type):
        size = response.headers.get("content-length")
        return head + f"[binary content ({size + ' bytes' if size else 'size unknown'}) not shown]"

    body = bytearray()
    cut = ""
    try:
        for chunk in chunks:
            body += chunk
            if len(body) >= max_bytes:
                cut = f"\n[truncated: only the first {max_bytes} bytes are shown]"
                del body[max_bytes:]
                break
            if deadline.passed:
                raise TimeoutError
    except (TimeoutError, httpcore.NetworkError, httpcore.ProtocolError):
        if not deadline.passed:
            raise
        cut = f"\n[truncated: the time limit was reached after {len(body)} bytes]"
    if not content_type and b"\x00" in body[:4096]:
        return head + "[binary content not shown]"
    try:
        text = body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset name Python does not know
        text = body.decode("utf-8", errors="replace")
    return head + text + cut


def _is_text(content_type: str) -> bool:
    mime = content_type.split(";")[0].strip().lower()
    return mime.startswith(_TEXT_TYPES) or mime.endswith(_TEXT_SUFFIXES)


http_get = make_http_get()
