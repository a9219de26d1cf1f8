"""The virtual phone's CWMP life (pure): sessions with the ACS, what it does between them.

A generator like `Phone.run()`: it yields effects (`CwmpPost`, `CwmpEnd`, `AwaitConnectionRequest`
from labkit.phone.cwmp; `Fetch`, `Sleep`, `Now`, `Log` from labkit.phone.effects) and a driver
performs them. Events (TR-069 Amendment 3 §3.7.1.5, Table 7): 0 BOOTSTRAP on first contact with
an ACS (and after a factory reset), 1 BOOT after each boot, 2 PERIODIC, 4 VALUE CHANGE (a
parameter with active notification changed), 6 CONNECTION REQUEST, 7 TRANSFER COMPLETE with
"M Download" (its CommandKey), "M Reboot" after a Reboot. An event stays until an Inform that
carries it is answered. Failed sessions are retried after TR-069 §3.2.1.1's wait.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from labkit.phone.cwmp import AwaitConnectionRequest, CwmpAnswer, CwmpEnd, CwmpPost, CwmpSettings
from labkit.phone.cwmp_download import DownloadJob, perform_download
from labkit.phone.cwmp_tree import ParameterTree
from labkit.phone.effects import Log, Now, Sleep
from labkit.protocols.cwmp import codes, rpc
from labkit.protocols.cwmp.cpe_session import CpeSession
from labkit.protocols.result import Fact

Flow = Generator[Any, Any, Any]
MAX_EXCHANGES = 64  # POSTs in one session
SUPPORTED = ("GetRPCMethods", "SetParameterValues", "GetParameterValues", "SetParameterAttributes",
             "GetParameterAttributes", "GetParameterNames", "AddObject", "DeleteObject", "Reboot",
             "Download", "FactoryReset")


@dataclass
class CwmpState:
    """What the phone keeps between sessions (and across its own reboots)."""

    bootstrapped: bool = False  # a session with this ACS has succeeded once
    events: dict[str, str] = field(default_factory=dict)  # event code -> CommandKey, in order
    requests: list[rpc.Rpc] = field(default_factory=list)  # TransferComplete(s) not yet delivered
    retry_count: int = 0
    reboot: str | None = None  # CommandKey of an accepted Reboot, done after the session
    factory_reset: bool = False
    downloads: list[rpc.Download] = field(default_factory=list)
    boots: int = 0
    firmware: str = ""
    custom_ca: bytes | None = None
    sessions: int = 0
    timeline: list[tuple[float, Fact]] = field(default_factory=list)


class CwmpPhone:
    def __init__(self, settings: CwmpSettings, tree: ParameterTree, device_id: rpc.DeviceIdStruct,
                 acs_url: str, *, mac: str, seed: int = 0, state: CwmpState | None = None,
                 user_agent: str = "") -> None:
        self.user_agent = user_agent
        self.settings = settings
        self.tree = tree
        self.device_id = device_id
        self.acs_url = acs_url
        self.mac = mac
        self.state = state or CwmpState(firmware=tree.text("Device.DeviceInfo.SoftwareVersion"))
        self.random = random.Random(f"{mac}/cwmp/{seed}")

    # ------------------------------------------------------------------ the loop

    def run(self) -> Flow:
        """Boot, then sessions until the time is up or the session budget is spent."""
        state = self.state
        self._boot()
        started = yield Now()
        for _ in range(self.settings.max_sessions):
            ok = yield from self._session()
            if not ok:
                state.retry_count += 1
                wait = self.retry_wait(state.retry_count)
                why = f"session failed; retry {state.retry_count} in {wait:.0f} s"
                yield from self._note("cwmp", "retry", why, "failed")
                now = yield Now()
                if now - started + wait > max(self.settings.duration, 0):
                    return state
                yield Sleep(wait)
                continue
            state.retry_count = 0
            yield from self._after_session()
            if state.events or self.tree.active_change():
                continue
            more = yield from self._idle(started)
            if not more:
                return state
        return state

    def _boot(self) -> None:
        state = self.state
        state.boots += 1
        if not state.bootstrapped:
            state.events["0 BOOTSTRAP"] = ""
        state.events["1 BOOT"] = ""

    def _idle(self, started: float) -> Flow:
        """Wait for the periodic Inform or a Connection Request; False when the time is up."""
        now = yield Now()
        left = started + self.settings.duration - now
        if left <= 0:
            return False
        # the ACS may have changed them: the tree's values rule
        periodic = self.tree.text("Device.ManagementServer.PeriodicInformEnable", "true") == "true"
        interval = float(self.tree.text("Device.ManagementServer.PeriodicInformInterval", "0") or 0)
        periodic = periodic and interval > 0
        wait = min(interval, left) if periodic else left
        requested = yield AwaitConnectionRequest(wait)
        if requested:
            self.state.events["6 CONNECTION REQUEST"] = ""
            return True
        if periodic and wait >= interval:
            self.state.events["2 PERIODIC"] = ""
            return True
        return False

    def retry_wait(self, count: int) -> float:
        """TR-069 §3.2.1.1: the n-th retry waits between m·(k/1000)^(n-1) and m·(k/1000)^n
        seconds, n capped at 10; m and k are CWMPRetryMinimumWaitInterval and -Multiplier."""
        m, k = self.settings.retry_min_wait, self.settings.retry_multiplier / 1000
        n = min(max(count, 1), 10)
        return self.random.uniform(m * k ** (n - 1), m * k ** n)

    # ------------------------------------------------------------------ one session

    def _inform(self) -> Flow:
        now = yield Now()
        events = dict(self.state.events)
        if self.tree.active_change() or (self.tree.changed and events):
            events.setdefault("4 VALUE CHANGE", "")
        self.state.events = events
        current = datetime.fromtimestamp(float(now), UTC).replace(microsecond=0)
        return rpc.Inform(self.device_id, tuple(rpc.EventStruct(c, k) for c, k in events.items()), 1, current,
                          self.state.retry_count, self.tree.inform_parameters())

    def _session(self) -> Flow:
        state = self.state
        state.sessions += 1
        url = self.tree.text("Device.ManagementServer.URL") or self.acs_url
        if url != self.acs_url:  # a new ACS: BOOTSTRAP again (TR-069 §3.7.1.5, event 0)
            self.acs_url, state.bootstrapped = url, False
            state.events = {"0 BOOTSTRAP": "", **state.events}
        uid = self.tree.text("Device.ManagementServer.Username") or self.settings.username
        pwd = self.tree.text("Device.ManagementServer.Password") or self.settings.password
        inform = yield from self._inform()
        session = CpeSession(inform, self.handle, deque(state.requests))
        yield from self._log(f"TR-069 session to {self.acs_url}: {', '.join(inform.event_codes())}")
        post, first = session.start(), True
        for _ in range(MAX_EXCHANGES):
            answer: CwmpAnswer = yield CwmpPost(self.acs_url, post.body, post.headers, uid, pwd, first)
            first = False
            if answer.status is None:
                yield from self._note("cwmp", "POST", answer.error or "no answer", "failed")
                break
            step = session.receive(answer.status, answer.body)
            for fact in step.facts:
                yield from self._record(fact)
            if step.post is None:
                break
            post = step.post
        yield CwmpEnd()
        if session.informed:
            self._delivered(session, inform)
        return session.informed and not session.retry

    def _delivered(self, session: CpeSession, inform: rpc.Inform) -> None:
        state = self.state
        state.bootstrapped = True
        state.requests = session.pending()
        sent = set(inform.event_codes())
        state.events = {c: k for c, k in state.events.items() if c not in sent}
        self.tree.informed()
        for request in state.requests:  # an undelivered TransferComplete keeps its events
            if isinstance(request, rpc.TransferComplete):
                state.events.setdefault("7 TRANSFER COMPLETE", "")
                state.events.setdefault("M Download", request.command_key)

    # ------------------------------------------------------------------ the ACS's requests

    def handle(self, request: rpc.Rpc) -> rpc.Rpc:
        """The answer to one ACS request (CpeSession's handler)."""
        tree, state = self.tree, self.state
        if isinstance(request, rpc.GetRPCMethods):
            return rpc.GetRPCMethodsResponse(SUPPORTED)
        handlers: dict[type[rpc.Rpc], Any] = {
            rpc.GetParameterValues: tree.get_values, rpc.SetParameterValues: tree.set_values,
            rpc.GetParameterNames: tree.get_names, rpc.SetParameterAttributes: tree.set_attributes,
            rpc.GetParameterAttributes: tree.get_attributes, rpc.AddObject: tree.add_object,
            rpc.DeleteObject: tree.delete_object,
        }
        if type(request) in handlers:
            answer: rpc.Rpc = handlers[type(request)](request)
            return answer
        if isinstance(request, rpc.Reboot):
            state.reboot = request.command_key
            return rpc.RebootResponse()
        if isinstance(request, rpc.FactoryReset):
            state.factory_reset = True
            return rpc.FactoryResetResponse()
        if isinstance(request, rpc.Download):
            return self._accept_download(request)
        return rpc.Fault(codes.METHOD_NOT_SUPPORTED)

    def _accept_download(self, request: rpc.Download) -> rpc.Rpc:
        known = (rpc.FIRMWARE, rpc.VENDOR_CONFIG, self.settings.ca_file_type)
        if request.file_type not in known:
            return rpc.Fault(codes.INVALID_ARGUMENTS, f"file type {request.file_type!r} is not supported")
        scheme = request.url.partition("://")[0].lower()
        if scheme not in ("http", "https", "tftp"):
            return rpc.Fault(codes.UNSUPPORTED_PROTOCOL, f"{scheme or 'no'} scheme")
        self.state.downloads.append(request)
        return rpc.DownloadResponse(1)  # not yet done: TransferComplete follows in a later session

    # ------------------------------------------------------------------ after a session

    def _after_session(self) -> Flow:
        state = self.state
        while state.downloads:
            request = state.downloads.pop(0)
            job = DownloadJob(request, self.settings.ca_file_type, self.tree, state.firmware)
            done = yield from perform_download(job, self.settings, self.user_agent)
            state.requests.append(done.transfer_complete)
            state.events["7 TRANSFER COMPLETE"] = ""
            state.events["M Download"] = request.command_key
            yield from self._note("download", request.file_type, done.summary,
                                  "ok" if done.transfer_complete.fault.code == 0 else "failed")
            if done.firmware is not None:
                state.firmware = done.firmware
                yield from self._reboot("new firmware")
            if done.ca is not None:
                state.custom_ca = done.ca
        if state.factory_reset:
            state.factory_reset, state.bootstrapped = False, False
            state.requests.clear()
            self.tree.factory_reset()
            yield from self._reboot("factory reset")
        if state.reboot is not None:
            key, state.reboot = state.reboot, None
            yield from self._reboot("Reboot")
            state.events["M Reboot"] = key

    def _reboot(self, why: str) -> Flow:
        yield from self._note("reboot", why, f"boot {self.state.boots + 1}", "ok")
        yield from self._log(f"Rebooting ({why})")
        self._boot()

    # ------------------------------------------------------------------ timeline

    def _record(self, fact: Fact) -> Flow:
        now = yield Now()
        self.state.timeline.append((float(now), replace(fact, phone=self.mac)))

    def _note(self, action: str, request: str, answer: str, result: str) -> Flow:
        yield from self._record(Fact(action, request, answer, result))

    def _log(self, text: str) -> Flow:
        yield Log(text)
