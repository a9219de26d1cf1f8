"""The live board: one row per phone, showing how far its provisioning got (rich)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table

from labkit.events import Event, is_malformed
from labkit.plan.build import Plan


@dataclass
class PhoneRow:
    name: str
    mac: str
    model: str
    ip: str
    dns: str = ""
    profile: str = ""
    firmware: str = ""
    logs: int = 0
    last: str = ""
    errors: int = 0


@dataclass
class BoardState:
    """Folds events into per-phone progress; pure, so it is tested without a terminal."""

    rows: dict[str, PhoneRow] = field(default_factory=dict)
    unknown: int = 0
    total: int = 0
    malformed: int = 0  # input no service could read (every one, even those the log leaves out)
    warnings: dict[str, str] = field(default_factory=dict)  # what an operator must see, by subject
    drops: dict[str, int] = field(default_factory=dict)  # datagrams the kernel dropped, by service

    @classmethod
    def from_plan(cls, plan: Plan) -> BoardState:
        rows = {mac: PhoneRow(p.phone.name or mac, mac, p.phone.model, str(p.phone.ip or "pool"))
                for mac, p in plan.phones.items()}
        return cls(rows)

    def __call__(self, event: Event) -> None:
        self.total += 1
        if is_malformed(event):
            self.malformed += 1
        if event.action == "kernel-drops":
            self.drops[event.service] = int(event.detail.get("total", 0))
        if event.result == "rival":  # another DHCP server answers on the lab segment
            self.warnings[f"rival {event.client}"] = f"another DHCP server: {event.request} ({event.answer})"
        row = self.rows.get(event.phone) if event.phone else None
        if row is None:
            self.unknown += 1
            return
        row.last = f"{event.service} {event.action} {event.request[:40]} -> {event.answer[:24]}"
        if event.result not in ("ok", "nodata", "redirect"):
            row.errors += 1
        if event.service == "dns":
            row.dns = event.request[:36]
        elif event.service == "syslog":
            row.logs += 1
        elif event.service in ("tftp", "http", "https") and event.result == "ok":
            path = event.request
            if path.endswith(".loads"):
                row.firmware = f"{event.service} {path.rsplit('/', 1)[-1]}"
            elif path.endswith((".xml", ".cfg")):
                row.profile = f"{event.service} {path}"

    def table(self) -> Table:
        junk = f", {self.malformed} malformed" if self.malformed else ""
        if self.drops:
            junk += ", kernel drops " + " ".join(f"{svc} {n}" for svc, n in sorted(self.drops.items()))
        table = Table(title=f"labkit: {self.total} events, {self.unknown} from unknown clients{junk}",
                      expand=True)
        for column in ("phone", "model", "ip", "dns", "profile", "firmware", "logs", "errors", "last"):
            table.add_column(column, overflow="ellipsis", no_wrap=True)
        for row in self.rows.values():
            table.add_row(row.name, row.model, row.ip, row.dns, row.profile, row.firmware,
                          str(row.logs), str(row.errors) if row.errors else "", row.last)
        if self.warnings:
            table.caption = "WARNING: " + "; ".join(self.warnings.values())
            table.caption_style = "bold red"
        return table


class _Current:
    """A renderable that rebuilds the table whenever rich refreshes, so it is never stale."""

    def __init__(self, state: BoardState) -> None:
        self.state = state

    def __rich__(self) -> Table:
        return self.state.table()


class LiveBoard:
    """Redraws the board a few times a second while the lab runs (rich's own refresh thread)."""

    def __init__(self, state: BoardState, console: Console) -> None:
        self.state = state
        self.live = Live(_Current(state), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveBoard:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.refresh()
        self.live.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        self.state(event)  # folding is cheap; drawing happens on rich's refresh, not per event
