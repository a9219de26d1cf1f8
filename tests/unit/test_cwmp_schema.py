"""Every message labkit encodes is valid against the Broadband Forum's CWMP schema (cwmp-1-2.xsd,
vendored unchanged in tests/data): namespaces, element order, types, lengths and patterns.

The two SOAP 1.1 schemas it imports by URL are replaced by minimal local stand-ins, and the
whole envelope is validated: Header and Body children strictly against the CWMP declarations."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.soap import SOAP_ENC, SOAP_ENV, Envelope, encode
from labkit.protocols.cwmp.values import Value
from tests.unit.cwmp_strategies import rpcs, text

DATA = Path(__file__).resolve().parents[1] / "data"
LOCAL = {SOAP_ENV: DATA / "soap-envelope-min.xsd", SOAP_ENC: DATA / "soap-encoding-min.xsd"}


@cache
def cwmp_schema() -> etree.XMLSchema:
    tree = etree.parse(str(DATA / "cwmp-1-2.xsd"), etree.XMLParser(no_network=True))
    for imported in tree.getroot().iterfind("{http://www.w3.org/2001/XMLSchema}import"):
        imported.set("schemaLocation", LOCAL[imported.get("namespace")].as_uri())
    return etree.XMLSchema(tree)


def _validate(raw: bytes) -> None:
    schema = cwmp_schema()
    document = etree.fromstring(raw).getroottree()
    if not schema.validate(document):
        raise AssertionError(f"{schema.error_log}\n{raw.decode()}")


def test_the_vendored_schema_is_the_published_one() -> None:
    source = (DATA / "cwmp-1-2.xsd").read_text(encoding="utf-8")
    assert len(source) == 83109
    assert "Copyright (c) 2017, Broadband Forum" in source
    assert 'targetNamespace="urn:dslforum-org:cwmp-1-2"' in source


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.builds(Envelope, st.none() | text(20), st.booleans(), rpcs(schema_types_only=True)))
def test_every_encoded_rpc_is_valid_against_cwmp_1_2(envelope: Envelope) -> None:
    _validate(encode(envelope))


EMPTY_MESSAGES = (rpc.GetRPCMethods, rpc.FactoryReset, rpc.RebootResponse, rpc.FactoryResetResponse,
                  rpc.TransferCompleteResponse, rpc.SetParameterAttributesResponse)


@pytest.mark.parametrize("message", [cls() for cls in EMPTY_MESSAGES])
def test_empty_messages_are_valid(message: rpc.Rpc) -> None:
    _validate(encode(Envelope("1", False, message)))


def test_the_validator_really_checks_order_and_types() -> None:
    """A wrong message is refused: the test above would notice an encoder that broke the schema."""
    good = encode(Envelope("1", False, rpc.AddObjectResponse(3, 0)))
    _validate(good)
    swapped = good.replace(b"<InstanceNumber>3</InstanceNumber><Status>0</Status>",
                           b"<Status>0</Status><InstanceNumber>3</InstanceNumber>")
    with pytest.raises(AssertionError):
        _validate(swapped)
    with pytest.raises(AssertionError):
        _validate(good.replace(b"<InstanceNumber>3<", b"<InstanceNumber>three<"))
    unqualified = encode(Envelope("1", False, rpc.Reboot("k"))).replace(b"<cwmp:Reboot>", b"<Reboot>")
    with pytest.raises((AssertionError, etree.XMLSyntaxError)):
        _validate(unqualified.replace(b"</cwmp:Reboot>", b"</Reboot>"))


def test_base64_wire_name_is_the_one_deployments_use() -> None:
    """TR-069 writes base64 values as xsi:type="xsd:base64" (not an XML Schema built-in name), so
    the strict schema test leaves base64 out; this pins the wire form."""
    raw = encode(Envelope("1", False, rpc.GetParameterValuesResponse(
        (rpc.ParameterValueStruct("Device.X", Value("base64", b"hi")),))))
    assert b'xsi:type="xsd:base64">aGk=</Value>' in raw
