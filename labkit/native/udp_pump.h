/* The Drain's receiving thread (included by _udp.c; issue 15, round 6): a worker's DNS hot path
 * without epoll and without asyncio.
 *
 * Why: a worker process that sleeps in epoll and wakes through asyncio for 13-20 datagrams pays
 * a wake-up's fixed cost (epoll_wait, `_run_once`, the batched calls' fixed part) for every few
 * queries (bench/README.md, DNS rounds 4 and 5). This thread blocks in recvmmsg(MSG_WAITFORONE)
 * without the GIL, takes the GIL once per batch to look the datagrams up in the reply table
 * (UdpReplies.table, the same dict the drains read) and to log them, drops it, and sends the
 * batch with one sendmmsg.
 *
 * Per known hit the thread logs an event id (per peer address and question key, an index into
 * `pairs`: (address, kept) per id, kept across the Batcher's flushes) and counts its rcode, in a
 * bounded hand-over buffer: runs (one per batch: the clock when it was answered, how many) and
 * ids. The event loop takes them with `collect(mapping, rearm)` (mapping: id -> the Batcher's
 * template index of this generation; Python makes the missing ones from `pairs`).
 *
 * What is not a known hit (a miss, an rcode outside the tally, a full buffer or id table) is
 * handed over: from that datagram on, the batch's addresses and values (as `receive` gives them)
 * wait in `take()`, the thread writes the eventfd and waits; the loop logs and answers them
 * (dns_udp._index_batch, the reference, with `reply`), then `resume()` lets the thread send the
 * batch and go on. Events are never dropped: a full buffer is a hand-over (the loop collects
 * first). The eventfd is also written when the buffer gets its first events since the loop last
 * re-armed (`collect(..., rearm=True)`, from the Batcher's flush) and once at `high` events: the
 * loop then has them within FLUSH_SECONDS, as the drains' events.
 *
 * `stop(shutdown)`: the thread ends after its batch (a blocked recvmmsg is woken by
 * shutdown(SHUT_RD) when the socket closes next, else by its 100 ms receive timeout); a batch
 * handed over and not resumed stays in `take()` for the loop to finish, and `send()` sends it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define PUMP_TALLY 16       /* rcodes the thread counts; others are Python's */
#define PUMP_IDS 32768      /* events the hand-over buffer holds (BATCH_EVENTS is 8192) */
#define PUMP_PAIRS 16384    /* (peer, question) ids at most (start's pairs_max); when full, Python forgets them all */
#define PUMP_TIMEOUT_MS 100 /* the blocked receive looks at `stopping` at least this often */

typedef struct Pump {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* resumed, or stopping */
    PyThreadState *state;        /* the thread's, made where start() was called */
    PyObject *table;             /* the reply table (dict) */
    PyObject *pairs;             /* per id: (address, kept) */
    PyObject *handed;            /* (when, addresses, values) waiting for the loop, or NULL */
    Py_ssize_t tally_len, high;  /* the resolver's tally's length; notify at this many events */
    Py_ssize_t pairs_max;        /* ids before the loop must forget them (PUMP_PAIRS, or fewer: tests) */
    int notify;                  /* eventfd the loop watches */
    int stopping, resumed, armed, high_told, joined, batch_policy;
    Py_ssize_t failed, receive_errors; /* written by the thread without the GIL: atomics */
    /* the hand-over buffer (touched only with the GIL) */
    unsigned int ids[PUMP_IDS];
    double times[PUMP_IDS];
    Py_ssize_t counts[PUMP_IDS];
    Py_ssize_t nids, nruns;
    Py_ssize_t tally[PUMP_TALLY];
} Pump;

static void pump_notify(Pump *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->notify, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is full of earlier wake-ups, the loop comes anyway */
}

/* Datagram i as a known hit: its reply queued, its id and rcode logged; 1. 0: Python's (nothing
 * changed; an error is cleared, the loop's reference path meets it again). With the GIL. */
static int pump_hit(Drain *self, Pump *p, unsigned int i)
{
    const unsigned char *data = self->rx_iov[i].iov_base;
    Py_ssize_t length = (Py_ssize_t)self->rx[i].msg_len;
    if (length <= 2 || length - 2 > self->key_max || p->nids >= PUMP_IDS)
        return 0;
    CachedAddress *entry = cached(self, &self->names[i], self->rx[i].msg_hdr.msg_namelen);
    PyObject *key = entry ? PyBytes_FromStringAndSize((const char *)data + 2, length - 2) : NULL;
    PyObject *kept = key ? PyDict_GetItemWithError(p->table, key) : NULL; /* borrowed */
    Py_XDECREF(key);
    if (!kept || !PyTuple_CheckExact(kept) || PyTuple_GET_SIZE(kept) != 4)
        goto python;
    PyObject *tail = PyTuple_GET_ITEM(kept, 0), *rcode = PyTuple_GET_ITEM(kept, 2);
    PyObject *name = PyTuple_GET_ITEM(kept, 3);
    long code = PyLong_CheckExact(rcode) ? PyLong_AsLong(rcode) : -1;
    if (!PyBytes_CheckExact(tail) || !PyBytes_CheckExact(name) || code < 0 || code >= PUMP_TALLY ||
        code >= p->tally_len)
        goto python;
    Py_INCREF(kept); /* (held: the look-ups below compare bytes only, but be safe) */
    if (!entry->ids && !(entry->ids = PyDict_New())) {
        Py_DECREF(kept);
        goto python;
    }
    PyObject *id = PyDict_GetItemWithError(entry->ids, name); /* borrowed */
    if (!id) {
        Py_ssize_t next = PyList_GET_SIZE(p->pairs);
        PyObject *pair = PyErr_Occurred() || next >= p->pairs_max ? NULL : PyTuple_Pack(2, entry->address, kept);
        id = pair ? PyLong_FromSsize_t(next) : NULL;
        int stored = id && PyList_Append(p->pairs, pair) == 0 && PyDict_SetItem(entry->ids, name, id) == 0;
        Py_XDECREF(pair);
        Py_XDECREF(id); /* (the dict holds it now, if stored) */
        if (!stored) {
            Py_DECREF(kept);
            goto python;
        }
    }
    p->ids[p->nids++] = (unsigned int)PyLong_AsSsize_t(id);
    p->tally[code]++;
    self->tx_iov[2 * i] = (struct iovec){(void *)data, 2};
    self->tx_iov[2 * i + 1] = (struct iovec){PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail)};
    self->held[i] = Py_NewRef(tail);
    self->tx_parts[i] = 2;
    Py_DECREF(kept);
    return 1;
python:
    PyErr_Clear();
    return 0;
}

/* Datagrams `from`.. as `receive` gives them, for the loop: (when, addresses, values); NULL
 * raised. A datagram without a sender (a shutdown's wake-up) is left out. With the GIL. */
static PyObject *pump_hand(Drain *self, Pump *p, unsigned int from, double when)
{
    PyObject *addresses = PyList_New(0), *values = PyList_New(0);
    for (unsigned int i = from; addresses && values && i < self->received; i++) {
        if (!self->rx[i].msg_hdr.msg_namelen)
            continue;
        PyObject *address = address_of(self, &self->names[i], self->rx[i].msg_hdr.msg_namelen);
        PyObject *value = address ? classify(self, p->table, i) : NULL;
        int added = value && PyList_Append(addresses, address) == 0 && PyList_Append(values, value) == 0;
        Py_XDECREF(address);
        Py_XDECREF(value);
        if (!added)
            Py_CLEAR(addresses);
    }
    if (!addresses || !values) {
        Py_XDECREF(addresses);
        Py_XDECREF(values);
        return NULL;
    }
    return Py_BuildValue("(dNN)", when, addresses, values);
}

/* One received batch, with the GIL: known hits logged, the rest handed over. 1: handed. */
static int pump_batch(Drain *self, Pump *p, unsigned int got)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double when = (double)now.tv_sec + (double)now.tv_nsec * 1e-9; /* as time.time() */
    PyEval_RestoreThread(p->state);
    /* no collection while this runs: a finalizer would run Python code, which could hand the GIL
     * to the loop in the middle of a batch (the loop's collect() and this must not interleave) */
    int collecting = PyGC_Disable();
    release_batch(self); /* the last batch's replies were sent: their bytes may go */
    self->received = got;
    unsigned int i = 0;
    Py_ssize_t logged = p->nids;
    if (p->nids + (Py_ssize_t)got <= PUMP_IDS) /* (else the loop takes it all: room first) */
        for (; i < got; i++)
            if (self->rx[i].msg_hdr.msg_namelen && !pump_hit(self, p, i))
                break;
    if (p->nids > logged) {
        p->times[p->nruns] = when;
        p->counts[p->nruns++] = p->nids - logged;
    }
    int handed = i < got;
    if (handed) {
        p->handed = pump_hand(self, p, i, when);
        if (!p->handed) { /* MemoryError: these datagrams get no reply, counted as not sent */
            PyErr_Clear();
            __atomic_fetch_add(&p->failed, (Py_ssize_t)(got - i), __ATOMIC_RELAXED);
            handed = 0;
        }
    }
    int tell = handed || (p->armed && p->nids > 0) || (!p->high_told && p->nids >= p->high);
    if (p->nids > 0)
        p->armed = 0;
    if (p->nids >= p->high)
        p->high_told = 1;
    p->resumed = 0;
    if (collecting)
        PyGC_Enable();
    PyEval_SaveThread();
    if (tell)
        pump_notify(p);
    return handed;
}

static void *pump_main(void *arg)
{
    Drain *self = arg;
    Pump *p = self->pump;
    if (p->batch_policy) { /* this thread only (the loop's TFTP and HTTP keep theirs): see start() */
        struct sched_param none = {0};
        sched_setscheduler(0, SCHED_BATCH, &none); /* (best effort: the default policy otherwise) */
    }
    for (;;) {
        arm_headers(self);
        int got = recvmmsg(self->fd, self->rx, self->batch, MSG_WAITFORONE, NULL);
        int stop = __atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE);
        if (got < 0) {
            if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL || errno == EFAULT)
                break; /* the socket is gone: nothing more to do */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) /* e.g. a queued ICMP error */
                __atomic_fetch_add(&p->receive_errors, 1, __ATOMIC_RELAXED);
            if (stop)
                break;
            continue;
        }
        if (pump_batch(self, p, (unsigned int)got)) {
            pthread_mutex_lock(&p->lock);
            while (!p->resumed && !__atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE))
                pthread_cond_wait(&p->wake, &p->lock);
            int resumed = p->resumed;
            pthread_mutex_unlock(&p->lock);
            if (!resumed)
                break; /* stopping: the loop finishes the handed batch (take, reply, send) */
        }
        Py_ssize_t failed = send_queued(self);
        if (failed)
            __atomic_fetch_add(&p->failed, failed, __ATOMIC_RELAXED);
        if (stop || __atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE))
            break;
    }
    PyEval_RestoreThread(p->state);
    PyThreadState_Clear(p->state);
    PyThreadState_DeleteCurrent(); /* (releases the GIL) */
    return NULL;
}

static Pump *pump_of(Drain *self, int running)
{
    if (!self->rx || !self->pump || (running && !self->pumping)) {
        PyErr_SetString(PyExc_RuntimeError, running ? "Drain's thread is not running" : "Drain has no thread");
        return NULL;
    }
    return self->pump;
}

/* Forget every id (in a collect: the buffer holds none of them). With the GIL. */
static int pump_forget(Drain *self, Pump *p)
{
    PyObject *pairs = PyList_New(0);
    if (!pairs)
        return -1;
    Py_XSETREF(p->pairs, pairs);
    for (int i = 0; i < ADDRESS_CACHE; i++)
        Py_CLEAR(self->cache[i].ids);
    return 0;
}

static PyObject *Drain_start(Drain *self, PyObject *args)
{
    PyObject *table;
    Py_ssize_t tally_len, high;
    int batch_policy = 0;
    Py_ssize_t pairs_max = PUMP_PAIRS;
    if (!PyArg_ParseTuple(args, "O!nn|pn:start", &PyDict_Type, &table, &tally_len, &high, &batch_policy,
                          &pairs_max) ||
        !ready(self) ||
        !not_pumping(self))
        return NULL;
    if (self->pump && !self->pump->joined) {
        PyErr_SetString(PyExc_RuntimeError, "Drain's thread is still running");
        return NULL;
    }
    Pump *p = self->pump ? self->pump : PyMem_RawCalloc(1, sizeof *p);
    if (!p)
        return PyErr_NoMemory();
    if (!self->pump) {
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
        p->notify = -1;
        self->pump = p;
    }
    int flags = fcntl(self->fd, F_GETFL);
    if (flags < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (flags & O_NONBLOCK) { /* the thread would spin on EAGAIN instead of sleeping in recvmmsg */
        PyErr_SetString(PyExc_ValueError, "start(): the socket must be blocking");
        return NULL;
    }
    struct timeval timeout = {0, PUMP_TIMEOUT_MS * 1000};
    if (setsockopt(self->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (p->notify < 0 && (p->notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (!p->pairs && pump_forget(self, p) < 0)
        return NULL;
    Py_XSETREF(p->table, Py_NewRef(table));
    p->tally_len = tally_len;
    p->high = high > 0 ? high : 1;
    p->stopping = p->resumed = p->high_told = p->joined = 0;
    p->armed = 1;
    p->batch_policy = batch_policy;
    p->pairs_max = pairs_max < 1 ? 1 : pairs_max > PUMP_PAIRS ? PUMP_PAIRS : pairs_max;
    release_batch(self);
    p->state = PyThreadState_New(PyThreadState_Get()->interp);
    if (!p->state)
        return PyErr_NoMemory();
    int error = pthread_create(&p->thread, NULL, pump_main, self);
    if (error) {
        PyThreadState_Clear(p->state);
        PyThreadState_Delete(p->state);
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_INCREF(self); /* the thread uses it until joined */
    self->pumping = 1;
    return PyLong_FromLong(p->notify);
}

/* Stop and join the thread (with the GIL; released while joining). */
static void pump_join(Drain *self, int shut)
{
    Pump *p = self->pump;
    if (!p || !self->pumping)
        return;
    __atomic_store_n(&p->stopping, 1, __ATOMIC_RELEASE);
    if (shut)
        shutdown(self->fd, SHUT_RD); /* wakes a blocked recvmmsg at once (the socket closes next) */
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(p->thread, NULL);
    Py_END_ALLOW_THREADS
    p->joined = 1;
    self->pumping = 0;
    if (!p->handed) /* (a handed batch's replies wait for the loop's reply() and send()) */
        release_batch(self);
    Py_DECREF(self);
}

static PyObject *Drain_stop(Drain *self, PyObject *args)
{
    int shut = 0;
    if (!PyArg_ParseTuple(args, "|p:stop", &shut) || !pump_of(self, 0))
        return NULL;
    pump_join(self, shut);
    Py_RETURN_NONE;
}

static void pump_free(Drain *self)
{
    Pump *p = self->pump;
    if (!p)
        return;
    pump_join(self, 0); /* (cannot run here: the thread holds a reference until joined) */
    if (p->notify >= 0)
        close(p->notify);
    Py_CLEAR(p->table);
    Py_CLEAR(p->pairs);
    Py_CLEAR(p->handed);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    PyMem_RawFree(p);
    self->pump = NULL;
}

/* take() -> (when, addresses, values) or None: the batch handed over (the eventfd read too). */
static PyObject *Drain_take(Drain *self, PyObject *Py_UNUSED(ignored))
{
    Pump *p = pump_of(self, 0);
    if (!p)
        return NULL;
    uint64_t count;
    ssize_t n = read(p->notify, &count, sizeof count);
    (void)n; /* EAGAIN: nothing written since the last read */
    if (!p->handed)
        Py_RETURN_NONE;
    PyObject *handed = p->handed;
    p->handed = NULL;
    return handed;
}

static PyObject *Drain_resume(Drain *self, PyObject *Py_UNUSED(ignored))
{
    Pump *p = pump_of(self, 1);
    if (!p)
        return NULL;
    pthread_mutex_lock(&p->lock);
    p->resumed = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    Py_RETURN_NONE;
}

/* collect(mapping, rearm, table=None): the buffer as (times, counts, which, tally, failed,
 * receive_errors), which[k] = mapping[ids[k]]; emptied. Or, when some id has no int in mapping,
 * the list of those ids (nothing taken: fill them in and call again). With a table (a reload, or
 * the ids full), every id is forgotten once the buffer is taken, in the same call (the thread
 * cannot log a batch in between), and the table is the thread's from its next batch. */
static PyObject *pump_collect(Drain *self, Pump *p, PyObject *mapping, int rearm, PyObject *table);

static PyObject *Drain_collect(Drain *self, PyObject *args)
{
    PyObject *mapping, *table = Py_None;
    int rearm;
    Pump *p = pump_of(self, 0);
    if (!p || !PyArg_ParseTuple(args, "O!p|O:collect", &PyList_Type, &mapping, &rearm, &table))
        return NULL;
    if (table != Py_None && !PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "collect(mapping, rearm, table): table must be a dict or None");
        return NULL;
    }
    int collecting = PyGC_Disable(); /* (as in pump_batch: no Python code, so no batch, in between) */
    PyObject *result = pump_collect(self, p, mapping, rearm, table);
    if (collecting)
        PyGC_Enable();
    return result;
}

static PyObject *pump_collect(Drain *self, Pump *p, PyObject *mapping, int rearm, PyObject *table)
{
    Py_ssize_t size = PyList_GET_SIZE(mapping);
    PyObject *missing = PyList_New(0);
    for (Py_ssize_t k = 0; missing && k < p->nids; k++) {
        unsigned int id = p->ids[k];
        if ((Py_ssize_t)id >= size || !PyLong_CheckExact(PyList_GET_ITEM(mapping, id))) {
            PyObject *number = PyLong_FromUnsignedLong(id);
            if (!number || PyList_Append(missing, number) < 0)
                Py_CLEAR(missing);
            Py_XDECREF(number);
        }
    }
    if (!missing || PyList_GET_SIZE(missing))
        return missing;
    Py_DECREF(missing);
    PyObject *times = PyList_New(p->nruns), *counts = PyList_New(p->nruns), *which = PyList_New(p->nids);
    PyObject *tally = PyList_New(PUMP_TALLY);
    int failed = !times || !counts || !which || !tally;
    for (Py_ssize_t k = 0; !failed && k < p->nruns; k++) {
        PyObject *when = PyFloat_FromDouble(p->times[k]), *count = PyLong_FromSsize_t(p->counts[k]);
        failed = !when || !count;
        PyList_SET_ITEM(times, k, when ? when : Py_NewRef(Py_None));
        PyList_SET_ITEM(counts, k, count ? count : Py_NewRef(Py_None));
    }
    for (Py_ssize_t k = 0; !failed && k < p->nids; k++)
        PyList_SET_ITEM(which, k, Py_NewRef(PyList_GET_ITEM(mapping, p->ids[k])));
    for (int code = 0; !failed && code < PUMP_TALLY; code++) {
        PyObject *count = PyLong_FromSsize_t(p->tally[code]);
        failed = !count;
        PyList_SET_ITEM(tally, code, count ? count : Py_NewRef(Py_None));
    }
    if (failed) { /* (MemoryError: the buffer stays for the next call) */
        Py_XDECREF(times); Py_XDECREF(counts); Py_XDECREF(which); Py_XDECREF(tally);
        return NULL;
    }
    if (table != Py_None && pump_forget(self, p) < 0) { /* in the same call: no batch between */
        Py_DECREF(times); Py_DECREF(counts); Py_DECREF(which); Py_DECREF(tally);
        return NULL;
    }
    if (table != Py_None)
        Py_SETREF(p->table, Py_NewRef(table));
    p->nids = p->nruns = 0;
    memset(p->tally, 0, sizeof p->tally);
    if (rearm)
        p->armed = 1, p->high_told = 0;
    return Py_BuildValue("(NNNNnn)", times, counts, which, tally,
                         __atomic_exchange_n(&p->failed, 0, __ATOMIC_RELAXED),
                         __atomic_exchange_n(&p->receive_errors, 0, __ATOMIC_RELAXED));
}

static PyObject *Drain_pairs(Drain *self, PyObject *Py_UNUSED(ignored))
{
    Pump *p = pump_of(self, 0);
    return p ? Py_NewRef(p->pairs) : NULL;
}

#define PUMP_METHODS \
    {"start", (PyCFunction)Drain_start, METH_VARARGS, \
     "start(table, tally_len, high, batch_policy=False, pairs_max=16384) -> eventfd: receive and answer known hits in a " \
     "thread (the socket must be blocking; batch_policy: the thread runs SCHED_BATCH; see udp_pump.h)."}, \
    {"stop", (PyCFunction)Drain_stop, METH_VARARGS, "stop(shutdown=False): end and join the thread."}, \
    {"take", (PyCFunction)Drain_take, METH_NOARGS, "take() -> (when, addresses, values) or None: the batch handed over."}, \
    {"resume", (PyCFunction)Drain_resume, METH_NOARGS, "resume(): the handed batch is answered: send it, go on."}, \
    {"collect", (PyCFunction)Drain_collect, METH_VARARGS, \
     "collect(mapping, rearm, table=None) -> (times, counts, which, tally, failed, receive_errors), or the ids " \
     "missing from mapping; with a table, every id is then forgotten and the table used from now on."}, \
    {"pairs", (PyCFunction)Drain_pairs, METH_NOARGS, "pairs() -> list: per event id, (address, kept)."},
