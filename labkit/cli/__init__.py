"""The `labkit` command line (typer). Thin: every command calls into the library.

Commands live by group: `plan` (check, render, explain, init), `serve` (up, demo), `phones` (simulate) and
`state` (status, ca, leases, timeline, scenario) and `export`; they are registered here in the order
`--help` shows.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from labkit import __version__
from labkit.cli import acs, export, phones, plan, reload, reports, serve, state
from labkit.cli.words import WordsCommand, WordsGroup

app = typer.Typer(
    cls=WordsGroup,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Network bootstrap lab kit for Cisco MPP (3PCC) phones: DHCP, DNS SRV, TFTP, HTTP(S), "
    "syslog, from one Jinja-templated inventory. Without an INVENTORY, the embedded default lab.",
)


def _version(value: bool) -> None:
    if value:
        print(f"labkit {__version__}")
        raise typer.Exit()


@app.callback()
def _top(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print labkit's version and exit.")] = False,
) -> None:
    """Network bootstrap lab kit for Cisco MPP (3PCC) phones: DHCP, DNS SRV, TFTP, HTTP(S), syslog,
    from one Jinja-templated inventory. Without an INVENTORY, the embedded default lab."""


for command in (plan.check, plan.render, plan.explain, plan.init, serve.up, reload.reload, state.status,
                state.ca, state.leases, phones.simulate, serve.demo, state.timeline, state.scenario,
                reports.reports):
    app.command(cls=WordsCommand)(command)
app.command("export", cls=WordsCommand)(export.export_plan)
app.add_typer(acs.app, name="acs")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
