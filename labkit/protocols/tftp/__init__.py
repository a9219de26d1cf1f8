"""Pure TFTP core: the packet codec (`packets`) and the read/write session machines (`session`)."""

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
from labkit.protocols.tftp.session import (
    Negotiated,
    Outcome,
    ReadSession,
    Step,
    WriteSession,
    negotiate,
    parse_mode,
    refusal,
)

__all__ = [
    "Ack",
    "Data",
    "Error",
    "ErrorCode",
    "Negotiated",
    "Opcode",
    "OptionAck",
    "Options",
    "Outcome",
    "Packet",
    "ReadRequest",
    "ReadSession",
    "Step",
    "WriteRequest",
    "WriteSession",
    "decode",
    "encode",
    "negotiate",
    "parse_mode",
    "refusal",
]
