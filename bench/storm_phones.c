/* storm_phones: a lean load generator for bench/storm.py (as dnsperf and perfdhcp are for DNS and
 * DHCP): N phones, at most C at once, one process, one epoll loop, loopback only.
 *
 * Each phone does on the wire what labkit's virtual phone does in the storm (labkit/phone/):
 *   DHCP (relay style, from relay:67+offset to target:67+offset): DISCOVER, OFFER, REQUEST, ACK,
 *     the virtual phone's bytes (options 53, 61, 12, 60, 55 in its order; 54 and 50 in REQUEST),
 *     retransmitted on silence after 4, 8, 16, 32, 64 s +-1 s with the same xid, then a new xid
 *     (at most `rounds` cycles), secs = whole seconds since the cycle began;
 *   then the profile source from the ACK's option 160 plus the factory tail /$PSN.xml, and for
 *   each fetch: a syslog line "Requesting resync URL" (RFC 3164, <134>, SEP+MAC), a DNS A query
 *   for the URL's host (RD clear, a new UDP socket, waits 2, 4, 8 s), an HTTP/1.1 GET with Host,
 *   User-Agent, Accept and Connection: close on a new TCP connection, the answer checked (status
 *   200, Content-Length, the whole body), and "Successful resync URL";
 *   the profile's Profile_Rule is fetched while it changes (at most 4 hops, $PN $PSN $MA
 *   expanded), then its Upgrade_Rule ("Requesting upgrade" / "Successful upgrade").
 * Not done (the storm does not need it): HTTPS, TFTP, SRV, redirects, other macros, the phone's
 * 5 s retry of a failed fetch (a failed fetch fails the phone, with its reason).
 *
 * Input (--phones FILE): one phone a line, "MAC12HEX MODEL USER-AGENT...". Output (stdout): one
 * line a phone, "mac ok|fail ip t_lease t_done reason", times in CLOCK_MONOTONIC seconds, then
 * "requests dhcp N dns N http N". Every wait is bounded and the whole run by --timeout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXLAB 8
#define HEAD_MAX 4096     /* an answer's head */
#define KEEP_MAX 65536    /* a profile's body (a firmware's is counted, not kept) */
#define URL_MAX 512
#define HOPS 4            /* PhoneConfig.max_rule_hops */
static const uint8_t PRL[] = {1, 3, 6, 15, 35, 66, 150, 2, 7, 42, 43, 58, 59, 159, 160};
static const double BACKOFF[] = {4, 8, 16, 32, 64};

enum { DISCOVERING, REQUESTING, DNS, CONNECTING, READING, DONE };
enum { RESYNC, UPGRADE };

typedef struct {
    char mac[13], model[48], ua[160];
    uint8_t hw[6];
    int ok;
    uint32_t ip;
    double t_lease, t_done;
    char why[160];
} Phone;

typedef struct {
    Phone *p;
    int state, fd, cycle, attempt, hops, kind;
    uint32_t xid, offer_ip, server, dns_server, syslog_server;
    uint16_t dns_id;
    double started, deadline;
    char url[URL_MAX], host[256], path[URL_MAX], prov[URL_MAX], rule[URL_MAX], upgrade[URL_MAX];
    int port, status;
    size_t head_len, body_len, keep_len;
    long content_length;
    char head[HEAD_MAX];
    char *keep;
} Slot;

static struct { uint32_t lab[MAXLAB]; int nlab; uint32_t target; int offset; } map;
static int ep, dhcp_fd, syslog_fd, rounds = 2;
static uint64_t rng;
static long n_dhcp, n_dns, n_http;
static int finished;  /* phones done, well or not */
static char scratch[262144];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t rnd(void) { /* xorshift64*: xids, DNS ids, jitter (seeded by --seed) */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (uint32_t)((rng * 2685821657736338717ULL) >> 32);
}

/* The lab's own addresses map to target:port+offset; anything else is refused (loopback only). */
static int endpoint(uint32_t addr, int port, struct sockaddr_in *out) {
    for (int i = 0; i < map.nlab; i++)
        if (map.lab[i] == addr) {
            memset(out, 0, sizeof *out);
            out->sin_family = AF_INET;
            out->sin_addr.s_addr = map.target;
            out->sin_port = htons((uint16_t)(port + map.offset));
            return 0;
        }
    return -1;
}

static void finish(Slot *s, int ok, const char *why) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->p->ok = ok;
    s->p->t_done = now();
    snprintf(s->p->why, sizeof s->p->why, "%s", why);
    s->state = DONE;
    finished++;
}

/* -- DHCP ------------------------------------------------------------------------------------ */
static size_t put_option(uint8_t *b, size_t at, int code, const void *v, size_t n) {
    b[at] = (uint8_t)code; b[at + 1] = (uint8_t)n;
    memcpy(b + at + 2, v, n);
    return at + 2 + n;
}

static void dhcp_send(Slot *s, struct sockaddr_in *relay) {
    uint8_t b[400] = {0};
    Phone *p = s->p;
    int request = s->state == REQUESTING;
    b[0] = 1; b[1] = 1; b[2] = 6; b[3] = 1;  /* BOOTREQUEST, Ethernet, hops 1 (we relay ourselves) */
    uint32_t xid = htonl(s->xid);
    memcpy(b + 4, &xid, 4);
    double secs = now() - s->started;
    uint16_t sec16 = htons((uint16_t)(secs > 65535 ? 65535 : secs));
    memcpy(b + 8, &sec16, 2);
    memcpy(b + 24, &relay->sin_addr.s_addr, 4);  /* giaddr */
    memcpy(b + 28, p->hw, 6);
    memcpy(b + 236, "\x63\x82\x53\x63", 4);
    size_t at = 240;
    uint8_t type = request ? 3 : 1, id[7] = {1};
    memcpy(id + 1, p->hw, 6);
    char host[16];
    snprintf(host, sizeof host, "SEP%02X%02X%02X%02X%02X%02X", p->hw[0], p->hw[1], p->hw[2], p->hw[3],
             p->hw[4], p->hw[5]);
    at = put_option(b, at, 53, &type, 1);
    if (request) at = put_option(b, at, 54, &s->server, 4);
    at = put_option(b, at, 61, id, 7);
    at = put_option(b, at, 12, host, strlen(host));
    at = put_option(b, at, 60, p->model, strlen(p->model));
    if (request) at = put_option(b, at, 50, &s->offer_ip, 4);
    at = put_option(b, at, 55, PRL, sizeof PRL);
    b[at++] = 255;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = map.target,
                             .sin_port = htons((uint16_t)(67 + map.offset))};
    sendto(dhcp_fd, b, at, 0, (struct sockaddr *)&to, sizeof to);
    n_dhcp++;
    s->deadline = now() + BACKOFF[s->attempt] + ((double)rnd() / 4294967296.0 * 2 - 1);
}

static void dhcp_begin(Slot *s, struct sockaddr_in *relay) {
    s->state = DISCOVERING;
    s->attempt = 0;
    s->xid = rnd();
    s->started = now();
    dhcp_send(s, relay);
}

/* The option `code` of a reply (its length in *n), or NULL; lengths checked. */
static const uint8_t *option(const uint8_t *b, size_t len, int code, size_t *n) {
    size_t at = 240;
    while (at < len) {
        if (b[at] == 0) { at++; continue; }
        if (b[at] == 255 || at + 1 >= len || at + 2 + b[at + 1] > len) return NULL;
        if (b[at] == code) { *n = b[at + 1]; return b + at + 2; }
        at += 2 + (size_t)b[at + 1];
    }
    return NULL;
}

static void fetch_start(Slot *s);
static int expand(const char *in, char *out, const Phone *p);

/* The first URL from option 160 (discovery.dhcp_candidates): as given when it has a path, else
 * with the factory tail /$PSN.xml (the first of the phone's tails; the storm's profile is there). */
static void first_url(Slot *s) {
    char with[URL_MAX];
    const char *rest = strncmp(s->prov, "http://", 7) == 0 ? s->prov + 7 : s->prov;
    const char *slash = strchr(rest, '/');
    size_t n = strlen(s->prov);
    if (slash && slash[1]) snprintf(with, sizeof with, "%s", s->prov);
    else snprintf(with, sizeof with, "%.*s/$PSN.xml", (int)(slash ? n - 1 : n), s->prov);
    if (expand(with, s->url, s->p) != 0) s->url[0] = 0;
}

static void dhcp_receive(Slot *slots, int nslots, struct sockaddr_in *relay) {
    uint8_t b[1500];
    for (int burst = 0; burst < 64; burst++) {
        ssize_t len = recv(dhcp_fd, b, sizeof b, MSG_DONTWAIT);
        if (len < 0) return;
        size_t n = 0;
        const uint8_t *type;
        if (len < 244 || b[0] != 2 || memcmp(b + 236, "\x63\x82\x53\x63", 4) != 0) continue;
        if (!(type = option(b, (size_t)len, 53, &n)) || n != 1) continue;
        uint32_t xid;
        memcpy(&xid, b + 4, 4);
        xid = ntohl(xid);
        Slot *s = NULL;
        for (int i = 0; i < nslots; i++)
            if ((slots[i].state == DISCOVERING || slots[i].state == REQUESTING) && slots[i].xid == xid &&
                memcmp(slots[i].p->hw, b + 28, 6) == 0)
                s = &slots[i];
        if (!s) continue;  /* late, or a retransmission's second answer */
        uint32_t yiaddr;
        memcpy(&yiaddr, b + 16, 4);
        const uint8_t *server = option(b, (size_t)len, 54, &n);
        if (s->state == DISCOVERING && *type == 2 && yiaddr && server && n == 4) {
            s->offer_ip = yiaddr;
            memcpy(&s->server, server, 4);
            s->state = REQUESTING;
            s->attempt = 0;
            dhcp_send(s, relay);
        } else if (s->state == REQUESTING && *type == 6) {  /* NAK: a new cycle from INIT */
            if (++s->cycle >= rounds) finish(s, 0, "no DHCP lease: NAK");
            else dhcp_begin(s, relay);
        } else if (s->state == REQUESTING && *type == 5 && yiaddr) {
            const uint8_t *dns = option(b, (size_t)len, 6, &n);
            if (!dns || n < 4) { finish(s, 0, "ACK without option 6"); continue; }
            memcpy(&s->dns_server, dns, 4);
            const uint8_t *logs = option(b, (size_t)len, 7, &n);
            if (logs && n >= 4) memcpy(&s->syslog_server, logs, 4);
            else s->syslog_server = s->server;
            const uint8_t *url = option(b, (size_t)len, 160, &n);
            if (!url || n == 0 || n >= URL_MAX - 64) { finish(s, 0, "ACK without option 160"); continue; }
            memcpy(s->prov, url, n);
            s->prov[n] = 0;
            s->p->ip = yiaddr;
            s->p->t_lease = now();
            first_url(s);
            fetch_start(s);
        }
    }
}

/* -- syslog, URLs, DNS ----------------------------------------------------------------------- */
static void say(Slot *s, const char *what) {
    char line[URL_MAX + 256], stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%b %d %H:%M:%S", &tm);
    const uint8_t *h = s->p->hw;
    int n = snprintf(line, sizeof line, "<134>%s SEP%02X%02X%02X%02X%02X%02X prov: %s "
                     "%02x:%02x:%02x:%02x:%02x:%02x -- %s %s", stamp, h[0], h[1], h[2], h[3], h[4], h[5],
                     s->p->model, h[0], h[1], h[2], h[3], h[4], h[5], what, s->url);
    struct sockaddr_in to;
    if (n > 0 && endpoint(s->syslog_server, 514, &to) == 0)
        sendto(syslog_fd, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1), 0,
               (struct sockaddr *)&to, sizeof to);
}

/* "$PN", "$PSN", "$MA" in `in`, into `out` (URL_MAX); -1 on any other macro or overflow. */
static int expand(const char *in, char *out, const Phone *p) {
    size_t at = 0;
    const char *psn = strncmp(p->model, "CP-", 3) == 0 ? p->model + 3 : p->model;
    while (*in) {
        const char *put = NULL;
        size_t skip = 1;
        if (*in == '$') {
            if (strncmp(in, "$PSN", 4) == 0) put = psn, skip = 4;
            else if (strncmp(in, "$PN", 3) == 0) put = p->model, skip = 3;
            else if (strncmp(in, "$MA", 3) == 0) put = p->mac, skip = 3;
            else return -1;
        }
        size_t n = put ? strlen(put) : 1;
        if (at + n + 1 >= URL_MAX) return -1;
        memcpy(out + at, put ? put : in, n);
        at += n;
        in += skip;
    }
    out[at] = 0;
    return 0;
}

static int split_url(Slot *s) {  /* http://host[:port]/path */
    const char *u = s->url;
    if (strncmp(u, "http://", 7) != 0) return -1;
    u += 7;
    size_t h = strcspn(u, ":/");
    if (h == 0 || h >= sizeof s->host) return -1;
    memcpy(s->host, u, h);
    s->host[h] = 0;
    u += h;
    s->port = 80;
    if (*u == ':') { s->port = atoi(u + 1); u += strcspn(u, "/"); }
    snprintf(s->path, sizeof s->path, "%s", *u ? u : "/");
    return s->port > 0 && s->port < 65536 ? 0 : -1;
}

static void dns_send(Slot *s) {
    uint8_t q[300] = {0};
    q[0] = (uint8_t)(s->dns_id >> 8); q[1] = (uint8_t)s->dns_id;
    q[5] = 1;  /* one question, RD clear (the phone's dnslib question with rd = 0) */
    size_t at = 12;
    for (const char *label = s->host; *label;) {
        size_t n = strcspn(label, ".");
        if (n == 0 || n > 63 || at + n + 6 > sizeof q) break;
        q[at++] = (uint8_t)n;
        memcpy(q + at, label, n);
        at += n;
        label += n + (label[n] == '.');
    }
    q[at++] = 0; q[at++] = 0; q[at++] = 1; q[at++] = 0; q[at++] = 1;  /* A, IN */
    send(s->fd, q, at, 0);
    s->deadline = now() + 2.0 * (1 << s->attempt);
}

static int watch(int fd, uint32_t events, Slot *s, int op) {
    struct epoll_event e = {.events = events, .data.ptr = s};
    return epoll_ctl(ep, op, fd, &e);
}

static void fetch_start(Slot *s) {
    if (split_url(s) != 0) { finish(s, 0, "unsupported URL"); return; }
    say(s, s->kind == RESYNC ? "Requesting resync" : "Requesting upgrade");
    n_dns++;
    struct sockaddr_in to;
    if (endpoint(s->dns_server, 53, &to) != 0) { finish(s, 0, "DNS server not in the lab"); return; }
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&to, sizeof to) != 0) {
        finish(s, 0, "DNS socket"); return;
    }
    s->state = DNS;
    s->attempt = 0;
    s->dns_id = (uint16_t)rnd();
    watch(s->fd, EPOLLIN, s, EPOLL_CTL_ADD);
    dns_send(s);
}

static size_t skip_name(const uint8_t *b, size_t len, size_t at) {
    while (at < len) {
        if ((b[at] & 0xC0) == 0xC0) return at + 2;
        if (b[at] == 0) return at + 1;
        at += 1 + (size_t)b[at];
    }
    return len + 1;
}

static void http_connect(Slot *s, uint32_t addr);

static void dns_receive(Slot *s) {
    uint8_t b[1500];
    ssize_t len = recv(s->fd, b, sizeof b, 0);
    if (len < 12 || (((unsigned)b[0] << 8) | b[1]) != s->dns_id) return;  /* another's: ignored */
    if (!(b[2] & 0x80) || (b[3] & 0x0F) != 0) { finish(s, 0, "DNS: not NOERROR"); return; }
    unsigned qd = ((unsigned)b[4] << 8) | b[5], an = ((unsigned)b[6] << 8) | b[7];
    size_t at = 12;
    for (unsigned i = 0; i < qd; i++) at = skip_name(b, (size_t)len, at) + 4;
    for (unsigned i = 0; i < an && at < (size_t)len; i++) {
        at = skip_name(b, (size_t)len, at);
        if (at + 10 > (size_t)len) break;
        unsigned type = ((unsigned)b[at] << 8) | b[at + 1], rdlen = ((unsigned)b[at + 8] << 8) | b[at + 9];
        if (at + 10 + rdlen > (size_t)len) break;
        if (type == 1 && rdlen == 4) {
            uint32_t addr;
            memcpy(&addr, b + at + 10, 4);
            close(s->fd);
            s->fd = -1;
            http_connect(s, addr);
            return;
        }
        at += 10 + rdlen;
    }
    finish(s, 0, "DNS: no A record");
}

/* -- HTTP ------------------------------------------------------------------------------------ */
static void http_connect(Slot *s, uint32_t addr) {
    struct sockaddr_in to;
    if (endpoint(addr, s->port, &to) != 0) { finish(s, 0, "HTTP server not in the lab"); return; }
    n_http++;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) { finish(s, 0, "HTTP socket"); return; }
    if (connect(s->fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
        finish(s, 0, "HTTP: connection refused"); return;
    }
    s->state = CONNECTING;
    s->head_len = s->body_len = s->keep_len = 0;
    s->content_length = -1;
    s->status = 0;
    s->deadline = now() + 30.0;  /* the phone's whole-answer limit (http_client.TOTAL_TIMEOUT) */
    watch(s->fd, EPOLLOUT, s, EPOLL_CTL_ADD);
}

static void http_request(Slot *s) {
    int err = 0;
    socklen_t n = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &n);
    if (err) { finish(s, 0, "HTTP: connection refused"); return; }
    char req[URL_MAX + 512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                       "Connection: close\r\n\r\n", s->path, s->host, s->p->ua);
    if (len <= 0 || len >= (int)sizeof req || send(s->fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        finish(s, 0, "HTTP: send"); return;
    }
    s->state = READING;
    watch(s->fd, EPOLLIN, s, EPOLL_CTL_MOD);
}

/* The text of <Name>...</Name> in a profile into out (URL_MAX), or "". */
static void element(const char *body, const char *name, char *out) {
    char open[64];
    snprintf(open, sizeof open, "<%s>", name);
    const char *a = strstr(body, open), *b;
    out[0] = 0;
    if (!a) return;
    a += strlen(open);
    if (!(b = strstr(a, "</")) || (size_t)(b - a) >= URL_MAX) return;
    memcpy(out, a, (size_t)(b - a));
    out[b - a] = 0;
}

static void next_step(Slot *s) {  /* after a good answer: the rule sequence, then the upgrade */
    char said[URL_MAX];
    say(s, s->kind == RESYNC ? "Successful resync" : "Successful upgrade");
    if (s->kind == UPGRADE) { finish(s, 1, ""); return; }
    s->keep[s->keep_len] = 0;
    char before[URL_MAX], rule[URL_MAX];
    snprintf(before, sizeof before, "%s", s->rule);
    element(s->keep, "Profile_Rule", rule);
    element(s->keep, "Upgrade_Rule", said);
    if (said[0]) snprintf(s->upgrade, sizeof s->upgrade, "%s", said);
    snprintf(s->rule, sizeof s->rule, "%s", rule);
    /* first profile: hop to its rule; later: hop while the rule changes (at most HOPS) */
    int hop = rule[0] && (s->hops == 0 || strcmp(rule, before) != 0) && s->hops < HOPS;
    if (hop) {
        s->hops++;
        if (expand(rule, s->url, s->p) != 0) { finish(s, 0, "unsupported Profile_Rule"); return; }
    } else if (s->upgrade[0]) {
        s->kind = UPGRADE;
        if (expand(s->upgrade, s->url, s->p) != 0) { finish(s, 0, "unsupported Upgrade_Rule"); return; }
    } else {
        finish(s, 0, "no Upgrade_Rule"); return;
    }
    fetch_start(s);
}

static int parse_head(Slot *s) {  /* status and Content-Length; -1 when malformed */
    char *end = strstr(s->head, "\r\n\r\n");
    if (!end) return 0;
    *end = 0;
    if (sscanf(s->head, "HTTP/1.%*c %d", &s->status) != 1 || s->status <= 0) return -1;
    for (char *line = strstr(s->head, "\r\n"); line; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) s->content_length = strtol(line + 17, NULL, 10);
    return (int)(end + 4 - s->head);
}

/* The answer is over (`whole`: its framing says all of it came): 200 and every byte, or the phone fails. */
static void answered(Slot *s, int whole) {
    if (s->status != 200) finish(s, 0, "HTTP: not 200");
    else if (!whole || (s->content_length >= 0 && (long)s->body_len != s->content_length))
        finish(s, 0, "HTTP: body not as long as its Content-Length");
    else { close(s->fd); s->fd = -1; next_step(s); }
}

static void http_receive(Slot *s) {
    ssize_t len = recv(s->fd, scratch, sizeof scratch, 0);
    if (len < 0) {
        if (errno != EAGAIN && errno != EINTR) finish(s, 0, "HTTP: reset");
        return;
    }
    if (len == 0) {  /* closed by the server: whole only when no Content-Length framed it */
        answered(s, s->content_length < 0);
        return;
    }
    const char *data = scratch;
    size_t n = (size_t)len;
    if (s->status == 0) {  /* still in the head */
        size_t room = HEAD_MAX - 1 - s->head_len, take = n < room ? n : room;
        memcpy(s->head + s->head_len, data, take);
        s->head_len += take;
        s->head[s->head_len] = 0;
        int used = parse_head(s);
        if (used < 0 || (used == 0 && s->head_len >= HEAD_MAX - 1)) { finish(s, 0, "HTTP: bad head"); return; }
        if (used == 0) return;
        size_t before = s->head_len - take;  /* bytes of the head in earlier reads */
        data += (size_t)used - before;
        n -= (size_t)used - before;
    }
    s->body_len += n;
    if (s->kind == RESYNC) {
        if (s->keep_len + n >= KEEP_MAX) { finish(s, 0, "profile too large"); return; }
        memcpy(s->keep + s->keep_len, data, n);
        s->keep_len += n;
    }
    /* as the phone's ResponseReader: done at Content-Length, then the phone closes */
    if (s->content_length >= 0 && (long)s->body_len >= s->content_length) answered(s, 1);
}

/* -- the loop -------------------------------------------------------------------------------- */
static void expire(Slot *s, struct sockaddr_in *relay) {
    if (s->state == DISCOVERING || s->state == REQUESTING) {
        if (++s->attempt < 5) { dhcp_send(s, relay); return; }
        if (++s->cycle >= rounds) finish(s, 0, s->state == DISCOVERING ? "no DHCP lease: no OFFER"
                                                                          : "no DHCP lease: no ACK");
        else dhcp_begin(s, relay);
    } else if (s->state == DNS) {
        if (++s->attempt < 3) dns_send(s);
        else finish(s, 0, "DNS: TIMEOUT");
    } else {
        finish(s, 0, "HTTP: no complete answer in 30 s");
    }
}

static int load_phones(const char *path, Phone **out) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, cap = 1024;
    Phone *ps = calloc((size_t)cap, sizeof *ps);
    char line[512];
    while (ps && fgets(line, sizeof line, f)) {
        if (n == cap) { Phone *more = realloc(ps, sizeof *ps * (size_t)(cap *= 2)); if (!more) break; ps = more; }
        Phone *p = &ps[n];
        memset(p, 0, sizeof *p);
        line[strcspn(line, "\n")] = 0;
        int ua = 0;
        if (sscanf(line, "%12s %47s %n", p->mac, p->model, &ua) < 2 || ua == 0 || strlen(p->mac) != 12) continue;
        snprintf(p->ua, sizeof p->ua, "%s", line + ua);
        for (int i = 0; i < 6; i++) sscanf(p->mac + 2 * i, "%2hhx", &p->hw[i]);
        snprintf(p->why, sizeof p->why, "not started");
        n++;
    }
    fclose(f);
    *out = ps;
    return ps ? n : -1;
}

int main(int argc, char **argv) {
    const char *file = NULL, *target = "127.0.0.1", *relay_ip = "127.0.0.2", *lab = "";
    int concurrency = 64;
    double timeout = 600;
    rng = 0x9E3779B97F4A7C15ULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--phones")) file = argv[i + 1];
        else if (!strcmp(argv[i], "--target")) target = argv[i + 1];
        else if (!strcmp(argv[i], "--relay")) relay_ip = argv[i + 1];
        else if (!strcmp(argv[i], "--offset")) map.offset = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--lab")) lab = argv[i + 1];
        else if (!strcmp(argv[i], "--concurrency")) concurrency = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout")) timeout = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) rng ^= (uint64_t)atoll(argv[i + 1]) * 0xBF58476D1CE4E5B9ULL;
    }
    char labs[256];
    snprintf(labs, sizeof labs, "%s", lab);
    for (char *a = strtok(labs, ","); a && map.nlab < MAXLAB; a = strtok(NULL, ","))
        if (inet_pton(AF_INET, a, &map.lab[map.nlab]) == 1) map.nlab++;
    Phone *phones;
    int total = file ? load_phones(file, &phones) : -1;
    struct sockaddr_in relay = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(67 + map.offset))};
    if (total < 0 || map.nlab == 0 || concurrency < 1 || concurrency > 4096 || rounds < 1 ||
        inet_pton(AF_INET, target, &map.target) != 1 || inet_pton(AF_INET, relay_ip, &relay.sin_addr) != 1 ||
        (ntohl(map.target) >> 24) != 127 || (ntohl(relay.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "usage: storm_phones --phones FILE --offset N --lab A[,B] [--target 127.x] "
                "[--relay 127.x] [--concurrency C] [--timeout S] [--rounds R] [--seed N]\n");
        return 2;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    dhcp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    syslog_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int big = 4 << 20;  /* as the phones' relay socket: replies come in bursts */
    setsockopt(dhcp_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (bind(dhcp_fd, (struct sockaddr *)&relay, sizeof relay) != 0) {
        perror("storm_phones: bind the relay address");
        return 2;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, dhcp_fd, &e);
    if (concurrency > total) concurrency = total > 0 ? total : 1;
    Slot *slots = calloc((size_t)concurrency, sizeof *slots);
    char *keeps = malloc((size_t)concurrency * KEEP_MAX);
    if (!slots || !keeps) return 2;
    int next = 0, live = 0;
    double end = now() + timeout;
    for (int i = 0; i < concurrency; i++) { slots[i].state = DONE; slots[i].fd = -1; slots[i].keep = keeps + (size_t)i * KEEP_MAX; }
    struct epoll_event events[256];
    while (finished < total && now() < end) {
        live = 0;
        double first = end;
        for (int i = 0; i < concurrency; i++) {
            Slot *s = &slots[i];
            if (s->state == DONE && next < total) {  /* a free slot takes the next phone */
                Phone *p = &phones[next++];
                char *keep = s->keep;
                memset(s, 0, sizeof *s);
                s->keep = keep; s->fd = -1; s->p = p; s->kind = RESYNC;
                dhcp_begin(s, &relay);
            }
            if (s->state != DONE) {
                live++;
                if (s->deadline <= now()) expire(s, &relay);
                if (s->state != DONE && s->deadline < first) first = s->deadline;
            }
        }
        if (live == 0) break;
        int wait = (int)((first - now()) * 1000) + 1;
        int n = epoll_wait(ep, events, 256, wait < 0 ? 0 : wait);
        for (int i = 0; i < n; i++) {
            Slot *s = events[i].data.ptr;
            if (!s) { dhcp_receive(slots, concurrency, &relay); continue; }
            if (s->state == DNS) dns_receive(s);
            else if (s->state == CONNECTING) http_request(s);
            else if (s->state == READING) http_receive(s);
        }
    }
    for (int i = 0; i < concurrency; i++)
        if (slots[i].state != DONE && slots[i].p) finish(&slots[i], 0, "run timeout");
    for (int i = 0; i < total; i++) {
        Phone *p = &phones[i];
        char ip[16] = "-";
        if (p->ip) inet_ntop(AF_INET, &p->ip, ip, sizeof ip);
        printf("%s %s %s %.6f %.6f %s\n", p->mac, p->ok ? "ok" : "fail", ip, p->t_lease, p->t_done, p->why);
    }
    printf("requests dhcp %ld dns %ld http %ld\n", n_dhcp, n_dns, n_http);
    return 0;
}
