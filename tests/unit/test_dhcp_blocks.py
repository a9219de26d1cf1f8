"""The core's encoded option blocks (labkit/protocols/dhcp/blocks.py): a client found by its raw
options 60 and 55 gets the block its option set and request list give, phones with layers of their
own never share a pool client's block, and an options_for that is not the plan's ClientOptions (it
may depend on the MAC) is asked every time."""

from __future__ import annotations

from labkit.protocols.dhcp.blocks import BLOCK_CACHE, LEASE_CODES, OptionBlocks
from labkit.protocols.dhcp.config import OptionPayloads
from labkit.protocols.dhcp.message import DISCOVER, Message, request_message
from labkit.protocols.dhcp.options import encode_options
from tests.unit.dhcp_configs import PHONE, default_lab, layer

PHONE_BYTES = bytes.fromhex(PHONE.replace(":", ""))


def ask(mac: bytes, options: dict[int, bytes]) -> Message:
    return request_message(DISCOVER, mac, 1, options)


def reference(options_for: object, request: Message, with_lease: bool) -> tuple[bytes, list[int]]:
    option_set = options_for(request.mac, request.text_option(60))  # type: ignore[operator]
    chosen = option_set.for_request(request.requested_options())
    if not with_lease:
        chosen = [(c, p) for c, p in chosen if c not in LEASE_CODES]
    return encode_options(chosen), [c for c, _ in chosen]


def test_every_kind_of_client_gets_the_block_its_options_give() -> None:
    options_for = default_lab().options_for
    blocks = OptionBlocks(options_for)
    requests = [ask(bytes([2, 0, 0, 0, 0, n]), {55: prl, **({60: vendor} if vendor is not None else {})})
                for n, (prl, vendor) in enumerate([
                    (b"\x01\x03\x06", None), (b"\x01\x03\x06", b"Cisco CP-8851-3PCC"),
                    (b"\x01\x03\x06", b"Cisco CP-8851-3PCC\x00"), (b"\x03\x01", b"other"),
                    (b"\x01\x03\x06\x96\xa0", b"CP-7841-3PCC"), (b"", b"")])]
    requests += [ask(PHONE_BYTES, {55: b"\x01\x03\x06\x96\xa0", 60: b"Cisco CP-8851-3PCC"})]
    for _ in range(2):  # the second round is answered from the caches
        for request in requests:
            for with_lease in (True, False):
                block, codes, ordered, quick = blocks.get(request, with_lease)
                assert (block, ordered) == reference(options_for, request, with_lease)
                assert codes == frozenset(ordered)
                assert quick == (len(block) + 3 <= 576 - 240 - 1 and not codes & {52, 53, 82})


def test_a_phone_with_its_own_layers_does_not_share_a_pool_clients_block() -> None:
    config = default_lab()
    options_for = config.options_for
    own = type(options_for)(base=options_for.base, classes=options_for.classes,  # type: ignore[attr-defined]
                            phones={PHONE: (layer({66: "10.9.9.9"}),)})
    blocks = OptionBlocks(own)
    wanted = {55: b"\x42\x01", 60: b"Cisco CP-8851-3PCC"}
    pool_block = blocks.get(ask(bytes(6), wanted), True)
    phone_block = blocks.get(ask(PHONE_BYTES, wanted), True)
    assert pool_block != phone_block
    assert phone_block[0] == reference(own, ask(PHONE_BYTES, wanted), True)[0]


def test_an_options_for_that_depends_on_the_mac_is_asked_every_time() -> None:
    asked: list[str] = []

    def options_for(mac: str, vendor: str | None) -> OptionPayloads:
        asked.append(mac)
        return OptionPayloads({66: mac.encode()}, frozenset())

    blocks = OptionBlocks(options_for)
    first = blocks.get(ask(bytes([2, 0, 0, 0, 0, 1]), {55: b"\x42"}), True)
    second = blocks.get(ask(bytes([2, 0, 0, 0, 0, 2]), {55: b"\x42"}), True)
    assert len(asked) == 2 and first != second


def test_the_caches_stay_bounded() -> None:
    blocks = OptionBlocks(default_lab().options_for)
    for n in range(BLOCK_CACHE + 50):
        blocks.get(ask(bytes(6), {55: n.to_bytes(2, "big")}), True)
    assert len(blocks._raw) <= BLOCK_CACHE and len(blocks._blocks) <= BLOCK_CACHE
