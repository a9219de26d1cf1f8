"""The live board: one row per phone, showing how far its provisioning got (rich)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions
from rich.live import Live
from rich.table import Table

from labkit.events import Event, is_malformed
from labkit.plan.build import Plan

NOT_ERRORS = frozenset({
    "ok",  # served as asked
    "accepted",  # TFTP: a transfer begins (its end is a separate event)
    "nodata",  # DNS: the name exists, without records of that type (a normal answer)
    "redirect",  # HTTP: 3xx to where the file is
    "ignored",  # DHCP: a REQUEST for another server, or a message that needs no answer
})
"""Results that are not errors. Every other result (not-found, nak, declined: an address conflict,
timeout, fault, malformed, ...) counts as one error of the phone it concerns."""

UNKNOWN_SHOWN = 3  # unknown clients named on the board (the most recent ones)


@dataclass(frozen=True)
class Column:
    name: str
    minimum: int  # narrowest useful width
    priority: int  # 1 is kept longest when the terminal is narrow


# in display order; priorities decide what drops first at narrow widths
COLUMNS = (
    Column("phone", 8, 1), Column("model", 6, 7), Column("ip", 9, 2), Column("dns", 10, 8),
    Column("profile", 16, 3), Column("firmware", 16, 4), Column("logs", 4, 9),
    Column("errors", 6, 5), Column("last", 12, 6),
)
GROWS = {"dns": 1, "profile": 2, "firmware": 2, "last": 3}  # share of spare width; others fit content
COMPACT_BELOW = 140  # narrower than this, paths are cut to their file names
EDGES = 4  # the table's outer borders and padding
PER_COLUMN = 3  # a separator and a space either side


def fit_columns(width: int) -> list[Column]:
    """The columns that fit in `width` at their minimum width, highest priority first, in display order."""
    kept: set[str] = set()
    used = EDGES
    for column in sorted(COLUMNS, key=lambda c: c.priority):
        if used + column.minimum + PER_COLUMN <= width or not kept:
            kept.add(column.name)
            used += column.minimum + PER_COLUMN
    return [c for c in COLUMNS if c.name in kept]


def is_error(event: Event) -> bool:
    return event.result not in NOT_ERRORS and event.action != "kernel-drops"


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
    last_short: str = ""  # `last` with paths cut to their file name, for narrow terminals

    def cells(self, *, compact: bool = False) -> dict[str, str]:
        """The row's cells; `compact` abbreviates paths to file names (service kept first)."""
        profile, firmware, last = self.profile, self.firmware, self.last
        if compact:
            profile, firmware, last = _short(profile), _short(firmware), self.last_short
        return {"phone": self.name, "model": self.model, "ip": self.ip, "dns": self.dns,
                "profile": profile, "firmware": firmware, "logs": str(self.logs),
                "errors": str(self.errors) if self.errors else "", "last": last}


def _short(value: str) -> str:
    """`http /Cisco/CP-8851-3PCC/00562b000101.cfg` -> `http 00562b000101.cfg`."""
    service, _, path = value.partition(" ")
    return f"{service} {path.rsplit('/', 1)[-1]}" if path else value


@dataclass
class BoardState:
    """Folds events into per-phone progress; pure, so it is tested without a terminal."""

    rows: dict[str, PhoneRow] = field(default_factory=dict)
    unknown: int = 0
    total: int = 0
    malformed: int = 0  # input no service could read (every one, even those the log leaves out)
    warnings: dict[str, str] = field(default_factory=dict)  # what an operator must see, by subject
    drops: dict[str, int] = field(default_factory=dict)  # datagrams the kernel dropped, by service
    # who the unknown clients were: MAC (DHCP) or address -> their last request, most recent last
    strangers: OrderedDict[str, str] = field(default_factory=OrderedDict)

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
            return
        if event.result == "rival":  # another DHCP server answers on the lab segment
            self.warnings[f"rival {event.client}"] = f"another DHCP server: {event.request} ({event.answer})"
        row = self.rows.get(event.phone) if event.phone else None
        if row is None:
            self._stranger(event)
            return
        row.last = f"{event.service} {event.action} {event.request[:40]} -> {event.answer[:24]}"
        row.last_short = f"{event.service} {event.request.rsplit('/', 1)[-1][:24]} -> {event.answer[:12]}"
        if is_error(event):
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

    def _stranger(self, event: Event) -> None:
        self.unknown += 1
        who = event.phone or (event.client or "?").rsplit(":", 1)[0]
        self.strangers.pop(who, None)
        self.strangers[who] = f"{event.service} {event.action} {event.request[:40]}".rstrip()
        while len(self.strangers) > UNKNOWN_SHOWN:
            self.strangers.popitem(last=False)

    def title(self) -> str:
        junk = f", {self.malformed} malformed" if self.malformed else ""
        if self.drops:
            junk += ", kernel drops " + " ".join(f"{svc} {n}" for svc, n in sorted(self.drops.items()))
        return f"labkit: {self.total} events, {self.unknown} from unknown clients{junk}"

    def unknown_line(self) -> str:
        """The last few unknown clients and what they asked, or "" when there were none."""
        if not self.strangers:
            return ""
        named = "; ".join(f"{who} ({asked})" for who, asked in reversed(self.strangers.items()))
        return f"unknown clients, latest first: {named}"

    def table(self, width: int = 200) -> Table:
        columns = fit_columns(width)
        compact = width < COMPACT_BELOW
        table = Table(title=self.title(), expand=True, width=width)
        for column in columns:
            table.add_column(column.name, overflow="ellipsis", no_wrap=True, min_width=column.minimum,
                             ratio=GROWS.get(column.name))
        for row in self.rows.values():
            cells = row.cells(compact=compact)
            table.add_row(*(cells[c.name] for c in columns))
        notes = []
        if len(columns) < len(COLUMNS):
            hidden = ", ".join(c.name for c in COLUMNS if c not in columns)
            notes.append(f"(narrow terminal: {hidden} hidden)")
        if self.strangers:
            notes.append(self.unknown_line())
        if self.warnings:
            notes.append("WARNING: " + "; ".join(self.warnings.values()))
            table.caption_style = "bold red"
        if notes:
            table.caption = "\n".join(notes)
        return table


class _Current:
    """A renderable that rebuilds the table whenever rich refreshes, at the terminal's width."""

    def __init__(self, state: BoardState) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        yield self.state.table(options.max_width)


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
