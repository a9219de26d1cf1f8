"""Pure DHCPv4 core, depending on nothing above it: the typed option codec (`options`, with the
kinds table in `kinds`, TLV runs in `tlv`, vendor views in `vendor`), messages (`message`), the
server (`server`, configured by the plain values of `config`, answering with the shared `Result`),
its lease table (`leases`), fault actions (`faults`) and the annotated hexdump (`explain`)."""

from labkit.protocols.dhcp.options import (
    BY_NAME,
    SPECS,
    Kind,
    OptionSpec,
    SubOption,
    Tr069,
    Tr111,
    VendorBlock,
    decode_options,
    decode_value,
    encode_options,
    encode_value,
    spec_for,
)

__all__ = [
    "BY_NAME",
    "SPECS",
    "Kind",
    "OptionSpec",
    "SubOption",
    "Tr069",
    "Tr111",
    "VendorBlock",
    "decode_options",
    "decode_value",
    "encode_options",
    "encode_value",
    "spec_for",
]
