"""Tool execution over HTTP, behind an SSRF policy that decides before any connection is made.

The policy, in order (the first that applies refuses the call, and the refusal is the observation):

1. the scheme is not http or https;
2. the host is a cloud metadata name (``metadata.google.internal``, ``instance-data``, ...);
3. the host is an IP address that is link-local (169.254.0.0/16, fe80::/10), a metadata address,
   unspecified, multicast or broadcast (IPv4-mapped IPv6 addresses are unwrapped first);
4. the host is not on ``UMI_TOOL_ALLOWLIST`` (names exactly, IP addresses, CIDR networks);
   nothing is resolved for a host that is not allowed, so a refused name never reaches DNS;
5. a name resolves to a forbidden address of rule 3, or does not resolve.

The connection then goes to the address that was checked (the URL's host stays in ``Host`` and,
for https, in SNI and certificate checks), so a DNS answer cannot change between the check and
the connection. Redirects are not followed: a 3xx is a non-2xx answer like any other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from orchestrator.metrics import Metrics
from orchestrator.models import Tool
from orchestrator.roles import KEEPALIVE_S
from orchestrator.settings import Allowlist, Settings
from umi.format.observations import cut_observation, error_observation
from umi.tracing import inject

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.com", "instance-data",
    "instance-data.ec2.internal", "metadata.tencentyun.com", "metadata.platformequinix.com",
})  # fmt: skip
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
    "169.254.170.2",  # AWS ECS task metadata
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure wire server
))  # fmt: skip
_DROPPED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "idempotency-key"})


class Refused(Exception):
    """The endpoint may not be called. ``reason`` is one word; the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    url: yarl.URL  # the checked address in place of the host
    host_header: str
    sni_hostname: str | None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _forbidden_reason(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_link_local:
        return "link_local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        return "multicast"
    return None


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class EndpointPolicy:
    def __init__(self, allowlist: Allowlist, resolve: Resolver = system_resolver):
        self.allowlist = allowlist
        self.resolve = resolve

    async def check(self, url: str) -> Target:
        # yarl is the parser aiohttp connects with: the host checked is the host connected to.
        try:
            parsed = yarl.URL(url)
        except (ValueError, TypeError) as exc:
            raise Refused("bad_url", f"the endpoint URL is not valid: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise Refused("scheme", f"scheme {parsed.scheme!r} is refused: only http and https")
        host = (parsed.host or "").lower().rstrip(".")
        if not host:
            raise Refused("bad_url", "the endpoint URL has no host")
        if host in METADATA_HOSTS:
            raise Refused("metadata", f"host {host!r} is a cloud metadata service")
        literal = _parse_ip(host)
        if literal is not None:
            reason = _forbidden_reason(literal)
            if reason:
                raise Refused(reason, f"address {literal} is refused ({reason.replace('_', '-')})")
            if not (self.allowlist.allows_ip(literal) or self.allowlist.allows_name(str(literal))):
                raise Refused("not_allowlisted", f"address {literal} is not on the tool allowlist")
            address = literal
        else:
            if not self.allowlist.allows_name(host):
                raise Refused("not_allowlisted", f"host {host!r} is not on the tool allowlist")
            address = await self._resolve(host, parsed.port or 80)
        host_header = f"[{host}]" if ":" in host else host
        if parsed.explicit_port is not None:
            host_header += f":{parsed.explicit_port}"
        return Target(
            url=parsed.with_host(str(address)),
            host_header=host_header,
            sni_hostname=host if parsed.scheme == "https" and literal is None else None,
        )

    async def _resolve(self, host: str, port: int) -> IPAddress:
        try:
            found = await self.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise Refused("unresolvable", f"host {host!r} does not resolve: {exc}") from None
        addresses = [a for a in (_parse_ip(x) for x in found) if a is not None]
        if not addresses:
            raise Refused("unresolvable", f"host {host!r} does not resolve")
        for address in addresses:
            reason = _forbidden_reason(address)
            if reason:
                raise Refused(reason, f"host {host!r} resolves to {address}, which is refused ({reason.replace('_', '-')})")
        return addresses[0]


@dataclass(frozen=True)
class ToolResult:
    content: str  # the observation, cut to the configured length
    error: str | None = None  # the kind of error the observation reports


def _query_params(arguments: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}


class ToolRunner:
    def __init__(self, settings: Settings, metrics: Metrics, resolve: Resolver = system_resolver):
        """Build inside the running event loop (the pooled session belongs to it)."""
        self.settings = settings
        self.metrics = metrics
        self.policy = EndpointPolicy(settings.allowlist, resolve)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.role_max_connections, use_dns_cache=False, keepalive_timeout=KEEPALIVE_S
            ),
            trust_env=False,  # no proxy from the environment: the checked address is the one connected to
        )

    async def aclose(self) -> None:
        await self.session.close()

    def _result(self, tool: Tool, text: str, error: str | None) -> ToolResult:
        if error is not None:
            self.metrics.tool_errors.labels(self.metrics.tool_label(tool.function.name), error).inc()
        return ToolResult(cut_observation(text, self.settings.observation_max_chars), error)

    async def run(self, tool: Tool, arguments: dict[str, Any], idempotency_key: str) -> ToolResult:
        """Execute a server tool; every failure becomes an observation describing it."""
        endpoint = tool.endpoint
        assert endpoint is not None
        timeout = endpoint.timeout_s or self.settings.tool_timeout_s
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                target = await self.policy.check(endpoint.url)
                return await self._send(tool, target, arguments, idempotency_key)
        except Refused as exc:
            return self._result(tool, error_observation(f"The tool endpoint was refused: {exc}"), "refused")
        except TimeoutError:
            return self._result(tool, error_observation(f"Timeout error: no answer within {timeout:g} s"), "timeout")
        except aiohttp.ClientError as exc:
            return self._result(tool, error_observation(f"Connection error: {type(exc).__name__}: {exc}"), "connection")
        finally:
            self.metrics.tool_seconds.labels(self.metrics.tool_label(tool.function.name)).observe(
                time.perf_counter() - started
            )

    async def _send(self, tool: Tool, target: Target, arguments: dict[str, Any], idempotency_key: str) -> ToolResult:
        endpoint = tool.endpoint
        assert endpoint is not None
        headers = {k: v for k, v in endpoint.headers.items() if k.lower() not in _DROPPED_HEADERS}
        headers["Host"] = target.host_header
        headers["Idempotency-Key"] = idempotency_key
        inject(headers)  # the tool's span continues in the tool (W3C traceparent)
        options: dict[str, Any] = {"headers": headers, "allow_redirects": False}
        if target.sni_hostname:
            options["server_hostname"] = target.sni_hostname
        if endpoint.method == "GET":
            options["params"] = _query_params(arguments)
        else:
            headers["Content-Type"] = "application/json"
            options["data"] = json.dumps(arguments).encode()
        async with self.session.request(endpoint.method, target.url, **options) as response:
            body = await self._read_capped(response.content)
            text = body.decode(response.charset or "utf-8", errors="replace")
            if not 200 <= response.status < 300:
                return self._result(tool, error_observation(f"HTTP {response.status}", text), "http_status")
            return self._result(tool, text, None)

    async def _read_capped(self, stream: aiohttp.StreamReader) -> bytes:
        limit = self.settings.tool_max_response_bytes
        chunks, size = [], 0
        while size < limit:
            chunk = await stream.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
