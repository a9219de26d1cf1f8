"""What every export target shares: the report (files written, gaps per item), the served tree,
and the items of an inventory that no production engine can carry over.

An export never drops something silently: whatever a target cannot express becomes a `Gap`
naming the inventory item and the reason, and `labkit export` exits non-zero unless the user
accepts a partial export (`--allow-partial`).
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from labkit.errors import LabkitError
from labkit.inventory.model import Inventory, VendorClass
from labkit.plan.build import Plan


class ExportError(LabkitError):
    """An export cannot be written at all (unknown target, unusable option)."""


@dataclass(frozen=True)
class Gap:
    """One thing the inventory uses that a target cannot express."""

    target: str
    item: str  # where in the inventory: "faults[0] (dhcp)", "services.http.auth (digest)"
    reason: str

    def __str__(self) -> str:
        return f"{self.target}: {self.item}: {self.reason}"


@dataclass
class ExportReport:
    target: str
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what to do next, how to run it
    allow_partial: bool = False  # gaps accepted by the user (`--allow-partial`)

    @property
    def complete(self) -> bool:
        return not self.gaps

    def merge(self, other: ExportReport) -> None:
        self.files += other.files
        self.gaps += other.gaps
        self.notes += [f"{other.target}: {n}" for n in other.notes]

    def write(self, path: Path, text: str | bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        self.files.append(path)
        return path

    def gap(self, item: str, reason: str) -> None:
        self.gaps.append(Gap(self.target, item, reason))

    @property
    def exit_code(self) -> int:
        """0 when complete or gaps were accepted, else 2 (the command's exit status)."""
        return 0 if self.complete or self.allow_partial else 2


FAULT_SERVICES = {
    # export target -> the fault services its engine would have to reproduce
    "kea": {"dhcp"}, "dnsmasq": {"dhcp", "dns", "tftp"}, "knot": {"dns"}, "nsd": {"dns"},
    "bind": {"dns"}, "nginx": {"http"}, "tftpd-hpa": {"tftp"},
}


def fault_gaps(report: ExportReport, inv: Inventory) -> None:
    """Fault rules are labkit's own misbehaviour on purpose: no production engine has them."""
    services = FAULT_SERVICES.get(report.target, set())
    for index, rule in enumerate(inv.faults):
        if rule.service in services:
            report.gap(f"faults[{index}] {rule.label(index)!r} ({rule.service})",
                       "fault injection exists only in labkit; the exported engine serves normally")


def dhcp_gaps(report: ExportReport, inv: Inventory) -> None:
    """What a DHCP export cannot carry over from the inventory's DHCP service itself."""
    if not inv.services.dhcp.enabled:
        report.notes.append("services.dhcp is disabled in the inventory: exported anyway")
    port = inv.services.dhcp.port
    if port is not None and port != 67:
        report.gap("services.dhcp.port", f"the export serves DHCP on port 67, not {port}")


def write_tree(report: ExportReport, plan: Plan, root: Path) -> Path:
    """The rendered file tree (profiles, firmware) under `root`, exactly the bytes labkit serves."""
    if root.exists():
        shutil.rmtree(root)  # a stale file from an earlier export must not look served
    root.mkdir(parents=True)
    for rel, planned in sorted(plan.files.items()):
        path = root / rel
        if planned.data is not None:
            report.write(path, planned.data)
        elif planned.disk_path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(planned.disk_path, path)  # a copy: the source firmware stays untouched
            report.files.append(path)
    return root


def matching_classes(inv: Inventory, vendor_class: str) -> list[VendorClass]:
    """The inventory's classes a client sending option 60 = `vendor_class` belongs to, in order."""
    return [cls for cls in inv.dhcp.classes if fnmatch.fnmatchcase(vendor_class, cls.match)]


def pattern_parts(pattern: str) -> list[str] | None:
    """A class pattern split on `*` (["CP-", "-3PCC"] for `CP-*-3PCC`); None when it uses `?`
    or `[...]`, which the DHCP engines' matchers cannot express."""
    if any(c in pattern for c in "?["):
        return None
    return pattern.split("*")


def service_address(inv: Inventory, name: str) -> str:
    bind = getattr(inv.services, name).bind
    return str(bind if bind is not None and not bind.is_unspecified else inv.lab.address.ip)


def service_port(inv: Inventory, name: str, default: int) -> int:
    port = getattr(inv.services, name).port
    return int(port) if port is not None else default


def quoted_lines(lines: Iterable[str]) -> str:
    return "".join(line + "\n" for line in lines)
