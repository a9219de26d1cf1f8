"""Kea 2.2 kea-dhcp4: the plan's DHCP as one `kea-dhcp4.conf` (plus a standby with `ha=True`).

The overlay global -> class -> model -> phone maps onto Kea's precedence (reservation > class >
global): kit and global options go to the global `option-data`, each inventory class becomes a
client class testing option 60 (defined in reverse inventory order, since Kea's first class wins
and labkit's last class wins), and a phone's reservation carries exactly the options where Kea's
class/global view differs from the phone's planned set (model and phone levels, a different
`force`). The result is checked against the plan per phone while writing: what Kea would send a
phone is computed from the entries written, and any code where it differs is a gap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labkit.export.common import (
    ExportError,
    ExportReport,
    dhcp_gaps,
    fault_gaps,
    matching_classes,
    pattern_parts,
)
from labkit.export.kea_options import DERIVED, FLEX, KeaOptionError, OptionDefs, option_entries
from labkit.plan.build import Plan
from labkit.plan.dhcp import OptionSet

HOOKS = Path("/usr/lib/x86_64-linux-gnu/kea/hooks")
Entries = dict[int, tuple[bytes, bool]]  # code -> (payload, always-send)
LEASE_BACKENDS = ("memfile", "postgresql", "mysql")
MAX_OPTION_60 = 255


def _entries(options: OptionSet) -> Entries:
    return {code: (p.payload, p.forced) for code, p in options.options.items()
            if code not in DERIVED and code not in FLEX}


def _literal(text: str) -> str:
    """A Kea expression string constant: quoted text when plain, else a hex literal (exact)."""
    if text and text.isascii() and text.isprintable() and "'" not in text and "\\" not in text:
        return f"'{text}'"
    return "0x" + text.encode("latin-1", "replace").hex().upper()


def class_test(pattern: str) -> str | None:
    """A Kea expression true when option 60 matches the shell pattern, or None if inexpressible."""
    parts = pattern_parts(pattern)
    if parts is None or len(parts) > 3:
        return None
    value = "option[60].hex"
    if len(parts) == 1:
        return f"{value} == {_literal(pattern)}"
    prefix, suffix, middle = parts[0], parts[-1], parts[1:-1]
    clauses = []
    if prefix:
        clauses.append(f"substring({value},0,{len(prefix)}) == {_literal(prefix)}")
    if suffix:
        clauses.append(f"substring({value},-{len(suffix)},all) == {_literal(suffix)}")
    if prefix and suffix and not middle:  # "ab*ba" must not match "aba": at least len(a)+len(b)
        clauses.append(f"not (substring({value},{len(prefix) + len(suffix) - 1},1) == '')")
    if middle and middle[0]:
        inner = middle[0]
        # Kea 2.2 has no "contains": every offset option 60 (at most 255 bytes) allows, spelled out
        start, stop = len(prefix), MAX_OPTION_60 - len(inner) - len(suffix)
        offsets = [f"substring({value},{o},{len(inner)}) == {_literal(inner)}"
                   for o in range(start, stop + 1)]
        clauses.append("(" + " or ".join(offsets) + ")")
    return " and ".join(clauses) if clauses else "true"


def _data(entries: Entries, defs: OptionDefs, report: ExportReport, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for code, (payload, send) in sorted(entries.items()):
        try:
            out += option_entries(code, payload, send, defs)
        except KeaOptionError as exc:
            report.gap(f"{where} option {code}", str(exc))
    return out


class KeaLayout:
    """Global, class and reservation entries for a plan, and Kea's view for a given client."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.global_entries = _entries(plan.pool_options)
        self.classes: dict[str, Entries] = {}
        for match, options in plan.class_options.items():
            mine = _entries(options)
            self.classes[match] = {c: e for c, e in mine.items() if self.global_entries.get(c) != e}

    def view(self, vendor_class: str) -> Entries:
        """What Kea sends (before reservations) to a client sending option 60 = vendor_class."""
        seen = dict(self.global_entries)
        for cls in matching_classes(self.plan.inventory, vendor_class):
            seen.update(self.classes.get(cls.match, {}))  # the last inventory class wins, as in labkit
        return seen

    def reservation(self, mac: str) -> Entries:
        phone_plan = self.plan.phones[mac]
        base = self.view(phone_plan.vendor_class)
        wanted = _entries(phone_plan.options)
        return {c: e for c, e in wanted.items() if base.get(c) != e}


def _class_159(plan: Plan, vendor_class: str) -> bytes | None:
    """The 159 a client gets from the class/global part of the flex expression."""
    for cls in reversed(matching_classes(plan.inventory, vendor_class)):
        planned = plan.class_options[cls.match].options.get(159)
        if planned is not None and planned.level == f"class {cls.match}":
            return planned.payload
    return plan.pool_options.payload(159)


def _flex_159(plan: Plan, class_names: dict[str, str]) -> str | None:
    """One flex_option `add` expression giving each client its 159: phone, then class, then global."""
    chain: list[tuple[str, bytes]] = []
    for mac, phone_plan in plan.phones.items():
        payload = phone_plan.options.payload(159)
        if payload is not None and payload != _class_159(plan, phone_plan.vendor_class):
            chain.append((f"pkt4.mac == 0x{mac.replace(':', '').upper()}", payload))
    for match in reversed(list(plan.class_options)):  # Kea evaluates left to right: last class first
        planned = plan.class_options[match].options.get(159)
        if planned is not None and planned.level == f"class {match}":
            chain.append((f"member('{class_names[match]}')", planned.payload))
    default = plan.pool_options.payload(159)
    if not chain and default is None:
        return None
    expression = "0x" + default.hex().upper() if default else "''"
    for test, payload in reversed(chain):
        expression = f"ifelse({test}, 0x{payload.hex().upper()}, {expression})"
    return expression


def _lease_database(backend: str, out_dir: Path) -> dict[str, Any]:
    if backend == "memfile":
        return {"type": "memfile", "persist": True, "name": str(out_dir / "kea-leases4.csv"),
                "lfc-interval": 3600}
    port = 5432 if backend == "postgresql" else 3306
    return {"type": backend, "name": "kea", "host": "127.0.0.1", "port": port, "user": "kea",
            "password": "CHANGE-ME"}


def _derived_gaps(plan: Plan, report: ExportReport) -> None:
    """Kea derives 1/51/58/59 from the subnet and lifetimes: one value for every client."""
    pool = plan.pool_options
    sets = [(f"class {m}", o) for m, o in plan.class_options.items()]
    sets += [(f"phone {mac}", p.options) for mac, p in plan.phones.items()]
    for where, options in sets:
        for code in sorted(DERIVED):
            if options.payload(code) != pool.payload(code):
                report.gap(f"{where} option {code}", "Kea takes the subnet mask and lease times from "
                           "the subnet for every client; a per-class or per-phone value is not exported")


INVENTORY_CLASS = "labkit-inventory-phone"  # no test: given only by a reservation


def _classes(plan: Plan, layout: KeaLayout, defs: OptionDefs, report: ExportReport,
             names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for index, match in reversed(list(enumerate(plan.class_options))):
        test = class_test(match)
        if test is None:
            report.gap(f"dhcp.classes[{index}] match {match!r}", "Kea expressions cannot test "
                       "this pattern (only `*` wildcards, at most one inner part)")
            continue
        out.append({"name": names[match], "test": test, "user-context": {"labkit-match": match},
                    "option-data": _data(layout.classes[match], defs, report, f"class {match!r}")})
    return out


def _reservations(plan: Plan, layout: KeaLayout, defs: OptionDefs,
                  report: ExportReport) -> list[dict[str, Any]]:
    out = []
    for mac, phone_plan in plan.phones.items():
        phone = phone_plan.phone
        host: dict[str, Any] = {"hw-address": mac}
        if phone.ip is not None:
            host["ip-address"] = str(phone.ip)
        host["user-context"] = {"labkit-phone": phone.name or mac, "model": phone.model}
        host["option-data"] = _data(layout.reservation(mac), defs, report, f"phone {mac}")
        if phone.ip is None and not host["option-data"]:
            # Kea refuses a reservation that reserves nothing ("must include at least one
            # resource"); a class assigned only here is one, and changes no option
            host["client-classes"] = [INVENTORY_CLASS]
        out.append(host)
    return out


def _subnet(plan: Plan, reservations: list[dict[str, Any]]) -> dict[str, Any]:
    inv = plan.inventory
    subnet: dict[str, Any] = {"id": 1, "subnet": str(inv.lab.address.network),
                              "reservations": reservations}
    if inv.lab.pool is not None:
        pool: dict[str, Any] = {"pool": f"{inv.lab.pool.start} - {inv.lab.pool.end}"}
        if inv.lab.answer == "inventory":
            pool["client-class"] = "KNOWN"  # labkit answers only inventory phones
        subnet["pools"] = [pool]
    return subnet


def kea_config(plan: Plan, report: ExportReport, *, out_dir: Path, interface: str,
               lease_backend: str = "memfile") -> dict[str, Any]:
    """The Dhcp4 configuration (without high availability)."""
    pool = plan.pool_options.decoded()
    layout = KeaLayout(plan)
    defs = OptionDefs()
    names = {match: f"labkit-class-{i + 1}" for i, match in enumerate(plan.class_options)}
    global_data = _data(layout.global_entries, defs, report, "global")
    classes = _classes(plan, layout, defs, report, names)
    reservations = _reservations(plan, layout, defs, report)
    if any(INVENTORY_CLASS in host.get("client-classes", ()) for host in reservations):
        classes.append({"name": INVENTORY_CLASS})
    _derived_gaps(plan, report)
    dhcp4: dict[str, Any] = {
        "interfaces-config": {"interfaces": [interface], "dhcp-socket-type": "raw"},
        "lease-database": _lease_database(lease_backend, out_dir),
        "valid-lifetime": pool[51], "renew-timer": pool[58], "rebind-timer": pool[59],
        "authoritative": True,
        "echo-client-id": False,  # labkit does not echo option 61 either
        "host-reservation-identifiers": ["hw-address"],
        "option-def": defs.entries(),
        "option-data": global_data,
        "client-classes": classes,
        "subnet4": [_subnet(plan, reservations)],
        "hooks-libraries": [],
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}],
                     "severity": "INFO"}],
    }
    flex = _flex_159(plan, names)
    if flex is not None:
        dhcp4["hooks-libraries"].append({
            "library": str(HOOKS / "libdhcp_flex_option.so"),
            "parameters": {"options": [{"code": 159, "add": flex}]}})
    return {"Dhcp4": dhcp4}


def ha_configs(config: dict[str, Any], *, peers: tuple[tuple[str, str], tuple[str, str]]
               ) -> dict[str, dict[str, Any]]:
    """A hot-standby pair: the same configuration, each with its `this-server-name`.

    Peers talk over Kea's own HTTP listener (multi-threading with a dedicated listener), so no
    kea-ctrl-agent is needed. A primary whose partner is unreachable waits and serves no DHCP."""
    out = {}
    for this, _ in peers:
        copy = json.loads(json.dumps(config))
        dhcp4 = copy["Dhcp4"]
        # each server identifies itself by its own address: a shared server id would send the
        # phones' renewals to a peer that may be down
        dhcp4["option-data"] = [e for e in dhcp4["option-data"] if e.get("code") != 54]
        dhcp4["multi-threading"] = {"enable-multi-threading": True, "thread-pool-size": 4,
                                    "packet-queue-size": 64}
        dhcp4["hooks-libraries"] += [
            {"library": str(HOOKS / "libdhcp_lease_cmds.so")},
            {"library": str(HOOKS / "libdhcp_ha.so"), "parameters": {"high-availability": [{
                "this-server-name": this, "mode": "hot-standby", "heartbeat-delay": 10000,
                "max-response-delay": 60000, "max-ack-delay": 5000, "max-unacked-clients": 0,
                "multi-threading": {"enable-multi-threading": True, "http-dedicated-listener": True,
                                    "http-listener-threads": 0, "http-client-threads": 0},
                "peers": [{"name": name, "url": url, "role": role, "auto-failover": True}
                          for (name, url), role in zip(peers, ("primary", "standby"), strict=True)],
            }]}},
        ]
        out[this] = copy
    return out


def export_kea(plan: Plan, out_dir: Path, *, lease_backend: str = "memfile", ha: bool = False,
               interface: str | None = None, ha_peers: tuple[tuple[str, str], tuple[str, str]] | None = None,
               **_: Any) -> ExportReport:
    if lease_backend not in LEASE_BACKENDS:
        raise ExportError(f"lease backend {lease_backend!r}: expected one of {', '.join(LEASE_BACKENDS)}")
    inv = plan.inventory
    report = ExportReport("kea", out_dir)
    fault_gaps(report, inv)
    dhcp_gaps(report, inv)
    iface = interface or inv.lab.interface or "eth0"
    if not (interface or inv.lab.interface):
        report.notes.append("no lab.interface: the configuration names eth0; set the interface")
    config = kea_config(plan, report, out_dir=out_dir.resolve(), interface=iface,
                        lease_backend=lease_backend)
    if not ha:
        report.write(out_dir / "kea-dhcp4.conf", json.dumps(config, indent=2) + "\n")
    else:
        kit = str(inv.lab.address.ip)
        peers = ha_peers or (("primary", f"http://{kit}:8000/"), ("standby", "http://192.0.2.2:8000/"))
        for name, conf in ha_configs(config, peers=peers).items():
            report.write(out_dir / f"kea-dhcp4-{name}.conf", json.dumps(conf, indent=2) + "\n")
        report.notes.append("high availability: set each peer's url (the standby's is a placeholder, "
                            "192.0.2.2) and give the standby its own interface address; a primary "
                            "whose partner is unreachable waits and serves no DHCP")
    if lease_backend != "memfile":
        report.notes.append(f"{lease_backend}: create the schema with `kea-admin db-init {lease_backend}` "
                            "and set user/password in lease-database")
    first = report.files[0]
    report.notes.append(f"check: kea-dhcp4 -t {first}; run: kea-dhcp4 -c {first}")
    if plan.pool_options.payload(159) is not None or any(
            p.options.payload(159) is not None for p in plan.phones.values()):
        report.notes.append("option 159 goes through the flex_option hook: Kea adds it to every "
                            "answer for which it is planned, whether the client asks for it or not")
    return report
