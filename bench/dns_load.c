/* A lean DNS load generator for bench/dns_bench.py --load c (on demand, not a test).

   dnsperf needs most of a CPU of its own at 200k q/s; on a 2-vCPU machine that CPU is the one the
   second server process would use, so the generator, not the servers, bounded the workers' rate
   (bench/README.md, round 7 of issue 15). This program does only what the bench needs: one
   process, one epoll loop over N connected UDP sockets (distinct source ports, so SO_REUSEPORT
   spreads them over the workers), sendmmsg/recvmmsg in batches, at most --inflight queries
   outstanding in all (dnsperf's -q), split evenly over the sockets.

   And it checks every answer: the queries file holds, a line each, a query's wire bytes and the
   response the server gave it before the run (hex, ID bytes included but ignored). Each query is
   sent with a fresh ID; a response must carry the ID of an outstanding query of its socket and,
   after the ID, exactly the expected bytes of that query, or it is counted (unmatched,
   mismatched). A query unanswered after --timeout seconds is lost (dnsperf's -t).

   dns_load --server 127.0.0.1 --port P --queries FILE [--sockets 1] [--inflight 100]
            [--duration 10] [--count 0] [--timeout 2]
   prints one line of JSON: sent, answered, lost, mismatched, unmatched, elapsed, qps, its own CPU
   (user, sys), first_mismatch (a line of the file, or -1), and its epoll wake-ups and calls.
   Every run is bounded: --duration at most 60 s, --count queries if given, then --timeout. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUERIES 4096
#define MAX_SOCKETS 256
#define MAX_PACKET 1500
#define BATCH 64
#define IDS 65536

typedef struct {
    uint8_t query[MAX_PACKET];
    size_t query_len;
    uint8_t answer[MAX_PACKET];
    size_t answer_len;
} Query;

typedef struct {        /* one query in flight, indexed by its ID */
    double sent;        /* when its batch was sent */
    uint16_t which;     /* its index in the queries file */
    uint8_t waiting;    /* 1 while outstanding */
} Slot;

typedef struct {
    int fd;
    uint64_t head;      /* oldest sequence number not yet answered or lost */
    uint64_t next;      /* next sequence number to send; its ID is next mod 65536 */
    unsigned inflight, window;
    Slot slots[IDS];
} Client;

static Query queries[MAX_QUERIES];
static size_t n_queries, cursor;
static uint64_t sent, answered, lost, mismatched, unmatched, first_mismatch = UINT64_MAX;
static uint64_t wakeups, send_calls, receive_calls; /* how big the batches were */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static size_t unhex(const char *text, uint8_t *out, size_t room) {
    size_t n = strlen(text);
    if (n % 2 || n / 2 > room || n < 24)
        return 0; /* shorter than a DNS header: not a packet */
    for (size_t i = 0; i < n / 2; i++) {
        unsigned byte;
        if (sscanf(text + 2 * i, "%2x", &byte) != 1)
            return 0;
        out[i] = (uint8_t)byte;
    }
    return n / 2;
}

static void read_queries(const char *path) {
    FILE *file = fopen(path, "r");
    if (!file)
        die(path);
    static char line[4 * MAX_PACKET + 16];
    while (fgets(line, sizeof line, file)) {
        char *query = strtok(line, " \t\r\n"), *answer = strtok(NULL, " \t\r\n");
        if (!query)
            continue;
        if (!answer || n_queries == MAX_QUERIES) {
            fprintf(stderr, "%s: each line is '<query hex> <answer hex>', at most %d lines\n", path, MAX_QUERIES);
            exit(2);
        }
        Query *q = &queries[n_queries];
        q->query_len = unhex(query, q->query, MAX_PACKET);
        q->answer_len = unhex(answer, q->answer, MAX_PACKET);
        if (!q->query_len || !q->answer_len) {
            fprintf(stderr, "%s: line %zu is not two DNS packets in hex\n", path, n_queries + 1);
            exit(2);
        }
        n_queries++;
    }
    fclose(file);
    if (!n_queries) {
        fprintf(stderr, "%s: no queries\n", path);
        exit(2);
    }
}

/* Sequence numbers before head are resolved; a window below 65536 keeps each ID unique. A query
   lost on a socket holds its ID (and so that socket's sending, after 65,535 more) until its
   timeout, as dnsperf's 64k IDs a socket do. */
static void expire(Client *c, double t, double timeout) {
    while (c->head < c->next) {
        Slot *s = &c->slots[c->head & 0xffff];
        if (s->waiting) {
            if (t - s->sent < timeout)
                return;
            s->waiting = 0;
            c->inflight--;
            lost++;
        }
        c->head++;
    }
}

static uint8_t out_buf[BATCH][MAX_PACKET];
static struct mmsghdr out_msgs[BATCH];
static struct iovec out_iov[BATCH];

/* Fill the socket's window (as many as `budget` allows), one sendmmsg a batch. */
static void refill(Client *c, double t, uint64_t *budget) {
    while (c->inflight < c->window && *budget && c->next - c->head < IDS - 1) {
        unsigned n = 0;
        while (n < BATCH && c->inflight + n < c->window && n < *budget && c->next + n - c->head < IDS - 1) {
            Query *q = &queries[cursor];
            uint16_t id = (uint16_t)((c->next + n) & 0xffff);
            memcpy(out_buf[n], q->query, q->query_len);
            out_buf[n][0] = (uint8_t)(id >> 8);
            out_buf[n][1] = (uint8_t)id;
            out_iov[n].iov_base = out_buf[n];
            out_iov[n].iov_len = q->query_len;
            memset(&out_msgs[n].msg_hdr, 0, sizeof out_msgs[n].msg_hdr);
            out_msgs[n].msg_hdr.msg_iov = &out_iov[n];
            out_msgs[n].msg_hdr.msg_iovlen = 1;
            c->slots[id].which = (uint16_t)cursor;
            cursor = (cursor + 1) % n_queries;
            n++;
        }
        int done = sendmmsg(c->fd, out_msgs, n, MSG_DONTWAIT);
        send_calls++;
        if (done < 0)
            done = 0; /* EAGAIN or ECONNREFUSED: retried on the next turn of the loop */
        for (int i = 0; i < done; i++) {
            Slot *s = &c->slots[(c->next + (uint64_t)i) & 0xffff];
            s->sent = t;
            s->waiting = 1;
        }
        /* the queries not sent are taken again next time, in the same order */
        cursor = (cursor + n_queries - (n - (unsigned)done) % n_queries) % n_queries;
        c->next += (uint64_t)done;
        c->inflight += (unsigned)done;
        sent += (uint64_t)done;
        *budget -= (uint64_t)done;
        if ((unsigned)done < n)
            return;
    }
}

static uint8_t in_buf[BATCH][MAX_PACKET];
static struct mmsghdr in_msgs[BATCH];
static struct iovec in_iov[BATCH];

static int drain(Client *c) {
    for (int i = 0; i < BATCH; i++) {
        in_iov[i].iov_base = in_buf[i];
        in_iov[i].iov_len = MAX_PACKET;
        memset(&in_msgs[i].msg_hdr, 0, sizeof in_msgs[i].msg_hdr);
        in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
        in_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(c->fd, in_msgs, BATCH, MSG_DONTWAIT, NULL);
    receive_calls++;
    if (n <= 0)
        return 0;
    for (int i = 0; i < n; i++) {
        size_t len = in_msgs[i].msg_len;
        if (len < 2) {
            unmatched++;
            continue;
        }
        uint16_t id = (uint16_t)(in_buf[i][0] << 8 | in_buf[i][1]);
        Slot *s = &c->slots[id];
        if (!s->waiting) { /* no query of this socket with that ID is outstanding (late, or made up) */
            unmatched++;
            continue;
        }
        s->waiting = 0;
        c->inflight--;
        answered++;
        Query *q = &queries[s->which];
        if (len != q->answer_len || memcmp(in_buf[i] + 2, q->answer + 2, len - 2) != 0) {
            mismatched++;
            if (first_mismatch == UINT64_MAX)
                first_mismatch = s->which;
        }
    }
    return n;
}

static const char *option(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return fallback;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i += 2) {
        static const char *known[] = {"--server", "--port", "--queries", "--sockets", "--inflight",
                                      "--duration", "--count", "--timeout"};
        int ok = i + 1 < argc;
        for (size_t k = 0; ok && k < sizeof known / sizeof *known; k++)
            if (!strcmp(argv[i], known[k]))
                goto next;
        fprintf(stderr, "usage: %s --port P --queries FILE [--server 127.0.0.1] [--sockets N] "
                        "[--inflight Q] [--duration S] [--count N] [--timeout S]\n", argv[0]);
        return 2;
    next:;
    }
    const char *server = option(argc, argv, "--server", "127.0.0.1");
    int port = atoi(option(argc, argv, "--port", "0"));
    const char *path = option(argc, argv, "--queries", NULL);
    int n_sockets = atoi(option(argc, argv, "--sockets", "1"));
    int total = atoi(option(argc, argv, "--inflight", "100"));
    double duration = atof(option(argc, argv, "--duration", "10"));
    long long count = atoll(option(argc, argv, "--count", "0"));
    double timeout = atof(option(argc, argv, "--timeout", "2"));
    if (!path || port <= 0 || port > 65535 || n_sockets < 1 || n_sockets > MAX_SOCKETS || total < 1 ||
        total > 60000 || duration <= 0 || duration > 60 || count < 0 || timeout <= 0 || timeout > 60) {
        fprintf(stderr, "bad arguments: --port 1-65535, --queries FILE, --sockets 1-%d, --inflight 1-60000, "
                        "--duration (0, 60], --count >= 0, --timeout (0, 60]\n", MAX_SOCKETS);
        return 2;
    }
    read_queries(path);

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, server, &to.sin_addr) != 1) {
        fprintf(stderr, "--server: not an IPv4 address: %s\n", server);
        return 2;
    }
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    Client *clients = calloc((size_t)n_sockets, sizeof *clients);
    if (!clients)
        die("calloc");
    for (int i = 0; i < n_sockets; i++) {
        Client *c = &clients[i];
        c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (c->fd < 0)
            die("socket");
        int size = 1 << 20;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr = to.sin_addr};
        if (bind(c->fd, (struct sockaddr *)&any, sizeof any) < 0) /* an ephemeral port of its own */
            die("bind");
        if (connect(c->fd, (struct sockaddr *)&to, sizeof to) < 0) /* the kernel filters other senders */
            die("connect");
        c->window = (unsigned)(total / n_sockets + (i < total % n_sockets));
        if (!c->window)
            c->window = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }

    uint64_t budget = count ? (uint64_t)count : UINT64_MAX;
    double start = now(), stop_sending = start + duration, last_answer = start, t = start;
    for (int i = 0; i < n_sockets; i++)
        refill(&clients[i], t, &budget);
    struct epoll_event events[MAX_SOCKETS];
    for (;;) {
        int sending = t < stop_sending && budget;
        uint64_t outstanding = sent - answered - lost;
        if (!sending && !outstanding)
            break;
        int n = epoll_wait(ep, events, MAX_SOCKETS, 10); /* wakes to expire and to stop on time */
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        t = now();
        wakeups += n > 0;
        for (int i = 0; i < n; i++) {
            Client *c = events[i].data.ptr;
            uint64_t before = answered;
            while (drain(c) == BATCH)
                continue;
            if (answered != before)
                last_answer = t;
        }
        sending = t < stop_sending && budget;
        for (int i = 0; i < n_sockets; i++) {
            expire(&clients[i], t, timeout);
            if (sending && clients[i].inflight < clients[i].window)
                refill(&clients[i], t, &budget);
        }
    }

    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    double elapsed = (answered ? last_answer : t) - start;
    printf("{\"sent\": %llu, \"answered\": %llu, \"lost\": %llu, \"mismatched\": %llu, \"unmatched\": %llu, "
           "\"elapsed\": %.6f, \"qps\": %.1f, \"user\": %.6f, \"sys\": %.6f, \"first_mismatch\": %lld, "
           "\"wakeups\": %llu, \"send_calls\": %llu, \"receive_calls\": %llu}\n",
           (unsigned long long)sent, (unsigned long long)answered, (unsigned long long)lost,
           (unsigned long long)mismatched, (unsigned long long)unmatched, elapsed,
           elapsed > 0 ? (double)answered / elapsed : 0.0,
           (double)self.ru_utime.tv_sec + (double)self.ru_utime.tv_usec * 1e-6,
           (double)self.ru_stime.tv_sec + (double)self.ru_stime.tv_usec * 1e-6,
           first_mismatch == UINT64_MAX ? -1LL : (long long)first_mismatch, (unsigned long long)wakeups,
           (unsigned long long)send_calls, (unsigned long long)receive_calls);
    return 0;
}
