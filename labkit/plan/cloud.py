"""The lab activation service's ready config and its answer (pure): which provisioning URL the
emulated cloud gives a phone, or `no service provider`.

The request shape is labkit's own [I] (Cisco's cloud protocol is not public; the cross-helper
contract of this round): `GET /lab/v1/activation?mac=$MA&model=$PN&serial=$SN[&code=CODE]`,
answered 200 text/plain with one line (the URL: customization state Acquired) or 404
`no service provider` (state Unavailable).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from labkit import macros
from labkit.errors import CodecError
from labkit.inventory.model import ActivationCode, Inventory
from labkit.inventory.phones import Phone

ACTIVATION_PATH = "/lab/v1/activation"
NO_SERVICE_PROVIDER = "no service provider"


@dataclass(frozen=True)
class CodePlan:
    url: str | None  # None: the phone's own URL
    phones: frozenset[str] | None  # None: any phone


@dataclass(frozen=True)
class KnownPhone:
    """What the inventory knows of a phone the cloud may be asked about."""

    model: str
    name: str | None
    group: str | None
    serial: str | None
    ip: str | None


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CloudPlan:
    lab_name: str  # for the lab CA that issues the cloud names' certificate
    names: tuple[str, ...]
    phones: Mapping[str, str] = field(default_factory=_empty)  # MAC -> URL (macros unexpanded)
    groups: Mapping[str, str] = field(default_factory=_empty)
    models: Mapping[str, str] = field(default_factory=_empty)
    default: str | None = None
    codes: Mapping[str, CodePlan] = field(default_factory=lambda: MappingProxyType({}))
    known: Mapping[str, KnownPhone] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Activation:
    status: int  # 200 or 404 (400 for a request without a usable MAC)
    body: str  # the URL, or why not
    why: str  # which rule decided, for the event and `labkit explain`


def plan_cloud(inv: Inventory) -> CloudPlan | None:
    """The emulated cloud's config; None when the inventory keeps the sinkhole."""
    cloud = inv.cloud
    if cloud.mode != "emulate":
        return None
    codes = {}
    for code, given in cloud.codes.items():
        if isinstance(given, ActivationCode):
            phones = frozenset(given.phones) if given.phones is not None else None
            codes[code] = CodePlan(given.url, phones)
        else:
            codes[code] = CodePlan(given, None)
    known = known_phones(inv)
    return CloudPlan(inv.lab.name, tuple(cloud.names), MappingProxyType(dict(cloud.phones)),
                     MappingProxyType(dict(cloud.groups)), MappingProxyType(dict(cloud.models)),
                     cloud.default, MappingProxyType(codes), known)


class KnownPhones(Mapping[str, KnownPhone]):
    """MAC -> KnownPhone, read from the inventory's phones when asked: held for the whole run by
    the cloud and the HTTP routes, a KnownPhone per phone made up front cost ~2.5 MiB a copy at
    10,000 phones, most of which no request ever looks up. The MAC index is built on first use."""

    def __init__(self, phones: Sequence[Phone]) -> None:
        self._phones = phones
        self._index: dict[str, int] | None = None

    def _where(self) -> dict[str, int]:
        if self._index is None:
            self._index = {p.mac: i for i, p in enumerate(self._phones)}
        return self._index

    def __getitem__(self, mac: str) -> KnownPhone:
        p = self._phones[self._where()[mac]]
        return KnownPhone(p.model, p.name, p.group, p.serial, str(p.ip) if p.ip else None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where())

    def __len__(self) -> int:
        return len(self._where())


def known_phones(inv: Inventory) -> Mapping[str, KnownPhone]:
    return KnownPhones(inv.phones)


def _own_url(plan: CloudPlan, mac: str, model: str) -> tuple[str | None, str]:
    """The URL this section gives the phone, by the most specific match, and which one matched."""
    known = plan.known.get(mac)
    if mac in plan.phones:
        return plan.phones[mac], f"cloud.phones[{mac}]"
    if known is not None and known.group is not None and known.group in plan.groups:
        return plan.groups[known.group], f"cloud.groups[{known.group}]"
    if model in plan.models:
        return plan.models[model], f"cloud.models[{model}]"
    if plan.default is not None:
        return plan.default, "cloud.default"
    return None, "no entry for this phone in cloud.phones, groups, models nor default"


def _plain(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "", text)[:64]


def activation(plan: CloudPlan, query: Mapping[str, str]) -> Activation:
    """What the emulated cloud answers an activation request with these query fields."""
    try:
        mac = macros.normalize_mac(query.get("mac", ""))
    except CodecError:
        return Activation(400, "the request names no MAC (mac=$MA)", "no mac in the request")
    known = plan.known.get(mac)
    # the inventory knows its phones better than a query says; what a query says is kept to the
    # characters a model or serial has, so the answer stays one line of a URL
    model = known.model if known else _plain(query.get("model", ""))
    serial = (known.serial if known else None) or _plain(query.get("serial", "")) or None
    code = query.get("code")
    if code:
        entry = plan.codes.get(code)
        if entry is None:
            return Activation(404, NO_SERVICE_PROVIDER, f"unknown activation code {code!r}")
        if entry.phones is not None and mac not in entry.phones:
            return Activation(404, NO_SERVICE_PROVIDER, f"activation code {code!r} is not for {mac}")
        url, why = (entry.url, f"cloud.codes[{code}]") if entry.url else _own_url(plan, mac, model)
    else:
        url, why = _own_url(plan, mac, model)
    if url is None:
        return Activation(404, NO_SERVICE_PROVIDER, why)
    try:
        identity = macros.identity_macros(mac=mac, model=model or "unknown", serial=serial,
                                          ip=known.ip if known else None)
    except CodecError:
        identity = {}
    return Activation(200, macros.expand(url, identity), why)
