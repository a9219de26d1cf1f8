"""labkit/native/_tftp.c: the steady phase of a TFTP read transfer, without the GIL."""

MAX_WINDOW_BYTES: int  # windowsize x (4 + blksize) above this stays on the pure path

def serve(*, fd: int, peer: tuple[object, ...], source: bytes | int, blksize: int,
          windowsize: int, retries: int, timeout: float, acked: int, sent_hi: int, final: int,
          tries: int, lengths: tuple[int, ...], retransmit_in: float, life_in: float,
          stop_fd: int, oack: bytes | None = None, segment: bool = True
          ) -> tuple[str, bytes | None, int, int, int, int, tuple[int, ...], int, int, int, int,
                     float, float, bool]:
    """Run until an event the core must carry out. Returns (event, datagram, acked, sent_hi,
    final, tries, lengths, bytes acked, retransmissions, ignored, unknown TIDs, seconds to the
    retransmission, when the last block was last sent: time.monotonic's clock, 0 if not, whether
    the OACK still waits for its ACK 0). `oack`: the OACK sent, while it waits for ACK 0 (then
    acked = sent_hi = 0, final = -1): ACK 0 sends the first window, the timer resends the OACK.
    `segment`: send a window as one UDP_SEGMENT datagram where the kernel takes it (False:
    datagram by datagram, what the loop falls back to).
    event: "datagram" (give it to receive), "retransmit" or "life" (expire that timer),
    "stopped" (the stop fd), "error" (poll failed: go on in Python)."""

def set_spin(mode: int, /) -> int:
    """Waiting awake before sleeping for a datagram: 0 never (the default), 1 only when it may
    pay (one loop alone, a CPU to spare), 2 always (tests). Returns the previous mode."""
