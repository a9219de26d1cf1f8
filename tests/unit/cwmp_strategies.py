"""Hypothesis strategies for every CWMP RPC, with values the CWMP schema (cwmp-1-2.xsd) accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.values import INT_RANGES, Value

XML_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r")


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(XML_CHARS, max_size=max_size).filter(lambda s: "\ufffe" not in s and "\uffff" not in s)


NAMES = st.from_regex(r"Device\.[A-Za-z_]{1,12}(\.[A-Za-z0-9_]{1,12}){0,3}", fullmatch=True)
OBJECTS = st.from_regex(r"Device\.[A-Za-z_]{1,12}\.([0-9]{1,3}\.)?", fullmatch=True)
EVENT_CODES = st.sampled_from(["0 BOOTSTRAP", "1 BOOT", "2 PERIODIC", "4 VALUE CHANGE",
                               "6 CONNECTION REQUEST", "7 TRANSFER COMPLETE", "M Download", "M Reboot",
                               "X 00000C LAB"])
FILE_TYPES = st.sampled_from([rpc.FIRMWARE, rpc.VENDOR_CONFIG, rpc.CUSTOM_CA, rpc.WEB_CONTENT])
ACS_CODES = st.integers(8000, 8005)
CPE_CODES = st.integers(9000, 9019)
TRANSFER_CODES = st.sampled_from([0, 9001, 9002, 9010, 9012, 9015, 9016, 9017, 9018, 9019])


@st.composite
def times(draw: st.DrawFn) -> datetime:
    when = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30)))
    zone = draw(st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)),
                                 timezone(timedelta(hours=-8))]))
    return when if zone is None else when.replace(tzinfo=zone)


def values(*, schema_types_only: bool = False) -> st.SearchStrategy[Value]:
    """Every parameter type; `schema_types_only` leaves out base64, whose wire name (xsd:base64,
    as TR-069 deployments write it) XML Schema does not know."""
    choices = [
        st.builds(Value.string, text(60)),
        st.builds(Value.boolean, st.booleans()),
        st.builds(lambda t: Value("dateTime", t), times()),
        st.builds(lambda b: Value("hexBinary", b), st.binary(max_size=16)),
        *(st.integers(lo, hi).map(lambda n, k=kind: Value(k, n)) for kind, (lo, hi) in INT_RANGES.items()),
    ]
    if not schema_types_only:
        choices.append(st.builds(lambda b: Value("base64", b), st.binary(max_size=24)))
    return st.one_of(choices)


def parameter_values(schema_types_only: bool = False) -> st.SearchStrategy[rpc.ParameterValueStruct]:
    return st.builds(rpc.ParameterValueStruct, NAMES, values(schema_types_only=schema_types_only))


def _lists(strategy: st.SearchStrategy, min_size: int = 0) -> st.SearchStrategy:
    return st.lists(strategy, min_size=min_size, max_size=4).map(tuple)


def rpcs(schema_types_only: bool = False) -> st.SearchStrategy[rpc.Rpc]:
    """One of every RPC of the chapter's list, its response, or a CWMP fault."""
    pvs = _lists(parameter_values(schema_types_only))
    access = _lists(st.just("Subscriber"))
    device = st.builds(rpc.DeviceIdStruct, text(64), st.from_regex(r"[0-9A-F]{6}", fullmatch=True),
                       text(64), text(64))
    events = _lists(st.builds(rpc.EventStruct, EVENT_CODES, text(32)))
    methods = _lists(st.sampled_from([c.ELEMENT for c in rpc.REQUESTS_TO_CPE]), 1)
    uint = st.integers(0, 2**32 - 1)
    spv_faults = _lists(st.builds(rpc.SetParameterValuesFault, NAMES, CPE_CODES, text()))
    return st.one_of(
        st.just(rpc.GetRPCMethods()),
        st.builds(rpc.GetRPCMethodsResponse, methods),
        st.builds(rpc.SetParameterValues, pvs, text(32)),
        st.builds(rpc.SetParameterValuesResponse, st.integers(0, 1)),
        st.builds(rpc.GetParameterValues, _lists(NAMES, 1)),
        st.builds(rpc.GetParameterValuesResponse, pvs),
        st.builds(rpc.SetParameterAttributes, _lists(st.builds(
            rpc.SetParameterAttributesStruct, NAMES, st.booleans(), st.integers(0, 2), st.booleans(),
            access), 1)),
        st.just(rpc.SetParameterAttributesResponse()),
        st.builds(rpc.GetParameterAttributes, _lists(NAMES, 1)),
        st.builds(rpc.GetParameterAttributesResponse, _lists(st.builds(
            rpc.ParameterAttributeStruct, NAMES, st.integers(0, 6), access))),
        st.builds(rpc.GetParameterNames, NAMES | st.just(""), st.booleans()),
        st.builds(rpc.GetParameterNamesResponse,
                  _lists(st.builds(rpc.ParameterInfoStruct, NAMES, st.booleans()))),
        st.builds(rpc.AddObject, OBJECTS, text(32)),
        st.builds(rpc.AddObjectResponse, st.integers(1, 2**32 - 1), st.integers(0, 1)),
        st.builds(rpc.DeleteObject, OBJECTS, text(32)),
        st.builds(rpc.DeleteObjectResponse, st.integers(0, 1)),
        st.builds(rpc.Reboot, text(32)),
        st.just(rpc.RebootResponse()),
        st.just(rpc.FactoryReset()),
        st.just(rpc.FactoryResetResponse()),
        st.builds(rpc.Download, text(32), FILE_TYPES, text(200), text(), text(), st.integers(0, 2**32 - 1),
                  text(), st.integers(0, 2**32 - 1), text(), text()),
        st.builds(rpc.DownloadResponse, st.integers(0, 1), times(), times()),
        st.builds(rpc.Inform, device, events, uint, times(), uint, pvs),
        st.builds(rpc.InformResponse, st.integers(0, 2**32 - 1)),
        st.builds(rpc.TransferComplete, text(32), st.builds(rpc.TransferFault, TRANSFER_CODES, text()),
                  times(), times()),
        st.just(rpc.TransferCompleteResponse()),
        st.builds(rpc.Fault, ACS_CODES | CPE_CODES, text(), spv_faults),
    )
