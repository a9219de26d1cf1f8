"""The inventory's fault rules (and `--fault` rules) as the pure engine's rules.

Each action becomes the plain, frozen action type its protocol core declares: lists become
tuples, dicts read-only mappings, hex payloads bytes. Labels are the rule's name, or
"fault N (service)" with N counted over the inventory's rules, then the command line's.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from labkit.faults.engine import Match, Rule, When
from labkit.inventory.faults import AcsFault, DhcpFault, DnsFault, FaultRule, HttpFault, TftpFault
from labkit.protocols.cwmp.faults import AcsFaultAction
from labkit.protocols.dhcp.faults import DhcpFaultAction
from labkit.protocols.dns.faults import DnsFaultAction
from labkit.protocols.http_faults import HttpFaultAction
from labkit.protocols.tftp.faults import TftpFaultAction


def dhcp_action(fault: DhcpFault) -> DhcpFaultAction:
    replace = {code: bytes(payload) for code, payload in fault.replace.items()}  # validated as bytes
    return DhcpFaultAction(drop=fault.drop, delay=fault.delay, nak=fault.nak, omit=tuple(fault.omit),
                           replace=MappingProxyType(replace), malformed=fault.malformed)


def dns_action(fault: DnsFault) -> DnsFaultAction:
    return DnsFaultAction(rcode=fault.rcode, drop=fault.drop, srv_port=fault.srv_port,
                          srv_target=fault.srv_target, ttl0=fault.ttl0, truncate=fault.truncate)


def tftp_action(fault: TftpFault) -> TftpFaultAction:
    return TftpFaultAction(**fault.model_dump())


def http_action(fault: HttpFault) -> HttpFaultAction:
    return HttpFaultAction(**{**fault.model_dump(), "trailers": tuple(fault.trailers.items())})


def acs_action(fault: AcsFault) -> AcsFaultAction:
    return AcsFaultAction(**fault.model_dump())


def action_of(rule: FaultRule) -> Any:
    """The rule's action as its core's plain type."""
    if rule.dhcp is not None:
        return dhcp_action(rule.dhcp)
    if rule.dns is not None:
        return dns_action(rule.dns)
    if rule.tftp is not None:
        return tftp_action(rule.tftp)
    if rule.acs is not None:
        return acs_action(rule.acs)
    assert rule.http is not None  # the schema guarantees exactly one service
    return http_action(rule.http)


def plan_rule(rule: FaultRule, index: int) -> Rule[Any]:
    """`index`: the rule's place (from 0) among all the lab's rules, for its default label."""
    match = Match(**rule.match.model_dump())
    when = When(**rule.when.model_dump())
    return Rule(rule.label(index), rule.service, action_of(rule), match, when)


def plan_faults(rules: Sequence[FaultRule], *, first_index: int = 0) -> tuple[Rule[Any], ...]:
    """Engine rules for `rules`; `first_index`: how many rules come before them (CLI after inventory)."""
    return tuple(plan_rule(rule, first_index + i) for i, rule in enumerate(rules))
