/* labkit.native._udp: batched UDP receive and send for the DNS service (issue 15).
 *
 * The pure loop (labkit/services/dns.py) pays one recvfrom and one sendto system call per
 * datagram, which costs as much as dnsmasq's whole answer. `Drain` does the same steps with
 * one recvmmsg and one sendmmsg per batch:
 *
 *   receive(table) -> (addresses, values)
 *       reads up to `batch` datagrams without blocking; for each, looks the bytes after the
 *       2-byte ID up in `table` (UdpReplies.table: {query[2:]: (tail, facts, rcode)}). A hit's
 *       value is the table's tuple, and its reply (the query's ID, then `tail`) is queued at
 *       once; a miss's value is the whole query (bytes) for the reference path.
 *   reply(wire or None)
 *       the reply to the next miss, in order (Python's resolver answered it; None: no reply).
 *   send() -> int
 *       sends every queued reply in datagram order (sendmmsg, partial sends resumed) and
 *       returns how many could not be sent (each counted, never dropped silently).
 *
 * Python keeps every decision: what is kept in the table (and so what a hit may answer), the
 * events, the counters, faults (while a rule concerns DNS, Python does not use this at all).
 * Replies are not copied: a reply is two iovecs, the ID in the receive buffer and the kept
 * tail, whose reference is held until it was sent.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define RECV_SIZE 65536 /* a whole datagram, as the pure path's recvfrom(65535): never cut off */
#define BATCH_MAX 256
#define ADDRESS_CACHE 256 /* peers' address tuples, reused: a burst from one socket is one object
                           * (256 slots: 8 peers in 16 slots collided in most runs, and a collided
                           * peer cost an inet_ntop, a new tuple and a dict look-up per datagram) */

typedef struct {
    struct sockaddr_storage name;
    socklen_t length;
    PyObject *address; /* the (host, port[, flowinfo, scope_id]) tuple socket.recvfrom gives */
    PyObject *ids;     /* the pump's (udp_pump.h): this peer's question key -> event id, or NULL */
} CachedAddress;

struct Pump;

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned int batch;
    Py_ssize_t key_max;                /* longer queries are never kept: no look-up */
    struct mmsghdr *rx;
    struct iovec *rx_iov;
    struct sockaddr_storage *names;
    unsigned char *buffers;            /* batch x RECV_SIZE, touched only as far as datagrams reach */
    unsigned int received;             /* datagrams of the current batch */
    struct iovec *tx_iov;              /* two per datagram: ID, rest */
    int *tx_parts;                     /* per datagram: 0 no reply, 1 or 2 iovecs */
    PyObject **held;                   /* per datagram: the bytes its reply points into */
    unsigned int *misses;              /* datagram indexes Python answers, in order */
    unsigned int miss_count, miss_next;
    struct mmsghdr *tx;
    Py_ssize_t failed;                 /* replies not sent since the last send() returned */
    int busy;                          /* a system call is running without the GIL */
    struct Pump *pump;                 /* the receiving thread's state, once started (udp_pump.h) */
    int pumping;                       /* its thread runs: receive() and send() are its own */
    CachedAddress cache[ADDRESS_CACHE];
} Drain;

static void release_batch(Drain *self)
{
    for (unsigned int i = 0; i < self->received; i++) {
        Py_CLEAR(self->held[i]);
        self->tx_parts[i] = 0;
    }
    self->received = self->miss_count = self->miss_next = 0;
}

/* The address as Python's socket module gives it (IPv4: (host, port); IPv6: (host, port,
 * flowinfo, scope_id), the host through getnameinfo(NI_NUMERICHOST) as socket does). */
static PyObject *make_address(const struct sockaddr_storage *name, socklen_t length)
{
    char host[NI_MAXHOST];
    if (name->ss_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)name;
        if (!inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host))
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, ntohs(v4->sin_port));
    }
    if (name->ss_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)name;
        int error = getnameinfo((const struct sockaddr *)name, length, host, sizeof host, NULL, 0,
                                NI_NUMERICHOST);
        if (error)
            return PyErr_Format(PyExc_OSError, "getnameinfo: %s", gai_strerror(error));
        return Py_BuildValue("(siII)", host, ntohs(v6->sin6_port), ntohl(v6->sin6_flowinfo),
                             v6->sin6_scope_id);
    }
    PyErr_Format(PyExc_OSError, "unexpected address family %d", name->ss_family);
    return NULL;
}

/* The cache entry for `name`, its address made when the slot held another peer (whose pump
 * ids go with it); NULL raised. */
static CachedAddress *cached(Drain *self, const struct sockaddr_storage *name, socklen_t length)
{
    unsigned int slot = 0;
    if (name->ss_family == AF_INET)
        slot = ((const struct sockaddr_in *)name)->sin_port ^ ((const struct sockaddr_in *)name)->sin_addr.s_addr;
    else if (name->ss_family == AF_INET6)
        slot = ((const struct sockaddr_in6 *)name)->sin6_port;
    slot = (slot * 2654435761u) >> 24; /* Fibonacci hashing: the top 8 bits, ports spread out */
    slot %= ADDRESS_CACHE;
    CachedAddress *entry = &self->cache[slot];
    if (entry->address && entry->length == length && memcmp(&entry->name, name, length) == 0)
        return entry;
    PyObject *address = make_address(name, length);
    if (!address)
        return NULL;
    Py_XSETREF(entry->address, address);
    Py_CLEAR(entry->ids);
    memcpy(&entry->name, name, length);
    entry->length = length;
    return entry;
}

/* A new reference to the address of `name`, from the small cache when it was seen before. */
static PyObject *address_of(Drain *self, const struct sockaddr_storage *name, socklen_t length)
{
    CachedAddress *entry = cached(self, name, length);
    return entry ? Py_NewRef(entry->address) : NULL;
}

static int Drain_init(Drain *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"fd", "batch", "key_max", NULL};
    int fd;
    unsigned int batch = 64;
    Py_ssize_t key_max = 512;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|In", keywords, &fd, &batch, &key_max))
        return -1;
    if (fd < 0 || batch < 1 || batch > BATCH_MAX || key_max < 0) {
        PyErr_SetString(PyExc_ValueError, "Drain needs fd >= 0, 1 <= batch <= 256, key_max >= 0");
        return -1;
    }
    if (self->rx) {
        PyErr_SetString(PyExc_RuntimeError, "Drain is already initialised");
        return -1;
    }
    self->fd = fd;
    self->batch = batch;
    self->key_max = key_max;
    self->rx = PyMem_Calloc(batch, sizeof *self->rx);
    self->rx_iov = PyMem_Calloc(batch, sizeof *self->rx_iov);
    self->names = PyMem_Calloc(batch, sizeof *self->names);
    self->buffers = PyMem_RawMalloc((size_t)batch * RECV_SIZE); /* large: the OS maps it lazily */
    self->tx_iov = PyMem_Calloc(2 * (size_t)batch, sizeof *self->tx_iov);
    self->tx_parts = PyMem_Calloc(batch, sizeof *self->tx_parts);
    self->held = PyMem_Calloc(batch, sizeof *self->held);
    self->misses = PyMem_Calloc(batch, sizeof *self->misses);
    self->tx = PyMem_Calloc(batch, sizeof *self->tx);
    if (!self->rx || !self->rx_iov || !self->names || !self->buffers || !self->tx_iov ||
        !self->tx_parts || !self->held || !self->misses || !self->tx) {
        PyErr_NoMemory();
        return -1; /* dealloc frees what was allocated */
    }
    for (unsigned int i = 0; i < batch; i++) {
        self->rx_iov[i].iov_base = self->buffers + (size_t)i * RECV_SIZE;
        self->rx_iov[i].iov_len = RECV_SIZE;
    }
    return 0;
}

static void pump_free(Drain *self);

static void Drain_dealloc(Drain *self)
{
    if (self->held)
        release_batch(self);
    pump_free(self); /* (stops and joins the thread first, if it runs) */
    for (int i = 0; i < ADDRESS_CACHE; i++) {
        Py_CLEAR(self->cache[i].address);
        Py_CLEAR(self->cache[i].ids);
    }
    PyMem_Free(self->rx);
    PyMem_Free(self->rx_iov);
    PyMem_Free(self->names);
    PyMem_RawFree(self->buffers);
    PyMem_Free(self->tx_iov);
    PyMem_Free(self->tx_parts);
    PyMem_Free(self->held);
    PyMem_Free(self->misses);
    PyMem_Free(self->tx);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(Drain *self)
{
    if (!self->rx) {
        PyErr_SetString(PyExc_RuntimeError, "Drain is not initialised");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Drain is in use by another thread");
        return 0;
    }
    return 1;
}

static int not_pumping(Drain *self)
{
    if (self->pumping)
        PyErr_SetString(PyExc_RuntimeError, "Drain's thread is running (stop() it first)");
    return !self->pumping;
}

/* Sends every queued reply in datagram order (no Python: callable without the GIL); how many
 * could not be sent. */
static Py_ssize_t send_queued(Drain *self)
{
    unsigned int count = 0;
    for (unsigned int i = 0; i < self->received; i++) {
        if (!self->tx_parts[i])
            continue;
        struct msghdr *header = &self->tx[count++].msg_hdr;
        memset(header, 0, sizeof *header);
        header->msg_name = &self->names[i];
        header->msg_namelen = self->rx[i].msg_hdr.msg_namelen;
        header->msg_iov = &self->tx_iov[2 * i];
        header->msg_iovlen = (size_t)self->tx_parts[i];
    }
    Py_ssize_t failed = 0;
    unsigned int done = 0;
    while (done < count) { /* bounded: every turn sends or skips at least one reply */
        int sent = sendmmsg(self->fd, self->tx + done, count - done, MSG_DONTWAIT);
        if (sent > 0) {
            done += (unsigned int)sent;
        } else if (sent < 0 && errno == EINTR) {
            continue;
        } else { /* this reply cannot go (buffer full, unreachable): counted, the client retries */
            failed++;
            done++;
        }
    }
    return failed;
}

/* Sends every queued reply in datagram order; those that could not be sent add to `failed`. */
static void send_batch(Drain *self)
{
    Py_ssize_t failed;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    failed = send_queued(self);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    self->failed += failed;
    release_batch(self);
}

/* Looks datagram i up and records it as a hit (reply queued) or a miss; the value for Python. */
static PyObject *classify(Drain *self, PyObject *table, unsigned int i)
{
    const unsigned char *data = self->rx_iov[i].iov_base;
    Py_ssize_t length = (Py_ssize_t)self->rx[i].msg_len;
    if (length > 2 && length - 2 <= self->key_max) {
        PyObject *key = PyBytes_FromStringAndSize((const char *)data + 2, length - 2);
        if (!key)
            return NULL;
        PyObject *kept = PyDict_GetItemWithError(table, key); /* borrowed */
        Py_DECREF(key);
        if (kept) {
            PyObject *tail;
            if (!PyTuple_Check(kept) || PyTuple_GET_SIZE(kept) < 1 ||
                !PyBytes_Check(tail = PyTuple_GET_ITEM(kept, 0))) {
                PyErr_SetString(PyExc_TypeError, "table values must be (bytes, ...) tuples");
                return NULL;
            }
            self->tx_iov[2 * i] = (struct iovec){(void *)data, 2};
            self->tx_iov[2 * i + 1] = (struct iovec){PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail)};
            self->held[i] = Py_NewRef(tail);
            self->tx_parts[i] = 2;
            return Py_NewRef(kept);
        }
        if (PyErr_Occurred())
            return NULL;
    }
    self->misses[self->miss_count++] = i;
    return PyBytes_FromStringAndSize((const char *)data, length);
}

/* Every receive header pointed at its name and buffer again (recvmmsg rewrites msg_namelen). */
static void arm_headers(Drain *self)
{
    for (unsigned int i = 0; i < self->batch; i++) {
        struct msghdr *header = &self->rx[i].msg_hdr;
        memset(header, 0, sizeof *header);
        header->msg_name = &self->names[i];
        header->msg_namelen = sizeof self->names[i];
        header->msg_iov = &self->rx_iov[i];
        header->msg_iovlen = 1;
    }
}

static PyObject *Drain_receive(Drain *self, PyObject *table)
{
    if (!ready(self) || !not_pumping(self))
        return NULL;
    if (!PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "receive(table): table must be a dict");
        return NULL;
    }
    if (self->received) /* replies of a batch nobody sent go now (the caller always sends) */
        send_batch(self);
    arm_headers(self);
    int got;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    do {
        got = recvmmsg(self->fd, self->rx, self->batch, MSG_DONTWAIT, NULL);
    } while (got < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (got < 0)
        return PyErr_SetFromErrno(PyExc_OSError); /* EAGAIN: BlockingIOError, as recvfrom raises */
    PyObject *addresses = PyList_New(got), *values = PyList_New(got);
    if (!addresses || !values)
        goto failed;
    self->received = (unsigned int)got;
    for (unsigned int i = 0; i < (unsigned int)got; i++) {
        PyObject *address = address_of(self, &self->names[i], self->rx[i].msg_hdr.msg_namelen);
        if (!address)
            goto failed;
        PyList_SET_ITEM(addresses, i, address);
        PyObject *value = classify(self, table, i);
        if (!value)
            goto failed;
        PyList_SET_ITEM(values, i, value);
    }
    return Py_BuildValue("(NN)", addresses, values);
failed:
    Py_XDECREF(addresses);
    Py_XDECREF(values);
    if (got > 0) /* (only on MemoryError or a table of the wrong shape) */
        self->failed += got; /* this batch gets no reply: counted as not sent */
    release_batch(self);
    return NULL;
}

static PyObject *Drain_reply(Drain *self, PyObject *wire)
{
    if (!ready(self))
        return NULL;
    if (self->miss_next >= self->miss_count) {
        PyErr_SetString(PyExc_RuntimeError, "reply() called more often than there were misses");
        return NULL;
    }
    if (wire != Py_None && !PyBytes_Check(wire)) {
        PyErr_SetString(PyExc_TypeError, "reply(wire): bytes or None");
        return NULL;
    }
    unsigned int i = self->misses[self->miss_next++];
    if (wire == Py_None)
        Py_RETURN_NONE;
    self->tx_iov[2 * i] = (struct iovec){PyBytes_AS_STRING(wire), (size_t)PyBytes_GET_SIZE(wire)};
    self->held[i] = Py_NewRef(wire);
    self->tx_parts[i] = 1;
    Py_RETURN_NONE;
}

static PyObject *Drain_send(Drain *self, PyObject *Py_UNUSED(ignored))
{
    if (!ready(self) || !not_pumping(self))
        return NULL;
    send_batch(self);
    Py_ssize_t failed = self->failed;
    self->failed = 0;
    return PyLong_FromSsize_t(failed);
}

/* deliver(bus, cls, bases, empty, times, counts, which) -> int: the main process's side of a
 * worker's event columns (labkit.services.workers_wire._deliver_factory is the reference, in
 * Python): for each run k, for each template index in which[start:start + counts[k]], an
 * instance of `cls` whose __dict__ is a copy of bases[index] with "time" = times[k] (and a new
 * empty "detail" where empty[index] is true), passed to bus(event) in order. Within a run the
 * same index gives the same (frozen, equal) object again, as the one-process DNS drain hands
 * its sink one Event per peer and question per wake-up (a run is a worker's batch, stamped
 * with one clock reading); a new run makes new objects. Errors (a bus that raises, a bad
 * index) propagate as there. */
static PyObject *time_key, *detail_key, *dict_key, *no_args;

/* the position `position` stands for in a list of n (as Python's list[index]), or -1 raised */
static Py_ssize_t position_in(Py_ssize_t n, PyObject *position, const char *what)
{
    Py_ssize_t i = PyLong_AsSsize_t(position);
    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0)
        i += n;
    if (i < 0 || i >= n) {
        PyErr_Format(PyExc_IndexError, "deliver: %s index out of range", what);
        return -1;
    }
    return i;
}

/* A new `cls` instance for template i at `when` (a new reference), or NULL raised. */
static PyObject *make_one(PyTypeObject *cls, PyObject *bases, PyObject *empty, PyObject *when, Py_ssize_t i)
{
    if (i >= PyList_GET_SIZE(bases) || i >= PyList_GET_SIZE(empty)) { /* the bus may have shrunk them */
        PyErr_SetString(PyExc_IndexError, "deliver: template index out of range");
        return NULL;
    }
    PyObject *base = PyList_GET_ITEM(bases, i), *blank = PyList_GET_ITEM(empty, i);
    if (!PyDict_Check(base)) {
        PyErr_SetString(PyExc_TypeError, "deliver: bases must hold dicts");
        return NULL;
    }
    Py_INCREF(base); /* held: nothing below may free them under us */
    Py_INCREF(blank);
    int fresh = PyObject_IsTrue(blank);
    Py_DECREF(blank);
    PyObject *values = fresh < 0 ? NULL : PyDict_Copy(base);
    Py_DECREF(base);
    if (!values)
        return NULL;
    PyObject *detail = fresh ? PyDict_New() : NULL;
    PyObject *event = NULL;
    if (PyDict_SetItem(values, time_key, when) < 0 ||
        (fresh && (!detail || PyDict_SetItem(values, detail_key, detail) < 0)))
        goto done;
    event = PyBaseObject_Type.tp_new(cls, no_args, NULL); /* object.__new__(cls) */
    if (event && PyObject_GenericSetAttr(event, dict_key, values) < 0) /* object.__setattr__ */
        Py_CLEAR(event);
done:
    Py_XDECREF(detail);
    Py_DECREF(values);
    return event;
}

/* One run: `count` events from which[start:], at `when`; made[] holds this run's objects per
 * template (nbases slots), touched[] which slots it filled, emptied again before returning (so
 * a run costs what it delivers, not the number of templates). 0, or -1 raised. */
static int deliver_run(PyObject *bus, PyTypeObject *cls, PyObject *bases, PyObject *empty, PyObject *which,
                       PyObject *when, Py_ssize_t start, Py_ssize_t count, PyObject **made,
                       Py_ssize_t *touched, Py_ssize_t nbases)
{
    int failed = 0;
    Py_ssize_t filled = 0;
    for (Py_ssize_t k = start; k < start + count && k < PyList_GET_SIZE(which) && !failed; k++) {
        Py_ssize_t i = position_in(nbases, PyList_GET_ITEM(which, k), "template");
        if (i < 0) {
            failed = 1;
            break;
        }
        if (!made[i]) {
            if (!(made[i] = make_one(cls, bases, empty, when, i))) {
                failed = 1;
                break;
            }
            touched[filled++] = i;
        }
        PyObject *event = Py_NewRef(made[i]); /* held across the bus's call */
        PyObject *result = PyObject_CallOneArg(bus, event);
        Py_DECREF(event);
        if (result)
            Py_DECREF(result);
        else
            failed = 1;
    }
    while (filled > 0) {
        filled--; /* (not inside Py_CLEAR: the macro reads its argument more than once) */
        Py_CLEAR(made[touched[filled]]);
    }
    return failed ? -1 : 0;
}

static PyObject *deliver(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *bus, *bases, *empty, *times, *counts, *which;
    PyTypeObject *cls;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!O!:deliver", &bus, &PyType_Type, &cls, &PyList_Type, &bases,
                          &PyList_Type, &empty, &PyList_Type, &times, &PyList_Type, &counts, &PyList_Type, &which))
        return NULL;
    if (cls->tp_new != PyBaseObject_Type.tp_new) { /* object.__new__(cls) must be what makes it */
        PyErr_SetString(PyExc_TypeError, "deliver: cls must be made by object.__new__");
        return NULL;
    }
    Py_ssize_t nbases = PyList_GET_SIZE(bases);
    PyObject **made = PyMem_Calloc(nbases ? (size_t)nbases : 1, sizeof *made);
    Py_ssize_t *touched = PyMem_Calloc(nbases ? (size_t)nbases : 1, sizeof *touched);
    if (!made || !touched) {
        PyMem_Free(made);
        PyMem_Free(touched);
        return PyErr_NoMemory();
    }
    /* the lists are our own caller's (not the bus's), but hold them across the bus's calls */
    Py_INCREF(bases); Py_INCREF(empty); Py_INCREF(times); Py_INCREF(counts); Py_INCREF(which);
    Py_ssize_t start = 0;
    int failed = 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(times) && k < PyList_GET_SIZE(counts) && !failed; k++) {
        PyObject *when = PyList_GET_ITEM(times, k);
        Py_ssize_t count = PyLong_AsSsize_t(PyList_GET_ITEM(counts, k));
        if (count < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "deliver: a negative count");
            failed = 1;
            break;
        }
        Py_INCREF(when);
        failed = deliver_run(bus, cls, bases, empty, which, when, start, count, made, touched, nbases) < 0;
        Py_DECREF(when);
        start += count;
    }
    if (!failed && PyList_GET_SIZE(times) != PyList_GET_SIZE(counts)) { /* as zip(strict=True): at the end */
        PyErr_SetString(PyExc_ValueError, "deliver: times and counts differ in length");
        failed = 1;
    }
    PyMem_Free(made);
    PyMem_Free(touched);
    Py_DECREF(bases); Py_DECREF(empty); Py_DECREF(times); Py_DECREF(counts); Py_DECREF(which);
    return failed ? NULL : PyLong_FromSsize_t(start);
}

/* resolve(addresses, values, start, peers, tally, indexes) -> int: a worker's hits, from
 * datagram `start` on, as labkit.services.dns_udp._index_batch's loop logs them (the reference):
 * for a hit (values[i] a (tail, facts, rcode, key) tuple) whose peer is in `peers` (address ->
 * (client, phone, made)) and whose key has a template index in `made`, tally[rcode] += 1 and
 * the index goes to `indexes`. Returns the first position it cannot log that way (a miss, a
 * new peer or question, anything unusual: Python's loop takes that one and calls again), or
 * len(values). No Event, no Python call per hit: what was ~2,000 instructions of Python per
 * query in a worker is a few dict look-ups here. */
static PyObject *resolve(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    /* (fast call: argument parsing by format string cost ~1,000 instructions a call) */
    if (nargs != 6 || !PyList_Check(args[0]) || !PyList_Check(args[1]) || !PyLong_Check(args[2]) ||
        !PyDict_Check(args[3]) || !PyList_Check(args[4]) || !PyList_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "resolve(addresses: list, values: list, start: int, peers: dict, "
                        "tally: list, indexes: list)");
        return NULL;
    }
    PyObject *addresses = args[0], *values = args[1], *peers = args[3], *tally = args[4], *indexes = args[5];
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (PyList_GET_SIZE(addresses) != PyList_GET_SIZE(values)) {
        PyErr_SetString(PyExc_ValueError, "resolve: addresses and values differ in length");
        return NULL;
    }
    /* strong references to what is in use: a look-up may compare keys, which for odd keys could
     * run Python code that changes these lists and dicts under us */
    PyObject *peer = NULL, *made = NULL, *value = NULL;
    Py_ssize_t i = start < 0 ? 0 : start;
    int failed = 0;
    for (; i < PyList_GET_SIZE(values) && i < PyList_GET_SIZE(addresses); i++) {
        PyObject *address = PyList_GET_ITEM(addresses, i);
        Py_XSETREF(value, Py_NewRef(PyList_GET_ITEM(values, i)));
        if (!PyTuple_CheckExact(value) || PyTuple_GET_SIZE(value) != 4 || !PyBytes_CheckExact(PyTuple_GET_ITEM(value, 3)))
            break; /* a miss (the query's bytes): the resolver answers it in Python */
        if (address != peer) {
            PyObject *known = PyDict_GetItemWithError(peers, address); /* borrowed */
            if (!known) {
                failed = PyErr_Occurred() != NULL;
                break; /* (or a new peer) */
            }
            if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 3 ||
                !PyDict_CheckExact(PyTuple_GET_ITEM(known, 2)))
                break;
            Py_XSETREF(made, Py_NewRef(PyTuple_GET_ITEM(known, 2)));
            Py_XSETREF(peer, Py_NewRef(address));
        }
        PyObject *index = PyDict_GetItemWithError(made, PyTuple_GET_ITEM(value, 3)); /* borrowed */
        if (!index || index == Py_None) { /* (None: as Python's made.get(key), not kept) */
            failed = PyErr_Occurred() != NULL;
            break; /* (or the first time this peer asks this since the Batcher's last flush) */
        }
        PyObject *rcode = PyTuple_GET_ITEM(value, 2);
        Py_ssize_t code = PyLong_CheckExact(rcode) ? PyLong_AsSsize_t(rcode) : -1;
        if (code < 0 || code >= PyList_GET_SIZE(tally)) {
            PyErr_Clear();
            break; /* not an index of the tally: Python raises what it raises */
        }
        PyObject *count = PyList_GET_ITEM(tally, code);
        Py_ssize_t counted = PyLong_CheckExact(count) ? PyLong_AsSsize_t(count) : -1;
        if (counted < 0 || counted == PY_SSIZE_T_MAX) {
            PyErr_Clear();
            break; /* not a plain count: Python's `+= 1` does what it does */
        }
        PyObject *more = PyLong_FromSsize_t(counted + 1);
        if (!more || PyList_Append(indexes, index) < 0) {
            Py_XDECREF(more);
            failed = 1;
            break;
        }
        PyList_SetItem(tally, code, more); /* steals `more`, drops the old count */
    }
    Py_XDECREF(peer);
    Py_XDECREF(made);
    Py_XDECREF(value);
    return failed ? NULL : PyLong_FromSsize_t(i);
}

static PyMethodDef module_methods[] = {
    {"resolve", (PyCFunction)(void (*)(void))resolve, METH_FASTCALL,
     "resolve(addresses, values, start, peers, tally, indexes) -> int: a worker's known hits "
     "from `start` on, logged as labkit.services.dns_udp._index_batch does; where it stopped."},
    {"deliver", (PyCFunction)deliver, METH_VARARGS,
     "deliver(bus, cls, bases, empty, times, counts, which) -> int: a worker's event columns as "
     "`cls` instances into bus, in order (labkit.services.workers_wire's Python loop, in C)."},
    {NULL, NULL, 0, NULL},
};

#include "udp_pump.h"

static PyMethodDef Drain_methods[] = {
    PUMP_METHODS
    {"receive", (PyCFunction)Drain_receive, METH_O,
     "receive(table) -> (addresses, values): up to `batch` datagrams; a hit's value is the "
     "table's tuple (its reply queued), a miss's the query bytes."},
    {"reply", (PyCFunction)Drain_reply, METH_O, "reply(wire or None): the reply to the next miss."},
    {"send", (PyCFunction)Drain_send, METH_NOARGS,
     "send() -> int: send the queued replies in order; how many replies could not be sent "
     "since the last send()."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DrainType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "labkit.native._udp.Drain",
    .tp_doc = "Drain(fd, batch=64, key_max=512): recvmmsg/sendmmsg batches on a UDP socket.",
    .tp_basicsize = sizeof(Drain),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Drain_init,
    .tp_dealloc = (destructor)Drain_dealloc,
    .tp_methods = Drain_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_udp", "Batched UDP receive/send for labkit's DNS service.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__udp(void)
{
    if (PyType_Ready(&DrainType) < 0)
        return NULL;
    if (!time_key && (!(time_key = PyUnicode_InternFromString("time")) ||
                      !(detail_key = PyUnicode_InternFromString("detail")) ||
                      !(dict_key = PyUnicode_InternFromString("__dict__")) || !(no_args = PyTuple_New(0))))
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Drain", (PyObject *)&DrainType) < 0 ||
        PyModule_AddIntConstant(m, "BATCH_MAX", BATCH_MAX) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
