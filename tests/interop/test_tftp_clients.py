"""The asyncio TFTP service against real clients on 127.0.0.1 and a free high port.

Referees: tftp-hpa's `tftp` (RFC 1350 only: no options), `atftp` (blksize, tsize, timeout,
windowsize), `curl tftp://` (blksize, tsize, timeout) and tftpy's client (blksize, tsize).
Content is compared by sha256. No timing assertions: every wait is a generous upper bound.
The key cases run twice (`path`): with the compiled steady phase of reads (labkit/native/
_tftp.c, when built) and on the pure-Python path (LABKIT_NATIVE=0).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from labkit.events import Event, EventRecorder, StaticDirectory
from labkit.plan.profiles import PlannedFile
from labkit.plan.tftp import TftpLimits, TftpPlan
from labkit.protocols.tftp.packets import Data, Error, OptionAck, decode, encode_ack, encode_error
from labkit.services import filetree
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.sockets import SO_RXQ_OVFL, UDP_RECEIVE_BUFFER, DropCounter, listen_udp
from labkit.services.tftp import TftpService, start_tftp
from tests.conftest import require_module, require_tool

CLIENT_TIMEOUT = 300.0  # seconds; a bound, not an expectation
PHONE_MAC = "00562b000101"
PROFILE = b'<flat-profile>\n  <Profile_Rule ua="na">/Cisco/$PN/$MA.cfg</Profile_Rule>\n</flat-profile>\n'


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(params=["native", "pure"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which read path the service started in the test uses (chosen at start)."""
    monkeypatch.setenv("LABKIT_NATIVE", "1" if request.param == "native" else "0")
    return str(request.param)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tftproot")
    (base / "served").mkdir()
    served = base / "served"
    (served / "firmware.loads").write_bytes(os.urandom(4 * 1024 * 1024))
    (served / "small.bin").write_bytes(os.urandom(70_000))
    (served / "notes.txt").write_bytes(b"line one\nline two\r\nbare cr\rend\n" * 50)
    (served / "Cisco" / "CP-8851-3PCC").mkdir(parents=True)
    (served / "Cisco" / "CP-8851-3PCC" / f"{PHONE_MAC}.cfg").write_bytes(PROFILE)
    (base / "secret.txt").write_bytes(b"outside the root")
    (served / "escape").symlink_to(base / "secret.txt")
    return served


def tree_for(root: Path) -> FileTree:
    planned = {"8851-3PCC.xml": PlannedFile("8851-3PCC.xml", "model profile", data=PROFILE)}
    return FileTree(planned, root)


async def start(tree: FileTree, recorder: EventRecorder, directory: StaticDirectory, *,
                upload_dir: Path | None = None, **limits: Any) -> TftpService:
    """A TFTP service on a free loopback port, with the plan's defaults but for `limits`."""
    ctx = StartContext(tree, recorder, directory, frozenset(), Path("."))
    plan = TftpPlan(upload_dir.resolve() if upload_dir is not None else None, TftpLimits(**limits))
    service = await start_tftp(plan, Endpoint("tftp", "127.0.0.1", 0, "udp"), ctx)
    if os.environ.get("LABKIT_NATIVE") == "0":
        assert service.native is None
    return service


@contextlib.asynccontextmanager
async def serving(root: Path, **options: Any) -> AsyncIterator[tuple[TftpService, EventRecorder]]:
    recorder = EventRecorder()
    service = await start(tree_for(root), recorder, StaticDirectory({"127.0.0.1": PHONE_MAC}), **options)
    try:
        yield service, recorder
    finally:
        await service.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), CLIENT_TIMEOUT * 2))


async def client(*argv: str | Path, stdin: bytes | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *map(str, argv), stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(stdin), CLIENT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(errors="replace")


async def ended(recorder: EventRecorder, count: int = 1) -> list[Event]:
    """The 'end' events once `count` of them exist (sessions end asynchronously)."""
    for _ in range(int(CLIENT_TIMEOUT * 10)):
        ends = [e for e in recorder.events if e.detail.get("phase") == "end"]
        if len(ends) >= count:
            return ends
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(ends)} transfers ended")


# --------------------------------------------------------------------------- tftp-hpa


def test_tftp_hpa_get_binary_and_leading_slash(root: Path, tmp_path: Path, path: str) -> None:
    tftp = require_tool("tftp")

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            port = str(service.port)
            profile = f"Cisco/CP-8851-3PCC/{PHONE_MAC}.cfg"
            for name, local in [("firmware.loads", "firmware.loads"), ("/" + profile, profile),
                                ("/8851-3PCC.xml", None)]:
                out = tmp_path / "out.bin"
                rc, text = await client(tftp, "-v", "127.0.0.1", port, "-m", "binary", "-c", "get", name, out)
                assert rc == 0, text
                expected = PROFILE if local is None else (root / local).read_bytes()
                assert sha256_file(out) == hashlib.sha256(expected).hexdigest()
            events = await ended(recorder, 3)
            assert [e.result for e in events] == ["ok", "ok", "ok"]
            assert events[0].answer == f"{4 * 1024 * 1024} bytes in {4 * 1024 * 1024 // 512 + 1} blocks"
            assert events[1].request == f"/Cisco/CP-8851-3PCC/{PHONE_MAC}.cfg"  # as sent
            assert events[1].phone == PHONE_MAC
            request = next(e for e in recorder.events if e.detail.get("phase") == "request")
            assert request.action == "rrq" and request.answer == "DATA"  # no options: no OACK
            assert request.detail["negotiated"]["blksize"] == 512

    run(scenario)


def test_tftp_hpa_netascii(root: Path, tmp_path: Path) -> None:
    tftp = require_tool("tftp")

    async def scenario() -> None:
        async with serving(root) as (service, _):
            out = tmp_path / "notes.txt"
            rc, text = await client(tftp, "127.0.0.1", str(service.port), "-m", "ascii", "-c", "get",
                                    "notes.txt", out)
            assert rc == 0, text
            # tftp-hpa turns CR LF back into LF and CR NUL into CR: the original comes back.
            assert out.read_bytes() == (root / "notes.txt").read_bytes()

    run(scenario)


def test_tftp_hpa_errors(root: Path, tmp_path: Path) -> None:
    tftp = require_tool("tftp")
    upload = tmp_path / "up.txt"
    upload.write_bytes(b"hello")

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            port = str(service.port)
            cases: list[tuple[list[str | Path], str, str]] = [
                (["get", "missing.cfg", tmp_path / "x"], "Error code 1", "not-found"),
                (["get", "../secret.txt", tmp_path / "x"], "Error code 2", "forbidden"),
                (["get", "Cisco//CP-8851-3PCC/x.cfg", tmp_path / "x"], "Error code 2", "forbidden"),
                (["get", "escape", tmp_path / "x"], "Error code 2", "forbidden"),  # symlink out
                (["put", upload, "up.txt"], "Error code 2", "refused-write"),
            ]
            for command, message, _ in cases:
                # tftp-hpa exits 0 even on a server error; its message is the evidence.
                _, text = await client(tftp, "127.0.0.1", port, "-m", "binary", "-c", *command)
                assert message in text, text
            events = await ended(recorder, len(cases))
            assert [e.result for e in events] == [result for *_, result in cases]
            assert events[-1].action == "wrq"

    run(scenario)


def test_block_number_rollover(tmp_path: Path, path: str) -> None:
    """33 MiB at 512-byte blocks needs more than 65535 blocks: numbers wrap to 0, which is what
    tftp-hpa, curl and atftp all expect."""
    served = tmp_path / "served"
    served.mkdir()
    big = served / "rollover.bin"
    big.write_bytes(os.urandom(33 * 1024 * 1024 + 77))
    clients: list[list[str | Path]] = []
    out = tmp_path / "out.bin"
    for tool in ("tftp", "curl", "atftp"):
        path = require_tool(tool)
        clients.append({
            "tftp": [path, "127.0.0.1", "{port}", "-m", "binary", "-c", "get", "rollover.bin", out],
            "curl": [path, "-sS", "--tftp-blksize", "512", "-o", out, "tftp://127.0.0.1:{port}/rollover.bin"],
            "atftp": [path, "-g", "-r", "rollover.bin", "-l", out, "127.0.0.1", "{port}"],
        }[tool])

    async def scenario() -> None:
        async with serving(served) as (service, recorder):
            for number, argv in enumerate(clients, 1):
                out.unlink(missing_ok=True)
                rc, text = await client(*(str(a).format(port=service.port) for a in argv))
                assert rc == 0, text
                assert sha256_file(out) == sha256_file(big), argv[0]
                event = (await ended(recorder, number))[-1]
                assert event.result == "ok"
                assert event.detail["blocks"] == (33 * 1024 * 1024 + 77) // 512 + 1 > 65535

    run(scenario)


# --------------------------------------------------------------------------- atftp


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--option", "blksize 1468"],
        ["--option", "tsize 0"],
        ["--option", "windowsize 8"],
        ["--option", "blksize 1468", "--option", "tsize 0", "--option", "windowsize 8",
         "--option", "timeout 3"],
        ["--option", "blksize 8", "--option", "windowsize 64"],
    ],
    ids=["plain", "blksize", "tsize", "windowsize", "all", "tiny-blocks-big-window"],
)
def test_atftp_options(root: Path, tmp_path: Path, options: list[str], path: str) -> None:
    atftp = require_tool("atftp")
    name = "small.bin" if "blksize 8" in options else "firmware.loads"

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            out = tmp_path / "out.bin"
            rc, text = await client(atftp, *options, "-g", "-r", name, "-l", out, "127.0.0.1",
                                    str(service.port))
            assert rc == 0, text
            assert sha256_file(out) == sha256_file(root / name)
            (event,) = await ended(recorder)
            assert event.result == "ok"
            negotiated = event.detail["negotiated"]
            if "windowsize 8" in options:
                assert negotiated["windowsize"] == 8
            if "blksize 1468" in options:
                assert negotiated["blksize"] == 1468
            if "tsize 0" in options:
                assert negotiated["oack"]["tsize"] == str((root / name).stat().st_size)

    run(scenario)


def test_atftp_errors(root: Path, tmp_path: Path) -> None:
    atftp = require_tool("atftp")
    upload = tmp_path / "up.txt"
    upload.write_bytes(b"hello")

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            port = str(service.port)
            rc, text = await client(atftp, "-g", "-r", "missing", "-l", tmp_path / "x", "127.0.0.1", port)
            assert rc != 0 and "file not found" in text, text
            rc, text = await client(atftp, "-g", "-r", "../secret.txt", "-l", tmp_path / "x",
                                    "127.0.0.1", port)
            assert rc != 0 and "access violation" in text, text
            rc, text = await client(atftp, "-p", "-l", upload, "-r", "up.txt", "127.0.0.1", port)
            assert rc != 0 and "write not permitted" in text, text
            events = await ended(recorder, 3)
            assert [e.result for e in events] == ["not-found", "forbidden", "refused-write"]

    run(scenario)


# --------------------------------------------------------------------------- curl


@pytest.mark.parametrize("blksize", [None, 8, 512, 1468, 65464])
def test_curl_get(root: Path, tmp_path: Path, blksize: int | None, path: str) -> None:
    curl = require_tool("curl")
    name = "small.bin" if blksize == 8 else "firmware.loads"
    extra = [] if blksize is None else ["--tftp-blksize", str(blksize)]

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            out = tmp_path / "out.bin"
            rc, text = await client(curl, "-sS", *extra, "-o", out,
                                    f"tftp://127.0.0.1:{service.port}/{name}")
            assert rc == 0, text
            assert sha256_file(out) == sha256_file(root / name)
            (event,) = await ended(recorder)
            assert event.result == "ok"
            if blksize is not None:
                assert event.detail["negotiated"]["blksize"] == blksize

    run(scenario)


def test_curl_errors(root: Path, tmp_path: Path) -> None:
    curl = require_tool("curl")
    upload = tmp_path / "up.txt"
    upload.write_bytes(b"hello")

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            base = f"tftp://127.0.0.1:{service.port}"
            cases: list[tuple[list[str | Path], int, str]] = [
                (["-o", tmp_path / "x", f"{base}/missing"], 68, "not-found"),  # CURLE_TFTP_NOTFOUND
                (["--path-as-is", "-o", tmp_path / "x", f"{base}/../secret.txt"], 69, "forbidden"),
                (["-o", tmp_path / "x", f"{base}/a%5Cb"], 69, "forbidden"),  # a backslash
                (["-T", upload, f"{base}/up.txt"], 69, "refused-write"),  # CURLE_TFTP_PERM
            ]
            for argv, code, _ in cases:
                rc, text = await client(curl, "-sS", *argv)
                assert rc == code, text
            events = await ended(recorder, len(cases))
            assert [e.result for e in events] == [result for *_, result in cases]
            assert events[1].request == "../secret.txt"

    run(scenario)


def test_fifty_concurrent_downloads(root: Path, tmp_path: Path, path: str) -> None:
    curl = require_tool("curl")
    expected = sha256_file(root / "firmware.loads")

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            url = f"tftp://127.0.0.1:{service.port}/firmware.loads"
            outs = [tmp_path / f"out{i}.bin" for i in range(50)]
            results = await asyncio.gather(*(
                client(curl, "-sS", "--tftp-blksize", "1468" if i % 2 else "512", "-o", out, url)
                for i, out in enumerate(outs)))
            assert [rc for rc, _ in results] == [0] * 50, [t for _, t in results if t]
            assert {sha256_file(out) for out in outs} == {expected}
            events = await ended(recorder, 50)
            assert {e.result for e in events} == {"ok"}
            assert service.stats.completed == 50
            assert service.active == 0

    run(scenario)


def test_large_firmware_streams_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """A 64 MiB + file (sparse, with random islands) goes out through FileReader.read_at in
    small reads (pure path), or through the compiled loop's own 64 KiB preads (native: the loop
    takes the transfer from the OACK on, so Python reads none of it); traced Python memory stays
    far below the file size."""
    curl = require_tool("curl")
    served = tmp_path / "served"
    served.mkdir()
    big = served / "sip88xx.12-0-1MPP-0001.loads"
    size = 64 * 1024 * 1024 + 4321
    with open(big, "wb") as handle:
        handle.truncate(size)
        for offset in (0, 1 << 20, 33 << 20, size - 4096):
            handle.seek(offset)
            handle.write(os.urandom(4096))
    reads: list[int] = []
    original = filetree.FileReader.read_at

    def spy(self: filetree.FileReader, offset: int, length: int) -> bytes:
        assert self.served.data is None and self.served.disk_path is not None  # never in memory
        reads.append(length)
        return original(self, offset, length)

    monkeypatch.setattr(filetree.FileReader, "read_at", spy)

    async def scenario() -> None:
        async with serving(served) as (service, recorder):
            out = tmp_path / "out.bin"
            tracemalloc.start()
            try:
                rc, text = await client(curl, "-sS", "--tftp-blksize", "8192", "-o", out,
                                        f"tftp://127.0.0.1:{service.port}/{big.name}")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert rc == 0, text
            assert sha256_file(out) == sha256_file(big)
            (event,) = await ended(recorder)
            assert event.result == "ok" and event.detail["bytes"] == size
            # Reads come in read-ahead chunks (64 KiB), never the whole file.
            if service.native is None:
                assert max(reads) <= 64 * 1024 and sum(reads) >= size
            else:
                assert reads == []
            assert peak < 16 * 1024 * 1024, f"peak traced memory {peak} bytes"

    run(scenario)


# --------------------------------------------------------------------------- tftpy's client


@pytest.mark.parametrize("options", [{}, {"blksize": 1468}, {"blksize": 1468, "tsize": 0}])
def test_tftpy_client(root: Path, tmp_path: Path, options: dict[str, int]) -> None:
    require_module("tftpy")
    from tftpy import TftpClient

    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            out = tmp_path / "out.bin"
            tftpy_client = TftpClient("127.0.0.1", service.port, dict(options))
            await asyncio.to_thread(tftpy_client.download, "firmware.loads", str(out), timeout=30)
            assert sha256_file(out) == sha256_file(root / "firmware.loads")
            (event,) = await ended(recorder)
            assert event.result == "ok"

    run(scenario)


def test_tftpy_upload_into_upload_dir(root: Path, tmp_path: Path) -> None:
    require_module("tftpy")
    from tftpy import TftpClient, TftpException

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    source = tmp_path / "report.xml"
    source.write_bytes(os.urandom(100_000))

    async def scenario() -> None:
        async with serving(root, upload_dir=uploads) as (service, recorder):
            tftpy_client = TftpClient("127.0.0.1", service.port, {"blksize": 1468})
            await asyncio.to_thread(tftpy_client.upload, "logs/report.xml", str(source), timeout=30)
            (event,) = await ended(recorder)
            assert (event.action, event.result) == ("wrq", "ok")
            assert (uploads / "logs" / "report.xml").read_bytes() == source.read_bytes()
            assert [p.name for p in (uploads / "logs").iterdir()] == ["report.xml"]  # no part file
            again = TftpClient("127.0.0.1", service.port, {})
            with pytest.raises(TftpException):  # never overwrite: error 6
                await asyncio.to_thread(again.upload, "logs/report.xml", str(source), timeout=30)
            events = await ended(recorder, 2)
            assert events[-1].result == "exists"

    run(scenario)


def test_tftp_hpa_upload_into_upload_dir(root: Path, tmp_path: Path) -> None:
    tftp = require_tool("tftp")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    source = tmp_path / "phone.log"
    source.write_bytes(b"boot ok\nline 2\r\n" * 100)

    async def scenario() -> None:
        async with serving(root, upload_dir=uploads) as (service, recorder):
            port = str(service.port)
            rc, text = await client(tftp, "127.0.0.1", port, "-m", "ascii", "-c", "put", source, "phone.log")
            assert rc == 0, text
            _, text = await client(tftp, "127.0.0.1", port, "-m", "binary", "-c", "put", source, "../x")
            assert "Error code 2" in text
            events = await ended(recorder, 2)
            assert [e.result for e in events] == ["forbidden", "ok"]  # the refusal ends first
            assert (uploads / "phone.log").read_bytes() == source.read_bytes()

    run(scenario)


# --------------------------------------------------------------------------- raw sockets: TIDs, junk, timers


class RawClient:
    """A hand-driven TFTP client socket, for cases no packaged client produces."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    async def send(self, datagram: bytes, address: tuple[str, int]) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, datagram, address)

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recvfrom(self.sock, 70000), 60)

    def close(self) -> None:
        self.sock.close()


def test_unknown_tid_gets_error_5_and_transfer_goes_on(root: Path, path: str) -> None:
    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            owner, intruder = RawClient(), RawClient()
            try:
                await owner.send(b"\x00\x01small.bin\x00octet\x00", ("127.0.0.1", service.port))
                data, session_address = await owner.receive()
                assert session_address[1] != service.port  # a new TID
                assert decode(data) == Data(1, (root / "small.bin").read_bytes()[:512])
                await intruder.send(encode_ack(1), session_address)
                reply, _ = await intruder.receive()
                assert decode(reply) == Error(5, "unknown transfer ID")
                received = bytearray(decode(data).payload)  # type: ignore[union-attr]
                block = 1
                while True:
                    await owner.send(encode_ack(block), session_address)
                    packet, source = await owner.receive()
                    assert source == session_address
                    parsed = decode(packet)
                    assert isinstance(parsed, Data) and parsed.block == (block + 1) & 0xFFFF
                    received += parsed.payload
                    block += 1
                    if len(parsed.payload) < 512:
                        await owner.send(encode_ack(block), session_address)
                        break
                assert bytes(received) == (root / "small.bin").read_bytes()
                (event,) = await ended(recorder)
                assert event.result == "ok"
                assert service.stats.unknown_tid == 1
            finally:
                owner.close()
                intruder.close()

    run(scenario)


def test_malformed_datagrams_are_counted_and_dropped(root: Path, path: str) -> None:
    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            raw = RawClient()
            try:
                listener = ("127.0.0.1", service.port)
                for junk in [b"", b"\x00", b"\xff\xff\xff", b"\x00\x09hello", b"\x00\x04\x00"]:
                    await raw.send(junk, listener)
                # A request that does not parse has a clear sender waiting: error 4.
                await raw.send(b"\x00\x01name-without-mode\x00", listener)
                reply, _ = await raw.receive()
                parsed = decode(reply)
                assert isinstance(parsed, Error) and parsed.code == 4
                # mail mode is refused with error 4 too.
                await raw.send(b"\x00\x01small.bin\x00mail\x00", listener)
                reply, _ = await raw.receive()
                assert decode(reply) == Error(4, "unsupported mode 'mail'")
                # Out-of-range options are ignored: plain DATA 1, no OACK.
                await raw.send(b"\x00\x01small.bin\x00octet\x00blksize\x0070000\x00windowsize\x000\x00",
                               listener)
                reply, session_address = await raw.receive()
                assert decode(reply) == Data(1, (root / "small.bin").read_bytes()[:512])
                await raw.send(encode_error(0, "enough"), session_address)
                assert service.stats.malformed == 6
                events = await ended(recorder, 2)
                assert [e.result for e in events] == ["bad-mode", "aborted"]
            finally:
                raw.close()

    run(scenario)


def test_silent_client_times_out_after_bounded_retries(root: Path, path: str) -> None:
    async def scenario() -> None:
        async with serving(root, timeout=0.2, retries=2) as (service, recorder):
            raw = RawClient()
            try:
                await raw.send(b"\x00\x01small.bin\x00octet\x00blksize\x001024\x00",
                               ("127.0.0.1", service.port))
                seen = [decode((await raw.receive())[0]) for _ in range(4)]
                oack = OptionAck((("blksize", "1024"),))
                assert seen == [oack, oack, oack, Error(0, "timeout")]  # 2 retransmissions, then out
                (event,) = await ended(recorder)
                assert event.result == "timeout"
                assert event.detail["retransmits"] == 2
                assert service.active == 0
            finally:
                raw.close()

    run(scenario)


def test_close_ends_running_transfers(root: Path, path: str) -> None:
    async def scenario() -> None:
        recorder = EventRecorder()
        service = await start(tree_for(root), recorder, StaticDirectory())
        raw = RawClient()
        try:
            await raw.send(b"\x00\x01firmware.loads\x00octet\x00", ("127.0.0.1", service.port))
            await raw.receive()  # DATA 1, then the client goes quiet
            await service.close()
            reply, _ = await raw.receive()
            assert decode(reply) == Error(0, "server shutting down")
            (event,) = await ended(recorder)
            assert event.result == "shutdown"
            assert service.active == 0
        finally:
            raw.close()

    run(scenario)


def test_repeated_request_does_not_start_a_second_transfer(root: Path) -> None:
    async def scenario() -> None:
        async with serving(root) as (service, recorder):
            raw = RawClient()
            try:
                request = b"\x00\x01small.bin\x00octet\x00"
                await raw.send(request, ("127.0.0.1", service.port))
                _, session_address = await raw.receive()
                await raw.send(request, ("127.0.0.1", service.port))  # "lost" DATA 1: ask again
                await raw.send(encode_ack(1), session_address)
                second, source = await raw.receive()
                assert source == session_address
                assert decode(second) == Data(2, (root / "small.bin").read_bytes()[512:1024])
                await raw.send(encode_error(0, "enough"), session_address)
                (event,) = await ended(recorder)
                assert event.result == "aborted"
                assert service.stats.duplicates == 1 and service.stats.requests == 1
                assert len([e for e in recorder.events if e.detail.get("phase") == "request"]) == 1
            finally:
                raw.close()

    run(scenario)


# --------------------------------------------------------------------------- slots under hostile clients


class BoundClient(RawClient):
    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.setblocking(False)


def test_client_timeout_255_is_acked_but_retransmission_stays_bounded(root: Path) -> None:
    """Issue 10 item 3: `timeout 255` and no ACK once held a slot for 25 minutes."""

    async def scenario() -> None:
        async with serving(root, max_retransmit_timeout=0.2, retries=2) as (service, recorder):
            raw = RawClient()
            try:
                request = b"\x00\x01small.bin\x00octet\x00timeout\x00255\x00"
                await raw.send(request, ("127.0.0.1", service.port))
                seen = [decode((await raw.receive())[0]) for _ in range(4)]
                oack = OptionAck((("timeout", "255"),))
                assert seen == [oack, oack, oack, Error(0, "timeout")]
                (event,) = await ended(recorder)
                assert event.result == "timeout" and service.active == 0
            finally:
                raw.close()

    run(scenario)


def test_session_life_is_bounded_even_for_a_client_that_keeps_it_alive(root: Path, path: str) -> None:
    async def scenario() -> None:
        limits = {"max_retransmit_timeout": 0.05, "retries": 10**6, "max_life": 0.5}
        async with serving(root, **limits) as (service, recorder):
            raw = RawClient()
            try:
                await raw.send(b"\x00\x01small.bin\x00octet\x00", ("127.0.0.1", service.port))
                for _ in range(10**5):  # DATA 1 again and again, never acknowledged, then the end
                    packet = decode((await raw.receive())[0])
                    if isinstance(packet, Error):
                        break
                assert packet == Error(0, "session too long")
                (event,) = await ended(recorder)
                assert event.result == "expired" and service.active == 0
            finally:
                raw.close()

    run(scenario)


def test_a_client_at_its_limit_is_refused_while_others_get_sessions(root: Path) -> None:
    async def scenario() -> None:
        limits = {"per_client": 2, "per_client_on_loopback": True, "reserved": 0}
        async with serving(root, **limits) as (service, _):
            hog = [RawClient() for _ in range(3)]
            other = BoundClient("127.0.0.2")
            listener = ("127.0.0.1", service.port)
            try:
                for client_ in hog[:2]:  # two silent transfers from 127.0.0.1
                    await client_.send(b"\x00\x01small.bin\x00octet\x00", listener)
                    assert isinstance(decode((await client_.receive())[0]), Data)
                await hog[2].send(b"\x00\x01small.bin\x00octet\x00", listener)
                assert decode((await hog[2].receive())[0]) == Error(0, "too many transfers from your address")
                await other.send(b"\x00\x01small.bin\x00octet\x00", listener)
                assert isinstance(decode((await other.receive())[0]), Data)
                assert service.stats.client_limit == 1 and service.active == 3
            finally:
                for client_ in [*hog, other]:
                    client_.close()

    run(scenario)


# --------------------------------------------------------------------------- links out of a declared folder


def test_firmware_link_leaving_its_folder_is_not_served(tmp_path: Path) -> None:
    """Issue 10 item 6: a symlink in firmware_dir to a file outside was served, unauthenticated."""
    firmware = tmp_path / "firmware"
    firmware.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"outside the firmware folder")
    (firmware / "cp8851.loads").symlink_to(tmp_path / "secret.txt")
    (firmware / "passwd.loads").symlink_to("/etc/passwd")
    files = {name: PlannedFile(name, "firmware", disk_path=firmware / name)
             for name in ("cp8851.loads", "passwd.loads")}

    async def scenario() -> None:
        recorder = EventRecorder()
        service = await start(FileTree(files, sources=[firmware]), recorder, StaticDirectory())
        raw = RawClient()
        try:
            for name in files:
                await raw.send(b"\x00\x01" + name.encode() + b"\x00octet\x00", ("127.0.0.1", service.port))
                reply, _ = await raw.receive()
                assert decode(reply) == Error(2, "access violation")
            events = await ended(recorder, 2)
            assert [e.result for e in events] == ["forbidden", "forbidden"]
            assert "leaves its folder" in events[0].detail["reason"]
        finally:
            raw.close()
            await service.close()

    run(scenario)


# --------------------------------------------------------------------------- receive buffers, kernel drops


async def overflow(sock: socket.socket, counter: DropCounter, target: tuple[str, int]) -> None:
    """Fill a tiny receive buffer without letting the loop read, then let it read; bounded."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(2000):  # far more than a 4 KiB buffer holds; the loop is not reading
            sender.sendto(b"\x00\x05\x00\x00junk\x00" + b"j" * 200, target)
        for _ in range(500):  # each datagram carries the kernel's drop count when read
            await asyncio.sleep(0.01)
            sender.sendto(b"\x00\x05\x00\x00junk\x00", target)
            if counter.count:
                return
    finally:
        sender.close()


def test_tftp_socket_has_a_large_buffer_and_counts_kernel_drops(root: Path) -> None:
    """Issue 10 item 8: a 520-RRQ burst lost 254 requests in the default 208 KiB buffer, unseen."""

    async def scenario() -> None:
        async with serving(root) as (service, _):
            sock = service._listener.get_extra_info("socket")  # type: ignore[union-attr]
            assert sock.getsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL) == 1
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= min(
                UDP_RECEIVE_BUFFER, int(Path("/proc/sys/net/core/rmem_max").read_text()))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # now make it overflow
            service.drops.every = 0.0
            await overflow(sock, service.drops, ("127.0.0.1", service.port))
            assert service.drops.count > 0
            assert service.stats.stray > 0  # what was not dropped was read and counted

    run(scenario)


def test_drop_counter_reports_growth_as_one_event() -> None:
    async def scenario() -> None:
        recorder = EventRecorder()
        counter = DropCounter("tftp", recorder, every=0.0)
        transport, sock = await listen_udp(asyncio.DatagramProtocol, "127.0.0.1", 0, buffer=4096,
                                           drops=counter)
        try:
            await overflow(sock, counter, sock.getsockname())
            for _ in range(100):
                await asyncio.sleep(0.01)
                if recorder.events:
                    break
            (event,) = [e for e in recorder.events if e.action == "kernel-drops"]
            assert event.detail["total"] == counter.count > 0 and event.result == "overflow"
        finally:
            transport.close()
            counter.stop()

    run(scenario)
