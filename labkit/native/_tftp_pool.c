/* The threads that run TFTP read transfers' steady phases (labkit/native/_tftp.c), with no
 * Python on their way: a job goes in with `submit` (its arguments checked and held on the
 * caller's thread, with the GIL), a pool thread runs it without ever taking the GIL, puts it on
 * the done list and writes a byte to the notify pipe when that list was empty; the event loop
 * watches the pipe and takes the finished jobs with `collect` (their results built there).
 *
 * Why (bench/README.md, TFTP round 5): with a ThreadPoolExecutor every transfer's hand-off and
 * hand-back took the GIL in a pool thread twice (the work item, serve's arguments, the result,
 * the future's callbacks, call_soon_threadsafe), each time a GIL hand-over between threads on
 * the event loop's way; the futures' machinery alone was ~20-30 µs of the event loop's CPU
 * per transfer.
 *
 * The pool is a capsule (`start`), at most `max_threads` threads, `prestart` of them created at
 * once and the rest when a job finds no idle thread; `close` (after every loop returned: the
 * service's stop pipe does that) joins them. A token (any object) travels with each job. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "tftp_job.h"

#define POOL_CAPSULE "labkit.native._tftp_pool.Pool"
#define READY_WAIT 2 /* seconds start() waits at most for its threads to reach their loop */

static const TftpJobApi *api; /* from labkit.native._tftp, imported with this module */

typedef struct Item {
    struct Item *next;
    void *job;
    PyObject *token; /* touched only with the GIL (submit, collect, close) */
} Item;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, ready; /* ready: a new thread reached its loop (see start) */
    Item *queue, *queue_tail, *done, *done_tail;
    pthread_t *threads;
    long nthreads, max_threads, idle, queued, looping; /* idle: threads without a job;
                                                        looping: threads that reached their loop */
    int closing, closed, notify_read, notify_write;
} Pool;

static void *worker(void *arg) {
    Pool *p = arg;
    pthread_mutex_lock(&p->lock);
    p->looping++;
    pthread_cond_signal(&p->ready);
    for (;;) {
        while (p->queue == NULL && !p->closing)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->queue == NULL) /* closing, nothing left */
            break;
        Item *item = p->queue;
        p->queue = item->next;
        if (p->queue == NULL)
            p->queue_tail = NULL;
        p->idle--;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        api->execute(item->job);
        pthread_mutex_lock(&p->lock);
        item->next = NULL;
        int was_empty = p->done == NULL;
        if (was_empty)
            p->done = item;
        else
            p->done_tail->next = item;
        p->done_tail = item;
        p->idle++;
        if (was_empty) { /* one byte per batch: collect takes the whole list */
            ssize_t n = write(p->notify_write, "x", 1);
            (void)n; /* EAGAIN: the pipe is full of earlier wake-ups, the reader comes anyway */
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* A thread more; -1 with an exception. Called with the GIL and the lock held. */
static int grow(Pool *p) {
    int err = pthread_create(&p->threads[p->nthreads], NULL, worker, p);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    p->nthreads++;
    p->idle++;
    return 0;
}

static Pool *get_pool(PyObject *capsule) {
    Pool *p = PyCapsule_GetPointer(capsule, POOL_CAPSULE);
    if (p != NULL && p->closed) {
        PyErr_SetString(PyExc_ValueError, "the pool is closed");
        return NULL;
    }
    return p;
}

/* Stop and join every thread (each finishes its job first), then free the lists left. */
static void shut(Pool *p) {
    if (p->closed)
        return;
    pthread_mutex_lock(&p->lock);
    p->closing = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    Py_BEGIN_ALLOW_THREADS
    for (long i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    Py_END_ALLOW_THREADS
    for (Item *lists[2] = {p->queue, p->done}, **l = lists; l < lists + 2; l++)
        for (Item *item = *l, *next; item != NULL; item = next) {
            next = item->next;
            Py_XDECREF(api->finish(item->job));
            PyErr_Clear();
            Py_DECREF(item->token);
            PyMem_RawFree(item);
        }
    p->queue = p->done = NULL;
    close(p->notify_read);
    close(p->notify_write);
    p->closed = 1;
}

static void destroy(PyObject *capsule) {
    Pool *p = PyCapsule_GetPointer(capsule, POOL_CAPSULE);
    if (p == NULL)
        return;
    shut(p);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->ready);
    PyMem_RawFree(p->threads);
    PyMem_RawFree(p);
}

static PyObject *start(PyObject *self, PyObject *args) {
    (void)self;
    long max_threads, prestart;
    if (!PyArg_ParseTuple(args, "ll", &max_threads, &prestart))
        return NULL;
    if (max_threads < 1 || max_threads > 65536 || prestart < 0 || prestart > max_threads) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= max_threads <= 65536, 0 <= prestart <= max_threads");
        return NULL;
    }
    Pool *p = PyMem_RawCalloc(1, sizeof *p);
    int fds[2] = {-1, -1};
    if (p == NULL || (p->threads = PyMem_RawCalloc(max_threads, sizeof *p->threads)) == NULL) {
        PyMem_RawFree(p);
        return PyErr_NoMemory();
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        PyMem_RawFree(p->threads);
        PyMem_RawFree(p);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->ready, NULL);
    p->max_threads = max_threads, p->notify_read = fds[0], p->notify_write = fds[1];
    PyObject *capsule = PyCapsule_New(p, POOL_CAPSULE, destroy);
    if (capsule == NULL) {
        close(fds[0]);
        close(fds[1]);
        PyMem_RawFree(p->threads);
        PyMem_RawFree(p);
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    for (long i = 0; i < prestart; i++)
        if (grow(p) < 0) {
            pthread_mutex_unlock(&p->lock);
            Py_DECREF(capsule); /* joins the threads started */
            return NULL;
        }
    /* Return once every prestarted thread runs its loop (READY_WAIT at most: never hang), so that
     * their start (~64 thread creations' CPU and wake-ups) is over before the service says it is
     * ready, not on the first requests' way (bench/README.md, TFTP round 6: 13-34 ms after
     * start returned under load, when the bench's first client was already there). */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += READY_WAIT;
    Py_BEGIN_ALLOW_THREADS
    while (p->looping < p->nthreads && pthread_cond_timedwait(&p->ready, &p->lock, &until) == 0) {
    }
    pthread_mutex_unlock(&p->lock);
    Py_END_ALLOW_THREADS
    return capsule;
}

static PyObject *submit(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *capsule, *token, *kwargs;
    if (!PyArg_ParseTuple(args, "OOO!", &capsule, &token, &PyDict_Type, &kwargs))
        return NULL;
    Pool *p = get_pool(capsule);
    if (p == NULL)
        return NULL;
    PyObject *empty = PyTuple_New(0);
    void *job = empty == NULL ? NULL : api->prepare(empty, kwargs);
    Py_XDECREF(empty);
    if (job == NULL)
        return NULL;
    Item *item = PyMem_RawMalloc(sizeof *item);
    if (item == NULL) {
        Py_XDECREF(api->finish(job));
        return PyErr_NoMemory();
    }
    Py_INCREF(token);
    item->next = NULL, item->job = job, item->token = token;
    pthread_mutex_lock(&p->lock);
    /* every queued job needs a thread of its own: its client is waiting */
    if (p->queued >= p->idle && p->nthreads < p->max_threads && grow(p) < 0 && p->nthreads == 0) {
        pthread_mutex_unlock(&p->lock);
        Py_DECREF(token);
        Py_XDECREF(api->finish(job));
        PyMem_RawFree(item);
        return NULL;
    }
    PyErr_Clear(); /* a thread that could not start: the job waits for a busy one */
    if (p->queue_tail == NULL)
        p->queue = item;
    else
        p->queue_tail->next = item;
    p->queue_tail = item;
    p->queued++;
    pthread_mutex_unlock(&p->lock);
    pthread_cond_signal(&p->wake); /* after the unlock: the woken thread does not wait for it */
    Py_RETURN_NONE;
}

/* [(token, result or exception), ...] of the jobs finished since the last call. */
static PyObject *collect(PyObject *self, PyObject *capsule) {
    (void)self;
    Pool *p = get_pool(capsule);
    if (p == NULL)
        return NULL;
    char drain[256];
    while (read(p->notify_read, drain, sizeof drain) > 0) {
    }
    pthread_mutex_lock(&p->lock);
    Item *item = p->done;
    p->done = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    PyObject *out = PyList_New(0);
    for (Item *next; item != NULL; item = next) {
        next = item->next;
        PyObject *result = api->finish(item->job), *pair = NULL;
        if (result == NULL) { /* the exception goes to the token's owner, as a future's would */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            Py_XDECREF(type);
            Py_XDECREF(tb);
            result = value != NULL ? value : (Py_INCREF(Py_None), Py_None);
        }
        pair = PyTuple_Pack(2, item->token, result);
        Py_DECREF(result);
        Py_DECREF(item->token);
        PyMem_RawFree(item);
        if (out != NULL && (pair == NULL || PyList_Append(out, pair) < 0))
            Py_CLEAR(out); /* no memory: the rest are freed, the error raised */
        Py_XDECREF(pair);
    }
    return out;
}

static PyObject *fileno_(PyObject *self, PyObject *capsule) {
    (void)self;
    Pool *p = get_pool(capsule);
    return p == NULL ? NULL : PyLong_FromLong(p->notify_read);
}

static PyObject *threads(PyObject *self, PyObject *capsule) {
    (void)self;
    Pool *p = get_pool(capsule);
    return p == NULL ? NULL : PyLong_FromLong(p->nthreads);
}

static PyObject *looping(PyObject *self, PyObject *capsule) {
    (void)self;
    Pool *p = get_pool(capsule);
    if (p == NULL)
        return NULL;
    pthread_mutex_lock(&p->lock);
    long n = p->looping;
    pthread_mutex_unlock(&p->lock);
    return PyLong_FromLong(n);
}

static PyObject *close_(PyObject *self, PyObject *capsule) {
    (void)self;
    Pool *p = PyCapsule_GetPointer(capsule, POOL_CAPSULE);
    if (p == NULL)
        return NULL;
    shut(p);
    Py_RETURN_NONE;
}

/* (one-argument functions take the pool's capsule as METH_O: no argument tuple to parse) */
static PyMethodDef methods[] = {
    {"start", start, METH_VARARGS, "start(max_threads, prestart) -> pool"},
    {"submit", submit, METH_VARARGS, "submit(pool, token, serve_kwargs): run _tftp.serve there"},
    {"collect", collect, METH_O, "collect(pool) -> [(token, result or exception)]"},
    {"fileno", fileno_, METH_O, "fileno(pool) -> the fd readable when jobs finished"},
    {"threads", threads, METH_O, "threads(pool) -> threads started"},
    {"looping", looping, METH_O, "looping(pool) -> threads that reached their loop"},
    {"close", close_, METH_O, "close(pool): join the threads (their loops must return)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tftp_pool", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__tftp_pool(void) {
    /* PyCapsule_Import only looks the module up as an attribute: import it first */
    PyObject *tftp = PyImport_ImportModule("labkit.native._tftp");
    if (tftp == NULL)
        return NULL;
    Py_DECREF(tftp);
    api = PyCapsule_Import(TFTP_JOB_CAPSULE, 0);
    return api == NULL ? NULL : PyModule_Create(&module);
}
