/* aiotlp.transport._lane: OTLP/HTTP requests sent by native threads, without the GIL.
 *
 * A Lane owns a few worker threads (one keep-alive HTTP/1.1 connection each) that POST ready request bodies to
 * one origin and read the responses, with no Python code and no GIL: an application thread that makes spans flat
 * out keeps the GIL while its batches are sent. Python only submits a body (with a token of its own) and later
 * collects the outcomes; a worker takes the GIL for one short call (``notify``) only when Python must look at an
 * outcome soon: any outcome but a plain success, or when Python asked to be woken (``wake_on_done``).
 *
 *   Lane(host, port, head, *, workers, timeout, keepalive, max_response, compress, notify)
 *       head: the request line and headers, each ending in CRLF, without Content-Length and the blank line
 *       (with the Content-Encoding of ``compress``: IDENTITY, GZIP or DEFLATE, done to each body by its worker).
 *   submit(body, token) -> bool      False when no worker is free (or the lane is closed / from another process)
 *   collect() -> list of (token, kind, status, head, body, errno, elapsed, received)
 *   wake_on_done() -> bool           the next outcome calls notify() whatever it is; True when outcomes
 *                                    wait to be collected already (they ended before: collect them now)
 *   preconnect()                     each worker opens its connection now, ahead of its first request
 *   room, in_flight, connections_made, closed
 *   close()                          jobs not finished are collected as CLOSED; joins the workers (GIL released)
 *
 * Kinds: OK (2xx with an empty body, or an empty partial success), RESPONSE (any other complete response: head and
 * body given to Python), CONNECT (the connection could not be made; errno), DISCONNECTED (the connection failed
 * during the exchange; ``received`` says whether part of the response arrived), TIMEOUT, BAD_RESPONSE (not an
 * HTTP/1.x response, or over the limits), CLOSED (the lane was closed first).
 *
 * A connection is reused for keep-alive responses, for at most ``keepalive`` seconds idle, and not when the server
 * closed it or sent anything while it was idle. A request that fails on a reused connection before any byte of the
 * response arrived is sent once more on a new connection (the server closed an idle connection as it was reused).
 * After a fork the child's Lane refuses every call: its threads do not exist there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define MAX_WORKERS 16
#define MAX_HEAD 65536
#define MAX_CHUNK_LINE 1024

enum { K_OK = 0, K_RESPONSE, K_CONNECT, K_DISCONNECTED, K_TIMEOUT, K_BAD_RESPONSE, K_CLOSED };

typedef struct job {
    struct job *next;
    PyObject *body;  /* bytes, owned */
    const char *data; /* what is sent: the body, or packed (job_payload) */
    size_t data_len;
    char *packed; /* the compressed body (malloc'd), or NULL */
    PyObject *token; /* owned */
    int kind;
    int status;
    int sys_errno;
    int received;
    double elapsed;
    char *resp_head;
    size_t resp_head_len;
    char *resp_body;
    size_t resp_body_len;
} Job;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Job *pending, *pending_tail;
    Job *done, *done_tail;
    int npending, nbusy, ndone;
    int nworkers, started, closing, closed, wake;
    int ahead[MAX_WORKERS]; /* preconnect(): the worker opens its connection before its first request */
    pthread_t threads[MAX_WORKERS];
    int fds[MAX_WORKERS];
    char *head;
    size_t head_len;
    char *host;
    char port[16];
    double timeout, keepalive;
    size_t max_response;
    PyObject *notify;
    pid_t pid;
    long connections_made;
    int compress; /* LANE_IDENTITY, LANE_GZIP or LANE_DEFLATE: what job_payload does to each body */
} Lane;

typedef struct {
    Lane *lane;
    int index;
} WorkerArg;

#include "_lane_common.h"

/* ------------------------------------------------------------------------------------------------ the socket */

/* write everything: 0, or -1 with errno */
static int
write_all(int fd, struct iovec *iov, int n, double deadline)
{
    while (n > 0) {
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int ms = remaining_ms(deadline);
                if (ms == 0) {
                    errno = ETIMEDOUT;
                    return -1;
                }
                struct pollfd p = {fd, POLLOUT | POLLIN, 0};
                int r = poll(&p, 1, ms);
                if (r < 0 && errno != EINTR) {
                    return -1;
                }
                if (r > 0 && (p.revents & POLLIN)) {
                    return 1; /* the server answered (or closed) before the whole body was written */
                }
                continue;
            }
            return -1;
        }
        size_t left = (size_t)sent;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* read more into b: >0 bytes, 0 at end of stream, -1 with errno */
static ssize_t
read_some(int fd, Buf *b, size_t limit, double deadline)
{
    if (b->len >= limit) {
        errno = EMSGSIZE; /* more than any response within the limits: a hostile or broken server */
        return -1;
    }
    if (buf_reserve(b, 16384) < 0) {
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        ssize_t got = recv(fd, b->data + b->len, b->cap - b->len, 0);
        if (got >= 0) {
            b->len += (size_t)got;
            return got;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLIN, deadline) < 0) {
                return -1;
            }
            continue;
        }
        return -1;
    }
}

/* ------------------------------------------------------------------------------------------- the response */

static const char *
find_crlfcrlf(const char *data, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++) {
        if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n') {
            return data + i;
        }
    }
    return NULL;
}

static int
has_token(const char *value, size_t len, const char *token)
{
    size_t t = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) {
            i++;
        }
        size_t start = i;
        while (i < len && value[i] != ',') {
            i++;
        }
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t')) {
            end--;
        }
        if (end - start == t && strncasecmp(value + start, token, t) == 0) {
            return 1;
        }
    }
    return 0;
}

typedef struct {
    int status, minor;
    long long content_length; /* -1: none */
    int chunked, close, keep_alive, encoded;
} Head;

/* parse a header section (status line .. CRLFCRLF excluded); 0, or -1 when it is not an HTTP/1.x response */
static int
parse_head(const char *s, size_t len, Head *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ') {
        return -1;
    }
    h->minor = s[7] - '0';
    for (int i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        h->status = h->status * 10 + (s[i] - '0');
    }
    if (len > 12 && s[12] != ' ' && s[12] != '\r') {
        return -1; /* "HTTP/1.1 2000": not a 3-digit status */
    }
    const char *line = memchr(s, '\n', len);
    while (line != NULL) {
        line++;
        size_t left = len - (size_t)(line - s);
        if (left == 0) {
            break;
        }
        const char *end = memchr(line, '\n', left);
        size_t n = end ? (size_t)(end - line) : left;
        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }
        /* what the HTTP/1.1 client (aiotlp.transport._h1) refuses, refused here too: an empty or folded line, no
         * colon, an empty name or whitespace in it */
        const char *colon = memchr(line, ':', n);
        if (n == 0 || line[0] == ' ' || line[0] == '\t' || colon == NULL || colon == line) {
            return -1;
        }
        for (const char *c = line; c < colon; c++) {
            if (*c == ' ' || *c == '\t') {
                return -1;
            }
        }
        {
            size_t name = (size_t)(colon - line);
            const char *v = colon + 1;
            size_t vn = n - name - 1;
            while (vn > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vn--;
            }
            while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) {
                vn--;
            }
            if (name == 14 && strncasecmp(line, "content-length", 14) == 0) {
                /* a comma-separated list (a repeated header) whose values must all agree */
                size_t i = 0;
                do {
                    while (i < vn && (v[i] == ' ' || v[i] == '\t')) {
                        i++;
                    }
                    long long value = 0;
                    int digits = 0;
                    while (i < vn && v[i] >= '0' && v[i] <= '9') {
                        if (++digits > 18) {
                            return -1;
                        }
                        value = value * 10 + (v[i++] - '0');
                    }
                    while (i < vn && (v[i] == ' ' || v[i] == '\t')) {
                        i++;
                    }
                    if (digits == 0 || (i < vn && v[i] != ',')) {
                        return -1;
                    }
                    if (h->content_length >= 0 && h->content_length != value) {
                        return -1;
                    }
                    h->content_length = value;
                } while (i++ < vn);
            }
            else if (name == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                h->chunked = has_token(v, vn, "chunked");
            }
            else if (name == 10 && strncasecmp(line, "connection", 10) == 0) {
                h->close |= has_token(v, vn, "close");
                h->keep_alive |= has_token(v, vn, "keep-alive");
            }
            else if (name == 16 && strncasecmp(line, "content-encoding", 16) == 0) {
                h->encoded = !(vn == 0 || (vn == 8 && strncasecmp(v, "identity", 8) == 0));
            }
        }
        line = end;
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------------- the lane */

/* a read that got nothing more: TIMEOUT at the deadline, BAD_RESPONSE past the response's budget, else
 * DISCONNECTED (the end of the stream, or an error) */
static void
read_failed(Job *job, ssize_t got)
{
    job->kind = got < 0 && errno == ETIMEDOUT ? K_TIMEOUT : got < 0 && errno == EMSGSIZE ? K_BAD_RESPONSE : K_DISCONNECTED;
    job->sys_errno = got < 0 ? errno : 0;
}

/* the response to the request just written: fills job; returns 1 when the connection may be kept */
static int
read_response(Lane *lane, int fd, Job *job, double deadline)
{
    Buf b = {NULL, 0, 0};
    Buf body = {NULL, 0, 0}; /* the response body, freed at the end unless handed to the job */
    /* everything read for one response: interim responses, head, body, chunk framing and trailers */
    size_t limit = lane->max_response + 4 * (size_t)MAX_HEAD;
    size_t start = 0; /* where the current head begins (after 1xx interim responses) */
    Head h;
    const char *end;
    int keep = 0;
    size_t scanned = 0; /* the head's end is looked for from here on (not from its start after each read) */
    for (;;) {
        size_t from = scanned > start + 3 ? scanned - 3 : start;
        end = b.len > from ? find_crlfcrlf(b.data + from, b.len - from) : NULL;
        scanned = b.len;
        if (end != NULL) {
            size_t section = (size_t)(end - (b.data + start));
            if (section > MAX_HEAD || parse_head(b.data + start, section, &h) < 0) {
                job->kind = K_BAD_RESPONSE;
                job->received = 1;
                goto out;
            }
            if (h.status >= 100 && h.status < 200) {
                start += section + 4;
                scanned = start;
                continue;
            }
            break;
        }
        if (b.len - start > MAX_HEAD ||
            (b.len - start >= 5 && memcmp(b.data + start, "HTTP/", 5) != 0)) { /* too long, or not HTTP at all */
            job->kind = K_BAD_RESPONSE;
            job->received = 1;
            goto out;
        }
        ssize_t got = read_some(fd, &b, limit, deadline);
        if (got <= 0) {
            read_failed(job, got);
            job->received = b.len > 0;
            if (b.len > 0 && got == 0 && b.len >= 4 && memcmp(b.data, "HTTP", 4) != 0) {
                job->kind = K_BAD_RESPONSE; /* e.g. HTTP/2 frames from a gRPC port */
            }
            goto out;
        }
    }
    job->received = 1;
    job->status = h.status;
    size_t head_len = (size_t)(end - (b.data + start));
    size_t body_at = start + head_len + 4;
    int to_close = 0;
    if (h.status == 204 || h.status == 304) {
        /* no body */
    }
    else if (h.chunked) {
        size_t at = body_at;
        for (;;) {
            const char *nl = b.len > at ? memchr(b.data + at, '\n', b.len - at) : NULL;
            if (nl == NULL) {
                if (b.len - at > MAX_CHUNK_LINE) {
                    job->kind = K_BAD_RESPONSE;
                    goto out;
                }
                ssize_t got = read_some(fd, &b, limit, deadline);
                if (got <= 0) {
                    read_failed(job, got);
                    goto out;
                }
                continue;
            }
            unsigned long long size = 0;
            const char *p = b.data + at;
            int digits = 0;
            for (; p < nl; p++, digits++) {
                char c = *p;
                int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                          : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                                                   : -1;
                if (v < 0 || (size >> 56) != 0) {
                    break;
                }
                size = size * 16 + (unsigned long long)v;
            }
            if (digits == 0 || (p < nl && *p != ';' && *p != '\r' && *p != ' ' && *p != '\t')) {
                job->kind = K_BAD_RESPONSE;
                goto out;
            }
            at = (size_t)(nl - b.data) + 1;
            if (size == 0) {
                /* trailers, up to the blank line */
                for (;;) {
                    const char *t;
                    if (b.len >= at + 2 && b.data[at] == '\r' && b.data[at + 1] == '\n') {
                        at += 2;
                        break;
                    }
                    t = b.len > at ? memchr(b.data + at, '\n', b.len - at) : NULL;
                    if (t != NULL) {
                        at = (size_t)(t - b.data) + 1;
                        continue;
                    }
                    if (b.len - at > MAX_HEAD) {
                        job->kind = K_BAD_RESPONSE;
                        goto out;
                    }
                    ssize_t got = read_some(fd, &b, limit, deadline);
                    if (got <= 0) {
                        read_failed(job, got);
                        goto out;
                    }
                }
                break;
            }
            if (body.len + size > lane->max_response) {
                job->kind = K_BAD_RESPONSE;
                goto out;
            }
            while (b.len < at + size + 2) {
                ssize_t got = read_some(fd, &b, limit, deadline);
                if (got <= 0) {
                    read_failed(job, got);
                    goto out;
                }
            }
            if (buf_reserve(&body, (size_t)size) < 0) {
                job->kind = K_BAD_RESPONSE;
                goto out;
            }
            memcpy(body.data + body.len, b.data + at, (size_t)size);
            body.len += (size_t)size;
            at += (size_t)size;
            if (b.data[at] != '\r' || b.data[at + 1] != '\n') {
                job->kind = K_BAD_RESPONSE;
                goto out;
            }
            at += 2;
        }
        if (b.len > at) {
            to_close = 1; /* more than the response: not reused */
        }
    }
    else if (h.content_length >= 0) {
        if ((unsigned long long)h.content_length > lane->max_response) {
            job->kind = K_BAD_RESPONSE;
            goto out;
        }
        size_t want = body_at + (size_t)h.content_length;
        while (b.len < want) {
            ssize_t got = read_some(fd, &b, limit, deadline);
            if (got <= 0) {
                read_failed(job, got);
                goto out;
            }
        }
        if (b.len > want) {
            to_close = 1;
        }
        if (h.content_length > 0) {
            if (buf_reserve(&body, (size_t)h.content_length) < 0) {
                job->kind = K_BAD_RESPONSE;
                goto out;
            }
            memcpy(body.data, b.data + body_at, (size_t)h.content_length);
            body.len = (size_t)h.content_length;
        }
    }
    else {
        /* read to close */
        to_close = 1;
        for (;;) {
            if (b.len - body_at > lane->max_response) {
                job->kind = K_BAD_RESPONSE;
                goto out;
            }
            ssize_t got = read_some(fd, &b, limit, deadline);
            if (got == 0) {
                break;
            }
            if (got < 0) {
                read_failed(job, got);
                goto out;
            }
        }
        size_t n = b.len - body_at;
        if (n > 0) {
            if (buf_reserve(&body, n) < 0) {
                job->kind = K_BAD_RESPONSE;
                goto out;
            }
            memcpy(body.data, b.data + body_at, n);
            body.len = n;
        }
    }
    keep = !to_close && !h.close && (h.minor == 1 || h.keep_alive) && !(h.chunked && h.content_length >= 0);
    int plain = h.status >= 200 && h.status < 300 &&
                (body.len == 0 || (!h.encoded && body.len == 2 && body.data[0] == 0x0a && body.data[1] == 0));
    if (plain) {
        job->kind = K_OK;
    }
    else {
        job->kind = K_RESPONSE;
        job->resp_head = malloc(head_len ? head_len : 1);
        if (job->resp_head != NULL) {
            memcpy(job->resp_head, b.data + start, head_len);
            job->resp_head_len = head_len;
        }
        job->resp_body = body.data;
        job->resp_body_len = body.len;
        body.data = NULL;
    }
out:
    free(body.data);
    free(b.data);
    return keep;
}

/* one request: connect (or reuse), write, read; fills job */
static void
exchange(Lane *lane, int index, double *idle_since, Job *job)
{
    double started = now();
    double deadline = started + lane->timeout;
    if (job_payload(lane, job) < 0) { /* not sent: the exporter sends it (and compresses it) itself */
        job->kind = K_CONNECT;
        job->sys_errno = ENOMEM;
        job->elapsed = now() - started;
        return;
    }
    char length[64];
    int n = snprintf(length, sizeof length, "Content-Length: %zu\r\n\r\n", job->data_len);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = lane->fds[index];
        int reused = fd >= 0;
        if (reused) {
            struct pollfd p = {fd, POLLIN, 0};
            if (started - *idle_since > lane->keepalive || poll(&p, 1, 0) != 0) {
                set_fd(lane, index, -1); /* too old, closed by the server, or it sent something while idle */
                fd = -1;
                reused = 0;
            }
        }
        if (fd < 0) {
            int err = 0;
            if (is_closing(lane)) {
                job->kind = K_CLOSED;
                break;
            }
            fd = connect_to(lane, index, deadline, &err);
            if (fd < 0) {
                job->kind = err == ETIMEDOUT ? K_TIMEOUT : K_CONNECT;
                job->sys_errno = err;
                break;
            }
            pthread_mutex_lock(&lane->mu);
            lane->connections_made++;
            lane->fds[index] = fd;
            int closing = lane->closing;
            pthread_mutex_unlock(&lane->mu);
            if (closing) {
                job->kind = K_CLOSED;
                break;
            }
        }
        struct iovec iov[3] = {
            {lane->head, lane->head_len},
            {length, (size_t)n},
            {(void *)job->data, job->data_len},
        };
        int keep = 0;
        int wrote = write_all(fd, iov, 3, deadline);
        if (wrote > 0) {
            read_response(lane, fd, job, deadline);
            keep = 0; /* the body was not all written: the connection cannot be reused */
        }
        else if (wrote < 0) {
            job->kind = errno == ETIMEDOUT ? K_TIMEOUT : K_DISCONNECTED;
            job->sys_errno = errno;
            job->received = 0;
            if (job->kind == K_DISCONNECTED) {
                /* the server may have answered (early, e.g. 413) and closed: read what it said */
                keep = read_response(lane, fd, job, deadline);
                if (job->kind == K_DISCONNECTED || job->kind == K_TIMEOUT) {
                    job->kind = K_DISCONNECTED;
                    job->received = 0;
                }
                keep = 0;
            }
        }
        else {
            keep = read_response(lane, fd, job, deadline);
        }
        if (!keep) {
            set_fd(lane, index, -1);
        }
        else {
            *idle_since = now();
        }
        if (job->kind == K_DISCONNECTED && reused && !job->received && attempt == 0 && !is_closing(lane)) {
            job->sys_errno = 0;
            continue; /* the server closed the kept-alive connection as it was reused: once more, on a new one */
        }
        break;
    }
    if (job->kind != K_OK && job->kind != K_RESPONSE && is_closing(lane)) {
        job->kind = K_CLOSED;
    }
    job->elapsed = now() - started;
}

static void *
worker(void *raw)
{
    WorkerArg *arg = raw;
    Lane *lane = arg->lane;
    int index = arg->index;
    free(arg);
    double idle_since = now();
    pthread_mutex_lock(&lane->mu);
    for (;;) {
        while (lane->pending == NULL && !lane->closing && !lane->ahead[index]) {
            pthread_cond_wait(&lane->cv, &lane->mu);
        }
        if (lane->closing) {
            break;
        }
        if (lane->pending == NULL) { /* preconnect(): open the connection now, report nothing */
            lane->ahead[index] = 0;
            int have = lane->fds[index] >= 0;
            pthread_mutex_unlock(&lane->mu);
            if (!have) {
                int err = 0;
                int fd = connect_to(lane, index, now() + lane->timeout, &err); /* registered in fds[index] */
                if (fd >= 0) {
                    pthread_mutex_lock(&lane->mu);
                    lane->connections_made++;
                    pthread_mutex_unlock(&lane->mu);
                    idle_since = now();
                }
            }
            pthread_mutex_lock(&lane->mu);
            continue;
        }
        lane->ahead[index] = 0;
        Job *job = lane->pending;
        lane->pending = job->next;
        if (lane->pending == NULL) {
            lane->pending_tail = NULL;
        }
        lane->npending--;
        lane->nbusy++;
        pthread_mutex_unlock(&lane->mu);

        exchange(lane, index, &idle_since, job);

        pthread_mutex_lock(&lane->mu);
        lane->nbusy--;
        job->next = NULL;
        if (lane->done_tail) {
            lane->done_tail->next = job;
        }
        else {
            lane->done = job;
        }
        lane->done_tail = job;
        lane->ndone++;
        int tell = job->kind != K_OK || lane->wake;
        lane->wake = 0;
        int closing = lane->closing;
        pthread_mutex_unlock(&lane->mu);
        if (tell && !closing) {
            call_notify(lane);
        }
        pthread_mutex_lock(&lane->mu);
    }
    int fd = lane->fds[index];
    lane->fds[index] = -1;
    pthread_mutex_unlock(&lane->mu);
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ the Python type */

static int
Lane_init(Lane *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host",         "port",     "head",   "workers", "timeout", "keepalive",
                             "max_response", "compress", "notify", NULL};
    const char *host;
    int port, workers, compress;
    Py_buffer head;
    double timeout, keepalive;
    Py_ssize_t max_response;
    PyObject *notify;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "siy*$iddniO:Lane", kwlist, &host, &port, &head, &workers, &timeout,
                                     &keepalive, &max_response, &compress, &notify)) {
        return -1;
    }
    return lane_init_common(self, host, port, &head, workers, timeout, keepalive, max_response, compress, notify,
                            NULL);
}

static PyMethodDef Lane_methods[] = {
    {"submit", (PyCFunction)Lane_submit, METH_VARARGS, "submit(body, token) -> bool: send body on a free worker"},
    {"collect", (PyCFunction)Lane_collect, METH_NOARGS, "the outcomes since the last collect()"},
    {"wake_on_done", (PyCFunction)Lane_wake_on_done, METH_NOARGS,
     "call notify() after the next outcome; True when outcomes already wait to be collected"},
    {"preconnect", (PyCFunction)Lane_preconnect, METH_NOARGS, "each worker opens its connection now"},
    {"close", (PyCFunction)Lane_close, METH_NOARGS, "stop the workers; unfinished jobs are collected as CLOSED"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiotlp.transport._lane.Lane",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "OTLP/HTTP requests sent by native worker threads, without the GIL",
    .tp_new = Lane_new,
    .tp_init = (initproc)Lane_init,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_methods = Lane_methods,
    .tp_getset = Lane_getset,
};

static struct PyModuleDef lane_module = {
    PyModuleDef_HEAD_INIT, "aiotlp.transport._lane",
    "OTLP/HTTP requests sent by native threads, without the GIL", -1, NULL,
};

PyMODINIT_FUNC
PyInit__lane(void)
{
    if (PyType_Ready(&LaneType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&lane_module);
    if (module == NULL) {
        return NULL;
    }
    if (lane_module_add(module, &LaneType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
