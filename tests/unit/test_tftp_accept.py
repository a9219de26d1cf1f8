"""Request acceptance, pure (labkit.protocols.tftp.accept): Refuse or Accept, no sockets.

Includes the slot rules of issue 10 item 3: a client's session life and retransmissions are
bounded whatever timeout it asks for, one address holds at most `per_client` sessions, and the
last `reserved` slots are kept for clients that hold none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.protocols.tftp.accept import (
    Accept,
    Exists,
    Forbidden,
    Load,
    Missing,
    Refuse,
    ServerRules,
    TftpFile,
    accept,
)
from labkit.protocols.tftp.base import LIFE, RETRANSMIT, SessionLimits
from labkit.protocols.tftp.faults import TftpFaultAction
from labkit.protocols.tftp.packets import Error, OptionAck, ReadRequest, WriteRequest, decode
from labkit.protocols.tftp.read import ReadSession
from labkit.protocols.tftp.write import Writable, WriteSession

MAC = "00:56:2b:00:01:01"


@dataclass
class Memory:
    content: bytes
    mac: str | None = None
    kind: str = "file"
    closed: bool = False

    @property
    def size(self) -> int:
        return len(self.content)

    def read_at(self, offset: int, size: int) -> bytes:
        return self.content[offset : offset + size]

    def close(self) -> None:
        self.closed = True


class Upload:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def commit(self) -> bool:
        return True

    def close(self) -> None:
        pass


FILES: dict[str, TftpFile | Missing | Forbidden] = {
    "profile.cfg": Memory(b"<flat-profile/>", MAC, "phone profile"),
    "big.bin": Memory(b"x" * 5000),
    "secret": Forbidden("a link that leaves its folder"),
}


def lookup(name: str) -> TftpFile | Missing | Forbidden:
    return FILES.get(name.lstrip("/"), Missing())


def rrq(name: str = "big.bin", *options: tuple[str, str], mode: str = "octet") -> ReadRequest:
    return ReadRequest(name, mode, tuple(options))


DEFAULT_RULES, IDLE = ServerRules(), Load()


def decide(request: ReadRequest | WriteRequest, rules: ServerRules = DEFAULT_RULES, load: Load = IDLE,
           **kw: Any) -> Refuse | Accept:
    return accept(request, rules=rules, load=load, lookup=lookup, **kw)


def refused(decision: Refuse | Accept) -> tuple[str, Error]:
    assert isinstance(decision, Refuse), decision
    (datagram,) = decision.result.send
    error = decode(datagram.data)
    assert isinstance(error, Error)
    assert [f.detail["phase"] for f in decision.result.facts] == ["request", "end"]
    return decision.reason, error


# --------------------------------------------------------------------------- what is refused, and how


def test_unknown_mode_is_refused_with_error_4() -> None:
    assert refused(decide(rrq(mode="mail"))) == ("bad-mode", Error(4, "unsupported mode 'mail'"))


def test_missing_and_forbidden_files() -> None:
    assert refused(decide(rrq("nope"))) == ("not-found", Error(1, "file not found"))
    reason, error = refused(decision := decide(rrq("secret")))
    assert (reason, error) == ("forbidden", Error(2, "access violation"))
    assert isinstance(decision, Refuse)
    assert decision.result.facts[0].detail["reason"] == "a link that leaves its folder"


def test_writes_refused_without_upload_folder_and_on_existing_names() -> None:
    wrq = WriteRequest("log.txt", "octet", ())
    assert refused(decide(wrq)) == ("refused-write", Error(2, "write not permitted"))
    uploads = ServerRules(uploads=True)
    assert refused(decide(wrq, uploads, open_upload=lambda name: Exists())) == (
        "exists", Error(6, "file already exists"))
    target: Writable = Upload()
    decision = decide(wrq, uploads, open_upload=lambda name: target)
    assert isinstance(decision, Accept) and isinstance(decision.session, WriteSession)


def test_fault_error_refuses_and_fault_is_asked_only_when_reached() -> None:
    asked: list[int] = []

    def faults() -> TftpFaultAction:
        asked.append(1)
        return TftpFaultAction(error=2)

    assert refused(decide(rrq(mode="mail"), faults=faults))[0] == "bad-mode"
    assert asked == []  # refused before the fault rules were asked: no fault event
    assert refused(decide(rrq(), faults=faults)) == ("fault", Error(2, "fault rule"))
    assert asked == [1]


def test_accept_names_the_phone_from_the_file_and_negotiates() -> None:
    decision = decide(rrq("profile.cfg", ("blksize", "1024"), ("tsize", "0")))
    assert isinstance(decision, Accept) and isinstance(decision.session, ReadSession)
    (fact,) = decision.result.facts
    assert (fact.action, fact.result, fact.phone) == ("rrq", "accepted", MAC)
    assert fact.answer == "OACK blksize=1024 tsize=15"
    assert fact.detail["size"] == 15
    start = decision.session.start()
    assert decode(start.send[0].data) == OptionAck((("blksize", "1024"), ("tsize", "15")))


def test_directory_phone_wins_over_the_files_phone() -> None:
    decision = decide(rrq("profile.cfg"), phone="00:56:2b:00:00:09")
    assert isinstance(decision, Accept) and decision.result.facts[0].phone == "00:56:2b:00:00:09"


def test_refuse_options_and_wrong_tsize_faults() -> None:
    plain = decide(rrq("big.bin", ("blksize", "1024")), faults=lambda: TftpFaultAction(refuse_options=True))
    assert isinstance(plain, Accept) and plain.session.negotiated.acked == ()
    wrong = decide(rrq("big.bin", ("tsize", "0")), faults=lambda: TftpFaultAction(wrong_tsize=7))
    assert isinstance(wrong, Accept) and wrong.session.negotiated.acked == (("tsize", "7"),)
    assert wrong.fault == TftpFaultAction(wrong_tsize=7)


# --------------------------------------------------------------------------- slots (issue 10 item 3)


def test_server_full_is_busy() -> None:
    rules = ServerRules(max_sessions=4, reserved=0)
    assert refused(decide(rrq(), rules, Load(4, 0))) == ("busy", Error(0, "server busy, try again"))
    assert isinstance(decide(rrq(), rules, Load(3, 0)), Accept)


def test_a_client_at_its_limit_is_refused_and_others_still_served() -> None:
    rules = ServerRules(max_sessions=100, per_client=2, reserved=0)
    assert refused(decide(rrq(), rules, Load(active=2, from_client=2))) == (
        "client-limit", Error(0, "too many transfers from your address"))
    assert isinstance(decide(rrq(), rules, Load(active=2, from_client=0)), Accept)
    assert isinstance(decide(rrq(), rules, Load(active=2, from_client=1)), Accept)


def test_last_slots_are_kept_for_new_clients() -> None:
    rules = ServerRules(max_sessions=10, per_client=None, reserved=3)
    # 7 sessions running: a client holding one already gets no more ...
    assert refused(decide(rrq(), rules, Load(active=7, from_client=1)))[0] == "busy"
    # ... while a client holding none still gets one of the kept slots, up to the very last.
    assert isinstance(decide(rrq(), rules, Load(active=7, from_client=0)), Accept)
    assert isinstance(decide(rrq(), rules, Load(active=9, from_client=0)), Accept)
    assert isinstance(decide(rrq(), rules, Load(active=6, from_client=5)), Accept)


def test_retransmission_interval_is_capped_whatever_timeout_is_asked() -> None:
    rules = ServerRules(session=SessionLimits(retries=3, max_retransmit_timeout=4.0, max_life=None))
    decision = decide(rrq("big.bin", ("timeout", "255")), rules)
    assert isinstance(decision, Accept)
    session = decision.session
    start = session.start()
    assert decode(start.send[0].data) == OptionAck((("timeout", "255"),))  # acked as asked ...
    assert [t.after for t in start.timers if t.key == RETRANSMIT] == [4.0]  # ... not obeyed
    seconds = 0.0
    for _ in range(10):
        result = session.expire()
        if result.done:
            break
        seconds += next(t.after for t in result.timers if t.key == RETRANSMIT)
    assert session.done is not None and session.done.result == "timeout"
    assert seconds <= 3 * 4.0  # a silent client holds the slot for retries x cap at most


def test_session_life_is_bounded() -> None:
    rules = ServerRules(session=SessionLimits(max_life=60.0))
    decision = decide(rrq("big.bin"), rules)
    assert isinstance(decision, Accept)
    start = decision.session.start()
    assert [t.after for t in start.timers if t.key == LIFE] == [60.0]
    ended = decision.session.expire(LIFE)
    assert ended.done and decode(ended.send[0].data) == Error(0, "session too long")
    (fact,) = ended.facts
    assert (fact.result, fact.detail["phase"]) == ("expired", "end")
    assert FILES["big.bin"].closed  # type: ignore[union-attr]
