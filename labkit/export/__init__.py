"""`labkit export`: the plan `labkit up` serves, written for production engines.

`export(plan, target, out_dir, allow_partial=...)` writes one target (or `all`, each in its own
sub-folder) and returns an `ExportReport`: the files written, and every inventory item the
target cannot express (a `Gap`). With gaps and without `allow_partial`, the command exits 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from labkit.export.common import ExportError, ExportReport, Gap
from labkit.plan.build import Plan

__all__ = ["TARGETS", "ExportError", "ExportReport", "Gap", "export"]


def _targets() -> dict[str, Callable[..., ExportReport]]:
    from labkit.export.dns import export_bind, export_knot, export_nsd
    from labkit.export.dnsmasq import export_dnsmasq
    from labkit.export.kea import export_kea
    from labkit.export.nginx import export_nginx
    from labkit.export.tftpd import export_tftpd

    return {"kea": export_kea, "dnsmasq": export_dnsmasq, "knot": export_knot, "nsd": export_nsd,
            "bind": export_bind, "nginx": export_nginx, "tftpd-hpa": export_tftpd}


TARGETS = ("kea", "dnsmasq", "knot", "nsd", "bind", "nginx", "tftpd-hpa", "all")


def export(plan: Plan, target: str, out_dir: Path, *, allow_partial: bool = False,
           **options: Any) -> ExportReport:
    """Write `target`'s files under `out_dir`. `allow_partial` does not change what is written;
    it is recorded so `report.exit_code` tells the command whether gaps make it fail."""
    targets = _targets()
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}: expected one of {', '.join(TARGETS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if target != "all":
        report = targets[target](plan, out_dir, **options)
    else:
        report = ExportReport("all", out_dir)
        for name, function in targets.items():
            report.merge(function(plan, out_dir / name, **options))
        if plan.inventory.services.syslog.enabled:
            report.gap("services.syslog", "no target receives the phones' syslog; point "
                       "Syslog_Server at your rsyslog or syslog-ng")
    report.allow_partial = allow_partial
    return report
