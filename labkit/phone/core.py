"""The virtual phone's provisioning logic (pure): what a factory-fresh MPP phone does, step by step.

DHCP → profile source from the DHCP options (DHCP_Option_To_Use order, tails, scheme fan-out)
→ else DNS SRV → else the cloud activation names (which the lab sinkholes) → fetch with the
documented status handling → follow the profile's Profile_Rule → upgrade per Upgrade_Rule when
the load differs. Every step lands in a timeline; the outcome says provisioned or why not.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from labkit import macros
from labkit.errors import CodecError
from labkit.formats import aes128gcm, flat_profile, openssl_enc
from labkit.phone import dhcp, discovery
from labkit.phone.effects import (
    DnsAnswer,
    Fetch,
    FetchResult,
    Lease,
    LeaseFailed,
    Log,
    LookupA,
    LookupSrv,
    Now,
    Sleep,
)
from labkit.phone.proxy import with_wire
from labkit.phone.reports import report_flow
from labkit.protocols.result import Fact

DEFAULT_RETRY_DELAYS = (60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 61440, 86400)
CLOUD_NAMES = ("activate.cisco.com", "webapps.cisco.com", "activation.webex.com")
MAX_REDIRECTS = 5
MAX_AUTH_RETRIES = 2  # reference §5: 401/407 retried with credentials at most twice


@dataclass(frozen=True)
class PhoneConfig:
    mac: str
    model: str  # CP-8851-3PCC
    serial: str | None = None
    load: str = "sip88xx.11-3-1MPP-0001"  # the running firmware load, as a .loads name without suffix
    ua_version: str = "11.3.1"
    option_order: tuple[int, ...] = discovery.DEFAULT_OPTION_ORDER
    weight_order: Literal["cisco", "rfc2782"] = "cisco"
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    rounds: int = 3  # failed rounds before the simulation gives up ("not provisioned")
    max_rule_hops: int = 4
    uid: str | None = None  # what a user would type on the "Profile account" screen
    pwd: str | None = None
    ikm: bytes | None = None  # IKM_HTTP_Encrypt_Content for RFC 8188 bodies
    cloud_names: tuple[str, ...] = CLOUD_NAMES
    hold: float = 0.0  # stay up this long after provisioning, renewing the lease at T1
    seed: int = 0  # the phone's random choices (xids, RFC 2131 backoff jitter) follow (mac, seed)
    check_cert_names: bool = True  # HTTPS certificate name checks (reference §2, §5); False: off

    @property
    def identity(self) -> dict[str, str]:
        return macros.identity_macros(mac=self.mac, model=self.model, serial=self.serial,
                                      sw_version=self.load)

    @property
    def user_agent(self) -> str:
        return f"Cisco-{self.model}/{self.ua_version} ({self.identity['MA']})"


@dataclass(frozen=True)
class Step:
    """One entry of the phone's timeline: a `Fact` of the shared result vocabulary, at a time of
    the phone's clock. The fact's action is the step's kind ("dhcp", "srv", "cloud", "fetch",
    "profile", "firmware", "wait", "renew"), its answer what happened, its result "ok" or "failed"."""

    time: float
    fact: Fact

    @classmethod
    def of(cls, time: float, kind: str, detail: str, ok: bool = True, phone: str | None = None) -> Step:
        return cls(time, Fact(kind, "", detail, "ok" if ok else "failed", phone))

    @property
    def kind(self) -> str:
        return self.fact.action

    @property
    def detail(self) -> str:
        return self.fact.answer

    @property
    def ok(self) -> bool:
        return self.fact.result == "ok"


@dataclass
class Outcome:
    mac: str
    provisioned: bool = False
    reason: str | None = None  # why not provisioned
    last_error: str | None = None
    profile_source: str | None = None  # URL of the last profile applied
    firmware: str | None = None  # the load running at the end
    sinkhole_hit: bool = False
    lease: Lease | None = None
    params: dict[str, str] = field(default_factory=dict)
    timeline: list[Step] = field(default_factory=list)

    @property
    def facts(self) -> tuple[Fact, ...]:
        """The timeline as facts, for `labkit.events.events_from` (service "phone")."""
        return tuple(step.fact for step in self.timeline)


@dataclass(frozen=True)
class _Failure:
    code: str  # "B" (404) or "C" (anything else), as the reference's status table
    error: str


Logic = Generator[Any, Any, Outcome]
Flow = Generator[Any, Any, Any]  # a sub-step of the logic: yields effects, returns its result


class Phone:
    def __init__(self, config: PhoneConfig) -> None:
        self.config = config
        self.outcome = Outcome(config.mac, firmware=config.load)
        self.identity = config.identity
        self.random = random.Random(f"{config.mac}/{config.seed}")
        self.cert_domains: dict[str, str] = {}  # SRV-found URL -> the domain its certificate must name

    # -- helpers ---------------------------------------------------------------------------------
    def _step(self, kind: str, detail: str, ok: bool = True) -> Flow:
        now = yield Now()
        self.outcome.timeline.append(Step.of(float(now), kind, detail, ok, self.config.mac))

    def _log(self, text: str) -> Flow:
        yield Log(f"{self.config.model} {self.identity['MAC']} -- {text}")

    def _fetch(self, url: str, *, method: str = "GET", body: bytes = b"", uid: str | None = None,
               pwd: str | None = None) -> Flow:
        """One resync request with the reference's status handling (§5)."""
        uid, pwd = uid or self.config.uid, pwd or self.config.pwd
        current, redirects, auth_tries = url, 0, 0
        while True:
            send_auth = auth_tries > 0
            fetch = Fetch(current, method, body, uid if send_auth else None, pwd if send_auth else None,
                          self.config.user_agent)
            domain, check = self.cert_domains.get(url), self.config.check_cert_names
            result: FetchResult = yield with_wire(fetch, self.outcome.params, domain, check)
            status = result.status
            if status is None:
                return _Failure("C", result.error or "no answer")
            if status == 200 or (status == 206 and method == "GET"):
                return result
            if status in (301, 302):
                location = result.header("Location")
                if not location or redirects >= MAX_REDIRECTS:
                    return _Failure("C", f"{status} without a usable Location")
                current, redirects = urljoin(current, location), redirects + 1
                yield from self._step("fetch", f"{status} -> {current}")
                continue
            if status in (401, 407):
                if uid is None or auth_tries >= MAX_AUTH_RETRIES:
                    why = "no credentials" if uid is None else "credentials refused"
                    return _Failure("C", f"{status} {why}")
                auth_tries += 1
                continue
            if status == 404:
                return _Failure("B", "404 not found")
            return _Failure("C", f"HTTP {status}")

    def _decode(self, result: FetchResult, key: str | None) -> dict[str, flat_profile.Param]:
        body = result.body
        # with a --key, AES-CBC wins regardless of the IKM (reference §4.3)
        if (result.header("Content-Encoding") or "").lower() == "aes128gcm" and key is None:
            if self.config.ikm is None:
                raise CodecError("aes128gcm body but no IKM configured")
            body = aes128gcm.decrypt(body, self.config.ikm)
        if key is not None:
            body, _ = openssl_enc.decrypt_any(body, key)
        if body[:2] == b"\x1f\x8b":  # gzip is detected by its magic, not by name or header
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as exc:
                raise CodecError(f"bad gzip: {exc}") from None
        return flat_profile.parse(body)

    def _resync(self, url: str, key: str | None = None, uid: str | None = None, pwd: str | None = None,
                post: str | None = None) -> Flow:
        yield from self._log(f"Requesting resync {url}")
        body = macros.expand(f"${post.upper()}", self.identity).encode() if post else b""
        result = yield from self._fetch(url, method="POST" if post else "GET", body=body, uid=uid, pwd=pwd)
        if isinstance(result, _Failure):
            yield from self._step("fetch", f"{url}: failure {result.code} ({result.error})", ok=False)
            yield from self._log(f"Resync failed: {result.error}")
            return result
        try:
            params = self._decode(result, key)
        except CodecError as exc:
            failure = _Failure("C", f"profile unreadable: {exc}")
            yield from self._step("profile", f"{url}: {failure.error}", ok=False)
            yield from self._log(f"Resync failed: {failure.error}")
            return failure
        yield from self._step("profile", f"{url}: {len(params)} parameters")
        yield from self._log(f"Successful resync {url}")
        return params

    # -- the flow --------------------------------------------------------------------------------
    def run(self) -> Logic:
        lease = yield from dhcp.acquire(self.random, self.config.rounds)
        if isinstance(lease, LeaseFailed):
            yield from self._step("dhcp", f"no lease: {lease.reason}", ok=False)
            return self._give_up("no DHCP lease", lease.reason)
        self.outcome.lease = lease
        self.identity = {**self.identity, "IP": lease.ip}
        yield from self._step("dhcp", f"lease {lease.ip} from {lease.server}; options "
                              + ",".join(str(c) for c in lease.options))
        candidates = discovery.dhcp_candidates(lease.options, self.identity, self.config.option_order)
        if not candidates:
            candidates = yield from self._srv(lease)
        if not candidates:
            yield from self._cloud()
            return self._give_up("not provisioned: no profile source from DHCP, SRV or the cloud",
                                 self.outcome.last_error)
        option66 = lease.options.get(66)
        server = option66 if isinstance(option66, str) else lease.server
        params, source = yield from self._first_profile(candidates)
        if params is None:
            return self._give_up("no profile could be fetched", self.outcome.last_error)
        self._apply(params, source)
        ok = yield from self._follow_rules(params, server)
        if ok:
            self.outcome.provisioned = True
            yield from self._report(server)
        yield from self._hold(lease)
        return self.outcome

    def _report(self, server: str | None) -> Flow:  # Report_Rule uploads, as after a restart
        uploads = yield from report_flow(self.outcome.params, self.identity, server=server,
                                         user_agent=self.config.user_agent, ikm=self.config.ikm)
        for upload in uploads:
            yield from self._step("report", upload.detail, upload.ok)

    def _hold(self, lease: Lease) -> Flow:
        """Stay up for `hold` seconds, renewing at T1 (option 58, else half the lease)."""
        remaining = self.config.hold
        while remaining > 0:
            t1 = lease.options.get(58)
            t1 = t1 if isinstance(t1, int) and t1 > 0 else max(1, lease.lease_time // 2)
            if t1 > remaining:
                yield Sleep(remaining)
                return
            yield Sleep(t1)
            remaining -= t1
            renewed = yield from dhcp.renew(lease, self.random, t1)
            if isinstance(renewed, LeaseFailed):
                yield from self._step("renew", f"renewing {lease.ip} at T1 failed: {renewed.reason}",
                                      ok=False)
                return
            lease = renewed
            yield from self._step("renew", f"renewed {lease.ip} at T1 ({t1} s)")

    def _srv(self, lease: Lease) -> Flow:
        domain = lease.options.get(15) if isinstance(lease.options.get(15), str) else "cisco.com"
        found: dict[str, list[discovery.SrvTarget]] = {}
        for service, _scheme in discovery.SRV_SERVICES:
            name = f"{service}.{domain}"
            answer: DnsAnswer = yield LookupSrv(name)
            yield from self._step("srv", f"{name}: {answer.rcode}, {len(answer.srv)} records",
                                  ok=answer.rcode == "NOERROR")
            if answer.srv:
                found[service] = list(answer.srv)
        candidates = discovery.srv_candidates(found, self.identity, self.config.weight_order)
        self.cert_domains.update({c.url: str(domain) for c in candidates if c.url.startswith("https:")})
        return candidates

    def _cloud(self) -> Flow:
        for name in self.config.cloud_names:
            answer: DnsAnswer = yield LookupA(name)
            self.outcome.sinkhole_hit = True
            addresses = ", ".join(answer.addresses)
            yield from self._step("cloud", f"{name}: {answer.rcode} {addresses}".strip(), ok=False)
        self.outcome.last_error = "cloud activation unreachable (sinkholed)"

    def _first_profile(self, candidates: list[discovery.Candidate]) -> Flow:
        for round_number in range(self.config.rounds):
            for candidate in candidates:
                result = yield from self._resync(candidate.url)
                if not isinstance(result, _Failure):
                    return result, candidate.url
                self.outcome.last_error = f"{result.code}: {result.error}"
            if round_number + 1 < self.config.rounds:
                yield from self._wait(round_number)
        return None, None

    def _wait(self, round_number: int) -> Flow:
        delays = self.config.retry_delays or (60,)
        delay = delays[min(round_number, len(delays) - 1)]  # the last delay repeats
        yield from self._step("wait", f"Resync_Error_Retry_Delay {delay:g} s")
        yield Sleep(delay)

    def _apply(self, params: dict[str, flat_profile.Param], source: str | None) -> None:
        self.outcome.params.update({name: p.value for name, p in params.items()})
        self.outcome.profile_source = source
        # GPP_A..P and GPP_SA..SD become the macros $A..$P, $SA..$SD (reference §3.2)
        gpp = {name[4:]: p.value for name, p in params.items() if name.startswith("GPP_")}
        self.identity = {**self.identity, **gpp}

    def _follow_rules(self, params: dict[str, flat_profile.Param], server: str | None) -> Flow:
        applied_rule: str | None = None
        for _ in range(self.config.max_rule_hops):
            rule = params.get("Profile_Rule")
            if rule is None or not rule.value or rule.value == applied_rule:
                break
            if "(" in rule.value.split("]")[-1] or "|" in rule.value:
                yield from self._step("profile", f"rule {rule.value!r}: conditions are not simulated",
                                      ok=False)
                break
            parsed = discovery.parse_simple_rule(rule.value, self.identity, server)
            applied_rule = rule.value
            result = yield from self._retrying_resync(parsed)
            if isinstance(result, _Failure):
                return False
            params = result
            self._apply(params, self.outcome.profile_source)
        return (yield from self._upgrade(params, server))

    def _rule_urls(self, rule: discovery.Rule) -> Flow:
        """The URLs a rule stands for: itself, or with `--srv` the SRV targets of its host."""
        if not rule.srv:
            return [rule.url]
        parts = urlsplit(rule.url)
        services = {scheme: service for service, scheme in discovery.SRV_SERVICES}
        service = services.get(parts.scheme)
        if service is None:  # "TFTP Scheme not supported in SRV lookups" (reference §2)
            yield from self._step("srv", f"{rule.url}: {parts.scheme.upper()} scheme not supported in SRV "
                                  "lookups", ok=False)
            return []
        name = f"{service}.{parts.hostname}"
        answer: DnsAnswer = yield LookupSrv(name)
        yield from self._step("srv", f"{name}: {answer.rcode}, {len(answer.srv)} records",
                              ok=answer.rcode == "NOERROR")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return [f"{parts.scheme}://{r.target.rstrip('.')}:{r.port}{path}"
                for r in discovery.order_srv(answer.srv, self.config.weight_order)]

    def _retrying_resync(self, rule: discovery.Rule) -> Flow:
        result: Any = _Failure("C", "no URL")
        urls = yield from self._rule_urls(rule)
        for round_number in range(self.config.rounds):
            for url in urls:
                result = yield from self._resync(url, key=rule.key, uid=rule.uid, pwd=rule.pwd,
                                                 post=rule.post)
                if not isinstance(result, _Failure):
                    self.outcome.profile_source = url
                    return result
                self.outcome.last_error = f"{result.code}: {result.error}"
            if round_number + 1 < self.config.rounds:
                yield from self._wait(round_number)
        self.outcome.reason = f"resync to {rule.url} failed"
        return result

    def _upgrade(self, params: dict[str, flat_profile.Param], server: str | None) -> Flow:
        rule = params.get("Upgrade_Rule")
        if rule is None or not rule.value:
            return True
        parsed = discovery.parse_simple_rule(rule.value, self.identity, server)
        path = urlsplit(parsed.url).path
        load = path.rsplit("/", 1)[-1].removesuffix(".loads")
        if load == self.outcome.firmware:
            yield from self._step("firmware", f"{load} already running")
            return True
        for round_number in range(self.config.rounds):
            yield from self._log(f"Requesting upgrade {parsed.url}")
            result = yield from self._fetch(parsed.url, uid=parsed.uid, pwd=parsed.pwd)
            if not isinstance(result, _Failure):
                self.outcome.firmware = load
                yield from self._step("firmware",
                                      f"{parsed.url}: {len(result.body)} bytes, now running {load}")
                yield from self._log(f"Successful upgrade {parsed.url}")
                return True
            self.outcome.last_error = f"{result.code}: {result.error}"
            yield from self._step("firmware", f"{parsed.url}: failure {result.code} ({result.error})",
                                  ok=False)
            if round_number + 1 < self.config.rounds:
                yield from self._wait(round_number)
        self.outcome.reason = f"firmware upgrade from {parsed.url} failed"
        return False

    def _give_up(self, reason: str, error: str | None) -> Outcome:
        self.outcome.reason = reason
        self.outcome.last_error = error or self.outcome.last_error
        return self.outcome
