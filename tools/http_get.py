"""Fetch a web page for the model, without letting it reach the machine's own network.

A model that can fetch arbitrary URLs can be steered (by a prompt or by a page it read) into
server-side request forgery: http://127.0.0.1:8080/admin, the cloud metadata service at
169.254.169.254, hosts on the private LAN. So by default every host is resolved and *every*
address it resolves to must be public; only http and https are allowed; redirects are followed
by hand, at most 5, and each hop is checked again (a public page redirecting to 127.0.0.1 is
refused). The body is streamed and cut at ``max_bytes`` so a huge download cannot fill memory
or the context window.

Known gap: the check resolves the name, then httpx resolves it again to connect, so a DNS
server that answers differently the second time (DNS rebinding) is not stopped. Where that
matters, route egress through a filtering proxy as well.
"""

from __future__ import annotations

import ipaddress
import socket
import time

import httpx
from langchain_core.tools import BaseTool

from agentrt.tool import tool

MAX_REDIRECTS = 5
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/xhtml")
_TEXT_SUFFIXES = ("+json", "+xml")
_USER_AGENT = "agentrt-http-get/0.1"


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


def fetch(
    url: str, *, allow_private: bool, max_bytes: int, timeout_s: float, allowed_hosts: set[str] | None
) -> str:
    """GET ``url`` under the policy; the response as text for the model."""
    deadline = time.monotonic() + timeout_s
    current = _parse(url)
    headers = {"User-Agent": _USER_AGENT}
    with httpx.Client(timeout=timeout_s, follow_redirects=False, headers=headers) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            check_url(current, allow_private=allow_private, allowed_hosts=allowed_hosts)
            try:
                with client.stream("GET", current) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        current = _parse(str(response.url.join(location)))
                        continue
                    return _read(response, max_bytes, deadline)
            except httpx.TimeoutException:
                raise ValueError(f"timed out fetching {current} (limit {timeout_s:g} s)") from None
            except httpx.HTTPError as exc:
                raise ValueError(f"could not fetch {current}: {exc}") from None
    raise ValueError(f"too many redirects (more than {MAX_REDIRECTS}); last one pointed to {current}")


def check_url(url: httpx.URL, *, allow_private: bool, allowed_hosts: set[str] | None) -> None:
    """Refuse, with ``PermissionError``, a URL the policy does not allow."""
    if not url.scheme:
        raise ValueError(f"the URL {url} has no scheme: it must start with http:// or https://")
    if url.scheme not in ("http", "https"):
        raise PermissionError(f"only http:// and https:// URLs can be fetched, not {url.scheme}://")
    host = url.host.lower().rstrip(".")
    if not host:
        raise ValueError(f"the URL {url} has no host")
    if allowed_hosts is not None and host not in allowed_hosts:
        raise PermissionError(f"the host {host!r} is not in the list of allowed hosts")
    if allow_private:
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(url.raw_host.decode("ascii"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"could not resolve the host {host!r}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])  # drop an IPv6 zone id
        if not _is_public(address):
            raise PermissionError(
                f"refusing to fetch {url}: {host!r} resolves to {address}, a private, loopback, "
                "link-local or otherwise non-public address"
            )


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global  # e.g. 100.64.0.0/10, carrier-grade NAT
    )


def _parse(url: str) -> httpx.URL:
    try:
        return httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from None


def _read(response: httpx.Response, max_bytes: int, deadline: float) -> str:
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
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= max_bytes:
            cut = f"\n[truncated: only the first {max_bytes} bytes are shown]"
            del body[max_bytes:]
            break
        if time.monotonic() > deadline:
            cut = f"\n[truncated: the time limit was reached after {len(body)} bytes]"
            break
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
