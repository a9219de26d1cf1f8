"""Profile_Rule, _B, _C, _D and Upgrade_Rule, as the phone evaluates them at each resync.

"Rules evaluated in order Profile_Rule, _B, _C, _D each resync; a failed evaluation interrupts
the sequence and the whole sequence restarts after Resync_Error_Retry_Delay" (reference §3.1).
A later profile overrides an earlier one (§4.1): each profile read is applied before the next
rule is read, so a profile may set the rules that follow it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from labkit.phone import discovery
from labkit.phone.customization import Customization
from labkit.phone.effects import DnsAnswer, LookupSrv
from labkit.phone.fetching import NO_TLS_CHECKS, Failure, Flow, Params, Tls
from labkit.phone.settings import RULE_NAMES, LifeSettings


class RuleRunner(Customization):
    """Applying profiles, evaluating the rule sequence, and one upgrade attempt."""

    srv_domain: str | None = None  # the DHCP-supplied domain (option 15), for SRV certificate checks
    _upgrade_noted: str | None = None  # the last Upgrade_Rule found already running (said once)

    def settings(self) -> LifeSettings:
        return LifeSettings.of(self.outcome.params, self.identity, unit=self.traits.random_delay_unit,
                               default_delays=self.config.retry_delays)

    def _apply(self, params: Params, source: str | None) -> None:
        self.outcome.params.update({name: p.value for name, p in params.items()})
        self.outcome.profile_source = source
        # GPP_A..P and GPP_SA..SD become the macros $A..$P, $SA..$SD (reference §3.2)
        gpp = {name[4:]: p.value for name, p in params.items() if name.startswith("GPP_")}
        self.identity = {**self.identity, **gpp}
        # "HTTP User Agent Name" overrides the User-Agent when not blank (reference §5, S9)
        self.user_agent = self.settings().user_agent or self.config.user_agent

    def _tls_for_srv(self) -> Tls:
        if not self.config.check_cert_names:
            return NO_TLS_CHECKS
        # "all SRV records use a valid certificate containing the DHCP provided domain name"
        # and the server address is tested against the certificate name's lookup (reference §2, §5)
        return Tls(self.srv_domain, True)

    def _rule_urls(self, rule: discovery.Rule) -> Flow:
        """The URLs a rule stands for: itself, or with `--srv` the SRV targets of its host."""
        if not rule.srv:
            return [(rule.url, NO_TLS_CHECKS)]
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
        tls = self._tls_for_srv() if parts.scheme == "https" else NO_TLS_CHECKS
        return [(f"{parts.scheme}://{r.target.rstrip('.')}:{r.port}{path}", tls)
                for r in discovery.order_srv(answer.srv, self.config.weight_order)]

    def _run_rule(self, name: str, value: str) -> Flow:
        """One rule: (params, url), a `Failure`, or None when there is nothing to fetch."""
        if value.lower().startswith("gds://"):
            # `gds://` = activation-code onboarding (reference §3.1, S1): the activation service
            got = yield from self._activate(code=value[6:].strip("/") or None)
            return got if got is not None else Failure("C", self.outcome.last_error or "activation failed")
        if "(" in value.split("]")[-1] or "|" in value:
            yield from self._step("profile", f"{name} {value!r}: conditions are not simulated", ok=False)
            return None
        rule = discovery.parse_simple_rule(value, self.identity, self.last_host)
        urls = yield from self._rule_urls(rule)
        result: Any = Failure("C", f"{rule.url}: no URL to try")
        for url, tls in urls:
            result = yield from self._resync(url, key=rule.key, uid=rule.uid, pwd=rule.pwd, post=rule.post,
                                             tls=tls)
            if not isinstance(result, Failure):
                return result, url
        return result

    def _sequence(self) -> Flow:
        """Profile_Rule, _B, _C, _D in order: True, or the `Failure` that interrupted it."""
        for name in RULE_NAMES:
            value = (self.outcome.params.get(name) or "").strip()
            if not value:
                continue
            result = yield from self._run_rule(name, value)
            if result is None:
                continue
            if isinstance(result, Failure):
                if result.not_found and not self.settings().fails_on_fnf:
                    # "When it is set to No, the phone accepts a file-not-found response from the
                    # server as a successful resync" (Resync_Fails_On_FNF, reference §3.3)
                    yield from self._step("resync", f"{name}: file not found accepted "
                                          "(Resync_Fails_On_FNF No)")
                    continue
                self.outcome.last_error = f"{result.code}: {result.error}"
                return result
            params, url = result
            self._apply(params, url)
        return True

    def _upgrade(self) -> Flow:
        """One look at Upgrade_Rule: True when nothing is to do or the upgrade worked, else the Failure."""
        settings = self.settings()
        value = (self.outcome.params.get("Upgrade_Rule") or "").strip()
        if not value or not settings.upgrade_enable:
            return True
        rule = discovery.parse_simple_rule(value, self.identity, self.last_host)
        load = urlsplit(rule.url).path.rsplit("/", 1)[-1].removesuffix(".loads")
        if load == self.outcome.firmware:
            # "no re-download if the load is already active" (reference §6)
            if self._upgrade_noted != value:
                self._upgrade_noted = value
                yield from self._step("firmware", f"{load} already running")
            return True
        yield from self._log(f"Requesting upgrade {rule.url}")
        result = yield from self._fetch(rule.url, uid=rule.uid, pwd=rule.pwd)
        if isinstance(result, Failure):
            self.outcome.last_error = f"{result.code}: {result.error}"
            yield from self._step("firmware", f"{rule.url}: failure {result.code} ({result.error})", ok=False)
            return result
        self.outcome.firmware = load
        self.outcome.upgrades += 1
        self.identity = {**self.identity, "SWVER": load}
        yield from self._step("firmware", f"{rule.url}: {len(result.body)} bytes, now running {load}")
        yield from self._log(f"Successful upgrade {rule.url}")
        return True
