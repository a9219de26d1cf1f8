"""Pure DHCPv4 core: the typed option codec (`options`) and its annotated hexdump (`explain`)."""

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
