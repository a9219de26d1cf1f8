"""The CWMP SOAP codec: round trips for every RPC, only CwmpError on bad input, hardened parsing."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from labkit.errors import CodecError
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.soap import (
    CWMP_1_2,
    EMPTY,
    MAX_DEPTH,
    SOAP_ENC,
    SOAP_ENV,
    Envelope,
    decode,
    encode,
)
from labkit.protocols.cwmp.values import UNKNOWN_TIME, CwmpError, Value
from tests.unit.cwmp_strategies import rpcs, text, values

ENVELOPES = st.builds(Envelope, st.none() | text(20), st.booleans(), rpcs(),
                      st.sampled_from([CWMP_1_2, "urn:dslforum-org:cwmp-1-0", "urn:dslforum-org:cwmp-1-1"]))


def test_cwmp_error_is_a_codec_error() -> None:
    assert issubclass(CwmpError, CodecError)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(ENVELOPES)
def test_decode_encode_round_trip(envelope: Envelope) -> None:
    assert decode(encode(envelope)) == envelope


@settings(deadline=None)
@given(values())
def test_every_value_type_reads_back(value: Value) -> None:
    assert Value.parse(value.type, value.text()) == value


@settings(deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_cwmp_error(data: bytes) -> None:
    with contextlib.suppress(CwmpError):
        decode(data)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(ENVELOPES, st.data())
def test_mutated_messages_raise_only_cwmp_error(envelope: Envelope, data: st.DataObject) -> None:
    """Valid messages with bytes cut, flipped or spliced: decoded or refused, never another error."""
    raw = bytearray(encode(envelope))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[at: at + data.draw(st.integers(1, 30))]
        else:
            raw[at:at] = data.draw(st.sampled_from([b"<a>", b"</x>", b"&amp;", b"xsd:int", b"9999999999999",
                                                    b"<Value>", b"\x00", b'"', b"-1"]))
        if not raw:
            break
    try:
        decoded = decode(bytes(raw))
    except CwmpError:
        return
    assert isinstance(decoded, Envelope)


@settings(deadline=None)
@given(st.recursive(st.just(b"<a/>"), lambda inner: st.lists(inner, max_size=3).map(
    lambda kids: b"<e>" + b"".join(kids) + b"</e>"), max_leaves=12))
def test_arbitrary_xml_raises_only_cwmp_error(body: bytes) -> None:
    wrapped = b'<s:Envelope xmlns:s="' + SOAP_ENV.encode() + b'"><s:Body>' + body + b"</s:Body></s:Envelope>"
    with pytest.raises(CwmpError):
        decode(wrapped)


def test_an_empty_body_is_the_empty_post() -> None:
    assert decode(b"") == EMPTY
    assert decode(b" \r\n") == EMPTY
    assert encode(EMPTY) == b""
    assert EMPTY.empty and EMPTY.body is None


def _inform() -> rpc.Inform:
    return rpc.Inform(rpc.DeviceIdStruct("Cisco", "00562B", "CP-8851-3PCC", "FCH2203001"),
                      (rpc.EventStruct("0 BOOTSTRAP"),), 1, datetime(2026, 11, 30, tzinfo=UTC), 0,
                      (rpc.ParameterValueStruct("Device.DeviceInfo.SoftwareVersion",
                                                Value.string("12.0.1")),))


def test_encoded_message_uses_the_spec_namespaces_and_soap_enc_arrays() -> None:
    raw = encode(Envelope("7", True, _inform()))
    root = etree.fromstring(raw)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope"
    header, body = list(root)
    ident, hold = list(header)
    must = ident.get(f"{{{SOAP_ENV}}}mustUnderstand")
    assert (ident.tag, ident.text, must) == (f"{{{CWMP_1_2}}}ID", "7", "1")
    assert (hold.tag, hold.text) == (f"{{{CWMP_1_2}}}HoldRequests", "1")
    inform = body[0]
    assert inform.tag == f"{{{CWMP_1_2}}}Inform"
    assert [child.tag for child in inform] == ["DeviceId", "Event", "MaxEnvelopes", "CurrentTime",
                                               "RetryCount", "ParameterList"]
    assert inform.find("Event").get(f"{{{SOAP_ENC}}}arrayType") == "cwmp:EventStruct[1]"
    assert inform.find("ParameterList").get(f"{{{SOAP_ENC}}}arrayType") == "cwmp:ParameterValueStruct[1]"
    assert inform.findtext("CurrentTime") == "2026-11-30T00:00:00Z"
    names = encode(Envelope("8", False, rpc.GetParameterValues(("Device.A", "Device.B."))))
    array = etree.fromstring(names).find(f".//{{{CWMP_1_2}}}GetParameterValues/ParameterNames")
    assert array.get(f"{{{SOAP_ENC}}}arrayType") == "xsd:string[2]"
    assert [e.text for e in array] == ["Device.A", "Device.B."]


def test_fault_is_a_soap_fault_with_cwmp_detail() -> None:
    fault = rpc.Fault(9003, set_parameter_values_faults=(rpc.SetParameterValuesFault("Device.X", 9005),))
    assert fault.soap_faultcode == "Client" and fault.string == "Invalid arguments"
    assert fault.set_parameter_values_faults[0].string == "Invalid parameter name"
    root = etree.fromstring(encode(Envelope("1", False, fault)))
    soap_fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert soap_fault.findtext("faultcode") == "Client"
    assert soap_fault.findtext("faultstring") == "CWMP fault"
    assert soap_fault.findtext(f"detail/{{{CWMP_1_2}}}Fault/FaultCode") == "9003"
    assert rpc.Fault(8005).soap_faultcode == "Server"
    with pytest.raises(CwmpError):
        rpc.Fault(8950)


def test_older_cwmp_namespaces_are_read_and_kept() -> None:
    for minor in (0, 1):
        ns = f"urn:dslforum-org:cwmp-1-{minor}"
        envelope = Envelope("1", False, _inform(), ns)
        raw = encode(envelope)
        assert ns.encode() in raw
        assert decode(raw) == envelope
    assert decode(encode(Envelope("1", False, rpc.Reboot("k")))).ns == CWMP_1_2


def test_lenient_reading_of_what_real_cpes_send() -> None:
    """Qualified child names, soap prefixed faultcode, xsd:base64Binary, no xsi:type, order."""
    raw = f"""<?xml version="1.0"?>
    <soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:cwmp="urn:dslforum-org:cwmp-1-0"
        xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <soapenv:Header><cwmp:ID soapenv:mustUnderstand="1">abc</cwmp:ID></soapenv:Header>
      <soapenv:Body><cwmp:GetParameterValuesResponse><ParameterList>
        <ParameterValueStruct><Value xsi:type="xsd:base64Binary">AAE=</Value><Name>Device.B</Name>
        </ParameterValueStruct>
        <ParameterValueStruct><cwmp:Name>Device.S</cwmp:Name><Value>plain</Value></ParameterValueStruct>
      </ParameterList></cwmp:GetParameterValuesResponse></soapenv:Body></soapenv:Envelope>""".encode()
    envelope = decode(raw)
    assert envelope.id == "abc" and envelope.ns == "urn:dslforum-org:cwmp-1-0"
    assert envelope.body == rpc.GetParameterValuesResponse((
        rpc.ParameterValueStruct("Device.B", Value("base64", b"\x00\x01")),
        rpc.ParameterValueStruct("Device.S", Value.string("plain"))))


@pytest.mark.parametrize("raw", [
    # internal DTD with an entity (billion laughs shape): refused, never expanded
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
    b'<e xmlns="http://schemas.xmlsoap.org/soap/envelope/">&b;</e>',
    # external entity (file read)
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e>&x;</e>',
    # external DTD (network)
    b'<?xml version="1.0"?><!DOCTYPE e SYSTEM "http://192.0.2.1/x.dtd"><e/>',
    b"<not-closed>",
    b"\xff\xfe\x00garbage",
    b'<e xmlns="urn:other"/>',
    f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header/></s:Envelope>'.encode(),  # no Body
    f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><c:Nope xmlns:c="{CWMP_1_2}"/></s:Body>'
    f"</s:Envelope>".encode(),
    f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><c:Reboot xmlns:c="{CWMP_1_2}"/></s:Body>'
    f"</s:Envelope>".encode(),  # Reboot without its CommandKey
    f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header><x:Must xmlns:x="urn:x" s:mustUnderstand="1"/></s:Header>'
    f'<s:Body><c:FactoryReset xmlns:c="{CWMP_1_2}"/></s:Body></s:Envelope>'.encode(),
    f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault><faultcode>Client</faultcode></s:Fault>'
    f'</s:Body></s:Envelope>'.encode(),  # a SOAP fault that is not a CWMP one
])
def test_hostile_or_wrong_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(CwmpError):
        decode(raw)


def test_size_and_depth_are_bounded() -> None:
    deep = (b"<a>" * (MAX_DEPTH + 5)) + (b"</a>" * (MAX_DEPTH + 5))
    wrapped = f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>'.encode() + deep + b"</s:Body></s:Envelope>"
    with pytest.raises(CwmpError, match="deep"):
        decode(wrapped)
    big = encode(Envelope("1", False, rpc.Reboot("k")))
    with pytest.raises(CwmpError, match="limit"):
        decode(big, max_size=len(big) - 1)


@pytest.mark.parametrize(("build", "match"), [
    (lambda: rpc.Reboot("k" * 33), "at most 32"),
    (lambda: rpc.DeviceIdStruct("Cisco", "00562b", "P", "S"), "upper-case hex"),
    (lambda: rpc.SetParameterAttributesStruct("A", True, 7), "out of range"),
    (lambda: rpc.AddObjectResponse(0), "out of range"),
    (lambda: rpc.GetParameterValues(("a\x00b",)), "XML 1.0"),
    (lambda: Value("unsignedInt", -1), "out of range"),
    (lambda: Value("boolean", 1), "True or False"),
    (lambda: Value("float", 1.0), "unknown parameter type"),
    (lambda: rpc.Inform(rpc.DeviceIdStruct("C", "000000", "P", "S"), tuple(rpc.EventStruct("2 PERIODIC")
                                                                         for _ in range(65))), "at most 64"),
])
def test_values_are_checked_when_built(build: object, match: str) -> None:
    with pytest.raises(CwmpError, match=match):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(("kind", "text", "expected"), [
    ("boolean", "1", True), ("boolean", " false ", False), ("int", "-5", -5),
    ("unsignedInt", "+7", 7), ("dateTime", "0001-01-01T00:00:00Z", UNKNOWN_TIME),
    ("dateTime", "2026-11-30T10:00:00+05:30", datetime.fromisoformat("2026-11-30T10:00:00+05:30")),
    ("hexBinary", "0aFF", b"\x0a\xff"),
])
def test_lexical_forms_xml_schema_allows(kind: str, text: str, expected: object) -> None:
    assert Value.parse(kind, text).value == expected


@pytest.mark.parametrize(("kind", "text"), [
    ("boolean", "yes"), ("int", "2147483648"), ("int", "1.5"), ("unsignedInt", "-1"),
    ("dateTime", "yesterday"), ("dateTime", "2026-13-01T00:00:00Z"), ("base64", "!!"), ("hexBinary", "abc"),
])
def test_values_that_are_not_their_type_are_refused(kind: str, text: str) -> None:
    with pytest.raises(CwmpError):
        Value.parse(kind, text)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(ENVELOPES, st.data())
def test_structurally_mutated_messages_raise_only_cwmp_error(envelope: Envelope, data: st.DataObject) -> None:
    """Well-formed XML with a field's text, an element, or a type changed: read or refused."""
    root = etree.fromstring(encode(envelope))
    elements = list(root.iter())
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(elements))
        action = data.draw(st.sampled_from(["text", "drop", "twice", "type", "child", "rename"]))
        parent = target.getparent()
        if action == "text":
            target.text = data.draw(text(12) | st.sampled_from(["-1", "99999999999", "true", "x", ""]))
        elif action == "drop" and parent is not None:
            parent.remove(target)
        elif action == "twice" and parent is not None:
            parent.append(etree.fromstring(etree.tostring(target)))
        elif action == "type":
            target.set("{http://www.w3.org/2001/XMLSchema-instance}type",
                       data.draw(st.sampled_from(["xsd:int", "xsd:boolean", "xsd:dateTime", "xsd:nope",
                                                  "other:string", "xsd:base64", "xsd:unsignedInt"])))
        elif action == "child":
            etree.SubElement(target, data.draw(st.sampled_from(["string", "Name", "x"]))).text = "1"
        elif action == "rename" and isinstance(target.tag, str):
            target.tag = data.draw(st.sampled_from(["Name", "Value", "{urn:x}Inform", "string"]))
    try:
        decoded = decode(etree.tostring(root))
    except CwmpError:
        return
    assert isinstance(decoded, Envelope)
