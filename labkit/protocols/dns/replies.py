"""Whole UDP replies by query: the table in front of the resolver on the UDP hot path.

The resolver's reply to a UDP query depends on the query's bytes after its 2-byte ID and on
nothing else (no clock, no peer: the ID is copied, everything else follows from the flags, the
question as sent, and the OPT record). So the reply to a query seen once is kept whole, minus
the ID, keyed by the query's bytes after the ID; the next query with those bytes gets the
kept bytes with its own ID in front. Answers are byte-identical to the resolver's by
construction, and tests/unit/test_dns_replies.py compares the two for a table of queries.

The resolver's counters stay exact: a hit counts its rcode in the same tally the resolver keeps.
What is not kept: replies for queries longer than KEY_MAX bytes (a real question with an OPT
record is far shorter), SERVFAIL (an internal error, to be seen again), and no-reply results
(runts, responses). The table is bounded: when it holds `limit` replies it is emptied, so a
flood of random names costs one resolver pass each and never grows memory. It belongs to one
resolver: a reload builds a new resolver and with it a new, empty table.
"""

from __future__ import annotations

from labkit.protocols.dns.answers import DnsFact
from labkit.protocols.dns.resolver import AuthoritativeResolver
from labkit.protocols.dns.wire import SERVFAIL
from labkit.protocols.result import Fact

REPLIES_MAX = 8192  # replies kept per resolver (a lab asks a few dozen distinct questions)
KEY_MAX = 512  # longest query whose reply is kept

# (the reply after its ID, the facts of the reply, its rcode for the tally, the key itself): the
# key names the question exactly (two FORMERR replies have the same bytes for different
# queries), so the drains share one Event per peer and key within a wake-up, never per reply
Kept = tuple[bytes, tuple[Fact, ...], int, bytes]


class UdpReplies:
    """`answer(query)` gives what `resolver.answer(query)` (UDP) would send, and its facts.

    The hot path reads `table` and `tally` directly (one dict look-up per datagram) and calls
    `learn` on a miss; `answer` is the same in one call, for everyone else.
    """

    __slots__ = ("limit", "resolver", "table", "tally")

    def __init__(self, resolver: AuthoritativeResolver, *, limit: int = REPLIES_MAX) -> None:
        self.resolver = resolver
        self.limit = limit
        self.table: dict[bytes, Kept] = {}
        self.tally = resolver.tally

    def answer(self, query: bytes) -> tuple[bytes | None, tuple[Fact, ...]]:
        kept = self.table.get(query[2:])
        if kept is None:
            return self.learn(query)
        tail, facts, rcode, _ = kept
        self.tally[rcode] += 1
        return query[:2] + tail, facts

    def learn(self, query: bytes) -> tuple[bytes | None, tuple[Fact, ...]]:
        """The resolver's reply (and facts) to a query not in the table; kept when it may be."""
        result = self.resolver.answer(query)
        wire = result.send[0].data if result.send else None
        facts = result.facts
        if wire is not None and len(query) <= KEY_MAX and len(facts) == 1:
            fact = facts[0]
            if isinstance(fact, DnsFact) and fact.rcode != SERVFAIL and wire[:2] == query[:2]:
                if len(self.table) >= self.limit:
                    self.table.clear()
                key = bytes(query[2:])
                self.table[key] = (wire[2:], facts, fact.rcode, key)
        return wire, facts
