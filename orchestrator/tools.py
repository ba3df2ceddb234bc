"""Tool execution over HTTP, behind an SSRF policy that decides before any connection is made.

The policy, in order (the first that applies refuses the call, and the refusal is the observation):

1. the scheme is not http or https;
2. the host is a cloud metadata name (``metadata.google.internal``, ``instance-data``, ...);
3. the host is an IP address that is link-local (169.254.0.0/16, fe80::/10), a metadata address,
   unspecified, multicast or broadcast (IPv4-mapped IPv6 addresses are unwrapped first);
4. the host is not on ``UMI_TOOL_ALLOWLIST`` (names exactly, IP addresses, CIDR networks; the
   default is empty: nothing is allowed until the operator lists it); nothing is resolved for a
   host that is not allowed, so a refused name never reaches DNS;
5. a name resolves to a forbidden address of rule 3, or does not resolve (every resolved
   address is checked: one forbidden address refuses the name);
6. the endpoint is the stack itself, allowlisted or not (``StackEndpoints``): the orchestrator's
   own API (every address and port a request reached it on; on loopback, any address with that
   port), Redis (``UMI_REDIS_URL``) and the role services (``UMI_*_URL``), by name and port or
   by resolved address and port (a loopback address stands for every loopback address).

The connection then goes to the addresses that were checked, and only to them: the session's
resolver answers the checked addresses of the request's host (``PinnedResolver``), so a DNS
answer cannot change between the check and the connection; aiohttp connects over them in Happy
Eyeballs order (RFC 8305: families interleaved, the next attempt after 250 ms or a failure), so
a name listed ``::1`` first still reaches a tool that listens on IPv4 only. The URL's host stays
in ``Host`` and, for https, in SNI and certificate checks. Redirects are not followed: a 3xx is a
non-2xx answer like any other.

Every call carries ``X-Umi-Tool-Call`` (``LOOP_GUARD_HEADER``, the call's idempotency key); the
orchestrator's API refuses any request that carries it (403 ``loop_detected``), so a tool
endpoint that leads back to an orchestrator cannot start a chat from a chat.

An endpoint with ``protocol: "mcp"`` is a tool of an MCP server (``orchestrator.mcp``): the same
policy decides on its URL, and the call is MCP's ``tools/call``.

Whatever happens, ``ToolRunner.run`` answers an observation at once and never raises: a refusal,
a timeout, a connection error, a non-2xx status, a body in an unknown charset (decoded as UTF-8
with replacement characters), or any other exception (``tool_error``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from orchestrator.metrics import Metrics
from orchestrator.models import Tool
from orchestrator.roles import KEEPALIVE_S
from orchestrator.settings import Allowlist, Settings
from orchestrator.store.redis_store import redis_node_urls
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
LOOP_GUARD_HEADER = "X-Umi-Tool-Call"
"""Sent with every tool call; the orchestrator's API refuses a request that carries it."""
_DROPPED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "idempotency-key", LOOP_GUARD_HEADER.lower()}
)
_STACK_CACHE_S = 30.0
log = logging.getLogger("umi.orchestrator")


class Refused(Exception):
    """The endpoint may not be called. ``reason`` is one word; the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    url: yarl.URL  # the endpoint's URL as given
    addresses: tuple[str, ...]  # the checked addresses of its host, in the resolver's order


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


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _host_port(url: str) -> tuple[str, int] | None:
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        return None
    if not parsed.host:
        return None
    port = parsed.port or {"redis": 6379, "rediss": 6379}.get(parsed.scheme)
    return (parsed.host.lower().rstrip("."), port) if port else None


def stack_urls(settings: Settings) -> list[str]:
    """Redis and the role services of ``settings``: endpoints no tool call may reach."""
    urls = [*redis_node_urls(settings.redis_url), settings.planner_url, settings.caller_url, settings.summarizer_url]
    return urls + ([settings.backbone_url] if settings.backbone_url else [])


class StackEndpoints:
    """The stack's own endpoints, which no tool call may reach even when allowlisted: the
    orchestrator's API (``listening`` records each address a request reached it on), Redis and
    the role services (given as URLs)."""

    def __init__(self, urls: Iterable[str], resolve: Resolver = system_resolver):
        self.names: set[tuple[str, int]] = {hp for hp in map(_host_port, urls) if hp is not None}
        self.own_ports: set[int] = set()
        self.resolve = resolve
        self._resolved: tuple[float, set[tuple[IPAddress, int]]] | None = None

    def listening(self, host: str, port: int) -> None:
        """The API was reached at ``host:port`` (an address, or a name)."""
        key = (host.lower().strip("[]").rstrip("."), port)
        if key not in self.names:
            self.names.add(key)
            self.own_ports.add(port)
            self._resolved = None

    async def addresses(self) -> set[tuple[IPAddress, int]]:
        """The stack's endpoints as (address, port), names resolved (cached for 30 s)."""
        now = time.monotonic()
        if self._resolved is not None and now - self._resolved[0] < _STACK_CACHE_S:
            return self._resolved[1]
        found: set[tuple[IPAddress, int]] = set()
        for host, port in list(self.names):
            literal = _parse_ip(host)
            if literal is not None:
                found.add((_unmapped(literal), port))
                continue
            try:
                answers = await self.resolve(host, port)
            except (OSError, UnicodeError):
                continue  # a stack name that does not resolve cannot be reached either
            found.update((_unmapped(a), port) for a in (_parse_ip(x) for x in answers) if a is not None)
        self._resolved = (now, found)
        return found

    async def refusal(self, host: str, port: int, addresses: list[IPAddress]) -> str | None:
        """Why ``host:port`` (resolved to ``addresses``) is part of the stack, or None."""
        if (host, port) in self.names:
            return f"{host}:{port} is this orchestrator, its Redis or a role service"
        stack = await self.addresses()
        loopback_ports = self.own_ports | {p for a, p in stack if a.is_loopback}
        for address in map(_unmapped, addresses):
            if (address, port) in stack or (address.is_loopback and port in loopback_ports):
                return f"{address} port {port} is this orchestrator, its Redis or a role service"
        return None


class EndpointPolicy:
    def __init__(self, allowlist: Allowlist, resolve: Resolver = system_resolver, stack: StackEndpoints | None = None):
        self.allowlist = allowlist
        self.resolve = resolve
        self.stack = stack or StackEndpoints((), resolve)

    def check_static(self, url: str) -> tuple[yarl.URL, str, IPAddress | None]:
        """The rules that need no DNS and no connection (URL, scheme, metadata names, forbidden
        literal addresses, the allowlist): (the parsed URL, its host, its literal address or
        None). Raises Refused. ``POST /chat`` applies them to every endpoint before the chat
        starts, so a request that names a host it may not call is a 422, not a chat."""
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
                raise Refused("not_allowlisted", f"address {literal} is not on the tool allowlist (UMI_TOOL_ALLOWLIST)")
        elif not self.allowlist.allows_name(host):
            raise Refused("not_allowlisted", f"host {host!r} is not on the tool allowlist (UMI_TOOL_ALLOWLIST)")
        return parsed, host, literal

    async def check(self, url: str) -> Target:
        """Every rule, at call time: ``check_static``, then the resolved addresses and the stack."""
        parsed, host, literal = self.check_static(url)
        addresses = [literal] if literal is not None else await self._resolve(host, parsed.port or 80)
        stack = await self.stack.refusal(str(literal) if literal is not None else host, parsed.port or 80, addresses)
        if stack:
            raise Refused("stack", f"the endpoint is refused: {stack}")
        return Target(url=parsed, addresses=tuple(str(a) for a in addresses))

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
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
        return addresses


_pinned: contextvars.ContextVar[dict[str, tuple[str, ...]]] = contextvars.ContextVar("umi_pinned_hosts", default={})


class PinnedResolver(AbstractResolver):
    """The tool session's resolver: a host resolves to the addresses the policy checked for the
    request under way (``_pinned``), and to nothing else."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = _pinned.get().get(host.lower().rstrip("."))
        if not addresses:
            raise OSError(f"host {host!r} was not checked by the tool policy")
        return [
            ResolveResult(
                hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET, proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


def decode_body(body: bytes, charset: str | None) -> str:
    """A tool's answer as text: its declared charset when Python knows it, else UTF-8; bytes
    that do not decode become U+FFFD. Never raises."""
    try:
        encoding = codecs.lookup(charset).name if charset else "utf-8"
    except (LookupError, ValueError):
        encoding = "utf-8"
    try:
        return body.decode(encoding, errors="replace")
    except (LookupError, ValueError, TypeError):  # a codec that is not for text (e.g. "zip")
        return body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ToolResult:
    content: str  # the observation, cut to the configured length
    error: str | None = None  # the kind of error the observation reports


def _query_params(arguments: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}


class ToolRunner:
    def __init__(
        self, settings: Settings, metrics: Metrics, resolve: Resolver = system_resolver, stack: StackEndpoints | None = None
    ):
        """Build inside the running event loop (the pooled session belongs to it). ``stack``:
        the endpoints no tool may reach (default: Redis and the role services of ``settings``)."""
        self.settings = settings
        self.metrics = metrics
        self.stack = stack or StackEndpoints(stack_urls(settings), resolve)
        self.policy = EndpointPolicy(settings.allowlist, resolve, self.stack)
        from orchestrator.mcp import McpTools  # it builds on this module's policy

        self.mcp = McpTools(self.policy, settings.mcp_list_ttl_s, settings.tool_timeout_s)
        """Tools whose endpoint has ``protocol: "mcp"`` (``orchestrator.mcp``)."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.role_max_connections, use_dns_cache=False, keepalive_timeout=KEEPALIVE_S,
                resolver=PinnedResolver(),
            ),  # fmt: skip
            trust_env=False,  # no proxy from the environment: the checked addresses are the ones connected to
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
                if endpoint.protocol == "mcp":
                    return self._result(tool, *await self.mcp.call(tool, arguments))
                target = await self.policy.check(endpoint.url)
                return await self._send(tool, target, arguments, idempotency_key)
        except Refused as exc:
            return self._result(tool, error_observation(f"The tool endpoint was refused: {exc}"), "refused")
        except TimeoutError:
            return self._result(tool, error_observation(f"Timeout error: no answer within {timeout:g} s"), "timeout")
        except aiohttp.ClientError as exc:
            return self._result(tool, error_observation(f"Connection error: {type(exc).__name__}: {exc}"), "connection")
        except Exception as exc:  # nothing a tool does escapes the step: it is the observation
            log.warning("tool call failed: %r", exc)
            return self._result(tool, error_observation(f"Tool error: {type(exc).__name__}: {exc}"), "tool_error")
        finally:
            self.metrics.tool_seconds.labels(self.metrics.tool_label(tool.function.name)).observe(
                time.perf_counter() - started
            )

    async def _send(self, tool: Tool, target: Target, arguments: dict[str, Any], idempotency_key: str) -> ToolResult:
        endpoint = tool.endpoint
        assert endpoint is not None
        headers = {k: v for k, v in endpoint.headers.items() if k.lower() not in _DROPPED_HEADERS}
        headers["Idempotency-Key"] = idempotency_key
        headers[LOOP_GUARD_HEADER] = idempotency_key
        inject(headers)  # the tool's span continues in the tool (W3C traceparent)
        options: dict[str, Any] = {"headers": headers, "allow_redirects": False}
        if endpoint.method == "GET":
            options["params"] = _query_params(arguments)
        else:
            headers["Content-Type"] = "application/json"
            options["data"] = json.dumps(arguments).encode()
        host = (target.url.host or "").lower().rstrip(".")
        pinned = _pinned.set({host: target.addresses})
        try:
            async with self.session.request(endpoint.method, target.url, **options) as response:
                body = await self._read_capped(response.content)
                charset = response.charset
        finally:
            _pinned.reset(pinned)
        text = decode_body(body, charset)
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
