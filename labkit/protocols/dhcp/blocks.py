"""A client's reply options, encoded once per kind of client (pure; the DHCP core's cache).

A reply's options depend on the client's option set (base layers, vendor classes, a phone's own
layers), its parameter request list (option 55) and whether the reply carries lease times, not on
the client itself: pool clients of one vendor class and phones of one model send the same list, so
a reply is a header and a join instead of an encoding. Both caches are bounded.
"""

from __future__ import annotations

from collections.abc import Callable

from labkit.protocols.dhcp.config import ClientOptions, OptionPayloads
from labkit.protocols.dhcp.message import DEFAULT_MAX_SIZE, HEADER_SIZE, OVERLOAD, Message
from labkit.protocols.dhcp.options import encode_options

LEASE_CODES = (51, 58, 59)
BLOCK_CACHE = 4096  # encoded option blocks kept (per option set, request list, with/without lease)
# (TLVs, their codes, codes in order, quick): quick when a reply is header + option 53 + the TLVs +
# END whatever the client's maximum size (they fit the 576 bytes every client takes) and no code in
# them needs reply_wire's general build (52, 53, 82)
Block = tuple[bytes, frozenset[int], list[int], bool]
ROOM = DEFAULT_MAX_SIZE - HEADER_SIZE - 1 - 3  # what option 53 and END leave for the TLVs
SPECIAL = frozenset({OVERLOAD, 53, 82})


class OptionBlocks:
    def __init__(self, options_for: Callable[[str, str | None], OptionPayloads]) -> None:
        self.options_for = options_for
        self._blocks: dict[tuple[int, bytes | None, bool], tuple[OptionPayloads, Block]] = {}
        # the MACs with layers of their own when options_for is the plan's ClientOptions; None for
        # any other callable, which may depend on the MAC: nothing is then cached by raw options
        self._own = options_for.phones if isinstance(options_for, ClientOptions) else None
        self._raw: dict[tuple[bytes | None, bytes | None, bool], Block] = {}

    def get(self, request: Message, with_lease: bool) -> Block:
        """The client's options, encoded. A client without layers of its own (not a phone) is
        found first by its raw options 60 and 55: its option set depends on nothing else."""
        options = request.options
        pool_client = self._own is not None and request.mac not in self._own
        if pool_client:
            raw_key = (options.get(60), options.get(55), with_lease)
            hit = self._raw.get(raw_key)
            if hit is not None:
                return hit
        found = self._block(request, with_lease)
        if pool_client:
            if len(self._raw) >= BLOCK_CACHE:
                self._raw.clear()
            self._raw[raw_key] = found
        return found

    def _block(self, request: Message, with_lease: bool) -> Block:
        """Cached per option set (by identity, kept alive by the entry) and request list."""
        option_set = self.options_for(request.mac, request.text_option(60))
        key = (id(option_set), request.options.get(55), with_lease)
        found = self._blocks.get(key)
        if found is None or found[0] is not option_set:
            chosen = option_set.for_request(request.requested_options())
            if not with_lease:
                chosen = [(c, p) for c, p in chosen if c not in LEASE_CODES]
            codes = [c for c, _ in chosen]
            if len(self._blocks) >= BLOCK_CACHE:
                self._blocks.clear()
            encoded, code_set = encode_options(chosen), frozenset(codes)
            quick = len(encoded) <= ROOM and code_set.isdisjoint(SPECIAL)
            found = self._blocks[key] = (option_set, (encoded, code_set, codes, quick))
        return found[1]
