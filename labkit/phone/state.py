"""The virtual phone's settings, its timeline entries and its outcome (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from labkit import macros
from labkit.phone import discovery, traits
from labkit.phone.effects import Lease
from labkit.protocols.result import Fact

DEFAULT_RETRY_DELAYS = (60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 61440, 86400)
CLOUD_NAMES = ("activate.cisco.com", "webapps.cisco.com", "activation.webex.com")

# The remote customization states of S12 ("View the customization state"), as the phone's
# Status page shows them.
OPEN = "Open"  # first boot, not configured yet
ABORTED = "Aborted"  # stopped because other provisioning (DHCP options, SRV) worked
PENDING = "Pending"  # the activation server could not be reached, or gave no answer
CUSTOM_PENDING = "Custom-Pending"  # the activation server gave a provisioning URL
ACQUIRED = "Acquired"  # the profile at that URL was fetched
UNAVAILABLE = "Unavailable"  # the activation server has no service provider for this phone
CUSTOMIZATION_STATES = (OPEN, ABORTED, PENDING, CUSTOM_PENDING, ACQUIRED, UNAVAILABLE)


@dataclass(frozen=True)
class PhoneConfig:
    mac: str
    model: str  # CP-8851-3PCC
    serial: str | None = None
    load: str = "sip88xx.11-3-1MPP-0001"  # the running firmware load, as a .loads name without suffix
    ua_version: str = "11.3.1"
    option_order: tuple[int, ...] = discovery.DEFAULT_OPTION_ORDER
    weight_order: Literal["cisco", "rfc2782"] = "cisco"
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS  # until a profile sets its own list
    rounds: int = 3  # failed rounds before the simulation gives up ("not provisioned")
    max_rule_hops: int = 4
    uid: str | None = None  # what a user would type on the "Profile account" screen
    pwd: str | None = None
    ikm: bytes | None = None  # IKM_HTTP_Encrypt_Content for RFC 8188 bodies
    cloud_names: tuple[str, ...] = CLOUD_NAMES
    hold: float = 0.0  # stay up this long after provisioning, renewing the lease at T1
    seed: int = 0  # the phone's random choices (xids, RFC 2131 backoff jitter) follow (mac, seed)
    generation: str = traits.DEFAULT_GENERATION  # firmware generation (labkit.phone.traits)
    duration: float = 0.0  # phone seconds to live after boot: resyncs, upgrades, retries
    activation_code: str | None = None  # GDS onboarding code typed on the phone
    remote_customization: bool = True  # Webex_Onboard_Enable, default Yes (reference §3.3, S1)
    check_cert_names: bool = True  # SRV: certificate must name the DHCP domain (reference §2, §5)

    @property
    def traits(self) -> traits.Traits:
        return traits.traits(self.generation)

    @property
    def identity(self) -> dict[str, str]:
        return dict(self._identity)  # a copy: callers may add to it

    @cached_property
    def _identity(self) -> dict[str, str]:
        """Made once per phone (its fields are frozen): every fetch and rule expands with it."""
        return macros.identity_macros(mac=self.mac, model=self.model, serial=self.serial,
                                      sw_version=self.load)

    @cached_property
    def user_agent(self) -> str:
        return f"Cisco-{self.model}/{self.ua_version} ({self._identity['MA']})"


@dataclass(frozen=True)
class Step:
    """One entry of the phone's timeline: a `Fact` of the shared result vocabulary, at a time of
    the phone's clock. The fact's action is the step's kind ("dhcp", "srv", "cloud",
    "customization", "fetch", "profile", "resync", "firmware", "reboot", "wait", "renew"), its
    answer what happened, its result "ok" or "failed"."""

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
    customization: str = OPEN  # the remote customization state at the end
    resyncs: int = 0  # successful resyncs after the first provisioning
    resync_failures: int = 0  # failed ones (each followed by Resync_Error_Retry_Delay)
    upgrades: int = 0  # firmware upgrades done
    moved: dict[str, str] = field(default_factory=dict)  # 301s remembered: old URL -> new URL
    provisioned_at: float | None = None  # phone clock when first provisioned (its life goes on)

    @property
    def facts(self) -> tuple[Fact, ...]:
        """The timeline as facts, for `labkit.events.events_from` (service "phone")."""
        return tuple(step.fact for step in self.timeline)
