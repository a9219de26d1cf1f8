"""The CPE's side of one CWMP session, sans-IO: what to POST next, given the ACS's last answer.

TR-069 Amendment 3 §3.7.1: the CPE POSTs Inform; after InformResponse it POSTs its own requests
(TransferComplete, ...) unless the ACS holds them (cwmp:HoldRequests true), then an empty POST;
each ACS request in an HTTP answer is handled (`handler`) and its response (or CWMP fault) goes
in the next POST, with the request's cwmp:ID. An empty answer (HTTP 204, or 200 with no body)
to the empty POST ends the session. A fault to Inform (8005 "Retry request" above all) ends it
with `retry` set: the caller opens a new session later, RetryCount one higher.

The caller owns HTTP (connection, cookies, 401 and authentication, redirects) and time; the
handler owns the device (parameter tree, what a Reboot or Download does after the session).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.codes import INTERNAL_ERROR, METHOD_NOT_SUPPORTED
from labkit.protocols.cwmp.soap import CWMP_1_2, Envelope, decode, encode
from labkit.protocols.cwmp.summary import summarize
from labkit.protocols.cwmp.values import CwmpError
from labkit.protocols.result import Fact

Handler = Callable[[rpc.Rpc], rpc.Rpc]  # an ACS request in, its response or an rpc.Fault out


@dataclass(frozen=True)
class Post:
    """One HTTP POST to the ACS."""

    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.body


@dataclass(frozen=True)
class CpeStep:
    post: Post | None  # None: the session is over, close the connection
    facts: tuple[Fact, ...] = ()
    received: rpc.Rpc | None = None  # the ACS's message this step answers

    @property
    def done(self) -> bool:
        return self.post is None


@dataclass
class CpeSession:
    inform: rpc.Inform
    handler: Handler
    requests: deque[rpc.Rpc] = field(default_factory=deque)  # TransferComplete, ... after Inform
    id_prefix: str = "cpe"
    ns: str = CWMP_1_2
    supported: tuple[type[rpc.Rpc], ...] = rpc.REQUESTS_TO_CPE
    informed: bool = False
    held: bool = False
    outstanding: tuple[str, rpc.Rpc] | None = None  # our request waiting for its response
    delivered: list[rpc.Rpc] = field(default_factory=list)  # our requests the ACS acknowledged
    retry: bool = False  # the session failed: open a new one later, RetryCount + 1
    fault: rpc.Fault | None = None  # the fault that ended it, if any
    sent: int = 0
    log: list[Fact] = field(default_factory=list)

    refused: bool = False  # the ACS faulted one of our requests: no more of them this session

    def pending(self) -> list[rpc.Rpc]:
        """Our requests the ACS has not acknowledged (for the next session)."""
        return list(self.requests)

    def start(self) -> Post:
        """The first POST: the Inform."""
        return self._send_request(self.inform)

    def receive(self, status: int, body: bytes) -> CpeStep:
        """The ACS's HTTP answer to the last POST; the next POST, or None when the session ends."""
        if status == 204 or (status == 200 and not body.strip()):
            return self._on_empty_answer(status)
        if status != 200:
            return self._end(Fact("cwmp", "POST", f"HTTP {status}", f"http-{status}"), retry=True)
        try:
            envelope = decode(body)
        except CwmpError as exc:
            return self._end(Fact("cwmp", "POST", "malformed", "malformed", detail={"error": str(exc)}),
                             retry=True)
        if envelope.body is None:  # an Envelope with an empty Body: as an empty answer
            return self._on_empty_answer(status)
        self.held = envelope.hold_requests
        message = envelope.body
        if isinstance(message, self.supported):
            return self._answer(envelope, message)
        if isinstance(message, rpc.Fault) or type(message) in rpc.RESPONSES.values():
            return self._on_response(envelope, message)
        fault = rpc.Fault(METHOD_NOT_SUPPORTED)
        fact = Fact(message.ELEMENT, summarize(message), summarize(fault), "fault-9000")
        return self._step(Post(encode(Envelope(envelope.id, False, fault, self.ns)), XML_HEADERS),
                          fact, message)

    # ------------------------------------------------------------------ our requests

    def _send_request(self, request: rpc.Rpc) -> Post:
        self.sent += 1
        message_id = f"{self.id_prefix}-{self.sent}"
        self.outstanding = (message_id, request)
        headers = (*XML_HEADERS, ("SOAPAction", f'"{request.ELEMENT}"'))  # TR-069 §3.4.1
        return Post(encode(Envelope(message_id, False, request, self.ns)), headers)

    def _on_response(self, envelope: Envelope, message: rpc.Rpc) -> CpeStep:
        if self.outstanding is None:
            fact = Fact(message.ELEMENT, summarize(message), "-", "unexpected")
            return self._step(self._next_post(), fact, message)
        message_id, request = self.outstanding
        self.outstanding = None
        if isinstance(message, rpc.Fault):
            fact = Fact(request.ELEMENT, summarize(request), summarize(message), f"fault-{message.code}")
            self.fault = message
            if isinstance(request, rpc.Inform):  # no session without an InformResponse
                return self._end(fact, retry=True, received=message)
            # a refused request stays ours: it goes again in a later session
            self.requests.appendleft(request)
            self.refused = self.retry = True
            return self._step(Post(b""), fact, message)
        result = "ok" if envelope.id == message_id else "wrong-id"
        if rpc.RESPONSES.get(type(request)) is not type(message):
            result = "wrong-response"
        fact = Fact(request.ELEMENT, summarize(request), summarize(message), result,
                    detail={"id": message_id, "answer_id": envelope.id})
        if isinstance(request, rpc.Inform):
            self.informed = True
        else:
            self.delivered.append(request)
        return self._step(self._next_post(), fact, message)

    def _next_post(self) -> Post:
        if self.requests and not self.held and not self.refused:
            return self._send_request(self.requests.popleft())
        return Post(b"")  # the empty POST: nothing more from us (or held)

    # ------------------------------------------------------------------ the ACS's requests

    def _answer(self, envelope: Envelope, request: rpc.Rpc) -> CpeStep:
        try:
            response = self.handler(request)
        except CwmpError as exc:
            response = rpc.Fault(INTERNAL_ERROR, str(exc)[:200])
        result = f"fault-{response.code}" if isinstance(response, rpc.Fault) else "ok"
        fact = Fact(request.ELEMENT, summarize(request), summarize(response), result,
                    detail={"id": envelope.id})
        post = Post(encode(Envelope(envelope.id, False, response, self.ns)), XML_HEADERS)
        return self._step(post, fact, request)

    def _on_empty_answer(self, status: int) -> CpeStep:
        if self.outstanding is not None:  # our request got no answer
            _, request = self.outstanding
            self.outstanding = None
            fact = Fact(request.ELEMENT, summarize(request), f"HTTP {status} empty", "unanswered")
            return self._end(fact, retry=isinstance(request, rpc.Inform))
        self.held = False
        if self.requests and not self.refused:  # the hold is over: our requests go now (§A.4.2 HoldRequests)
            return self._step(self._send_request(self.requests.popleft()), None, None)
        return self._end(Fact("cwmp", "session", f"HTTP {status}", "ok",
                              detail={"delivered": len(self.delivered)}))

    def _step(self, post: Post | None, fact: Fact | None, received: rpc.Rpc | None) -> CpeStep:
        facts = (fact,) if fact is not None else ()
        self.log.extend(facts)
        return CpeStep(post, facts, received)

    def _end(self, fact: Fact, *, retry: bool = False, received: rpc.Rpc | None = None) -> CpeStep:
        self.retry = self.retry or retry
        return self._step(None, fact, received)


XML_HEADERS = (("Content-Type", 'text/xml; charset="utf-8"'),)
