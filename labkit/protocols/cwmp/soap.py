"""CWMP's SOAP 1.1 envelope: bytes in, RPC values out, and back (TR-069 Amendment 3, §3.5, Annex A).

`encode(Envelope)` builds the document with lxml (never by string); `decode(bytes)` reads an
untrusted message with a hardened lxml parser (no DTD, no entities, no network, bounded size and
depth) and raises only `CwmpError`. An empty HTTP body (the CPE's empty POST, and the ACS's
204) is the `EMPTY` envelope: `decode(b"") == EMPTY` and `encode(EMPTY) == b""`.

Namespaces: SOAP 1.1 envelope and encoding, and `urn:dslforum-org:cwmp-1-2` (1-0 .. 1-4 accepted
on input; `Envelope.ns` keeps the one a message used so a reply can speak the same). Child
elements of an RPC are unqualified (cwmp-1-2.xsd: elementFormDefault="unqualified").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.fields import Boolean, Integer, Kind, Nested, Strings, Structs, Text, Time, Typed
from labkit.protocols.cwmp.values import (
    CwmpError,
    Value,
    check_text,
    format_bool,
    format_time,
    parse_bool,
    parse_int,
    parse_time,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CWMP_1_2 = "urn:dslforum-org:cwmp-1-2"
CWMP_NAMESPACES = tuple(f"urn:dslforum-org:cwmp-1-{minor}" for minor in range(5))

MAX_MESSAGE = 1 << 20  # bytes; a lab phone's messages are a few KiB
MAX_DEPTH = 16  # Envelope/Body/RPC/List/Struct/Field is 6 deep
MAX_ELEMENTS = 20000

_PARSER_OPTIONS: dict[str, Any] = dict(resolve_entities=False, no_network=True, load_dtd=False,
                                        dtd_validation=False, huge_tree=False, remove_pis=True,
                                        remove_comments=True, collect_ids=False)


@dataclass(frozen=True)
class Envelope:
    """One CWMP message: the cwmp:ID and cwmp:HoldRequests headers and one RPC (None: empty)."""

    id: str | None = None
    hold_requests: bool = False
    body: rpc.Rpc | None = None
    ns: str = CWMP_1_2

    def __post_init__(self) -> None:
        if self.id is not None:
            check_text(self.id, "cwmp:ID")
        if self.body is not None and not isinstance(self.body, rpc.Rpc):
            raise CwmpError("an envelope's body is an RPC value or None")
        if self.ns not in CWMP_NAMESPACES:
            raise CwmpError(f"unknown CWMP namespace {self.ns[:60]!r}")

    @property
    def empty(self) -> bool:
        return self.body is None


EMPTY = Envelope()


# --------------------------------------------------------------------------- encode


def encode(envelope: Envelope) -> bytes:
    """The message's bytes (UTF-8, with an XML declaration); b"" for an empty envelope."""
    if envelope.body is None:
        return b""
    ns = envelope.ns
    nsmap = {"soap": SOAP_ENV, "soap-enc": SOAP_ENC, "xsd": XSD, "xsi": XSI, "cwmp": ns}
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(root, f"{{{SOAP_ENV}}}Header")
    if envelope.id is not None:
        _header(header, ns, "ID", envelope.id)
    if envelope.hold_requests:
        _header(header, ns, "HoldRequests", "1")
    if len(header) == 0:
        root.remove(header)
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    try:
        if isinstance(envelope.body, rpc.Fault):
            _encode_fault(body, envelope.body, ns)
        else:
            _encode_fields(etree.SubElement(body, f"{{{ns}}}{envelope.body.ELEMENT}"), envelope.body)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    except ValueError as exc:  # lxml: text XML cannot hold (checked earlier; kept as a guard)
        raise CwmpError(f"cannot encode {envelope.body.ELEMENT}: {exc}") from None


def _header(header: etree._Element, ns: str, name: str, text: str) -> None:
    element = etree.SubElement(header, f"{{{ns}}}{name}")
    element.set(f"{{{SOAP_ENV}}}mustUnderstand", "1")
    element.text = text


def _encode_fault(body: etree._Element, fault: rpc.Fault, ns: str) -> None:
    soap_fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(soap_fault, "faultcode").text = fault.soap_faultcode
    etree.SubElement(soap_fault, "faultstring").text = "CWMP fault"
    detail = etree.SubElement(soap_fault, "detail")
    _encode_fields(etree.SubElement(detail, f"{{{ns}}}Fault"), fault)


def _encode_fields(parent: etree._Element, value: Any) -> None:
    for attr, name, kind in value.FIELDS:
        item = getattr(value, attr)
        if isinstance(value, rpc.Fault) and name == "SetParameterValuesFault":
            for entry in item:  # a bare repetition, not a soap-enc array
                _encode_fields(etree.SubElement(parent, name), entry)
            continue
        _encode_value(etree.SubElement(parent, name), item, kind)


def _encode_value(element: etree._Element, item: Any, kind: Kind) -> None:
    if isinstance(kind, Text):
        element.text = item
    elif isinstance(kind, Integer):
        element.text = str(item)
    elif isinstance(kind, Boolean):
        element.text = format_bool(item)
    elif isinstance(kind, Time):
        element.text = format_time(item)
    elif isinstance(kind, Typed):
        element.set(f"{{{XSI}}}type", f"xsd:{item.type}")
        element.text = item.text()
    elif isinstance(kind, Strings):
        element.set(f"{{{SOAP_ENC}}}arrayType", f"xsd:string[{len(item)}]")
        for text in item:
            etree.SubElement(element, "string").text = text
    elif isinstance(kind, Structs):
        element.set(f"{{{SOAP_ENC}}}arrayType", f"cwmp:{kind.cls.ELEMENT}[{len(item)}]")
        for entry in item:
            _encode_fields(etree.SubElement(element, kind.cls.ELEMENT), entry)
    elif isinstance(kind, Nested):
        _encode_fields(element, item)
    else:
        raise CwmpError(f"no encoding for {kind!r}")


# --------------------------------------------------------------------------- decode


def decode(data: bytes, *, max_size: int = MAX_MESSAGE) -> Envelope:
    """The envelope `data` holds; EMPTY for an empty (or all-blank) body. Raises only CwmpError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CwmpError("a CWMP message is bytes")
    data = bytes(data)
    if not data.strip():
        return EMPTY
    if len(data) > max_size:
        raise CwmpError(f"message of {len(data)} bytes is over the {max_size}-byte limit")
    root = _parse(data)
    try:
        return _decode_envelope(root)
    except CwmpError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CwmpError(f"malformed CWMP message: {exc}") from None


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise CwmpError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise CwmpError("no XML element in the message")
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise CwmpError("a CWMP message may not carry a DOCTYPE")
    for count, element in enumerate(root.iter(), start=1):
        if count > MAX_ELEMENTS:
            raise CwmpError(f"more than {MAX_ELEMENTS} elements")
        if not isinstance(element.tag, str):
            raise CwmpError("entity references or other non-element nodes are not allowed")
    if _depth(root) > MAX_DEPTH:
        raise CwmpError(f"elements nested more than {MAX_DEPTH} deep")
    return root


def _depth(root: etree._Element) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1) for child in element)
    return deepest


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _decode_envelope(root: etree._Element) -> Envelope:
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise CwmpError(f"root element {_split(root.tag)[1][:40]!r} is not a SOAP 1.1 Envelope")
    header = root.find(f"{{{SOAP_ENV}}}Header")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        raise CwmpError("SOAP Envelope without a Body")
    message_id, hold, header_ns = None, False, None
    for element in header if header is not None else ():
        ns, local = _split(element.tag)
        if ns not in CWMP_NAMESPACES:
            if element.get(f"{{{SOAP_ENV}}}mustUnderstand") in ("1", "true"):
                raise CwmpError(f"header {local[:40]!r} must be understood and is not")
            continue
        header_ns = ns
        if local == "ID":
            message_id = element.text or ""
        elif local == "HoldRequests":
            hold = parse_bool(element.text or "", "cwmp:HoldRequests")
    children = list(body)
    if not children:
        return Envelope(message_id, hold, None, header_ns or CWMP_1_2)
    if len(children) > 1:
        raise CwmpError(f"SOAP Body holds {len(children)} elements; CWMP sends one per envelope")
    ns, local = _split(children[0].tag)
    if ns == SOAP_ENV and local == "Fault":
        fault, ns = _decode_fault(children[0])
        return Envelope(message_id, hold, fault, ns)
    if ns not in CWMP_NAMESPACES:
        raise CwmpError(f"body element {local[:40]!r} is not in a CWMP namespace")
    cls = rpc.BY_NAME.get(local)
    if cls is None or cls is rpc.Fault:
        raise CwmpError(f"unknown CWMP method {local[:60]!r}")
    return Envelope(message_id, hold, _decode_fields(children[0], cls), ns)


def _decode_fault(element: etree._Element) -> tuple[rpc.Fault, str]:
    faultcode = (_child_text(element, "faultcode") or "").strip()
    faultcode = faultcode.rpartition(":")[2]  # "soap:Client" or "Client"
    detail = _child(element, "detail")
    inner = None if detail is None else next(
        (c for c in detail if _split(c.tag) in {(ns, "Fault") for ns in CWMP_NAMESPACES}), None)
    if inner is None:
        raise CwmpError("SOAP Fault without a cwmp:Fault in its detail")
    fault = _decode_fields(inner, rpc.Fault, extra={"soap_faultcode": faultcode})
    return fault, _split(inner.tag)[0]


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    """The first child called `name`, qualified or not (CPEs differ)."""
    return next((c for c in parent if _split(c.tag)[1] == name), None)


def _child_text(parent: etree._Element, name: str) -> str | None:
    child = _child(parent, name)
    return None if child is None else (child.text or "")


def _decode_fields(element: etree._Element, cls: Any, extra: dict[str, Any] | None = None) -> Any:
    values: dict[str, Any] = dict(extra or {})
    for attr, name, kind in cls.FIELDS:
        if cls is rpc.Fault and name == "SetParameterValuesFault":
            values[attr] = tuple(_decode_fields(c, rpc.SetParameterValuesFault)
                                 for c in element if _split(c.tag)[1] == name)
            continue
        child = _child(element, name)
        if child is None:
            if cls is rpc.Fault and name == "FaultString":
                continue
            raise CwmpError(f"{cls.ELEMENT} lacks its {name}")
        values[attr] = _decode_value(child, kind, f"{cls.ELEMENT}/{name}")
    return cls(**values)


def _decode_value(element: etree._Element, kind: Kind, what: str) -> Any:
    if len(element) and not isinstance(kind, Strings | Structs | Nested):
        raise CwmpError(f"{what}: expected text, found elements")
    text = element.text or ""
    if isinstance(kind, Text):
        return text
    if isinstance(kind, Integer):
        return parse_int(text, what, kind.lo, kind.hi)
    if isinstance(kind, Boolean):
        return parse_bool(text, what)
    if isinstance(kind, Time):
        return parse_time(text, what)
    if isinstance(kind, Typed):
        return Value.parse(_xsi_type(element, what), text)
    if isinstance(kind, Strings):
        if any(len(c) for c in element):
            raise CwmpError(f"{what}: a string array item holds elements")
        return tuple((c.text or "") for c in element)
    if isinstance(kind, Structs):
        return tuple(_decode_fields(c, kind.cls) for c in element)
    if isinstance(kind, Nested):
        return _decode_fields(element, kind.cls)
    raise CwmpError(f"{what}: no decoding for {kind!r}")


def _xsi_type(element: etree._Element, what: str) -> str:
    """The local XSD type name of xsi:type ("xsd:string" -> "string"); string when absent."""
    declared = element.get(f"{{{XSI}}}type")
    if declared is None:
        return "string"
    prefix, _, local = declared.strip().rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    if namespace not in (XSD, SOAP_ENC, None):
        raise CwmpError(f"{what}: type {declared[:60]!r} is not an XML Schema type")
    return local
