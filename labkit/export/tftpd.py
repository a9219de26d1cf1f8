"""tftpd-hpa 5.2: the rendered tree and the command line that serves it, read-only and confined."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from labkit.export.common import ExportReport, fault_gaps, service_address, service_port, write_tree
from labkit.plan.build import Plan


def tftpd_command(address: str, port: int, root: Path) -> list[str]:
    # --secure: every name is relative to the root (chroot); no --create: read-only
    return ["in.tftpd", "--listen", "--foreground", "--address", f"{address}:{port}", "--secure",
            "--verbose", str(root)]


def export_tftpd(plan: Plan, out_dir: Path, **options: Any) -> ExportReport:
    inv = plan.inventory
    report = ExportReport("tftpd-hpa", out_dir)
    fault_gaps(report, inv)
    if inv.services.tftp.upload_dir:
        report.gap("services.tftp.upload_dir", "exported read-only: tftpd-hpa would need --create "
                   "and a writable root shared with the served files")
    root = write_tree(report, plan, out_dir.resolve() / "tftp")
    address = options.get("tftp_address") or service_address(inv, "tftp")
    port = int(options.get("tftp_port") or service_port(inv, "tftp", 69))
    command = shlex.join(tftpd_command(address, port, root))
    report.write(out_dir / "run-tftpd.sh", f"#!/bin/sh\n# tftpd-hpa for lab {inv.lab.name!r}, "
                 f"written by `labkit export --to tftpd-hpa`\nexec {command}\n").chmod(0o755)
    report.write(out_dir / "tftpd-hpa.default",
                 f'# /etc/default/tftpd-hpa\nTFTP_USERNAME="tftp"\nTFTP_DIRECTORY="{root}"\n'
                 f'TFTP_ADDRESS="{address}:{port}"\nTFTP_OPTIONS="--secure"\n')
    report.notes.append(f"run: {command}")
    return report
