/* Part of labkit/native/_tftp.c (included once, after Run): waiting awake for the next datagram
 * when it pays, and its switch for the tests. Kept apart to keep _tftp.c readable. */
#ifndef LABKIT_TFTP_SPIN_H
#define LABKIT_TFTP_SPIN_H

/* Waiting awake (bench/README.md, TFTP round 5). A transfer alone is bound by round trips, and
 * on a VM a sleeping thread's wake-up (an idle vCPU woken by an interrupt) is a large part of
 * each: the ACK is looked for without sleeping for up to SPIN_NS first, so that the thread is
 * running when it comes. Only while this loop is the only one in the process and no other
 * started within QUIET_NS (a burst of transfers needs the CPUs: then every loop sleeps at once),
 * not for SPIN_REST waits after SPIN_MISSES waits in a row that the next datagram did not end (a
 * client slower than SPIN_NS: a network; then one look again, so that a client preempted for a
 * moment does not leave the rest of a long transfer asleep: measured, bench/README.md, ninth
 * round), and only while the machine has a CPU to spare (runnable tasks, from
 * /proc/loadavg every IDLE_CHECK waits, every IDLE_RECHECK while there was none, at most the
 * CPUs online; a transfer's start is its busiest moment): on a loaded machine the
 * spinning thread takes the CPU its client needs (measured: slower there). It costs CPU by
 * design: up to SPIN_NS a wait. */
#define SPIN_NS 50000
#define QUIET_NS 10000000
#define SPIN_MISSES 4
#define SPIN_REST 256
#define IDLE_CHECK 64
#define IDLE_RECHECK 8

static int running_loops; /* loops running in this process (atomic) */
/* set_spin: 0 never (the bare module's default, and the service's with LABKIT_TFTP_AWAKE=0), 1 as
 * above (what the service sets: labkit/services/tftp_native.py; round 5 measured it slower at load
 * average ~2, round 7 ahead on a quiet machine: bench/README.md, TFTP),
 * 2 always (the tests' way in) */
static int spin_mode = 0;
static int64_t last_start_ns; /* when a loop last started (atomic) */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether the machine's runnable tasks (this thread included) fit its CPUs, or -1. */
static int spare_cpu(void) {
    static long cpus;
    if (cpus == 0)
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char text[128];
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = 0;
    long runnable = 0; /* "0.10 0.20 0.30 R/T LAST": R runnable now */
    if (sscanf(text, "%*s %*s %*s %ld/", &runnable) != 1)
        return -1;
    return runnable <= cpus;
}

static int may_spin(Run *r, int64_t t) {
    if (spin_mode != 1)
        return spin_mode == 2;
    if (r->spin_misses >= SPIN_MISSES) {
        if (++r->spin_rested < SPIN_REST)
            return 0;
        r->spin_rested = 0;
        r->spin_misses = SPIN_MISSES - 1; /* one look: a miss rests another SPIN_REST waits */
    }
    if (__atomic_load_n(&running_loops, __ATOMIC_RELAXED) != 1)
        return 0;
    if (--r->check_in <= 0) {
        r->spare = spare_cpu() == 1;
        r->check_in = r->spare ? IDLE_CHECK : IDLE_RECHECK;
    }
    if (!r->spare)
        return 0;
    int64_t last = __atomic_load_n(&last_start_ns, __ATOMIC_RELAXED);
    int64_t other = last != r->started_ns ? last : r->other_start_ns; /* another loop's start */
    return t - other >= QUIET_NS;
}

/* 1: a datagram (or an error) read without sleeping; 0: sleep for it (receive). */
static int awake(Run *r, unsigned char *got, ssize_t *n, struct sockaddr_storage *from,
                 socklen_t *from_len, double deadline) {
    int64_t t = now_ns();
    if (!may_spin(r, t))
        return 0;
    int64_t until = t + SPIN_NS, end = (int64_t)(deadline * 1e9);
    do {
        *from_len = sizeof *from;
        *n = recvfrom(r->fd, got, RECV_SIZE, MSG_DONTWAIT, (struct sockaddr *)from, from_len);
        if (*n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            r->spin_misses = 0;
            return 1;
        }
        t = now_ns();
    } while (t < until && t < end);
    r->spin_misses++;
    return 0;
}

static PyObject *set_spin(PyObject *self, PyObject *arg) {
    (void)self;
    long mode = PyLong_AsLong(arg);
    if (mode == -1 && PyErr_Occurred())
        return NULL;
    if (mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "spin mode: 0 never, 1 when it may pay, 2 always");
        return NULL;
    }
    long old = __atomic_exchange_n(&spin_mode, (int)mode, __ATOMIC_RELAXED);
    return PyLong_FromLong(old);
}

#endif
