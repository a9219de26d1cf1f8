"""The virtual phone's CWMP flow (`labkit.phone.cwmp_flow`, pure) performed against a lab on
loopback, for the ACS's end-to-end tests: POSTs over real HTTP (a new connection and cookie jar
per session, Basic or Digest when challenged), files fetched from the lab's HTTP service, a real
Connection Request listener (Digest), a virtual clock. The lab's names and ports map to loopback
and the lab's moved ports. Bounded: a run performs at most MAX_EFFECTS effects."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from labkit.inventory.model import Inventory
from labkit.phone.cwmp import AwaitConnectionRequest, CwmpAnswer, CwmpEnd, CwmpPost, CwmpSettings
from labkit.phone.cwmp_flow import CwmpPhone
from labkit.phone.cwmp_setup import Identity, prepare
from labkit.phone.effects import Fetch, FetchResult, Lease, Log, Now, Sleep
from labkit.plan.dhcp import option_set
from labkit.protocols.dhcp.options import decode_value
from labkit.protocols.http import digest_authorization
from tests.acs_cpe import ConnectionRequestListener

MAX_EFFECTS = 2000
KNOCK_WAIT = 15.0  # real seconds a test waits for the Connection Request it sends


def tr069_lease(inv: Inventory, mac: str, vendor_class: str) -> Lease:
    """The lease the lab's DHCP gives `mac` when it sends `vendor_class` (option 43 and 125 from
    the plan's classes), as the phone's core sees it (decoded options)."""
    phone = next(p for p in inv.phones if p.mac == mac)
    planned = option_set(inv, vendor_class=vendor_class, model=phone.model, phone=phone)
    options = {code: decode_value(code, p.payload) for code, p in planned.options.items()}
    return Lease(str(phone.ip), str(inv.lab.address.ip), options, 3600)


@dataclass
class PhoneDriver:
    ports: Mapping[int, int]  # the lab's port -> where it listens on loopback
    listener: ConnectionRequestListener
    clock: float = 1_790_000_000.0
    expect_knock: bool = False  # an idle phone waits (really) for the test's Connection Request
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    client: aiohttp.ClientSession | None = None
    posts: list[tuple[int | None, bytes]] = field(default_factory=list)
    fetched: list[tuple[str, int | None]] = field(default_factory=list)

    def local(self, url: str) -> str:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 80)
        return urlunsplit((parts.scheme, f"127.0.0.1:{self.ports.get(port, port)}", parts.path or "/",
                           parts.query, ""))

    async def run(self, phone: CwmpPhone) -> None:
        flow, reply = phone.run(), None
        try:
            for _ in range(MAX_EFFECTS):
                try:
                    effect = flow.send(reply)
                except StopIteration:
                    return
                reply = await self.perform(effect)
            raise AssertionError("the phone's flow did not end")
        finally:
            await self._close()

    async def _close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def perform(self, effect: Any) -> Any:
        if isinstance(effect, CwmpPost):
            return await self._post(effect)
        if isinstance(effect, CwmpEnd):
            await self._close()
            return None
        if isinstance(effect, Now):
            return self.clock
        if isinstance(effect, Sleep):
            self.clock += effect.seconds
            return None
        if isinstance(effect, AwaitConnectionRequest):
            return await self._await_knock(effect.seconds)
        if isinstance(effect, Fetch):
            return await self._fetch(effect)
        if isinstance(effect, Log):
            return None
        raise AssertionError(f"unexpected effect {effect!r}")

    async def _post(self, effect: CwmpPost) -> CwmpAnswer:
        if effect.new_session or self.client is None:
            await self._close()
            self.client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                                timeout=aiohttp.ClientTimeout(total=30))
        url, headers = self.local(effect.url), dict(effect.headers)
        try:
            status, body, challenge = await self._send(url, effect.body, headers)
            if status == 401 and effect.uid is not None:
                path = urlsplit(url).path or "/"
                if challenge.lower().startswith("digest"):
                    headers["Authorization"] = digest_authorization(challenge, "POST", path, effect.uid,
                                                                    effect.pwd or "")
                else:
                    headers["Authorization"] = aiohttp.BasicAuth(effect.uid, effect.pwd or "").encode()
                status, body, _ = await self._send(url, effect.body, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.posts.append((None, effect.body))
            return CwmpAnswer(None, error=type(exc).__name__)
        self.posts.append((status, effect.body))
        return CwmpAnswer(status, body)

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        assert self.client is not None
        async with self.client.post(url, data=body, headers=headers) as response:
            return response.status, await response.read(), response.headers.get("WWW-Authenticate", "")

    async def _await_knock(self, seconds: float) -> bool:
        self.idle.set()
        if not self.expect_knock:
            self.clock += seconds
            return False
        self.expect_knock = False
        await asyncio.wait_for(self.listener.knocked.wait(), KNOCK_WAIT)
        self.listener.knocked.clear()
        self.clock += 1
        return True

    async def _fetch(self, effect: Fetch) -> FetchResult:
        url = self.local(effect.url)
        try:
            async with aiohttp.ClientSession() as client, client.get(url, ssl=False) as response:
                result = FetchResult(response.status, await response.read(), dict(response.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            result = FetchResult(None, error=type(exc).__name__)
        self.fetched.append((effect.url, result.status))
        return result


async def phone_and_driver(inv: Inventory, mac: str, ports: Mapping[int, int], *, load: str,
                           settings: CwmpSettings | None = None,
                           profile: Mapping[str, str] | None = None) -> tuple[CwmpPhone, PhoneDriver]:
    """A TR-069 phone as the lab's DHCP sets it up (option 43 for "<model> dslforum.org"), its
    Connection Request listener started, and a driver for it."""
    phone = next(p for p in inv.phones if p.mac == mac)
    listener = ConnectionRequestListener("labkit", "labkit")
    await listener.start()
    port = int(listener.url.rsplit(":", 1)[1].split("/", 1)[0])
    base = settings or CwmpSettings(enabled=True)
    base = replace(base, enabled=True, cr_host="127.0.0.1", cr_port=port, cr_path="/cr")
    lease = tr069_lease(inv, mac, f"{phone.model} dslforum.org")
    who = Identity(mac, phone.model, phone.serial, load, f"Cisco-{phone.model}/12.0.1")
    setup = prepare(who, lease, dict(profile or {"Display_Name_1_": "Bench"}), base)
    assert setup.phone is not None, setup.why
    return setup.phone, PhoneDriver(ports, listener)
