"""Knot 3.2, NSD 4.6 and BIND 9.18: the zones labkit serves, with primary and secondary configs.

The zone files are the plan's own text (what `labkit render` shows and the kit answers from).
The primary notifies the secondary and allows it to transfer; the secondary's address is a
placeholder (192.0.2.53) unless given. Every path lies under the export folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.export.common import ExportReport, fault_gaps, service_address, service_port
from labkit.plan.build import Plan

SECONDARY_PLACEHOLDER = "192.0.2.53"


@dataclass(frozen=True)
class Ends:
    primary: str
    primary_port: int
    secondary: str
    secondary_port: int


def _ends(plan: Plan, options: dict[str, Any]) -> Ends:
    inv = plan.inventory
    return Ends(options.get("primary_address") or service_address(inv, "dns"),
                int(options.get("primary_port") or service_port(inv, "dns", 53)),
                options.get("secondary_address") or SECONDARY_PLACEHOLDER,
                int(options.get("secondary_port") or 53))


def _start(target: str, plan: Plan, out_dir: Path) -> tuple[ExportReport, Path]:
    report = ExportReport(target, out_dir)
    fault_gaps(report, plan.inventory)
    zones = out_dir.resolve() / "zones"
    for zone in plan.zones.values():
        report.write(zones / zone.file_name, zone.text)
        if zone.sinkhole and zone.sinkhole_address is None:
            report.notes.append(f"sinkhole {zone.name}: names below it get NXDOMAIN as from labkit; "
                                "the apex itself answers NODATA (its SOA exists), labkit says NXDOMAIN")
    if not plan.inventory.services.dns.enabled:
        report.notes.append("services.dns is disabled in the inventory: exported anyway")
    return report, zones


def knot_configs(plan: Plan, out: Path, zones: Path, ends: Ends) -> dict[str, str]:
    names = [z.name for z in plan.zones.values()]
    common = "log:\n  - target: stdout\n    any: info\n"
    primary = (f'server:\n    rundir: "{out}/knot-primary"\n    listen: {ends.primary}@{ends.primary_port}\n'
               f'{common}database:\n    storage: "{out}/knot-primary"\n'
               f"remote:\n  - id: secondary\n    address: {ends.secondary}@{ends.secondary_port}\n"
               f"acl:\n  - id: secondary_transfer\n    address: {ends.secondary}\n    action: transfer\n"
               f'template:\n  - id: default\n    storage: "{zones}"\n    file: "%s.zone"\n'
               "    zonefile-sync: -1\n    journal-content: none\n"
               "zone:\n" + "".join(f"  - domain: {n}\n    notify: secondary\n    acl: secondary_transfer\n"
                                  for n in names))
    secondary = (f'server:\n    rundir: "{out}/knot-secondary"\n'
                 f"    listen: {ends.secondary}@{ends.secondary_port}\n"
                 f'{common}database:\n    storage: "{out}/knot-secondary"\n'
                 f"remote:\n  - id: primary\n    address: {ends.primary}@{ends.primary_port}\n"
                 f"acl:\n  - id: primary_notify\n    address: {ends.primary}\n    action: notify\n"
                 f'template:\n  - id: default\n    storage: "{out}/knot-secondary/zones"\n'
                 '    file: "%s.zone"\n'
                 "zone:\n" + "".join(f"  - domain: {n}\n    master: primary\n    acl: primary_notify\n"
                                    for n in names))
    return {"knot-primary.conf": primary, "knot-secondary.conf": secondary}


def nsd_configs(plan: Plan, out: Path, zones: Path, ends: Ends) -> dict[str, str]:
    def server(role: str, address: str, port: int, zonesdir: Path) -> str:
        run = out / f"nsd-{role}"
        return (f"server:\n    ip-address: {address}@{port}\n    zonesdir: \"{zonesdir}\"\n"
                '    database: ""\n    username: ""\n    chroot: ""\n'
                f'    pidfile: "{run}/nsd.pid"\n    xfrdfile: "{run}/xfrd.state"\n'
                f'    zonelistfile: "{run}/zone.list"\n    xfrdir: "{run}"\n    verbosity: 1\n'
                "remote-control:\n    control-enable: no\n")
    primary = server("primary", ends.primary, ends.primary_port, zones)
    secondary = server("secondary", ends.secondary, ends.secondary_port, out / "nsd-secondary")
    for zone in plan.zones.values():
        primary += (f"zone:\n    name: {zone.name}\n    zonefile: \"{zone.file_name}\"\n"
                    f"    notify: {ends.secondary}@{ends.secondary_port} NOKEY\n"
                    f"    provide-xfr: {ends.secondary} NOKEY\n")
        secondary += (f"zone:\n    name: {zone.name}\n    zonefile: \"{zone.file_name}\"\n"
                      f"    allow-notify: {ends.primary} NOKEY\n"
                      f"    request-xfr: {ends.primary}@{ends.primary_port} NOKEY\n")
    return {"nsd-primary.conf": primary, "nsd-secondary.conf": secondary}


def bind_configs(plan: Plan, out: Path, zones: Path, ends: Ends) -> dict[str, str]:
    def options(role: str, address: str, port: int, extra: str) -> str:
        run = out / f"bind-{role}"
        return (f'options {{\n    directory "{run}";\n    pid-file "{run}/named.pid";\n'
                f'    session-keyfile "{run}/session.key";\n    managed-keys-directory "{run}";\n'
                f"    listen-on port {port} {{ {address}; }};\n    listen-on-v6 {{ none; }};\n"
                f"    recursion no;\n{extra}}};\ncontrols {{ }};\n")
    primary = options("primary", ends.primary, ends.primary_port,
                      f"    allow-transfer {{ {ends.secondary}; }};\n    notify explicit;\n"
                      f"    also-notify {{ {ends.secondary} port {ends.secondary_port}; }};\n")
    secondary = options("secondary", ends.secondary, ends.secondary_port,
                        f"    allow-notify {{ {ends.primary}; }};\n    allow-transfer {{ none; }};\n")
    for zone in plan.zones.values():
        primary += f'zone "{zone.name}" {{\n    type primary;\n    file "{zones / zone.file_name}";\n}};\n'
        secondary += (f'zone "{zone.name}" {{\n    type secondary;\n'
                      f"    primaries {{ {ends.primary} port {ends.primary_port}; }};\n"
                      f'    file "{zone.file_name}";\n}};\n')
    return {"named-primary.conf": primary, "named-secondary.conf": secondary}


def _export(target: str, builder: Any, checks: str, plan: Plan, out_dir: Path,
            options: dict[str, Any]) -> ExportReport:
    report, zones = _start(target, plan, out_dir)
    out = out_dir.resolve()
    ends = _ends(plan, options)
    for name, text in builder(plan, out, zones, ends).items():
        report.write(out_dir / name, text)
    for role in ("primary", "secondary"):
        (out / f"{target}-{role}").mkdir(parents=True, exist_ok=True)
    if ends.secondary == SECONDARY_PLACEHOLDER:
        report.notes.append(f"the secondary's address is a placeholder ({SECONDARY_PLACEHOLDER}): "
                            "set it in both configurations")
    report.notes.append(checks)
    return report


def export_knot(plan: Plan, out_dir: Path, **options: Any) -> ExportReport:
    return _export("knot", knot_configs, "check: knotc -c knot-primary.conf conf-check; "
                   "kzonecheck -o ZONE zones/ZONE.zone", plan, out_dir, options)


def export_nsd(plan: Plan, out_dir: Path, **options: Any) -> ExportReport:
    return _export("nsd", nsd_configs, "check: nsd-checkconf nsd-primary.conf; "
                   "nsd-checkzone ZONE zones/ZONE.zone", plan, out_dir, options)


def export_bind(plan: Plan, out_dir: Path, **options: Any) -> ExportReport:
    return _export("bind", bind_configs, "check: named-checkconf -z named-primary.conf",
                   plan, out_dir, options)
