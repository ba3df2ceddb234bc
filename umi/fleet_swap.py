"""A weight swap across every replica of a role: one replica at a time, canary first, each checked
before the next, everything rolled back on any failure. ``umi swap`` (umi/swap_cli.py) is its CLI.

It drives each replica's own admin API (docs/role-services.md, "Swap procedure"):
``POST /admin/weights`` to swap, ``POST /admin/weights/rollback`` to go back, ``GET /admin/weights``
to read the weights serving; nothing else changes on the replicas.

    replicas = replicas_from_urls("http://10.0.0.5:8101,http://10.0.0.6:8101")
    # or: replicas_from_dns("planner-headless.umi.svc.cluster.local:8101", default_port=8101)
    report = FleetSwap(spec, target, replicas, token, checks, progress).run()
    report.exit_code   # 0, 1 or 3 (below)

Steps:

1. **Preflight**, every replica before anything changes: reachable, the admin token accepted,
   the role is ``spec.role``, ``/ready`` is 200, no swap in progress. A failure here changes nothing.
2. **One replica at a time**, in the given order (the first is the canary): a replica that already
   serves the target (same path, kind and version) is skipped; else ``POST /admin/weights``, then
   the checks: ``/ready`` is 200; ``GET /admin/weights`` reports the target version; a warm-up
   request through the role API (``spec.path``, a one-token greedy generation) answers 200 with the
   target version; after ``window_s`` from the end of the swap, ``/ready`` is still 200 and the
   replica's error rate over the whole window (from just before the swap) is at most
   ``max_error_rate``. Error rate: answers with a 5xx status over all answers on ``spec.path``, from
   the replica's ``umi_requests_total`` counters (``/metrics``), the delta over the window; counters
   that went down (the process restarted) fail the check.
3. **On any failure** (swap refused, a check failed, a replica unreachable), every replica swapped
   so far, the failing one included when it switched, is rolled back with
   ``POST /admin/weights/rollback``, the failing one first then back to the canary, and each is
   checked to serve its previous version again. A replica that never switched is never rolled
   back (a rollback walks the replica's history: it would go one step too far). Ctrl-C while
   the replicas swap counts as a failure of the replica at hand.

Exit codes (:attr:`FleetSwapReport.exit_code`): 0 every replica serves the target; 1 the swap
failed and nothing is left changed (preflight failure, or every swapped replica rolled back);
3 a rollback failed too: the fleet serves mixed versions (each replica's state is in the report).
Bad input (no replicas, a URL that is not http(s), a name that does not resolve) raises
:class:`FleetInputError` before any request; the CLI exits 2 with it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from umi.roleapi import ModelInfo
from umi.service.roles import WARM_UP_HISTORY, WARM_UP_TOOLS, RoleSpec

WeightsKindName = Literal["full", "lora"]
StrategyChoice = Literal["blue_green", "in_place"]
Phase = Literal["preflight", "swap", "ready", "version", "warm_up", "error_rate", "rollback", "done", "skipped"]
Outcome = Literal["untouched", "skipped", "swapped", "failed", "rolled_back", "rollback_failed"]

EXIT_OK = 0
EXIT_FAILED = 1  # nothing left changed
EXIT_MIXED = 3  # a rollback failed: replicas serve different versions

REQUEST_TIMEOUT_S = 10.0  # reads: /ready, /admin/weights, /metrics, the warm-up request
SWAP_TIMEOUT_S = 1800.0  # a swap or rollback answers when done: loading a 7B checkpoint takes minutes


class FleetInputError(Exception):
    """The replicas cannot be known: an empty list, a bad URL, a name that does not resolve."""


class ReplicaFailure(Exception):
    """One replica failed a step; ``phase`` is the step, the message the reason."""

    def __init__(self, phase: Phase, reason: str) -> None:
        super().__init__(reason)
        self.phase = phase
        self.reason = reason


@dataclass(frozen=True)
class SwapTarget:
    """What every replica swaps to: the body of ``POST /admin/weights``."""

    path: str
    version: str
    kind: WeightsKindName = "full"
    strategy: StrategyChoice | None = None  # None: each replica's UMI_SWAP_STRATEGY
    drain_timeout_s: float | None = None  # None: each replica's UMI_DRAIN_TIMEOUT_S

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "kind": self.kind, "version": self.version}
        if self.strategy is not None:
            body["strategy"] = self.strategy
        if self.drain_timeout_s is not None:
            body["drain_timeout_s"] = self.drain_timeout_s
        return body

    def rollback_body(self) -> dict[str, Any]:
        """The body of ``POST /admin/weights/rollback``: back the way it came (same strategy)."""
        body: dict[str, Any] = {}
        if self.strategy is not None and self.kind == "full":
            body["strategy"] = self.strategy
        if self.drain_timeout_s is not None:
            body["drain_timeout_s"] = self.drain_timeout_s
        return body


@dataclass(frozen=True)
class CheckPolicy:
    window_s: float = 30.0  # seconds from the end of a replica's swap until its error rate is read
    max_error_rate: float = 0.0  # 5xx answers / all answers on the role endpoint over the window, 0..1


class ReplicaResult(BaseModel):
    url: str
    canary: bool
    outcome: Outcome = "untouched"
    previous: ModelInfo | None = None  # serving before the swap
    model: ModelInfo | None = None  # serving now (as last read)
    phase: Phase | None = None  # the step that failed
    reason: str | None = None
    error_rate: float | None = None  # over the check window
    window_requests: int | None = None  # answers on the role endpoint over the window
    swap_ms: float | None = None


class FleetSwapReport(BaseModel):
    role: str
    path: str
    version: str
    kind: WeightsKindName
    ok: bool
    exit_code: int
    failed_replica: str | None = None
    reason: str | None = None  # "<url>: <phase>: <why>"
    replicas: list[ReplicaResult]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of one replica: ``index`` counts from 0 (0 is the canary); ``detail`` is for people."""

    index: int
    url: str
    phase: Phase
    status: Literal["start", "ok", "failed"]
    detail: str = ""


Progress = Callable[[ProgressEvent], None]


# ------------------------------------------------------------------------------------ replicas


def replicas_from_urls(text: str) -> list[str]:
    """``http(s)://host:port[,...]`` -> base URLs without a trailing slash, in the given order,
    without repeats. Raises :class:`FleetInputError` naming the bad item."""
    urls: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FleetInputError(f"--replicas: {item!r} is not an http(s)://host[:port] URL")
        url = item.rstrip("/")
        if url not in urls:
            urls.append(url)
    if not urls:
        raise FleetInputError("--replicas: no replica URL given")
    return urls


def replicas_from_dns(name: str, default_port: int | None, scheme: str = "http") -> list[str]:
    """Every A and AAAA record of ``NAME[:PORT]`` (a Kubernetes headless Service lists each ready
    pod's address) as ``scheme://address:port``, sorted (IPv4 first). ``default_port`` is used when
    ``name`` has no port. Raises :class:`FleetInputError` when the name does not resolve or no
    port is known."""
    host, port = _split_host_port(name, default_port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FleetInputError(f"--dns: {host!r} does not resolve: {exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)},
                       key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))
    if not addresses:
        raise FleetInputError(f"--dns: {host!r} has no A or AAAA record")
    return [f"{scheme}://{f'[{a}]' if ':' in a else a}:{port}" for a in addresses]


def _split_host_port(name: str, default_port: int | None) -> tuple[str, int]:
    host, sep, port_text = name.rpartition(":")
    if not sep or "]" in port_text or (host.count(":") and not host.startswith("[")):
        host, port_text = name, ""  # no port (or a bare IPv6 address)
    host = host.strip("[]")
    if not host:
        raise FleetInputError(f"--dns: {name!r} has no host name")
    if not port_text:
        if default_port is None:
            raise FleetInputError(f"--dns: {name!r} needs a port (NAME:PORT)")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise FleetInputError(f"--dns: {port_text!r} is not a port (1-65535)")
    return host, int(port_text)


# --------------------------------------------------------------------------------- the swap


def _reason(response: httpx.Response) -> str:
    """``STATUS type: message`` of an error answer (the role services' error body), else its text."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['type']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:300]}"


def _model(status: Mapping[str, Any]) -> ModelInfo | None:
    model = status.get("model")
    return ModelInfo(**model) if model else None


def requests_by_code(metrics_text: str, endpoint: str) -> dict[str, float]:
    """``umi_requests_total`` samples of ``endpoint`` summed by status code (``{"200": 12.0, ...}``)."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "umi_requests_total" and sample.labels.get("endpoint") == endpoint:
                code = sample.labels.get("code", "")
                counts[code] = counts.get(code, 0.0) + sample.value
    return counts


def error_rate(before: Mapping[str, float], after: Mapping[str, float]) -> tuple[float, int]:
    """(5xx answers / all answers, all answers) between two :func:`requests_by_code` readings;
    (0.0, 0) when nothing was answered. Raises :class:`ReplicaFailure` when a counter went down."""
    deltas = {code: after.get(code, 0.0) - before.get(code, 0.0) for code in set(before) | set(after)}
    if any(d < 0 for d in deltas.values()):
        raise ReplicaFailure("error_rate", "its request counters went down: the process restarted during the check")
    total = sum(deltas.values())
    errors = sum(d for code, d in deltas.items() if code.startswith("5"))
    return (errors / total if total else 0.0), int(total)


def _answers(n: int) -> str:
    return f"{n} answer" if n == 1 else f"{n} answers"


def warm_up_body(spec: RoleSpec) -> dict[str, Any]:
    """A one-token greedy request valid for ``spec.request_model`` (tools and thought when it has them)."""
    user, planner = WARM_UP_HISTORY
    body: dict[str, Any] = {"history": [user.model_dump()], "sampling": {"max_tokens": 1, "temperature": 0.0}}
    fields = spec.request_model.model_fields
    if "tools" in fields:
        body["tools"] = [t.model_dump() for t in WARM_UP_TOOLS]
    if "thought" in fields:
        body["thought"] = planner.content
    return body


class FleetSwap:
    """One fleet swap (see the module docstring). ``run()`` never raises for a replica's failure:
    it is in the report."""

    def __init__(
        self,
        spec: RoleSpec,
        target: SwapTarget,
        replicas: Sequence[str],
        token: str,
        checks: CheckPolicy = CheckPolicy(),
        progress: Progress | None = None,
    ) -> None:
        if not replicas:
            raise FleetInputError("no replicas to swap")
        self.spec = spec
        self.target = target
        self.checks = checks
        self.progress = progress or (lambda event: None)
        self.results = [ReplicaResult(url=url, canary=i == 0) for i, url in enumerate(replicas)]
        self._headers = {"Authorization": f"Bearer {token}"}
        self._weights: dict[str, dict[str, Any]] = {}  # url -> the WeightsRef serving at preflight
        self._phase: Phase = "preflight"  # the step running now
        self._client: httpx.Client | None = None

    # -------------------------------------------------------------------- the run
    def run(self) -> FleetSwapReport:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            self._client = client
            try:
                return self._run()
            finally:
                self._client = None

    def _run(self) -> FleetSwapReport:
        for index, result in enumerate(self.results):
            try:
                self._step(index, "preflight", lambda: self._preflight(result))
            except ReplicaFailure as exc:
                return self._failed(index, exc)
        swapped: list[int] = []
        for index, result in enumerate(self.results):
            if self._serves_target(result):
                result.outcome = "skipped"
                self._emit(index, "skipped", "ok", f"already serves {self.target.version}")
                continue
            try:
                self._swap_and_check(index, result, swapped)
            except ReplicaFailure as exc:
                return self._failed(index, exc, swapped)
            except (KeyboardInterrupt, Exception) as exc:  # Ctrl-C, or a fault of ours: leave nothing half-done
                if index not in swapped and self._switched(result):
                    swapped.append(index)
                reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                return self._failed(index, ReplicaFailure(self._phase, reason), swapped)
            self._emit(index, "done", "ok", f"serves {self.target.version}")
        return self._report(None)

    def _swap_and_check(self, index: int, result: ReplicaResult, swapped: list[int]) -> None:
        before: dict[str, float] = {}
        started = time.monotonic()
        self._step(index, "swap", lambda: self._swap(index, result, swapped, before))
        result.swap_ms = round((time.monotonic() - started) * 1000, 1)
        window_start = time.monotonic()
        self._step(index, "ready", lambda: self._ready(result.url))
        self._step(index, "version", lambda: self._version(result))
        self._step(index, "warm_up", lambda: self._warm_up(result.url))
        self._step(index, "error_rate", lambda: self._error_rate(result, before, window_start),
                   f"watching for {self.checks.window_s:g} s")

    def _step(self, index: int, phase: Phase, action: Callable[[], str | None], detail: str = "") -> None:
        self._phase = phase
        self._emit(index, phase, "start", detail)
        try:
            outcome = action()
        except ReplicaFailure as exc:
            self._emit(index, exc.phase, "failed", exc.reason)
            raise
        except httpx.HTTPError as exc:
            reason = f"unreachable: {type(exc).__name__}: {exc}" if str(exc) else f"unreachable: {type(exc).__name__}"
            self._emit(index, phase, "failed", reason)
            raise ReplicaFailure(phase, reason) from None
        self._emit(index, phase, "ok", outcome or "")

    def _emit(self, index: int, phase: Phase, status: Literal["start", "ok", "failed"], detail: str = "") -> None:
        self.progress(ProgressEvent(index, self.results[index].url, phase, status, detail))

    # ------------------------------------------------------------------ the steps
    @property
    def client(self) -> httpx.Client:
        assert self._client is not None, "inside run()"
        return self._client

    def _admin_status(self, url: str, phase: Phase) -> dict[str, Any]:
        response = self.client.get(f"{url}/admin/weights", headers=self._headers)
        if response.status_code != 200:
            raise ReplicaFailure(phase, f"GET /admin/weights answered {_reason(response)}")
        status: dict[str, Any] = response.json()
        return status

    def _preflight(self, result: ReplicaResult) -> str:
        status = self._admin_status(result.url, "preflight")
        if status.get("role") != self.spec.role:
            raise ReplicaFailure("preflight", f"it serves the {status.get('role')} role, not {self.spec.role}")
        if status.get("swap") is not None:
            raise ReplicaFailure("preflight", "a swap is already in progress there")
        self._ready(result.url, "preflight")
        result.previous = result.model = _model(status)
        self._weights[result.url] = status.get("weights") or {}
        return f"serves {result.previous.name} {result.previous.version}" if result.previous else ""

    def _serves_target(self, result: ReplicaResult) -> bool:
        weights = self._weights.get(result.url, {})
        return (weights.get("path"), weights.get("kind"), weights.get("version")) == (
            self.target.path, self.target.kind, self.target.version
        )

    def _swap(self, index: int, result: ReplicaResult, swapped: list[int], before: dict[str, float]) -> str:
        before.update(self._requests_by_code(result.url))  # the error-rate window starts before the swap
        try:
            response = self.client.post(
                f"{result.url}/admin/weights", json=self.target.body(), headers=self._headers, timeout=SWAP_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            # The answer was lost: whether it switched is read back, so a rollback goes exactly one step.
            if self._switched(result):
                swapped.append(index)
            raise ReplicaFailure("swap", f"the swap request failed: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise ReplicaFailure("swap", f"the swap was refused: {_reason(response)}")
        swapped.append(index)
        result.outcome = "swapped"
        report = response.json()
        result.model = ModelInfo(**report["model"])
        return f"{report['previous']['version']} -> {report['model']['version']} ({report['strategy']})"

    def _switched(self, result: ReplicaResult) -> bool:
        try:
            model = _model(self._admin_status(result.url, "swap"))
        except (ReplicaFailure, httpx.HTTPError):
            return False
        return model is not None and model.version == self.target.version

    def _ready(self, url: str, phase: Phase = "ready") -> str:
        response = self.client.get(f"{url}/ready")
        if response.status_code != 200:
            state = response.json().get("state") if response.headers.get("content-type", "").startswith("application/json") else None
            raise ReplicaFailure(phase, f"not ready (/ready answered {response.status_code}{f', state {state}' if state else ''})")
        return ""

    def _version(self, result: ReplicaResult) -> str:
        model = _model(self._admin_status(result.url, "version"))
        result.model = model
        if model is None or model.version != self.target.version:
            raise ReplicaFailure("version", f"it reports version {model.version if model else None}, not {self.target.version}")
        return f"{model.name} {model.version}"

    def _warm_up(self, url: str) -> str:
        response = self.client.post(f"{url}{self.spec.path}", json=warm_up_body(self.spec))
        if response.status_code != 200:
            raise ReplicaFailure("warm_up", f"POST {self.spec.path} answered {_reason(response)}")
        version = response.json().get("model", {}).get("version")
        if version != self.target.version:
            raise ReplicaFailure("warm_up", f"POST {self.spec.path} was answered by version {version}, not {self.target.version}")
        return ""

    def _requests_by_code(self, url: str) -> dict[str, float]:
        response = self.client.get(f"{url}/metrics")
        if response.status_code != 200:
            raise ReplicaFailure("swap", f"GET /metrics answered {_reason(response)}")
        return requests_by_code(response.text, self.spec.path)

    def _error_rate(self, result: ReplicaResult, before: Mapping[str, float], window_start: float) -> str:
        time.sleep(max(0.0, self.checks.window_s - (time.monotonic() - window_start)))
        self._ready(result.url, "error_rate")
        rate, total = error_rate(before, self._requests_by_code(result.url))
        result.error_rate, result.window_requests = round(rate, 6), total
        if rate > self.checks.max_error_rate:
            raise ReplicaFailure(
                "error_rate", f"error rate {rate:.3f} over the window ({_answers(total)}) is above {self.checks.max_error_rate:g}"
            )
        return f"error rate {rate:.3f} over {_answers(total)}" + ("" if total > 1 else " (no traffic but the warm-up)")

    # ------------------------------------------------------------------ the failure
    def _failed(self, index: int, failure: ReplicaFailure, swapped: Sequence[int] = ()) -> FleetSwapReport:
        failing = self.results[index]
        failing.phase, failing.reason = failure.phase, failure.reason
        if failing.outcome != "swapped":
            failing.outcome = "failed"
        for i in reversed(swapped):
            self._roll_back(i)
        return self._report(index)

    def _roll_back(self, index: int) -> None:
        result = self.results[index]
        self._emit(index, "rollback", "start", f"back to {result.previous.version if result.previous else '?'}")
        try:
            response = self.client.post(f"{result.url}/admin/weights/rollback", json=self.target.rollback_body(), headers=self._headers,
                                        timeout=SWAP_TIMEOUT_S)
            if response.status_code != 200:
                raise ReplicaFailure("rollback", f"the rollback was refused: {_reason(response)}")
            result.model = ModelInfo(**response.json()["model"])
            if result.previous is not None and result.model.version != result.previous.version:
                raise ReplicaFailure("rollback", f"it went back to {result.model.version}, not {result.previous.version}")
        except (ReplicaFailure, httpx.HTTPError) as exc:
            reason = exc.reason if isinstance(exc, ReplicaFailure) else f"the rollback request failed: {type(exc).__name__}: {exc}"
            result.outcome = "rollback_failed"
            if result.reason is None:
                result.phase, result.reason = "rollback", reason
            else:
                result.reason += f"; then the rollback failed: {reason}"
            self._emit(index, "rollback", "failed", reason)
            return
        result.outcome = "rolled_back"
        self._emit(index, "rollback", "ok", f"serves {result.model.version}")

    def _report(self, failed: int | None) -> FleetSwapReport:
        t = self.target
        if failed is None:
            return FleetSwapReport(role=self.spec.role, path=t.path, version=t.version, kind=t.kind, ok=True,
                                   exit_code=EXIT_OK, replicas=self.results)
        result = self.results[failed]
        mixed = any(r.outcome == "rollback_failed" for r in self.results)
        return FleetSwapReport(
            role=self.spec.role, path=t.path, version=t.version, kind=t.kind, ok=False,
            exit_code=EXIT_MIXED if mixed else EXIT_FAILED, failed_replica=result.url,
            reason=f"{result.url}: {result.phase}: {result.reason}", replicas=self.results,
        )
