/* The steady phase of a TFTP read transfer (octet mode, after the RRQ/OACK decisions), run
 * without the GIL: the tftpd-hpa model, one scheduler entity per transfer (the caller runs
 * `serve` in a bounded thread pool), no event-loop hop per block.
 *
 * It does only the non-terminal steps of labkit.protocols.tftp.read.ReadSession, with the same
 * state (acked, sent_hi, final, tries, the lengths of the blocks in flight, the OACK pending):
 *   - while the OACK waits for its ACK 0 (handed off right after the OACK went out, so that the
 *     first window does not cost an event-loop turn): ACK 0 sends the first window, any other
 *     ACK is ignored, the retransmission timer resends the OACK;
 *   - an ACK of a block in flight: count the acknowledged bytes, send the next window
 *     (lock-step: the next block); an ACK inside a window restarts it after that block and
 *     counts the resent blocks as retransmissions (RFC 7440 section 4, as the core does);
 *   - a duplicate or stale ACK: ignored, never answered (Sorcerer's Apprentice);
 *   - the retransmission timer: resend the window from the first unacknowledged block;
 *   - a datagram from another address (TID): TFTP error 5 to it unless it is an ERROR.
 * It waits in a blocking recvfrom (see receive), the socket made blocking for the run only.
 * Everything else hands the transfer back to Python with the state *before* that event and the
 * event itself ("datagram" + the bytes, or the timer key), so that the pure core carries it
 * out as it always does: the final ACK, any other datagram from the client (ERROR, junk), the
 * last retransmission, the session's life timer, a read error, the stop fd (shutdown).
 * Block numbers on the wire wrap at 65,536 like the core's (absolute indices in 64 bits here).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>

#define RECV_SIZE 1024 /* what the pure transfer reads: longer datagrams are truncated alike */
#define CHUNK (64 * 1024) /* read-ahead per pread (at least a window), as services.filetree.FileReader */
#define MAX_WINDOW_BYTES (1 << 20) /* whole window built before sending (see window()) */
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h, Linux >= 4.18 */
#endif
#define GSO_MAX_SEGMENTS 64 /* UDP_MAX_SEGMENTS of the kernels that have it */
#define GSO_MAX_BYTES 65507 /* one UDP payload over IPv4 */
#define STOP_CHECK 0.05 /* seconds: a running loop looks at the stop fd at least this often */

typedef struct {
    /* I/O */
    int fd, stop_fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    const unsigned char *data; /* bytes source, or NULL */
    Py_ssize_t data_len;
    int file_fd; /* file source when data is NULL */
    unsigned char *chunk;
    int64_t chunk_start;
    Py_ssize_t chunk_len;
    Py_ssize_t chunk_cap; /* the chunk's size: a whole window fits */
    unsigned char *heads; /* the 4-byte DATA header of each packet of the window */
    const unsigned char **payloads; /* each packet's payload, in the chunk or the bytes source */
    Py_ssize_t *sizes; /* wire size of each packet built */
    struct iovec *iov; /* two per packet of the window (header, payload), for the sends */
    struct mmsghdr *msgs;
    int64_t *lengths; /* payload length by block index % windowsize */
    /* session */
    long blksize, windowsize, retries;
    double timeout;
    int64_t acked, sent_hi, final; /* final: -1 until the short block was read */
    long tries;
    const unsigned char *oack; /* the OACK while it waits for ACK 0, else NULL */
    Py_ssize_t oack_len;
    /* counters since the hand-off */
    int64_t bytes_added, retransmits_added, ignored_added, unknown_tids;
    int read_errno;
    int gso_off; /* UDP_SEGMENT refused once: datagram by datagram for the rest of the run */
    double final_sent_at; /* when a window holding the last block was last sent, or 0 */
    long rcvtimeo_ms; /* SO_RCVTIMEO now set on the socket (see receive) */
    int spin_misses; /* awake waits in a row that the next datagram did not end (see awake) */
    int spin_rested; /* waits slept since SPIN_MISSES stopped the awake wait (see may_spin) */
    int64_t started_ns, other_start_ns; /* this loop's start, and the one before it */
    long check_in; /* waits until may_spin looks at /proc/loadavg again (0: at the next) */
    int spare; /* a CPU to spare when last looked at (see spare_cpu) */
    double stop_checked; /* when the stop fd was last looked at */
} Run;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Bytes [offset, offset + size) of the source made addressable: from the bytes source itself,
 * or read into the chunk with one pread (of the whole chunk) unless it holds them already, so
 * that a window's payloads are sent from where they lie, without a copy into a packet buffer
 * (the kernel copies them once, into its datagrams). 0, or -1 on a read error. */
static int have(Run *r, int64_t offset, Py_ssize_t size) {
    if (r->data != NULL || (offset >= r->chunk_start && offset + size <= r->chunk_start + r->chunk_len))
        return 0;
    ssize_t got = pread(r->file_fd, r->chunk, r->chunk_cap, offset);
    if (got < 0) {
        r->read_errno = errno;
        return -1;
    }
    r->chunk_start = offset;
    r->chunk_len = got;
    return 0;
}

/* Up to `size` bytes at `offset`, after have(): what FileReader.read_at / bytes slicing return. */
static Py_ssize_t payload_at(const Run *r, int64_t offset, Py_ssize_t size, const unsigned char **out) {
    const unsigned char *base = r->data != NULL ? r->data : r->chunk;
    int64_t start = r->data != NULL ? 0 : r->chunk_start;
    Py_ssize_t len = r->data != NULL ? r->data_len : r->chunk_len;
    Py_ssize_t at = offset - start;
    Py_ssize_t n = at >= len ? 0 : (len - at < size ? len - at : size);
    *out = base + (at < len ? at : 0);
    return n;
}

/* ReadSession._window(first) minus the sending: every block is read before any is sent, so a
 * read error leaves nothing on the wire (the core then reads again and ends "read-error").
 * Returns the number of packets, or -1 on a read error (state untouched but final/lengths). */
static long window(Run *r, int64_t first) {
    int64_t last = first + r->windowsize - 1;
    if (r->final >= 0 && r->final < last)
        last = r->final;
    long count = 0;
    int64_t final = r->final;
    if (have(r, (first - 1) * r->blksize, (last - first + 1) * r->blksize) < 0)
        return -1;
    for (int64_t index = first; index <= last; index++, count++) {
        unsigned char *packet = r->heads + count * 4;
        Py_ssize_t n = payload_at(r, (index - 1) * r->blksize, r->blksize, &r->payloads[count]);
        packet[0] = 0;
        packet[1] = 3;
        packet[2] = (unsigned char)((index >> 8) & 0xFF);
        packet[3] = (unsigned char)(index & 0xFF);
        r->sizes[count] = 4 + n;
        if (n < r->blksize) {
            final = index;
            count++;
            break;
        }
    }
    for (long i = 0; i < count; i++)
        r->lengths[(first + i) % r->windowsize] = r->sizes[i] - 4;
    r->final = final;
    r->sent_hi = first + count - 1;
    return count;
}

/* Wait until fd is ready for `events`, the stop fd fires (1) or `deadline` passes (0). */
static int wait_for(Run *r, short events, double deadline, int *stopped) {
    for (;;) {
        struct pollfd fds[2] = {{r->fd, events, 0}, {r->stop_fd, POLLIN, 0}};
        double left = deadline - now();
        int ms = left <= 0 ? 0 : (left > 3600 ? 3600000 : (int)ceil(left * 1000));
        int n = poll(fds, 2, ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (fds[1].revents) {
            *stopped = 1;
            return 0;
        }
        if (n > 0 && fds[0].revents)
            return 1;
        if (left <= 0 || now() >= deadline)
            return 0;
    }
}

/* How many packets from index i go out in one UDP_SEGMENT send: every one but the last full
 * size (only the final block of a transfer is short, and it ends its window), within the
 * kernel's segment and size limits; < 2 means datagram by datagram. */
static long gso_batch(const Run *r, long i, long count) {
    if (r->oack != NULL || r->gso_off)
        return 1;
    long segment = 4 + r->blksize, n = count - i;
    if (n > GSO_MAX_SEGMENTS)
        n = GSO_MAX_SEGMENTS;
    if (n > GSO_MAX_BYTES / segment)
        n = GSO_MAX_BYTES / segment;
    for (long j = i; j < i + n - 1; j++)
        if (r->sizes[j] != segment)
            return 1;
    return n;
}

/* Packets i .. i+n-1 (their header and payload iovecs) as one datagram with UDP_SEGMENT: the kernel
 * cuts it into exactly those datagrams (the last segment may be shorter) after one pass through
 * the UDP/IP stack instead of n (on loopback, the receiving socket gets them cut the same way).
 * Same result on the wire as sendmmsg, a fraction of the kernel's cost per datagram. */
static int send_segmented(Run *r, long i, long n) {
    long segment = 4 + r->blksize;
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_name = &r->peer, .msg_namelen = r->peer_len, .msg_iov = r->iov + 2 * i,
                         .msg_iovlen = (size_t)(2 * n), .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = IPPROTO_UDP;
    cmsg->cmsg_type = UDP_SEGMENT;
    cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t size = (uint16_t)segment;
    memcpy(CMSG_DATA(cmsg), &size, sizeof size);
    return sendmsg(r->fd, &msg, MSG_DONTWAIT) < 0 ? -1 : (int)n;
}

/* Send the packets built by window() (or the pending OACK): a window in one UDP_SEGMENT send
 * where it can, else in one sendmmsg (the client then finds them queued together: fewer
 * wake-ups). A full send buffer waits (up to the retransmission timeout) rather than drop, as
 * the pure transfer's queue does; another error skips that datagram, as the pure transfer logs
 * it and goes on (the retransmission timer decides). */
static void send_window(Run *r, long count, int *stopped) {
    double deadline = now() + r->timeout;
    if (r->oack == NULL && r->sent_hi == r->final)
        r->final_sent_at = deadline - r->timeout;
    for (long j = 0; j < count; j++) {
        /* while the OACK is pending, the one datagram to (re)send is the OACK */
        struct iovec *iov = r->iov + 2 * j;
        iov[0].iov_base = r->oack != NULL ? (void *)r->oack : r->heads + 4 * j;
        iov[0].iov_len = r->oack != NULL ? (size_t)r->oack_len : 4;
        iov[1].iov_base = r->oack != NULL ? NULL : (void *)r->payloads[j];
        iov[1].iov_len = r->oack != NULL ? 0 : (size_t)(r->sizes[j] - 4);
        memset(&r->msgs[j], 0, sizeof r->msgs[j]);
        r->msgs[j].msg_hdr.msg_name = &r->peer;
        r->msgs[j].msg_hdr.msg_namelen = r->peer_len;
        r->msgs[j].msg_hdr.msg_iov = iov;
        r->msgs[j].msg_hdr.msg_iovlen = r->oack != NULL ? 1 : 2;
    }
    for (long i = 0; i < count && !*stopped;) {
        long batch = gso_batch(r, i, count);
        int n = batch > 1 ? send_segmented(r, i, batch)
                : count - i == 1 ? (sendmsg(r->fd, &r->msgs[i].msg_hdr, MSG_DONTWAIT) < 0 ? -1 : 1)
                : sendmmsg(r->fd, r->msgs + i, (unsigned)(count - i), MSG_DONTWAIT);
        if (n < 0 && batch > 1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            r->gso_off = 1; /* no UDP_SEGMENT here (old kernel, MTU, ...): the same packets */
            continue;       /* datagram by datagram, as before */
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_for(r, POLLOUT, deadline, stopped) == 1)
                continue;
            return;
        }
        i += n < 0 ? 1 : n;
    }
}

static int same_peer(const Run *r, const struct sockaddr_storage *from, socklen_t len) {
    if (from->ss_family != r->peer.ss_family)
        return 0;
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)from, *b = (const void *)&r->peer;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (from->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)from, *b = (const void *)&r->peer;
        return a->sin6_port == b->sin6_port && a->sin6_flowinfo == b->sin6_flowinfo
               && a->sin6_scope_id == b->sin6_scope_id
               && memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    return len == r->peer_len && memcmp(from, &r->peer, len) == 0;
}

static const unsigned char UNKNOWN_TID[] = "\0\5\0\5unknown transfer ID"; /* + its NUL */

enum { ACK_BACK, ACK_SENT, ACK_IGNORED };

/* The ACK of block `wire`: ACK_SENT (the timer restarts), ACK_IGNORED (it does not: the core
 * returns no timer for it), ACK_BACK (hand back: the final ACK or a read error). */
static int on_ack(Run *r, unsigned wire, int *stopped) {
    if (r->oack != NULL) { /* ReadSession._on_ack while _waiting_oack */
        if (wire != 0) {
            r->ignored_added++;
            return ACK_IGNORED;
        }
        long count = window(r, 1);
        if (count < 0)
            return ACK_BACK; /* the core reads again and ends "read-error" */
        r->oack = NULL;
        r->tries = 0;
        send_window(r, count, stopped);
        return ACK_SENT;
    }
    int64_t delta = (int64_t)((wire - (unsigned)(r->acked & 0xFFFF)) & 0xFFFF);
    if (delta == 0 || delta > r->sent_hi - r->acked) {
        r->ignored_added++; /* duplicate or stale: never resend on it */
        return ACK_IGNORED;
    }
    int64_t acked = r->acked + delta;
    if (acked == r->final)
        return ACK_BACK; /* the core ends the session ("ok") */
    int64_t old_acked = r->acked, old_sent_hi = r->sent_hi, old_final = r->final, bytes = 0;
    for (int64_t index = old_acked + 1; index <= acked; index++)
        bytes += r->lengths[index % r->windowsize];
    long count = window(r, acked + 1);
    if (count < 0) {
        r->final = old_final;
        return ACK_BACK;
    }
    r->bytes_added += bytes;
    r->acked = acked;
    r->tries = 0;
    if (acked < old_sent_hi)
        r->retransmits_added += count;
    send_window(r, count, stopped);
    return ACK_SENT;
}

typedef enum { EV_DATAGRAM, EV_RETRANSMIT, EV_LIFE, EV_STOPPED, EV_ERROR } Event;

#include "tftp_spin.h" /* awake(): waiting awake before sleeping, when it pays */

/* The next datagram, waited for in one blocking recvfrom (the socket is blocking for the run,
 * SO_RCVTIMEO is the timer) rather than poll + recvfrom: one system call per ACK less, and the
 * wake-up goes straight to the reader. Profiled (bench/README.md, TFTP round 4): poll was ~9%
 * of the server's CPU with 50 lock-step clients. The stop fd is looked at when STOP_CHECK has
 * passed (a wait never lasts longer). 1: a datagram (*n bytes; *n < 0: an error the caller skips,
 * a queued ICMP error, as before); 0: the deadline passed or *stopped; -1: setsockopt failed. */
static int receive(Run *r, double deadline, unsigned char *got, ssize_t *n,
                   struct sockaddr_storage *from, socklen_t *from_len, int *stopped) {
    for (;;) {
        double t = now(), left = deadline - t;
        if (t - r->stop_checked >= STOP_CHECK) {
            struct pollfd stop = {r->stop_fd, POLLIN, 0};
            r->stop_checked = t;
            if (r->stop_fd >= 0 && poll(&stop, 1, 0) > 0) {
                *stopped = 1;
                return 0;
            }
        }
        if (left <= 0)
            return 0;
        long ms = left > STOP_CHECK ? (long)(STOP_CHECK * 1000) : (long)ceil(left * 1000);
        if (ms != r->rcvtimeo_ms) {
            struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
            if (setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
                return -1;
            r->rcvtimeo_ms = ms;
        }
        if (awake(r, got, n, from, from_len, deadline))
            return 1;
        *from_len = sizeof *from;
        *n = recvfrom(r->fd, got, RECV_SIZE, 0, (struct sockaddr *)from, from_len);
        if (*n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return 1;
    }
}

/* The socket blocking, for receive(), for the run (restored by unblock()); -1 on failure. */
static int block(Run *r, int *flags) {
    *flags = fcntl(r->fd, F_GETFL);
    return *flags < 0 || fcntl(r->fd, F_SETFL, *flags & ~O_NONBLOCK) < 0 ? -1 : 0;
}

static void unblock(Run *r, int flags) {
    struct timeval zero = {0, 0};
    if (r->rcvtimeo_ms != 0)
        setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof zero);
    if (flags >= 0)
        fcntl(r->fd, F_SETFL, flags);
}

/* The loop; runs without the GIL. `got`/`got_len`: the datagram handed back. */
static Event run(Run *r, double retransmit_at, double life_at, unsigned char *got,
                 Py_ssize_t *got_len, double *retransmit_left) {
    int stopped = 0, flags = -1;
    Event event = EV_ERROR;
    r->stop_checked = -INFINITY; /* looked at before the first wait, as poll did */
    __atomic_add_fetch(&running_loops, 1, __ATOMIC_RELAXED);
    r->started_ns = now_ns();
    r->other_start_ns = __atomic_exchange_n(&last_start_ns, r->started_ns, __ATOMIC_RELAXED);
    for (;;) {
        if (flags < 0 && block(r, &flags) < 0)
            break;
        double deadline = retransmit_at < life_at ? retransmit_at : life_at;
        struct sockaddr_storage from;
        socklen_t from_len = sizeof from;
        ssize_t n = -1;
        int ready = receive(r, deadline, got, &n, &from, &from_len, &stopped);
        if (stopped) {
            event = EV_STOPPED;
            break;
        }
        if (ready < 0)
            break;
        if (ready == 0) {
            if (life_at <= retransmit_at) {
                event = EV_LIFE;
                break;
            }
            if (r->tries + 1 > r->retries) {
                event = EV_RETRANSMIT; /* the core sends error 0 "timeout" and ends */
                break;
            }
            long count = r->oack != NULL ? 1 : window(r, r->acked + 1);
            if (count < 0) {
                event = EV_RETRANSMIT;
                break;
            }
            r->tries++;
            r->retransmits_added += count;
            send_window(r, count, &stopped);
            retransmit_at = now() + r->timeout;
            continue;
        }
        if (n < 0)
            continue; /* EAGAIN, EINTR, a queued ICMP error: as the pure transfer, go on */
        if (!same_peer(r, &from, from_len)) {
            r->unknown_tids++;
            if (n >= 2 && got[1] != 5)
                sendto(r->fd, UNKNOWN_TID, sizeof UNKNOWN_TID, MSG_DONTWAIT, (struct sockaddr *)&from,
                       from_len);
            continue;
        }
        if (n == 4 && got[0] == 0 && got[1] == 4) {
            int done = on_ack(r, ((unsigned)got[2] << 8) | got[3], &stopped);
            if (done != ACK_BACK) {
                if (done == ACK_SENT)
                    retransmit_at = now() + r->timeout;
                if (stopped) {
                    event = EV_STOPPED;
                    break;
                }
                continue;
            }
        }
        *got_len = n;
        event = EV_DATAGRAM;
        break;
    }
    unblock(r, flags);
    __atomic_sub_fetch(&running_loops, 1, __ATOMIC_RELAXED);
    *retransmit_left = retransmit_at - now();
    return event;
}

/* The peer tuple of socket.recvfrom as a sockaddr of the session socket's family. */
static int peer_address(Run *r, PyObject *peer) {
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    struct sockaddr_storage own;
    socklen_t own_len = sizeof own;
    if (getsockname(r->fd, (struct sockaddr *)&own, &own_len) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (!PyArg_ParseTuple(peer, "si|II", &host, &port, &flowinfo, &scope_id))
        return -1;
    char text[INET6_ADDRSTRLEN + 1];
    strncpy(text, host, sizeof text - 1);
    text[sizeof text - 1] = 0;
    char *percent = strchr(text, '%'); /* the scope is in scope_id */
    if (percent != NULL)
        *percent = 0;
    memset(&r->peer, 0, sizeof r->peer);
    if (own.ss_family == AF_INET) {
        struct sockaddr_in *a = (void *)&r->peer;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        r->peer_len = sizeof *a;
        if (inet_pton(AF_INET, text, &a->sin_addr) == 1)
            return 0;
    } else if (own.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (void *)&r->peer;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_flowinfo = htonl(flowinfo);
        a->sin6_scope_id = scope_id;
        r->peer_len = sizeof *a;
        if (inet_pton(AF_INET6, text, &a->sin6_addr) == 1)
            return 0;
    }
    PyErr_Format(PyExc_ValueError, "peer %R is not an address of the socket's family", peer);
    return -1;
}

static const char *const EVENT_NAMES[] = {"datagram", "retransmit", "life", "stopped", "error"};

/* One transfer's run, split in three so that labkit/native/_tftp_pool.c can run it on its own
 * threads (no GIL, no Python frame): prepare (with the GIL: arguments checked, buffers taken,
 * references held), execute (without it), finish (with it: the result tuple, everything freed). */
typedef struct {
    Run r;
    Py_buffer view; /* the bytes source, or view.obj NULL */
    PyObject *oack; /* a reference while the OACK waits, or NULL */
    unsigned char *got;
    Py_ssize_t got_len;
    double retransmit_in, life_in, retransmit_left;
    Event event;
} Job;

static void job_free(Job *j) {
    PyMem_RawFree(j->r.heads);
    PyMem_RawFree((void *)j->r.payloads);
    PyMem_RawFree(j->r.sizes);
    PyMem_RawFree(j->r.lengths);
    PyMem_RawFree(j->r.iov);
    PyMem_RawFree(j->r.msgs);
    PyMem_RawFree(j->r.chunk);
    PyMem_RawFree(j->got);
    if (j->view.obj != NULL)
        PyBuffer_Release(&j->view);
    Py_XDECREF(j->oack);
    PyMem_RawFree(j);
}

static int job_check(const Run *r, PyObject *lengths, PyObject *oack) {
    if (r->blksize < 8 || r->blksize > 65464 || r->windowsize < 1 || r->windowsize > 65535
        || r->windowsize * (4 + r->blksize) > MAX_WINDOW_BYTES || r->acked < 0
        || r->sent_hi < r->acked || r->sent_hi - r->acked > r->windowsize || r->final < -1
        || !(r->timeout > 0) || r->retries < 0 || !PyTuple_Check(lengths)
        || PyTuple_GET_SIZE(lengths) != r->sent_hi - r->acked
        || (oack != Py_None && (!PyBytes_Check(oack) || PyBytes_GET_SIZE(oack) < 2
                                || PyBytes_GET_SIZE(oack) > 65535 || r->acked != 0
                                || r->sent_hi != 0 || r->final != -1))) {
        PyErr_SetString(PyExc_ValueError, "inconsistent transfer state");
        return -1;
    }
    return 0;
}

/* serve's arguments checked and held: a Job, or NULL with an exception set. */
static void *job_prepare(PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"fd", "peer", "source", "blksize", "windowsize", "retries",
                             "timeout", "acked", "sent_hi", "final", "tries", "lengths",
                             "retransmit_in", "life_in", "stop_fd", "oack", "segment", NULL};
    Job *j = PyMem_RawCalloc(1, sizeof *j);
    if (j == NULL)
        return PyErr_NoMemory();
    Run *r = &j->r;
    PyObject *peer, *source, *lengths, *oack = Py_None;
    int segment = 1;
    long long acked, sent_hi, final;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iOOllldLLLlOddi|Op", kwlist, &r->fd, &peer,
                                     &source, &r->blksize, &r->windowsize, &r->retries, &r->timeout,
                                     &acked, &sent_hi, &final, &r->tries, &lengths, &j->retransmit_in,
                                     &j->life_in, &r->stop_fd, &oack, &segment))
        goto fail;
    r->acked = acked, r->sent_hi = sent_hi, r->final = final;
    if (job_check(r, lengths, oack) < 0 || peer_address(r, peer) < 0)
        goto fail;
    r->gso_off = !segment; /* segment=False: datagram by datagram (the tests' fallback case) */
    if (oack != Py_None) { /* held until finish: the caller's arguments may be gone by then */
        Py_INCREF(oack);
        j->oack = oack;
        r->oack = (const unsigned char *)PyBytes_AS_STRING(oack);
        r->oack_len = PyBytes_GET_SIZE(oack);
    }
    if (PyLong_Check(source)) {
        r->file_fd = (int)PyLong_AsLong(source);
        if (PyErr_Occurred())
            goto fail;
    } else if (PyObject_GetBuffer(source, &j->view, PyBUF_SIMPLE) == 0) {
        r->data = j->view.buf, r->data_len = j->view.len;
    } else {
        goto fail;
    }
    r->chunk_cap = r->windowsize * r->blksize > CHUNK ? r->windowsize * r->blksize : CHUNK;
    r->heads = PyMem_RawMalloc(r->windowsize * 4);
    r->payloads = PyMem_RawMalloc(r->windowsize * sizeof *r->payloads);
    r->sizes = PyMem_RawMalloc(r->windowsize * sizeof *r->sizes);
    r->lengths = PyMem_RawMalloc(r->windowsize * sizeof *r->lengths);
    r->iov = PyMem_RawMalloc(2 * r->windowsize * sizeof *r->iov);
    r->msgs = PyMem_RawMalloc(r->windowsize * sizeof *r->msgs);
    r->chunk = r->data == NULL ? PyMem_RawMalloc(r->chunk_cap) : NULL;
    j->got = PyMem_RawMalloc(RECV_SIZE);
    if (!r->heads || !r->payloads || !r->sizes || !r->lengths || !r->iov || !r->msgs || !j->got
        || (r->data == NULL && !r->chunk)) {
        PyErr_NoMemory();
        goto fail;
    }
    for (int64_t i = 0; i < r->sent_hi - r->acked; i++) {
        r->lengths[(r->acked + 1 + i) % r->windowsize] = PyLong_AsLongLong(PyTuple_GET_ITEM(lengths, i));
        if (PyErr_Occurred())
            goto fail;
    }
    return j;
fail:
    job_free(j);
    return NULL;
}

/* The run itself: no Python object touched, callable without the GIL. */
static void job_execute(void *job) {
    Job *j = job;
    double start = now();
    j->event = run(&j->r, start + j->retransmit_in, isfinite(j->life_in) ? start + j->life_in : INFINITY,
                   j->got, &j->got_len, &j->retransmit_left);
}

/* serve's return value (or NULL with an exception); the Job is freed either way. */
static PyObject *job_finish(void *job) {
    Job *j = job;
    Run *r = &j->r;
    PyObject *result = NULL, *left = PyTuple_New(r->sent_hi - r->acked);
    if (left == NULL)
        goto done;
    for (int64_t i = 0; i < r->sent_hi - r->acked; i++) {
        PyObject *n = PyLong_FromLongLong(r->lengths[(r->acked + 1 + i) % r->windowsize]);
        if (n == NULL) {
            Py_DECREF(left);
            goto done;
        }
        PyTuple_SET_ITEM(left, i, n);
    }
    PyObject *payload = j->event == EV_DATAGRAM ? PyBytes_FromStringAndSize((char *)j->got, j->got_len)
                                                : (Py_INCREF(Py_None), Py_None);
    result = Py_BuildValue("sNLLLlNLLLLddO", EVENT_NAMES[j->event], payload, (long long)r->acked,
                           (long long)r->sent_hi, (long long)r->final, r->tries, left,
                           (long long)r->bytes_added, (long long)r->retransmits_added,
                           (long long)r->ignored_added, (long long)r->unknown_tids, j->retransmit_left,
                           r->final_sent_at, r->oack != NULL ? Py_True : Py_False);
done:
    job_free(j);
    return result;
}

static PyObject *serve(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    void *job = job_prepare(args, kwargs);
    if (job == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    job_execute(job);
    Py_END_ALLOW_THREADS
    return job_finish(job);
}

static PyMethodDef methods[] = {
    {"serve", (PyCFunction)(void (*)(void))serve, METH_VARARGS | METH_KEYWORDS,
     "Run the steady phase of a TFTP read transfer until an event the core must handle."},
    {"set_spin", set_spin, METH_O, "Waiting awake: 0 never (default), 1 when it may pay, 2 always; "
     "returns the previous mode."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tftp", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

#include "tftp_job.h"
static const TftpJobApi API = {job_prepare, job_execute, job_finish};

PyMODINIT_FUNC PyInit__tftp(void) {
    PyObject *m = PyModule_Create(&module);
    PyObject *api = m == NULL ? NULL : PyCapsule_New((void *)&API, TFTP_JOB_CAPSULE, NULL);
    if (api == NULL || PyModule_AddIntConstant(m, "MAX_WINDOW_BYTES", MAX_WINDOW_BYTES) < 0
        || PyModule_AddObject(m, "_job_api", api) < 0) {
        Py_XDECREF(api);
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}
