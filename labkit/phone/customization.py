"""Remote customization: the cloud activation step and its states (S12, reference §1.4).

When no DHCP-supplied server (nor SRV) provisions the phone, it asks the activation service;
two editions of the chapter say it then "starts again from DHCP", the activation service being
retried with growing delays (the loop is the boot flow's, labkit.phone.core).

Cisco's activation protocol is not public. The request is labkit's lab shape [I], fixed by the
cross-helper contract: `GET https://<name>/lab/v1/activation?mac=$MA&model=$PN&serial=$SN
[&code=CODE]`, names in order activate.cisco.com, webapps.cisco.com, activation.webex.com (a GDS
activation code asks activation.webex.com only). The answer is 200 text/plain with one line,
the provisioning URL (state Custom-Pending, then Acquired once that profile is read), or 404
with `no service provider` (state Unavailable). With the lab's default sinkhole nothing answers:
state Pending.
"""

from __future__ import annotations

from urllib.parse import urlencode

from labkit.phone.effects import DnsAnswer, FetchResult, LookupA
from labkit.phone.fetching import NO_TLS_CHECKS, Failure, Flow, PhoneBase
from labkit.phone.state import ACQUIRED, CUSTOM_PENDING, PENDING, UNAVAILABLE

ACTIVATION_PATH = "/lab/v1/activation"
GDS_NAME = "activation.webex.com"  # GDS activation-code onboarding (reference §1.4, S1)
NO_SERVICE_PROVIDER = "no service provider"


def activation_url(name: str, identity: dict[str, str], code: str | None = None) -> str:
    query = {"mac": identity["MA"], "model": identity["PN"], "serial": identity.get("SN", "")}
    if code:
        query["code"] = code
    return f"https://{name}{ACTIVATION_PATH}?{urlencode(query)}"


class Customization(PhoneBase):
    """The remote customization state and the activation request."""

    def _set_state(self, state: str, why: str, ok: bool = True) -> Flow:
        self.outcome.customization = state
        yield from self._step("customization", f"{state}: {why}", ok=ok)

    def _activate(self, code: str | None = None) -> Flow:
        """Ask the activation service; the profile's parameters and URL when Acquired, else None
        (the state says why)."""
        names = (GDS_NAME,) if code else self.config.cloud_names
        for name in names:
            answer: DnsAnswer = yield LookupA(name)
            addresses = ", ".join(answer.addresses)
            reached = answer.rcode == "NOERROR" and bool(answer.addresses)
            yield from self._step("cloud", f"{name}: {answer.rcode} {addresses}".strip(), ok=reached)
            if not reached:
                self.outcome.sinkhole_hit = True
                continue
            url = activation_url(name, self.identity, code)
            result: FetchResult = yield self._request(url, "GET", b"", None, None, NO_TLS_CHECKS)
            if result.status == 404 and NO_SERVICE_PROVIDER in result.body.decode("utf-8", "replace"):
                yield from self._set_state(UNAVAILABLE, f"{name} has no service provider for this phone",
                                           ok=False)
                self.outcome.last_error = f"{name}: {NO_SERVICE_PROVIDER}"
                return None
            target = _first_line(result) if result.status == 200 else None
            if target is None:
                why = result.error or f"HTTP {result.status}"
                yield from self._step("cloud", f"{url}: {why}", ok=False)
                self.outcome.sinkhole_hit = True
                continue
            yield from self._set_state(CUSTOM_PENDING, f"{name} gave the provisioning URL {target}")
            params = yield from self._resync(target)
            if isinstance(params, Failure):
                self.outcome.last_error = f"{params.code}: {params.error}"
                return None
            yield from self._set_state(ACQUIRED, f"profile from {target}")
            return params, target
        yield from self._set_state(PENDING, "the activation service did not answer", ok=False)
        # the DHCP-supplied server's failure, when there was one, says more than the sinkhole
        self.outcome.last_error = self.outcome.last_error or "cloud activation unreachable (sinkholed)"
        return None


def _first_line(result: FetchResult) -> str | None:
    text = result.body.decode("utf-8", "replace").strip()
    line = text.splitlines()[0].strip() if text else ""
    return line if "://" in line else None

