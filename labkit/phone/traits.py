"""Firmware generations: what a factory-fresh phone of one generation does that another does not.

The vendor chapter's editions disagree, and each disagreement is a generation here (a row of
`GENERATIONS`), selectable per phone or per model (`PhoneConfig.generation`):

- which profile names a factory phone requests from a DHCP-supplied server, and in which order:
  three editions say the factory `Profile_Rule` is `$PN.cfg` on the option 66 TFTP server; S4/S5/S6
  give `/$PSN.xml` then `/Cisco/$PN/$MA.cfg`; all five tell the administrator to place `$PSN.xml`
  in the web root "or `$MA.cfg` in `<web root>/Cisco/`" (reference §1.3, §2);
- the unit of `Resync_Random_Delay`: S4 (2017) says seconds, S5 (2025) and S27 say 20 s units
  (reference §3.3);
- whether a 301 is remembered for later requests ([I]: the chapter does not say per firmware;
  issue 11 asks that it change the URL of future requests).

Which firmware version carried which behaviour is not public: the generation names describe the
behaviour, not a release ([I]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from labkit.errors import LabkitError

# The names the kit can serve (reference §1.3, §2; issue 11), in the inventory's spelling.
PSN_XML = "/$PSN.xml"
PN_CFG = "/$PN.cfg"
CISCO_MA = "/Cisco/$MA.cfg"
CISCO_PN_MA = "/Cisco/$PN/$MA.cfg"
FACTORY_NAMES: tuple[str, ...] = (PSN_XML, PN_CFG, CISCO_PN_MA, CISCO_MA)  # main names first
MODEL_NAMES = frozenset({PSN_XML, PN_CFG})  # one file per model: the bootstrap profile
PHONE_NAMES = frozenset({CISCO_MA, CISCO_PN_MA})  # one file per phone: its full profile


@dataclass(frozen=True)
class Traits:
    name: str
    description: str
    factory_names: tuple[str, ...]  # the tails a factory phone requests, in order
    random_delay_unit: float = 20.0  # seconds per Resync_Random_Delay unit
    remember_301: bool = True  # "a 301 changes the URL of future requests" (issue 11) [I]


GENERATIONS: Mapping[str, Traits] = {
    t.name: t
    for t in (
        Traits("mpp-11", "S4/S6 (2017-2018): /$PSN.xml then /Cisco/$PN/$MA.cfg; "
               "Resync_Random_Delay in seconds", (PSN_XML, CISCO_PN_MA), random_delay_unit=1.0),
        Traits("mpp-12", "S5/S27 (2025): /$PSN.xml then /Cisco/$PN/$MA.cfg; "
               "Resync_Random_Delay in 20 s units", (PSN_XML, CISCO_PN_MA), random_delay_unit=20.0),
        Traits("pn-cfg", "three editions: the factory Profile_Rule is $PN.cfg on the option 66 "
               "server; Resync_Random_Delay in seconds", (PN_CFG,), random_delay_unit=1.0),
        Traits("cisco-ma", "the 'place $PSN.xml in the web root or $MA.cfg in <web root>/Cisco/' "
               "wording: /$PSN.xml then /Cisco/$MA.cfg; 20 s units", (PSN_XML, CISCO_MA),
               random_delay_unit=20.0),
    )
}
# The newest guide's wording (S5, 2025) is the default; the request order is the one labkit's
# phone has always used.
DEFAULT_GENERATION = "mpp-12"


class UnknownGeneration(LabkitError):
    """A firmware generation not in the table."""


def traits(name: str) -> Traits:
    try:
        return GENERATIONS[name]
    except KeyError:
        raise UnknownGeneration(f"unknown firmware generation {name!r}; known: "
                                + ", ".join(GENERATIONS)) from None


def generation_for(model: str, by_model: Mapping[str, str], default: str = DEFAULT_GENERATION) -> str:
    """The generation a phone of `model` runs: `by_model` (model or `*`) first, else `default`."""
    return by_model.get(model, by_model.get("*", default))
