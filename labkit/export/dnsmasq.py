"""dnsmasq 2.90: the plan's DHCP, authoritative DNS and TFTP in one `dnsmasq.conf`.

Options: untagged lines for the global level, `tag:classN,tag:!known` lines for what a pool
client of a class gets differently, and per-phone `tag:` lines for exactly the codes where a
phone's planned set differs from the global lines (a tagged option beats an untagged one in
dnsmasq, and a phone never carries a class tag line). `dhcp-option-force` where labkit sends
an option unasked. dnsmasq's own defaults (router and DNS = itself) are switched off where the
plan has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.export.common import (
    ExportReport,
    dhcp_gaps,
    fault_gaps,
    pattern_parts,
    service_address,
    service_port,
    write_tree,
)
from labkit.export.dnsmasq_options import hex_bytes, option_lines
from labkit.plan.build import Plan
from labkit.plan.dhcp import OptionSet

DERIVED = {1, 51, 54}  # from dhcp-range (mask, lease) and the interface address
# dnsmasq sends itself as router and DNS server, and the broadcast address, unless told otherwise
DEFAULTS_OFF = (3, 6, 28)
Entries = dict[int, tuple[bytes, bool]]


def _entries(options: OptionSet) -> Entries:
    return {c: (p.payload, p.forced) for c, p in options.options.items() if c not in DERIVED}


def _lines(tags: str, entries: Entries) -> list[str]:
    out: list[str] = []
    for code, (payload, forced) in sorted(entries.items()):
        prefix = ("dhcp-option-force=" if forced else "dhcp-option=") + tags
        out += option_lines(prefix, code, payload)
    return out


def _class_match(index: int, match: str, report: ExportReport, answer_any: bool) -> tuple[list[str], str]:
    """Lines setting tags for option 60 ~ `match`, and the tag list options use."""
    parts = pattern_parts(match)
    base = f"class{index + 1}"
    if parts is None:
        report.gap(f"dhcp.classes[{index}] match {match!r}", "dnsmasq cannot match `?` or `[...]`")
        return [], ""
    lines, tags = [], []
    if len(parts) == 1 or parts[0]:
        # dhcp-match on option 60 compares a prefix (exact bytes)
        lines.append(f"dhcp-match=set:{base}p,60,{hex_bytes(parts[0].encode())}")
        tags.append(f"tag:{base}p")
    for n, inner in enumerate(p for p in parts[1:] if p):
        lines.append(f"dhcp-vendorclass=set:{base}s{n},{inner}")  # a substring anywhere in option 60
        tags.append(f"tag:{base}s{n}")
    if answer_any and (len(parts) == 1 or parts[-1] or len([p for p in parts[1:] if p]) > 1):
        report.gap(f"dhcp.classes[{index}] match {match!r}",
                   "dnsmasq matches option 60 by prefix and substring only: a client whose option 60 "
                   "merely contains the pattern's parts gets the class too")
    return lines, ",".join(tags)


def dhcp_section(plan: Plan, report: ExportReport, out_dir: Path) -> list[str]:
    inv = plan.inventory
    lease = inv.dhcp.lease_time
    net = inv.lab.address.network
    global_entries = _entries(plan.pool_options)
    lines = [
        "# --- DHCP",
        "dhcp-authoritative",
        "# no-ping: dnsmasq offers a new address at once instead of pinging it for ~3 s first;",
        "# the consequence: a device squatting a pool address without a lease gets a duplicate.",
        "no-ping",
        f"dhcp-leasefile={out_dir / 'dnsmasq.leases'}",
        f"dhcp-range={net.network_address},static,{net.netmask},{lease}",
    ]
    if inv.lab.pool is not None:
        lines.append(f"dhcp-range={inv.lab.pool.start},{inv.lab.pool.end},{net.netmask},{lease}")
    if inv.lab.answer == "inventory":
        lines += ["# answer: inventory - only the phones below", "dhcp-ignore=tag:!known"]
    for code in DEFAULTS_OFF:
        if code not in global_entries:
            lines += [f"# option {code} is not planned: dnsmasq must not send itself", f"dhcp-option={code}"]
    lines += ["# global level (and what labkit derives itself)", *_lines("", global_entries)]
    for index, (match, options) in enumerate(plan.class_options.items()):
        match_lines, tags = _class_match(index, match, report, inv.lab.answer == "any")
        if not tags:
            continue
        mine = {c: e for c, e in _entries(options).items() if global_entries.get(c) != e}
        lines += [f"# class {match!r} (pool clients; phones get their own lines)", *match_lines,
                  *_lines(tags + ",tag:!known,", mine)]
    lines += _phone_lines(plan, global_entries, lease)
    return lines


def _phone_lines(plan: Plan, global_entries: Entries, lease: int) -> list[str]:
    lines = ["# phones: reservations, and what each gets beyond the global lines"]
    for mac, phone_plan in plan.phones.items():
        phone = phone_plan.phone
        tag = "ph-" + mac.replace(":", "")
        ip = f",{phone.ip}" if phone.ip is not None else ""
        lines += [f"# {phone.name or phone.model}", f"dhcp-host={mac},set:{tag}{ip},{lease}"]
        mine = _entries(phone_plan.options)
        lines += _lines(f"tag:{tag},", {c: e for c, e in mine.items() if global_entries.get(c) != e})
    return lines


def dns_section(plan: Plan, report: ExportReport) -> list[str]:
    inv = plan.inventory
    if not inv.services.dns.enabled:
        return ["# --- DNS: disabled in the inventory", "port=0"]
    address = service_address(inv, "dns")
    lines = ["# --- authoritative DNS (no recursion: no-resolv, no upstream servers)",
             f"port={service_port(inv, 'dns', 53)}", "no-resolv", "no-hosts",
             f"auth-server=ns.{inv.lab.domain},{address}", f"auth-ttl={inv.dns.ttl}"]
    lab_zone = plan.zones.get(inv.lab.domain)
    if lab_zone is not None:
        soa = lab_zone.records[0].rdata
        lines.append(f"auth-soa={soa.times[0]},hostmaster.{inv.lab.domain},3600,600,86400")
    for zone in plan.zones.values():
        lines.append(f"auth-zone={zone.name}")
        lines += _records(zone.name, zone.records, report)
    return lines


def _records(zone: str, records: tuple[Any, ...], report: ExportReport) -> list[str]:
    out = []
    for rr in records:
        name, kind = str(rr.rname).rstrip("."), rr.rtype
        if kind in (2, 6):  # NS and SOA: dnsmasq makes them from auth-server / auth-soa
            continue
        if name.startswith("*."):
            report.gap(f"zone {zone} record {name}", "dnsmasq has no wildcard records in auth zones")
        elif kind == 1:
            out.append(f"host-record={name},{rr.rdata}")
        elif kind == 33:
            d = rr.rdata
            out.append(f"srv-host={name},{str(d.target).rstrip('.')},{d.port},{d.priority},{d.weight}")
        elif kind == 5:
            out.append(f"cname={name},{str(rr.rdata).rstrip('.')}")
        else:
            report.gap(f"zone {zone} record {name} type {kind}", "not exported to dnsmasq")
    return out


def tftp_section(plan: Plan, report: ExportReport, root: Path, iface: str) -> list[str]:
    inv = plan.inventory
    if not inv.services.tftp.enabled:
        return ["# --- TFTP: disabled in the inventory"]
    if service_port(inv, "tftp", 69) != 69:
        report.gap("services.tftp.port", "dnsmasq serves TFTP on port 69 only")
    if inv.services.tftp.upload_dir:
        report.gap("services.tftp.upload_dir", "dnsmasq's TFTP server is read-only")
    # named: with bind-interfaces and auth-server, a bare enable-tftp listened on loopback only
    return ["# --- TFTP (read-only) of the rendered tree", f"enable-tftp={iface}", f"tftp-root={root}"]


def export_dnsmasq(plan: Plan, out_dir: Path, *, interface: str | None = None, **_: Any) -> ExportReport:
    inv = plan.inventory
    report = ExportReport("dnsmasq", out_dir)
    fault_gaps(report, inv)
    out = out_dir.resolve()
    root = write_tree(report, plan, out / "tftp")
    iface = interface or inv.lab.interface or "eth0"
    lines = [f"# dnsmasq for lab {inv.lab.name!r}, written by `labkit export --to dnsmasq`.",
             f"# check: dnsmasq --test -C {out / 'dnsmasq.conf'}",
             f"interface={iface}", "bind-interfaces"]
    if inv.services.dhcp.enabled:
        dhcp_gaps(report, inv)
        lines += dhcp_section(plan, report, out)
    lines += dns_section(plan, report)
    lines += tftp_section(plan, report, root, iface)
    report.write(out_dir / "dnsmasq.conf", "\n".join(lines) + "\n")
    if any(66 in p.options.options for p in plan.phones.values()) or 66 in plan.pool_options.options:
        report.notes.append("option 66: dnsmasq ends it with a NUL byte (10.42.0.1 + 00); MPP "
                            "phones read it as the same text, but it is one byte more than labkit sends")
    report.notes.append(f"run: dnsmasq -k -C {out / 'dnsmasq.conf'} (HTTP(S): the nginx export)")
    return report
