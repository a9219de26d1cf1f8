"""The sans-IO ACS and CPE sessions driven against each other, without sockets."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.acs_session import AcsReply, AcsSession
from labkit.protocols.cwmp.cpe_session import CpeSession, Post
from labkit.protocols.cwmp.soap import Envelope, decode, encode
from labkit.protocols.cwmp.values import CwmpError, Value
from tests.unit.cwmp_strategies import rpcs

DEVICE = rpc.DeviceIdStruct("Cisco Systems Inc.", "00562B", "CP-8851-3PCC", "FCH2203001")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def inform(*codes: str, key: str = "") -> rpc.Inform:
    return rpc.Inform(DEVICE, tuple(rpc.EventStruct(c, key if c.startswith("M ") else "") for c in codes),
                      1, NOW, 0, (rpc.ParameterValueStruct("Device.ManagementServer.ConnectionRequestURL",
                                                           Value.string("http://10.42.0.50:7547/cr")),))


class Device:
    """A tiny CPE: a dict of string parameters, one read-only."""

    def __init__(self) -> None:
        self.values = {"Device.A": "1", "Device.B": "x", "Device.DeviceInfo.SerialNumber": "FCH2203001"}
        self.requests: list[rpc.Rpc] = []

    def __call__(self, request: rpc.Rpc) -> rpc.Rpc:
        self.requests.append(request)
        if isinstance(request, rpc.SetParameterValues):
            bad = tuple(rpc.SetParameterValuesFault(p.name, 9005 if p.name not in self.values else 9008)
                        for p in request.parameters
                        if p.name not in self.values or p.name.endswith("SerialNumber"))
            if bad:
                return rpc.Fault(9003, set_parameter_values_faults=bad)
            self.values.update({p.name: p.value.text() for p in request.parameters})
            return rpc.SetParameterValuesResponse(0)
        if isinstance(request, rpc.GetParameterValues):
            if any(n not in self.values for n in request.names):
                return rpc.Fault(9005)
            found = (rpc.ParameterValueStruct(n, Value.string(self.values[n])) for n in request.names)
            return rpc.GetParameterValuesResponse(tuple(found))
        return rpc.RESPONSES[type(request)]()


def run(acs: AcsSession, cpe: CpeSession, *, tamper: Callable[[Post], Post] | None = None
        ) -> list[tuple[Envelope, AcsReply]]:
    """Drive one session to its end (bounded); every CPE POST (decoded) with the ACS's reply."""
    exchanged: list[tuple[Envelope, AcsReply]] = []
    post: Post | None = cpe.start()
    for _ in range(50):
        assert post is not None
        if tamper is not None:
            post = tamper(post)
        reply = acs.receive(post.body)
        exchanged.append((decode(post.body), reply))
        post = cpe.receive(reply.status, reply.body).post
        if post is None:
            return exchanged
    raise AssertionError("the session did not end within 50 exchanges")


def kinds(exchanged: list[tuple[Envelope, AcsReply]]) -> list[tuple[str, str]]:
    out = []
    for envelope, reply in exchanged:
        sent = envelope.body.ELEMENT if envelope.body else "empty"
        answer = decode(reply.body).body if reply.body else None
        out.append((sent, answer.ELEMENT if answer else str(reply.status)))
    return out


def test_a_bootstrap_session_with_queued_requests() -> None:
    device = Device()
    acs = AcsSession(on_inform=lambda _: [
        rpc.SetParameterValues((rpc.ParameterValueStruct("Device.A", Value.string("2")),), "k1"),
        rpc.GetParameterValues(("Device.A", "Device.B"))])
    cpe = CpeSession(inform("0 BOOTSTRAP", "1 BOOT"), device)
    exchanged = run(acs, cpe)
    assert kinds(exchanged) == [("Inform", "InformResponse"), ("empty", "SetParameterValues"),
                                ("SetParameterValuesResponse", "GetParameterValues"),
                                ("GetParameterValuesResponse", "204")]
    assert device.values["Device.A"] == "2"
    assert acs.inform is not None and acs.inform.event_codes() == ("0 BOOTSTRAP", "1 BOOT")
    assert [f.result for f in acs.log] == ["ok", "ok", "ok", "ok"]
    assert acs.log[0].detail["serial"] == "FCH2203001"
    # each answer carries the cwmp:ID of the request it answers
    first_request = decode(exchanged[1][1].body)
    assert exchanged[2][0].id == first_request.id == "acs-1"
    assert decode(exchanged[0][1].body).id == exchanged[0][0].id == "cpe-1"
    assert cpe.informed and not cpe.retry and acs.done


def test_hold_requests_keeps_the_cpe_requests_until_the_acs_is_done() -> None:
    acs = AcsSession(on_inform=lambda _: [rpc.GetParameterValues(("Device.A",)), rpc.Reboot("r1")],
                     hold_requests=True)
    done = rpc.TransferComplete("dl-1", rpc.TransferFault(), NOW, NOW)
    cpe = CpeSession(inform("1 BOOT", "7 TRANSFER COMPLETE", "M Download", key="dl-1"), Device(),
                     deque([done]))
    exchanged = run(acs, cpe)
    assert kinds(exchanged) == [("Inform", "InformResponse"), ("empty", "GetParameterValues"),
                                ("GetParameterValuesResponse", "Reboot"), ("RebootResponse", "204"),
                                ("TransferComplete", "TransferCompleteResponse"), ("empty", "204")]
    assert decode(exchanged[0][1].body).hold_requests  # the InformResponse held the CPE's requests
    assert cpe.delivered == [done] and cpe.pending() == []


def test_without_hold_the_cpe_sends_its_requests_first() -> None:
    acs = AcsSession(on_inform=lambda _: [rpc.Reboot("r1")])
    done = rpc.TransferComplete("dl-1")
    cpe = CpeSession(inform("7 TRANSFER COMPLETE", "M Download", key="dl-1"), Device(), deque([done]))
    assert kinds(run(acs, cpe)) == [("Inform", "InformResponse"),
                                    ("TransferComplete", "TransferCompleteResponse"),
                                    ("empty", "Reboot"), ("RebootResponse", "204")]


def test_acs_retry_fault_to_inform_ends_the_session_for_a_retry() -> None:
    acs = AcsSession(on_inform=lambda _: [rpc.Reboot()])
    cpe = CpeSession(inform("2 PERIODIC"), Device())
    post = cpe.start()
    reply = acs.receive(post.body, fault=8005)
    fault = decode(reply.body).body
    assert isinstance(fault, rpc.Fault) and fault.code == 8005 and fault.soap_faultcode == "Server"
    assert reply.done and reply.facts[0].result == "fault-8005"
    step = cpe.receive(reply.status, reply.body)
    assert step.done and cpe.retry and not cpe.informed and cpe.fault == fault


def test_a_cpe_fault_reaches_the_acs_log() -> None:
    acs = AcsSession(on_inform=lambda _: [
        rpc.SetParameterValues((
            rpc.ParameterValueStruct("Device.Nope", Value.string("1")),
            rpc.ParameterValueStruct("Device.DeviceInfo.SerialNumber", Value.string("2"))))])
    exchanged = run(acs, CpeSession(inform("2 PERIODIC"), Device()))
    answer = exchanged[2][0].body
    assert isinstance(answer, rpc.Fault) and answer.code == 9003
    assert [(f.name, f.code) for f in answer.set_parameter_values_faults] == [
        ("Device.Nope", 9005), ("Device.DeviceInfo.SerialNumber", 9008)]
    assert [f.result for f in acs.log] == ["ok", "fault-9003", "ok"]


def test_an_answer_with_the_wrong_id_is_noticed() -> None:
    def wrong_id(post: Post) -> Post:
        envelope = decode(post.body)
        if isinstance(envelope.body, rpc.RebootResponse):
            return Post(encode(Envelope("not-the-id", False, envelope.body)), post.headers)
        return post

    acs = AcsSession(on_inform=lambda _: [rpc.Reboot("r")])
    run(acs, CpeSession(inform("1 BOOT"), Device()), tamper=wrong_id)
    assert [f.result for f in acs.log] == ["ok", "wrong-id", "ok"]


def test_the_cpe_refuses_what_it_does_not_support() -> None:
    acs = AcsSession(on_inform=lambda _: [rpc.FactoryReset()])
    cpe = CpeSession(inform("1 BOOT"), Device(), supported=(rpc.GetParameterValues,))
    exchanged = run(acs, cpe)
    answer = exchanged[2][0].body
    assert isinstance(answer, rpc.Fault) and answer.code == 9000
    assert acs.log[1].result == "fault-9000"


def test_acs_faults_where_they_belong() -> None:
    acs = AcsSession()
    first = acs.receive(encode(Envelope("1", False, rpc.TransferComplete("k"))))
    fault = decode(first.body).body
    assert isinstance(fault, rpc.Fault) and fault.code == 8003 and first.done  # no Inform first
    acs = AcsSession()
    acs.receive(encode(Envelope("1", False, inform("1 BOOT"))))
    odd = acs.receive(encode(Envelope("2", False, rpc.Download("k", rpc.FIRMWARE, "http://x/"))))
    fault = decode(odd.body).body
    assert isinstance(fault, rpc.Fault) and fault.code == 8000  # not a method an ACS answers
    methods = acs.receive(encode(Envelope("3", False, rpc.GetRPCMethods())))
    answer = decode(methods.body)
    assert answer.id == "3" and isinstance(answer.body, rpc.GetRPCMethodsResponse)
    assert "Inform" in answer.body.methods and "TransferComplete" in answer.body.methods
    refused = acs.receive(encode(Envelope("4", False, rpc.TransferComplete("k"))), fault=8005)
    fault = decode(refused.body).body
    assert isinstance(fault, rpc.Fault) and fault.code == 8005 and not refused.done


def test_malformed_and_out_of_order_posts() -> None:
    acs = AcsSession()
    assert acs.receive(b"").status == 400  # an empty POST before any Inform
    acs = AcsSession()
    bad = acs.receive(b"<soap:Envelope")
    assert bad.status == 400 and bad.done and bad.facts[0].result == "malformed"
    with pytest.raises(CwmpError):
        AcsSession().enqueue([rpc.InformResponse()])


def test_a_refused_transfer_complete_stays_pending_for_the_next_session() -> None:
    done = rpc.TransferComplete("dl-9", rpc.TransferFault(9010, "File transfer failure"))
    cpe = CpeSession(inform("7 TRANSFER COMPLETE", "M Download", key="dl-9"), Device(), deque([done]))
    acs = AcsSession()
    post = cpe.start()
    reply = acs.receive(post.body)
    post = cpe.receive(reply.status, reply.body).post
    assert post is not None and isinstance(decode(post.body).body, rpc.TransferComplete)
    reply = acs.receive(post.body, fault=8005)
    step = cpe.receive(reply.status, reply.body)
    assert step.post is not None and step.post.empty  # carries on, without more requests
    reply = acs.receive(step.post.body)
    assert reply.status == 204
    assert cpe.receive(204, b"").done
    assert cpe.pending() == [done] and cpe.retry and cpe.delivered == []


def test_http_errors_end_the_cpe_session() -> None:
    cpe = CpeSession(inform("6 CONNECTION REQUEST"), Device())
    cpe.start()
    step = cpe.receive(401, b"")
    assert step.done and cpe.retry and step.facts[0].result == "http-401"
    cpe = CpeSession(inform("2 PERIODIC"), Device())
    cpe.start()
    step = cpe.receive(200, b"<garbage")
    assert step.done and step.facts[0].result == "malformed"


def test_an_envelope_with_an_empty_body_is_an_empty_answer() -> None:
    cpe = CpeSession(inform("1 BOOT"), Device())
    post = cpe.start()
    acs = AcsSession()
    reply = acs.receive(post.body)
    assert cpe.receive(reply.status, reply.body).post == Post(b"")
    empty_envelope = encode(Envelope("x", False, rpc.Reboot())).replace(
        b"<cwmp:Reboot><CommandKey></CommandKey></cwmp:Reboot>", b"")
    assert decode(empty_envelope).body is None
    assert cpe.receive(200, empty_envelope).done


def test_the_cpe_post_names_its_soap_action() -> None:
    post = CpeSession(inform("1 BOOT"), Device()).start()
    headers = dict(post.headers)
    assert headers["SOAPAction"] == '"Inform"' and headers["Content-Type"].startswith("text/xml")


def _generic(request: rpc.Rpc) -> rpc.Rpc:
    if isinstance(request, rpc.Download):
        return rpc.DownloadResponse(1)
    if isinstance(request, rpc.AddObject):
        return rpc.AddObjectResponse(1)
    return rpc.RESPONSES[type(request)]()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(rpcs().filter(lambda r: isinstance(r, rpc.REQUESTS_TO_CPE)), max_size=6), st.booleans(),
       st.lists(st.builds(rpc.TransferComplete, st.text("abc", max_size=8)), max_size=2))
def test_any_queue_is_sent_one_at_a_time_and_answered_in_order(
        requests: list[rpc.Rpc], hold: bool, own: list[rpc.TransferComplete]) -> None:
    acs = AcsSession(on_inform=lambda _: requests, hold_requests=hold)
    cpe = CpeSession(inform("1 BOOT"), _generic, deque(own))
    exchanged = run(acs, cpe)
    sent_by_acs = [decode(r.body).body for _, r in exchanged if r.body]
    assert [m for m in sent_by_acs if not isinstance(m, rpc.InformResponse | rpc.TransferCompleteResponse)
            ] == requests
    assert [f.result for f in acs.log if f.action != "cwmp"] == ["ok"] * (1 + len(requests) + len(own))
    assert cpe.delivered == own and acs.done and cpe.informed
    if hold and requests:  # held: the CPE's own requests only after the ACS's
        kinds_sent = [e.body.ELEMENT if e.body else "" for e, _ in exchanged]
        first_own = next((i for i, k in enumerate(kinds_sent) if k == "TransferComplete"), len(kinds_sent))
        last_answer = max(i for i, k in enumerate(kinds_sent) if k.endswith("Response"))
        assert first_own > last_answer
