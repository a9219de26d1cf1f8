"""The virtual phone's provisioning logic (pure): what an MPP phone does, step by step.

DHCP → profile source from the DHCP options (DHCP_Option_To_Use order, the factory names of its
firmware generation, scheme fan-out) → else DNS SRV → fetch with the documented status handling.
When the DHCP-supplied server fails, remote customization (the activation service) and then
"starts again from DHCP", the activation service retried with growing delays (two editions of
the chapter; labkit.phone.customization). Once a profile is read: Profile_Rule, _B, _C, _D,
Upgrade_Rule, and with a `duration` the life after it (labkit.phone.life). Every step lands in a
timeline; the outcome says provisioned or why not.

The modules along the way: state (settings, outcome), fetching (one request), customization
(activation), rules (the rule sequence, upgrades), settings (what a profile sets), life.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from labkit.phone import dhcp, discovery
from labkit.phone.effects import DnsAnswer, Lease, LeaseFailed, LookupSrv, Now, Sleep
from labkit.phone.fetching import Failure, Flow, host_of
from labkit.phone.life import Life
from labkit.phone.reports import report_flow
from labkit.phone.settings import pick
from labkit.phone.state import (
    ABORTED,
    CLOUD_NAMES,
    DEFAULT_RETRY_DELAYS,
    OPEN,
    UNAVAILABLE,
    Outcome,
    PhoneConfig,
    Step,
)

__all__ = ["CLOUD_NAMES", "DEFAULT_RETRY_DELAYS", "Logic", "Outcome", "Phone", "PhoneConfig", "Step"]

Logic = Generator[Any, Any, Outcome]


class Phone(Life):
    def run(self) -> Logic:
        got: Any = None
        lease: Lease | None = None
        sources = False  # did DHCP or SRV name any location at all
        for cycle in range(max(1, self.config.rounds)):
            acquired = yield from self._lease()
            if isinstance(acquired, LeaseFailed):
                return self._give_up("no DHCP lease", acquired.reason)
            lease = acquired
            candidates = yield from self._candidates(lease)
            sources = sources or bool(candidates)
            got = yield from self._first_profile(candidates)
            if got is not None:
                if self.outcome.customization == OPEN:
                    # "Aborted: remote customization is stopped due to other provisioning such as
                    # DHCP options" (S12)
                    yield from self._set_state(ABORTED, f"provisioned from {got[1]}")
                break
            # the DHCP-supplied server failed: remote customization, then DHCP again (two editions)
            if self.config.remote_customization and self.outcome.customization != UNAVAILABLE:
                got = yield from self._activate(self.config.activation_code)
                if got is not None:
                    break
            if cycle + 1 < self.config.rounds:
                yield from self._wait(cycle)
        if got is None or lease is None:
            if not sources:
                return self._give_up("not provisioned: no profile source from DHCP, SRV or the cloud",
                                     self.outcome.last_error)
            return self._give_up("no profile could be fetched", self.outcome.last_error)
        params, source = got
        self._apply(params, source)
        self.rules_ok = yield from self._boot_rules()
        self.firmware_ok = (yield from self._boot_upgrade()) if self.rules_ok else False
        self._settle()
        if self.outcome.provisioned:  # Report_Rule uploads, as after a restart (reports.py)
            yield from self._report()
        if self.config.duration > 0:
            yield from self._live(lease)
        else:
            yield from self._hold(lease)
        return self.outcome

    def _report(self) -> Flow:
        uploads = yield from report_flow(self.outcome.params, self.identity, server=self.last_host,
                                         user_agent=self.user_agent, ikm=self.config.ikm,
                                         check_names=self.config.check_cert_names)
        for upload in uploads:
            yield from self._step("report", upload.detail, upload.ok)

    def _lease(self) -> Flow:
        lease = yield from dhcp.acquire(self.random, self.config.rounds)
        if isinstance(lease, LeaseFailed):
            yield from self._step("dhcp", f"no lease: {lease.reason}", ok=False)
            return lease
        self.outcome.lease = lease
        self.identity = {**self.identity, "IP": lease.ip}
        yield from self._step("dhcp", f"lease {lease.ip} from {lease.server}; options "
                              + ",".join(str(c) for c in lease.options))
        option66 = lease.options.get(66)
        # a rule without a server uses "the host that requests the URL" (reference §3.1): until
        # the phone has talked to a server, the DHCP-supplied one (a URL in 66 gives its host)
        self.last_host = host_of(option66 if isinstance(option66, str) else None) or lease.server
        domain = lease.options.get(15)
        self.srv_domain = domain if isinstance(domain, str) else None
        return lease

    def _candidates(self, lease: Lease) -> Flow:
        """Where the phone looks: DHCP options, else DNS SRV; each with its TLS checks."""
        tails = self.traits.factory_names
        found = discovery.dhcp_candidates(lease.options, self.identity, self.config.option_order, tails)
        if found:
            return [(c, None) for c in found]
        return (yield from self._srv(lease))

    def _srv(self, lease: Lease) -> Flow:
        domain = self.srv_domain or "cisco.com"  # no DHCP domain: the phone's default (reference §2)
        self.srv_domain = domain  # what the SRV targets' certificates must name
        found: dict[str, list[discovery.SrvTarget]] = {}
        for service, _scheme in discovery.SRV_SERVICES:
            name = f"{service}.{domain}"
            answer: DnsAnswer = yield LookupSrv(name)
            yield from self._step("srv", f"{name}: {answer.rcode}, {len(answer.srv)} records",
                                  ok=answer.rcode == "NOERROR")
            if answer.srv:
                found[service] = list(answer.srv)
        candidates = discovery.srv_candidates(found, self.identity, self.config.weight_order,
                                              self.traits.factory_names)
        return [(c, self._tls_for_srv() if c.url.startswith("https:") else None) for c in candidates]

    def _first_profile(self, candidates: list[tuple[discovery.Candidate, Any]]) -> Flow:
        """One pass over the candidates: the first profile read, with its URL, or None."""
        for candidate, tls in candidates:
            if tls is None:
                result = yield from self._resync(candidate.url)
            else:
                result = yield from self._resync(candidate.url, tls=tls)
            if not isinstance(result, Failure):
                return result, candidate.url
            self.outcome.last_error = f"{result.code}: {result.error}"
        return None

    def _wait(self, round_number: int, delays: tuple[float, ...] | None = None,
              name: str = "Resync_Error_Retry_Delay") -> Flow:
        delay = pick(delays or self.config.retry_delays or (60,), round_number)  # the last repeats
        yield from self._step("wait", f"{name} {delay:g} s")
        yield Sleep(delay)

    def _boot_rules(self) -> Flow:
        """The rule sequence until the Profile_Rule is stable, retried after Resync_Error_Retry_Delay."""
        result: Any = True
        for round_number in range(self.config.rounds):
            for _ in range(self.config.max_rule_hops):
                before = self.outcome.params.get("Profile_Rule")
                result = yield from self._sequence()
                if isinstance(result, Failure) or self.outcome.params.get("Profile_Rule") == before:
                    break
            if not isinstance(result, Failure):
                return True
            if round_number + 1 < self.config.rounds:
                yield from self._wait(round_number, self.settings().error_delays)
        rule = self.outcome.params.get("Profile_Rule", "")
        self.outcome.reason = f"resync to {rule} failed"
        return False

    def _boot_upgrade(self) -> Flow:
        """The first upgrade: with a duration the phone's life retries it; else `rounds` tries here."""
        tries = 1 if self.config.duration > 0 else self.config.rounds
        for attempt in range(tries):
            now = yield from self._now()
            yield from self._try_upgrade(now)
            if self.firmware_ok:
                return True
            if attempt + 1 < tries and self.next_upgrade is not None:
                yield Sleep(max(0.0, self.next_upgrade - now))
        if self.config.duration <= 0:
            rule = self.outcome.params.get("Upgrade_Rule", "")
            self.outcome.reason = f"firmware upgrade from {rule} failed"
        return False

    def _now(self) -> Flow:
        return float((yield Now()))

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

    def _give_up(self, reason: str, error: str | None) -> Outcome:
        self.outcome.reason = reason
        self.outcome.last_error = error or self.outcome.last_error
        return self.outcome
