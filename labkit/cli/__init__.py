"""The `labkit` command line (typer). Thin: every command calls into the library.

Commands live by group: `plan` (check, render, explain, init), `serve` (up, demo), `phones` (simulate) and
`state` (status, ca, leases, timeline, scenario) and `export`; they are registered here in the order
`--help` shows.
"""

from __future__ import annotations

import sys

import typer

from labkit.cli import export, phones, plan, reload, serve, state

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Network bootstrap lab kit for Cisco MPP (3PCC) phones: DHCP, DNS SRV, TFTP, HTTP(S), "
    "syslog, from one Jinja-templated inventory. Without an INVENTORY, the embedded default lab.",
)

for command in (plan.check, plan.render, plan.explain, plan.init, serve.up, reload.reload, state.status,
                state.ca, state.leases, phones.simulate, serve.demo, state.timeline, state.scenario):
    app.command()(command)
app.command("export")(export.export_plan)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
