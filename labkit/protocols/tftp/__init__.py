"""Pure TFTP core: the packet codec (`packets`), option negotiation (`negotiate`), netascii,
request acceptance (`accept`), the server's read and write sessions (`read`, `write`) and the
phone's client session (`client`). Every step returns the shared `labkit.protocols.result.Result`."""

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
from labkit.protocols.tftp.base import Label, SessionLimits
from labkit.protocols.tftp.client import ClientOptions, ClientSession
from labkit.protocols.tftp.negotiate import Negotiated, negotiate, parse_mode
from labkit.protocols.tftp.packets import (
    Ack,
    Data,
    Error,
    ErrorCode,
    Opcode,
    OptionAck,
    Options,
    Packet,
    ReadRequest,
    WriteRequest,
    decode,
    encode,
)
from labkit.protocols.tftp.read import ReadSession
from labkit.protocols.tftp.write import WriteSession

__all__ = [
    "Accept",
    "Ack",
    "ClientOptions",
    "ClientSession",
    "Data",
    "Error",
    "ErrorCode",
    "Exists",
    "Forbidden",
    "Label",
    "Load",
    "Missing",
    "Negotiated",
    "Opcode",
    "OptionAck",
    "Options",
    "Packet",
    "ReadRequest",
    "ReadSession",
    "Refuse",
    "ServerRules",
    "SessionLimits",
    "TftpFile",
    "WriteRequest",
    "WriteSession",
    "accept",
    "decode",
    "encode",
    "negotiate",
    "parse_mode",
]
