"""The ACS's side of one CWMP session, sans-IO: each HTTP POST's body in, the HTTP answer out.

TR-069 Amendment 3 §3.7.1 and Annex A: the CPE opens with Inform (answered by InformResponse,
same cwmp:ID); it may send its own requests (TransferComplete, GetRPCMethods), each answered;
then an empty POST says it has nothing more; the ACS sends its queued requests one envelope at a
time, each answered by the CPE's next POST (matched on cwmp:ID); an empty answer (HTTP 204) ends
the session. `hold_requests=True` puts cwmp:HoldRequests on the ACS's envelopes while it still
has requests queued, so the CPE sends none of its own in between.

The answer is HTTP-shaped (`AcsReply`: status, headers, body) with the shared `Fact` vocabulary
for the event log; the caller (the kit's ACS service) owns sockets, authentication, the queue's
contents (`enqueue` after seeing the Inform) and fault injection (`receive(..., fault=8005)`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.codes import ACS_INVALID_ARGUMENTS, ACS_METHOD_NOT_SUPPORTED
from labkit.protocols.cwmp.soap import CWMP_1_2, Envelope, decode, encode
from labkit.protocols.cwmp.summary import summarize
from labkit.protocols.cwmp.values import CwmpError
from labkit.protocols.result import Fact

XML = (("Content-Type", 'text/xml; charset="utf-8"'),)


@dataclass(frozen=True)
class AcsReply:
    """What to answer one POST with, and what happened."""

    status: int  # 200 with a body, 204 to end the session, 400 for a message that is not CWMP
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    facts: tuple[Fact, ...] = ()
    # the session is over unless the CPE still POSTs on it: after a 204 a CPE whose requests
    # were held sends them (§3.7.1.4: the session ends when neither side has requests left)
    done: bool = False
    received: rpc.Rpc | None = None  # the CPE's message (None: empty POST or undecodable)
    answered: rpc.Rpc | None = None  # the ACS request that `received` answers, when it is one


@dataclass
class AcsSession:
    """One session with one CPE. Feed it every POST body in order (`receive`)."""

    requests: deque[rpc.Rpc] = field(default_factory=deque)
    # called with the Inform before InformResponse is built: the requests for this CPE
    on_inform: Callable[[rpc.Inform], Iterable[rpc.Rpc]] | None = None
    hold_requests: bool = False
    id_prefix: str = "acs"
    inform: rpc.Inform | None = None
    ns: str = CWMP_1_2
    outstanding: tuple[str, rpc.Rpc] | None = None  # (cwmp:ID, request) awaiting its answer
    sent: int = 0
    done: bool = False
    log: list[Fact] = field(default_factory=list)  # every fact of the session, in order

    def enqueue(self, requests: Iterable[rpc.Rpc]) -> None:
        for request in requests:
            if not isinstance(request, rpc.REQUESTS_TO_CPE):
                raise CwmpError(f"{type(request).__name__} is not a request an ACS sends")
            self.requests.append(request)

    def receive(self, data: bytes, *, fault: int | None = None) -> AcsReply:
        """Answer one POST. `fault`: answer the CPE's request with this ACS fault (8000-8005)
        instead (a fault rule's choice; 8005 asks the CPE to retry the session later)."""
        try:
            envelope = decode(data)
        except CwmpError as exc:
            self.done = True
            return self._reply(AcsReply(400, facts=(Fact("cwmp", "POST", "400", "malformed",
                                                         detail={"error": str(exc)}),), done=True))
        if envelope.body is None:
            return self._reply(self._on_empty())
        self.ns = envelope.ns
        body = envelope.body
        if self.inform is None and not isinstance(body, rpc.Inform):
            return self._answer_fault(envelope, ACS_INVALID_ARGUMENTS, "no Inform yet", done=True)
        if isinstance(body, rpc.REQUESTS_TO_ACS):
            if fault is not None:
                return self._answer_fault(envelope, fault, "fault rule",
                                          done=isinstance(body, rpc.Inform))
            return self._on_request(envelope, body)
        if isinstance(body, rpc.Fault) or type(body) in rpc.RESPONSES.values():
            return self._reply(self._on_answer(envelope, body))
        return self._answer_fault(envelope, ACS_METHOD_NOT_SUPPORTED, "not an ACS method")

    # ------------------------------------------------------------------ the CPE's requests

    def _on_request(self, envelope: Envelope, body: rpc.Rpc) -> AcsReply:
        response: rpc.Rpc
        if isinstance(body, rpc.Inform):
            self.inform = body
            if self.on_inform is not None:
                self.enqueue(self.on_inform(body))
            response = rpc.InformResponse(max_envelopes=1)
        elif isinstance(body, rpc.TransferComplete):
            response = rpc.TransferCompleteResponse()
        else:  # GetRPCMethods: the methods this ACS answers
            response = rpc.GetRPCMethodsResponse(("Inform", "TransferComplete", "GetRPCMethods"))
        out = Envelope(envelope.id, self._holding(), response, self.ns)
        fact = Fact(body.ELEMENT, summarize(body), response.ELEMENT, "ok", detail=self._detail(body))
        return self._reply(AcsReply(200, encode(out), XML, (fact,), received=body))

    def _answer_fault(self, envelope: Envelope, code: int, why: str, *, done: bool = False) -> AcsReply:
        assert envelope.body is not None
        fault = rpc.Fault(code)
        self.done = self.done or done
        out = Envelope(envelope.id, False, fault, self.ns)
        fact = Fact(envelope.body.ELEMENT, summarize(envelope.body), f"Fault {code} {fault.string}",
                    f"fault-{code}", detail={"why": why})
        return self._reply(AcsReply(200, encode(out), XML, (fact,), done=done, received=envelope.body))

    # ------------------------------------------------------------------ the ACS's requests

    def _on_empty(self) -> AcsReply:
        if self.inform is None:
            self.done = True
            return AcsReply(400, facts=(Fact("cwmp", "empty POST", "400", "no-inform"),), done=True)
        if self.outstanding is not None:  # an empty POST while a request waits: the CPE gave up on it
            message_id, request = self.outstanding
            self.outstanding = None
            fact = Fact(request.ELEMENT, summarize(request), "empty POST", "unanswered",
                        detail={"id": message_id})
            return self._next(fact)
        return self._next(None)

    def _on_answer(self, envelope: Envelope, body: rpc.Rpc) -> AcsReply:
        if self.outstanding is None:
            fact = Fact(body.ELEMENT, summarize(body), "-", "unexpected", detail={"id": envelope.id})
            return self._next(fact, received=body)
        message_id, request = self.outstanding
        self.outstanding = None
        if envelope.id != message_id:
            result = "wrong-id"
        elif isinstance(body, rpc.Fault):
            result = f"fault-{body.code}"
        elif rpc.RESPONSES.get(type(request)) is not type(body):
            result = "wrong-response"
        else:
            result = "ok"
        fact = Fact(request.ELEMENT, summarize(request), summarize(body), result,
                    detail={"id": message_id, "answer_id": envelope.id})
        return self._next(fact, received=body, answered=request)

    def _next(self, fact: Fact | None, *, received: rpc.Rpc | None = None,
              answered: rpc.Rpc | None = None) -> AcsReply:
        facts = (fact,) if fact is not None else ()
        if not self.requests:
            self.done = True
            end = Fact("cwmp", "session", "204", "ok", detail={"requests": self.sent})
            return AcsReply(204, facts=(*facts, end), done=True, received=received, answered=answered)
        request = self.requests.popleft()
        self.sent += 1
        message_id = f"{self.id_prefix}-{self.sent}"
        self.outstanding = (message_id, request)
        out = Envelope(message_id, self._holding(), request, self.ns)
        return AcsReply(200, encode(out), XML, facts, received=received, answered=answered)

    def _holding(self) -> bool:
        return self.hold_requests and bool(self.requests)

    def _detail(self, body: rpc.Rpc) -> dict[str, object]:
        if isinstance(body, rpc.Inform):
            device = body.device_id
            return {"events": list(body.event_codes()), "oui": device.oui,
                    "product_class": device.product_class, "serial": device.serial_number,
                    "retry_count": body.retry_count}
        if isinstance(body, rpc.TransferComplete):
            return {"command_key": body.command_key, "fault": body.fault.code}
        return {}

    def _reply(self, reply: AcsReply) -> AcsReply:
        self.log.extend(reply.facts)
        return reply
