"""labkit: a network bootstrap lab kit for Cisco MPP (3PCC) IP phones."""

__version__ = "0.1.0"
