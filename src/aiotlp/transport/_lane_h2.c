/* aiotlp.transport._lane_h2: OTLP/gRPC requests over cleartext HTTP/2 (h2c) sent by native threads, without the GIL.
 *
 * The gRPC twin of aiotlp.transport._lane (same Python API, same thread, job, close and fork machinery): a Lane
 * owns a few worker threads, each with one HTTP/2 connection of its own and one stream at a time on it, that send
 * ready request messages as unary gRPC calls and read the responses, with no Python code and no GIL.
 *
 *   Lane(host, port, head, *, workers, timeout, keepalive, max_response, compress, notify, decode)
 *       head: the request's HPACK header block (no dynamic-table use: static indexes and literals without
 *       indexing), sent as is on every stream (with the grpc-encoding of ``compress``: IDENTITY, or GZIP or
 *       DEFLATE, done to each message by its worker, sent with the Compressed-Flag set).
 *       decode(block) -> (status, grpc_content_type, grpc_status) or None: one response header block read by
 *       Python (a fresh HPACK decoder: this client announces HEADER_TABLE_SIZE 0, so every block the server sends
 *       is context-free); status -1 when the block has no :status, grpc_status -1 when it has no grpc-status;
 *       None when it does not decode. Called on a worker thread with the GIL, once per distinct block (a memo).
 *   submit(message, token) -> bool   the protobuf message; the lane adds the 5-byte gRPC prefix
 *   collect(), preconnect(), close(), room, in_flight, connections_made, closed: as _lane.Lane
 *   wake_on_done() -> bool           the next outcome calls notify() whatever it is; True when outcomes wait to be
 *                                    collected already (as _lane.Lane after its review fixes)
 *
 * Kinds: OK (:status 200, content-type application/grpc, grpc-status 0, and a response message that is empty or
 * an empty partial success, uncompressed), RESPONSE (any other complete response: ``head`` is the response's
 * header blocks in order, each as a 4-byte big-endian length and the block; ``body`` the DATA payload as received,
 * the length-prefixed message; ``status`` the first block's :status), CONNECT, DISCONNECTED (the connection
 * failed, the server reset the stream or refused it with GOAWAY; ``received`` says whether any frame of the
 * stream arrived), TIMEOUT, BAD_RESPONSE (not HTTP/2, a protocol error, over the limits), CLOSED.
 *
 * The wire: the client preface and SETTINGS (HEADER_TABLE_SIZE 0, ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 4 MiB) and a
 * connection WINDOW_UPDATE to 4 MiB; per call HEADERS (+CONTINUATION), DATA frames within the server's
 * MAX_FRAME_SIZE and send windows (the last with END_STREAM); the server's SETTINGS are acknowledged, PINGs
 * answered, WINDOW_UPDATEs sent for the DATA received. A connection is reused for the next call (stream 1, 3,
 * 5, ...) unless it is older than ``keepalive`` seconds idle, the server sent GOAWAY, or the call broke it.
 * A call the server did not take (GOAWAY below its stream, REFUSED_STREAM, or a reused connection that failed
 * before any frame of the stream arrived) is sent once more on a new connection.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
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
#define MAX_HEAD 65536 /* one response header block, at most */
#define MAX_BLOCKS 4   /* header blocks of one response (headers, trailers; a few 1xx at most) */
#define MEMO_SIZE 16   /* distinct response header blocks remembered, each at most MEMO_BYTES */
#define MEMO_BYTES 1024

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
    char *key; /* a response header block, malloc'd; NULL: a free entry */
    size_t len;
    int status, grpc_ct, grpc_status;
} Memo;

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
    PyObject *decode;
    Memo memo[MEMO_SIZE];
    int memo_next;
    pid_t pid;
    long connections_made;
    int compress; /* LANE_IDENTITY, LANE_GZIP or LANE_DEFLATE: what job_payload does to each body */
} Lane;

typedef struct {
    Lane *lane;
    int index;
} WorkerArg;

/* a message over 4 GiB - 1 does not fit gRPC's length prefix; close() and dealloc let go of decode and the memo */
#define LANE_MAX_BODY 0xffffffffULL
#define LANE_CLOSED_EXTRA(self) Py_CLEAR((self)->decode)
#define LANE_DEALLOC_EXTRA(self) lane_h2_dealloc_extra(self)
static void lane_h2_dealloc_extra(Lane *self);
#include "_lane_common.h"

static void
lane_h2_dealloc_extra(Lane *self)
{
    for (int i = 0; i < MEMO_SIZE; i++) {
        free(self->memo[i].key);
    }
    Py_XDECREF(self->decode);
}
/* ------------------------------------------------------------------------------------------------ the socket */

/* write everything, waiting for room: 0, or -1 with errno (ETIMEDOUT at the deadline) */
static int
send_all(int fd, struct iovec *iov, int n, double deadline)
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
                if (wait_fd(fd, POLLOUT, deadline) < 0) {
                    return -1;
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
            if (deadline == 0.0) {
                errno = EAGAIN; /* no waiting asked: nothing there now */
                return -1;
            }
            if (wait_fd(fd, POLLIN, deadline) < 0) {
                return -1;
            }
            continue;
        }
        return -1;
    }
}

/* ----------------------------------------------------------------------------------------------- the lane */

/* the response to the request just written: fills job; returns 1 when the connection may be kept */

/* ------------------------------------------------------------------------------------------------- HTTP/2 */

enum { F_DATA = 0, F_HEADERS, F_PRIORITY, F_RST_STREAM, F_SETTINGS, F_PUSH_PROMISE, F_PING, F_GOAWAY,
       F_WINDOW_UPDATE, F_CONTINUATION };
#define FL_END_STREAM 0x1
#define FL_ACK 0x1
#define FL_END_HEADERS 0x4
#define FL_PADDED 0x8
#define FL_PRIORITY 0x20

#define OUR_FRAME_SIZE 16384  /* the largest frame we take: SETTINGS_MAX_FRAME_SIZE's default */
#define OUR_WINDOW 4194304    /* our receive windows (connection and each stream) */
#define LAST_STREAM 0x7ffff000u /* a new connection past this stream id */
#define MAX_WINDOW 0x7fffffffLL
#define REFUSED_STREAM 7
#define BATCH_FRAMES 32       /* DATA frames handed to one sendmsg() */

/* what reading and processing frames says */
enum { P_OK = 0, P_EOF, P_ERRNO, P_PROTO };

typedef struct {
    int fd;                    /* -1: none */
    Buf in;                    /* received bytes; in.data[at .. len) not processed yet */
    size_t at;
    uint32_t next_stream;
    long long send_window;     /* the connection's, as the server grants it */
    long long peer_initial;    /* the server's SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t peer_max_frame;   /* the server's SETTINGS_MAX_FRAME_SIZE */
    long long recv_window;     /* the connection's, as we granted it */
    int got_settings;          /* the server's first SETTINGS arrived (the first frame must be one) */
    int goaway;                /* no new streams on it */
    uint32_t cont_stream;      /* a header block in progress: CONTINUATION expected on this stream (0: none) */
    long long budget;          /* bytes that may still be read for the current call */
    double idle_since;
} Conn;

typedef struct {
    uint32_t id;
    long long send_window;
    long long recv_window;
    Buf blocks;    /* complete header blocks, each a 4-byte big-endian length and the block */
    int nblocks;
    Buf partial;   /* the header block being received */
    int end_after; /* the HEADERS frame of that block had END_STREAM */
    int end_block; /* 1 + the index of the block that ended the stream (the trailers); 0: none */
    Buf data;      /* the DATA payload */
    int ended;     /* END_STREAM received */
    int reset;     /* RST_STREAM received */
    uint32_t reset_code;
    int refused;   /* GOAWAY with a last stream id below this stream */
    int any;       /* any frame of this stream arrived */
    int too_big;   /* the response is over the limits */
} Stream;

static void
put_frame_head(unsigned char *p, uint32_t len, int type, int flags, uint32_t stream)
{
    p[0] = (unsigned char)(len >> 16);
    p[1] = (unsigned char)(len >> 8);
    p[2] = (unsigned char)len;
    p[3] = (unsigned char)type;
    p[4] = (unsigned char)flags;
    p[5] = (unsigned char)((stream >> 24) & 0x7f);
    p[6] = (unsigned char)(stream >> 16);
    p[7] = (unsigned char)(stream >> 8);
    p[8] = (unsigned char)stream;
}

static uint32_t
get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static int
buf_add(Buf *b, const void *data, size_t len)
{
    if (len == 0) {
        return 0; /* b->data may be NULL: memcpy(NULL, p, 0) is undefined */
    }
    if (buf_reserve(b, len) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static int
add_frame(Buf *out, uint32_t len, int type, int flags, uint32_t stream, const void *payload)
{
    unsigned char h[9];
    put_frame_head(h, len, type, flags, stream);
    if (buf_add(out, h, 9) < 0 || (len > 0 && buf_add(out, payload, len) < 0)) {
        return -1;
    }
    return 0;
}

static int
add_window_update(Buf *out, uint32_t stream, uint32_t increment)
{
    unsigned char p[4] = {(unsigned char)(increment >> 24), (unsigned char)(increment >> 16),
                          (unsigned char)(increment >> 8), (unsigned char)increment};
    return add_frame(out, 4, F_WINDOW_UPDATE, 0, stream, p);
}

static int
commit_block(Stream *st)
{
    if (st->nblocks >= MAX_BLOCKS) {
        return -1;
    }
    unsigned char n[4] = {(unsigned char)(st->partial.len >> 24), (unsigned char)(st->partial.len >> 16),
                          (unsigned char)(st->partial.len >> 8), (unsigned char)st->partial.len};
    if (buf_add(&st->blocks, n, 4) < 0 || (st->partial.len && buf_add(&st->blocks, st->partial.data, st->partial.len) < 0)) {
        return -1;
    }
    st->nblocks++;
    st->partial.len = 0;
    if (st->end_after) {
        st->ended = 1;
        st->end_block = st->nblocks;
    }
    return 0;
}

/* the complete frames in conn->in: state changed, control frames answered (written before returning) */
static int
process(Lane *lane, Conn *conn, Stream *st, double deadline)
{
    Buf out = {NULL, 0, 0};
    int r = P_OK;
    while (conn->in.len - conn->at >= 9) {
        const unsigned char *h = (const unsigned char *)conn->in.data + conn->at;
        uint32_t len = ((uint32_t)h[0] << 16) | ((uint32_t)h[1] << 8) | h[2];
        int type = h[3], flags = h[4];
        uint32_t sid = get32(h + 5) & 0x7fffffffu;
        if (len > OUR_FRAME_SIZE) {
            r = P_PROTO; /* FRAME_SIZE_ERROR, or not HTTP/2 at all (an HTTP/1.x reply) */
            break;
        }
        if (conn->in.len - conn->at < 9 + (size_t)len) {
            break;
        }
        const unsigned char *p = h + 9;
        conn->at += 9 + (size_t)len;
        int ours = st != NULL && sid == st->id;
        if (!conn->got_settings) {
            if (type != F_SETTINGS || (flags & FL_ACK) || sid != 0) {
                r = P_PROTO; /* the server's preface is a SETTINGS frame */
                break;
            }
        }
        if (conn->cont_stream != 0 && (type != F_CONTINUATION || sid != conn->cont_stream)) {
            r = P_PROTO;
            break;
        }
        switch (type) {
        case F_DATA:
        case F_HEADERS: {
            if (sid == 0) {
                r = P_PROTO;
                break;
            }
            const unsigned char *payload = p;
            size_t n = len;
            if (flags & FL_PADDED) {
                if (n < 1 || (size_t)p[0] >= n) {
                    r = P_PROTO;
                    break;
                }
                n -= 1 + (size_t)p[0];
                payload++;
            }
            if (type == F_DATA) {
                conn->recv_window -= len;
                if (ours) {
                    st->any = 1;
                    st->recv_window -= len;
                    if (st->data.len + n > lane->max_response + 5) {
                        st->too_big = 1;
                    }
                    else if (n > 0 && buf_add(&st->data, payload, n) < 0) {
                        st->too_big = 1;
                    }
                    if (flags & FL_END_STREAM) {
                        st->ended = 1;
                    }
                    else if (st->recv_window < OUR_WINDOW / 2) {
                        if (add_window_update(&out, sid, (uint32_t)(OUR_WINDOW - st->recv_window)) < 0) {
                            r = P_PROTO;
                            break;
                        }
                        st->recv_window = OUR_WINDOW;
                    }
                }
                if (conn->recv_window < OUR_WINDOW / 2) {
                    if (add_window_update(&out, 0, (uint32_t)(OUR_WINDOW - conn->recv_window)) < 0) {
                        r = P_PROTO;
                        break;
                    }
                    conn->recv_window = OUR_WINDOW;
                }
                break;
            }
            if (flags & FL_PRIORITY) {
                if (n < 5) {
                    r = P_PROTO;
                    break;
                }
                n -= 5;
                payload += 5;
            }
            if (!(flags & FL_END_HEADERS)) {
                conn->cont_stream = sid;
            }
            if (ours) {
                st->any = 1;
                st->end_after = flags & FL_END_STREAM;
                if (st->partial.len + n > MAX_HEAD || buf_add(&st->partial, payload, n) < 0) {
                    r = P_PROTO;
                    break;
                }
                if ((flags & FL_END_HEADERS) && commit_block(st) < 0) {
                    r = P_PROTO;
                }
            }
            break;
        }
        case F_CONTINUATION:
            if (conn->cont_stream == 0 || conn->cont_stream != sid) { /* none in progress (sid 0 too) */
                r = P_PROTO;
                break;
            }
            if (flags & FL_END_HEADERS) {
                conn->cont_stream = 0;
            }
            if (ours) {
                if (st->partial.len + len > MAX_HEAD || buf_add(&st->partial, p, len) < 0) {
                    r = P_PROTO;
                    break;
                }
                if ((flags & FL_END_HEADERS) && commit_block(st) < 0) {
                    r = P_PROTO;
                }
            }
            break;
        case F_RST_STREAM:
            if (len != 4 || sid == 0) {
                r = P_PROTO;
                break;
            }
            if (ours) {
                st->any = 1;
                st->reset = 1;
                st->reset_code = get32(p);
            }
            break;
        case F_SETTINGS:
            if (sid != 0 || ((flags & FL_ACK) && len != 0) || len % 6 != 0) {
                r = P_PROTO;
                break;
            }
            if (flags & FL_ACK) {
                break;
            }
            for (uint32_t i = 0; i < len; i += 6) {
                unsigned id = ((unsigned)p[i] << 8) | p[i + 1];
                uint32_t value = get32(p + i + 2);
                if (id == 4) { /* INITIAL_WINDOW_SIZE: applies to the open stream's send window too */
                    if (value > MAX_WINDOW) {
                        r = P_PROTO;
                        break;
                    }
                    if (st != NULL) {
                        st->send_window += (long long)value - conn->peer_initial;
                        if (st->send_window > MAX_WINDOW) {
                            r = P_PROTO; /* FLOW_CONTROL_ERROR */
                            break;
                        }
                    }
                    conn->peer_initial = value;
                }
                else if (id == 5) { /* MAX_FRAME_SIZE */
                    if (value < 16384 || value > 16777215) {
                        r = P_PROTO;
                        break;
                    }
                    conn->peer_max_frame = value;
                }
            }
            conn->got_settings = 1;
            if (r == P_OK && add_frame(&out, 0, F_SETTINGS, FL_ACK, 0, NULL) < 0) {
                r = P_PROTO;
            }
            break;
        case F_PUSH_PROMISE:
            r = P_PROTO; /* refused in our SETTINGS (ENABLE_PUSH 0): a connection error */
            break;
        case F_PING:
            if (len != 8 || sid != 0) {
                r = P_PROTO;
                break;
            }
            if (!(flags & FL_ACK) && add_frame(&out, 8, F_PING, FL_ACK, 0, p) < 0) {
                r = P_PROTO;
            }
            break;
        case F_GOAWAY:
            if (len < 8 || sid != 0) {
                r = P_PROTO;
                break;
            }
            conn->goaway = 1;
            if (st != NULL && st->id > (get32(p) & 0x7fffffffu)) {
                st->refused = 1; /* the server did not take the stream: it may be sent again */
            }
            break;
        case F_WINDOW_UPDATE: {
            if (len != 4) {
                r = P_PROTO;
                break;
            }
            uint32_t increment = get32(p) & 0x7fffffffu;
            if (sid == 0) {
                if (increment == 0 || conn->send_window + increment > MAX_WINDOW) {
                    r = P_PROTO;
                    break;
                }
                conn->send_window += increment;
            }
            else if (ours) {
                if (increment == 0 || st->send_window + increment > MAX_WINDOW) {
                    r = P_PROTO; /* PROTOCOL_ERROR / FLOW_CONTROL_ERROR on the stream: the connection is dropped */
                    break;
                }
                st->send_window += increment;
            }
            break;
        }
        default: /* PRIORITY, and frame types this client does not know: ignored */
            break;
        }
        if (r != P_OK) {
            break;
        }
    }
    if (out.len > 0 && r == P_OK) {
        struct iovec iov = {out.data, out.len};
        if (send_all(conn->fd, &iov, 1, deadline) < 0) {
            r = P_ERRNO;
        }
    }
    free(out.data);
    return r;
}

/* read once (waiting up to the deadline; not at all with wait 0) and process what came: P_* (errno set for
 * P_ERRNO: ETIMEDOUT when nothing came in time) */
static int
pump(Lane *lane, Conn *conn, Stream *st, double deadline, int wait)
{
    if (conn->at > 0) {
        memmove(conn->in.data, conn->in.data + conn->at, conn->in.len - conn->at);
        conn->in.len -= conn->at;
        conn->at = 0;
    }
    ssize_t got = read_some(conn->fd, &conn->in, (size_t)OUR_FRAME_SIZE + 9 + 65536, wait ? deadline : 0.0);
    if (got < 0) {
        return errno == EMSGSIZE ? P_PROTO : P_ERRNO;
    }
    if (got == 0) {
        return P_EOF;
    }
#ifdef TCP_QUICKACK
    {
        /* re-armed after every read (it is not sticky), as the h2 client does: a server that leaves Nagle on
         * (rotel) holds the rest of its answer until our ACK of its first segment, which is then never delayed */
        int one = 1;
        setsockopt(conn->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
#endif
    conn->budget -= got;
    if (conn->budget < 0) {
        return P_PROTO; /* far more than any response: a hostile or broken server */
    }
    return process(lane, conn, st, deadline);
}

static void
drop_conn(Lane *lane, int index, Conn *conn)
{
    if (conn->fd >= 0) {
        set_fd(lane, index, -1); /* closes it */
    }
    conn->fd = -1;
    conn->in.len = 0;
    conn->at = 0;
}

/* a new connection, with the client preface written: 0, or -1 with *err */
static int
open_conn(Lane *lane, int index, Conn *conn, double deadline, int *err)
{
    int fd = connect_to(lane, index, deadline, err); /* registered in fds[index] */
    if (fd < 0) {
        return -1;
    }
    pthread_mutex_lock(&lane->mu);
    lane->connections_made++;
    lane->fds[index] = fd;
    int closing = lane->closing;
    pthread_mutex_unlock(&lane->mu);
    conn->fd = fd;
    conn->in.len = 0;
    conn->at = 0;
    conn->next_stream = 1;
    conn->send_window = 65535;
    conn->peer_initial = 65535;
    conn->peer_max_frame = 16384;
    conn->recv_window = OUR_WINDOW;
    conn->got_settings = 0;
    conn->goaway = 0;
    conn->cont_stream = 0;
    conn->idle_since = now();
    if (closing) {
        *err = ECANCELED;
        return -1;
    }
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    unsigned char settings[9 + 18 + 9 + 4];
    put_frame_head(settings, 18, F_SETTINGS, 0, 0);
    const unsigned char values[18] = {
        0, 1, 0, 0, 0, 0, /* HEADER_TABLE_SIZE 0: the server's header blocks use no dynamic table */
        0, 2, 0, 0, 0, 0, /* ENABLE_PUSH 0 */
        0, 4, (OUR_WINDOW >> 24) & 0xff, (OUR_WINDOW >> 16) & 0xff, (OUR_WINDOW >> 8) & 0xff, OUR_WINDOW & 0xff,
    };
    memcpy(settings + 9, values, 18);
    put_frame_head(settings + 27, 4, F_WINDOW_UPDATE, 0, 0);
    uint32_t increment = OUR_WINDOW - 65535;
    settings[36] = (unsigned char)(increment >> 24);
    settings[37] = (unsigned char)(increment >> 16);
    settings[38] = (unsigned char)(increment >> 8);
    settings[39] = (unsigned char)increment;
    struct iovec iov[2] = {{(void *)preface, sizeof preface - 1}, {settings, sizeof settings}};
    if (send_all(fd, iov, 2, deadline) < 0) {
        *err = errno;
        drop_conn(lane, index, conn);
        return -1;
    }
    return 0;
}

/* what the server sent while the connection was idle (SETTINGS, PING, GOAWAY, a close): 0 when it can take the
 * next stream */
static int
settle_idle(Lane *lane, int index, Conn *conn, double deadline)
{
    conn->budget = 1 << 20; /* for the whole settling: a server that keeps sending is dropped */
    for (;;) {
        int r = pump(lane, conn, NULL, deadline, 0); /* the call's deadline, for the acks only: reads do not wait */
        if (r == P_ERRNO && errno == EAGAIN) {
            break; /* nothing more there */
        }
        if (r != P_OK) {
            drop_conn(lane, index, conn);
            return -1;
        }
    }
    if (conn->goaway || conn->cont_stream != 0) {
        drop_conn(lane, index, conn);
        return -1;
    }
    return 0;
}

static int
failed(Buf *b)
{
    int saved = errno;
    free(b->data);
    errno = saved;
    return P_ERRNO;
}

/* one call on the connection: HEADERS, the message's DATA frames within the windows, then the response until the
 * stream ends (or is reset or refused). P_OK once the stream is over; *sent_all says whether END_STREAM was sent */
static int
run_stream(Lane *lane, Conn *conn, Stream *st, Job *job, double deadline, int *sent_all)
{
    const char *message = job->data;
    size_t message_len = job->data_len;
    unsigned char prefix[5] = {lane->compress != LANE_IDENTITY, /* the Compressed-Flag (grpc-encoding: the head's) */
                               (unsigned char)(message_len >> 24), (unsigned char)(message_len >> 16),
                               (unsigned char)(message_len >> 8), (unsigned char)message_len};
    size_t total = 5 + message_len, sent = 0;
    *sent_all = 0;
    /* the server's SETTINGS first (a new connection): its windows and frame size, as the h2 client waits for them */
    while (!conn->got_settings) {
        int r = pump(lane, conn, st, deadline, 1);
        if (r != P_OK) {
            return r;
        }
    }
    /* the HEADERS frame (and CONTINUATION frames for a block over the server's frame size) */
    Buf headers = {NULL, 0, 0};
    size_t at = 0;
    do {
        size_t n = lane->head_len - at;
        if (n > conn->peer_max_frame) {
            n = conn->peer_max_frame;
        }
        int last = at + n == lane->head_len;
        if (add_frame(&headers, (uint32_t)n, at == 0 ? F_HEADERS : F_CONTINUATION, last ? FL_END_HEADERS : 0, st->id,
                      lane->head + at) < 0) {
            free(headers.data);
            errno = ENOMEM;
            return P_ERRNO;
        }
        at += n;
    } while (at < lane->head_len);
    int headers_sent = 0;
    while (sent < total) {
        if (st->ended || st->reset || st->refused) {
            free(headers.data);
            return P_OK; /* the server answered before the whole message was sent */
        }
        long long room = conn->send_window < st->send_window ? conn->send_window : st->send_window;
        if (room <= 0) {
            if (!headers_sent) {
                struct iovec iov = {headers.data, headers.len};
                if (send_all(conn->fd, &iov, 1, deadline) < 0) {
                    return failed(&headers);
                }
                headers_sent = 1;
            }
            int r = pump(lane, conn, st, deadline, 1);
            if (r != P_OK) {
                free(headers.data);
                return r;
            }
            continue;
        }
        /* up to BATCH_FRAMES DATA frames in one sendmsg(), after the HEADERS the first time */
        unsigned char heads[BATCH_FRAMES][9];
        struct iovec iov[1 + 3 * BATCH_FRAMES];
        int n = 0, frames = 0;
        if (!headers_sent) {
            iov[n++] = (struct iovec){headers.data, headers.len};
            headers_sent = 1;
        }
        while (frames < BATCH_FRAMES && sent < total && room > 0) {
            size_t chunk = total - sent;
            if (chunk > conn->peer_max_frame) {
                chunk = conn->peer_max_frame;
            }
            if ((long long)chunk > room) {
                chunk = (size_t)room;
            }
            int last = sent + chunk == total;
            put_frame_head(heads[frames], (uint32_t)chunk, F_DATA, last ? FL_END_STREAM : 0, st->id);
            iov[n++] = (struct iovec){heads[frames], 9};
            size_t from = sent, to = sent + chunk;
            if (from < 5) {
                size_t end = to < 5 ? to : 5;
                iov[n++] = (struct iovec){prefix + from, end - from};
                from = end;
            }
            if (to > from) {
                iov[n++] = (struct iovec){(void *)(message + (from - 5)), to - from};
            }
            sent = to;
            room -= (long long)chunk;
            conn->send_window -= (long long)chunk;
            st->send_window -= (long long)chunk;
            frames++;
        }
        if (send_all(conn->fd, iov, n, deadline) < 0) {
            return failed(&headers);
        }
    }
    free(headers.data);
    *sent_all = 1;
    while (!(st->ended || st->reset || st->refused)) {
        int r = pump(lane, conn, st, deadline, 1);
        if (r != P_OK) {
            return r;
        }
    }
    return P_OK;
}

/* ----------------------------------------------------------------------------------- response header blocks */

/* a block's (status, grpc content-type, grpc-status): from the memo, else from Python's decode(); -1 when it
 * does not decode */
static int
read_block(Lane *lane, const char *block, size_t len, int *status, int *grpc_ct, int *grpc_status)
{
    pthread_mutex_lock(&lane->mu);
    for (int i = 0; i < MEMO_SIZE; i++) {
        Memo *m = &lane->memo[i];
        if (m->key != NULL && m->len == len && memcmp(m->key, block, len) == 0) {
            *status = m->status;
            *grpc_ct = m->grpc_ct;
            *grpc_status = m->grpc_status;
            pthread_mutex_unlock(&lane->mu);
            return 0;
        }
    }
    pthread_mutex_unlock(&lane->mu);
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_IsFinalizing()) {
        return -1;
    }
#else
    if (_Py_IsFinalizing()) {
        return -1;
    }
#endif
    int ok = -1;
    PyGILState_STATE state = PyGILState_Ensure();
    PyObject *decode = lane->decode;
    if (decode != NULL) {
        Py_INCREF(decode);
        PyObject *result = PyObject_CallFunction(decode, "y#", block, (Py_ssize_t)len);
        if (result == NULL) {
            PyErr_WriteUnraisable(decode);
        }
        else if (result != Py_None) {
            if (PyArg_ParseTuple(result, "iii", status, grpc_ct, grpc_status)) {
                ok = 0;
            }
            else {
                PyErr_WriteUnraisable(decode);
            }
        }
        Py_XDECREF(result);
        Py_DECREF(decode);
    }
    PyGILState_Release(state);
    if (ok == 0 && len <= MEMO_BYTES) {
        char *key = malloc(len ? len : 1);
        if (key != NULL) {
            memcpy(key, block, len);
            pthread_mutex_lock(&lane->mu);
            Memo *m = &lane->memo[lane->memo_next];
            lane->memo_next = (lane->memo_next + 1) % MEMO_SIZE;
            free(m->key);
            m->key = key;
            m->len = len;
            m->status = *status;
            m->grpc_ct = *grpc_ct;
            m->grpc_status = *grpc_status;
            pthread_mutex_unlock(&lane->mu);
        }
    }
    return ok;
}

/* the stream ended: OK for the plain success, else RESPONSE with the blocks and the payload (BAD_RESPONSE when a
 * block does not decode or the response is over the limits) */
static void
finish(Lane *lane, Stream *st, Job *job)
{
    job->received = 1;
    if (st->too_big) {
        job->kind = K_BAD_RESPONSE;
        return;
    }
    int status = -1, grpc_ct = 0, grpc_status = -1;
    size_t at = 0;
    for (int i = 0; i < st->nblocks; i++) {
        const unsigned char *p = (const unsigned char *)st->blocks.data + at;
        size_t len = get32(p);
        int s, ct, gs;
        if (read_block(lane, (const char *)p + 4, len, &s, &ct, &gs) < 0) {
            job->kind = K_BAD_RESPONSE;
            return;
        }
        if (i == 0) {
            status = s;
            grpc_ct = ct;
        }
        if (i + 1 == st->end_block) {
            grpc_status = gs; /* gRPC reads grpc-status in the trailers (or a trailers-only response) only */
        }
        at += 4 + len;
    }
    const unsigned char *d = (const unsigned char *)st->data.data;
    size_t n = st->data.len;
    int empty = n == 0 || (n == 5 && memcmp(d, "\0\0\0\0\0", 5) == 0) ||
                (n == 7 && memcmp(d, "\0\0\0\0\x02\x0a\x00", 7) == 0);
    job->status = status;
    if (status == 200 && grpc_ct && grpc_status == 0 && empty) {
        job->kind = K_OK;
        return;
    }
    job->kind = K_RESPONSE;
    job->resp_head = st->blocks.data;
    job->resp_head_len = st->blocks.len;
    st->blocks.data = NULL;
    job->resp_body = st->data.data;
    job->resp_body_len = st->data.len;
    st->data.data = NULL;
}

static void
stream_free(Stream *st)
{
    free(st->blocks.data);
    free(st->partial.data);
    free(st->data.data);
}

/* one request: connect (or reuse), the call, its outcome; fills job */
static void
exchange(Lane *lane, int index, Conn *conn, Job *job)
{
    double started = now();
    double deadline = started + lane->timeout;
    if (job_payload(lane, job) < 0) { /* not sent: the exporter sends it (and compresses it) itself */
        job->kind = K_CONNECT;
        job->sys_errno = ENOMEM;
        job->elapsed = now() - started;
        return;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = conn->fd >= 0;
        if (reused && (started - conn->idle_since > lane->keepalive || conn->goaway ||
                       conn->next_stream > LAST_STREAM || settle_idle(lane, index, conn, deadline) < 0)) {
            drop_conn(lane, index, conn); /* too old, going away, out of stream ids, or closed by the server */
            reused = 0;
        }
        if (conn->fd < 0) {
            int err = 0;
            if (is_closing(lane)) {
                job->kind = K_CLOSED;
                break;
            }
            if (open_conn(lane, index, conn, deadline, &err) < 0) {
                job->kind = err == ETIMEDOUT ? K_TIMEOUT : err == ECANCELED ? K_CLOSED : K_CONNECT;
                job->sys_errno = err;
                break;
            }
        }
        Stream st;
        memset(&st, 0, sizeof st);
        st.id = conn->next_stream;
        conn->next_stream += 2;
        st.send_window = conn->peer_initial;
        st.recv_window = OUR_WINDOW;
        const long long extra = MAX_BLOCKS * (long long)MAX_HEAD + (1LL << 20);
        conn->budget = lane->max_response > (size_t)(LLONG_MAX - extra) ? LLONG_MAX
                                                                          : (long long)lane->max_response + extra;
        int sent_all = 0;
        int r = run_stream(lane, conn, &st, job, deadline, &sent_all);
        int keep = 0, again = 0;
        if (r == P_ERRNO && errno != ETIMEDOUT && !(st.ended || st.reset || st.refused)) {
            /* the write failed (the server closed): it may have answered first */
            int saved = errno;
            while (!(st.ended || st.reset || st.refused) && (r = pump(lane, conn, &st, deadline, 1)) == P_OK) {
            }
            if (st.ended || st.reset || st.refused) {
                r = P_OK;
            }
            else {
                r = P_ERRNO;
                errno = saved;
            }
        }
        if (r == P_OK && st.ended && (!st.reset || st.reset_code == 0)) {
            finish(lane, &st, job);
            keep = sent_all && !conn->goaway && job->kind != K_BAD_RESPONSE;
        }
        else if (r == P_OK && st.reset) {
            job->kind = K_DISCONNECTED;
            job->received = 1;
            keep = sent_all && !conn->goaway;
            again = st.reset_code == REFUSED_STREAM;
        }
        else if (r == P_OK) { /* refused by GOAWAY */
            job->kind = K_DISCONNECTED;
            job->received = 0;
            again = 1;
        }
        else if (r == P_PROTO) {
            job->kind = K_BAD_RESPONSE;
            job->received = 1;
        }
        else {
            job->kind = r == P_ERRNO && errno == ETIMEDOUT ? K_TIMEOUT : K_DISCONNECTED;
            job->sys_errno = r == P_ERRNO ? errno : 0;
            job->received = st.any;
            again = reused && !st.any && job->kind == K_DISCONNECTED;
        }
        stream_free(&st);
        if (keep) {
            conn->idle_since = now();
        }
        else {
            drop_conn(lane, index, conn);
        }
        if (again && attempt == 0 && !is_closing(lane) && now() < deadline) {
            job->sys_errno = 0;
            job->received = 0;
            job->status = 0;
            continue; /* the server did not take the call: once more, on a new connection */
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
    Conn conn;
    memset(&conn, 0, sizeof conn);
    conn.fd = -1;
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
            pthread_mutex_unlock(&lane->mu);
            if (conn.fd < 0) {
                int err = 0;
                open_conn(lane, index, &conn, now() + lane->timeout, &err); /* a failure: seen at the first call */
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

        exchange(lane, index, &conn, job);

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
    free(conn.in.data);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ the Python type */

static int
Lane_init(Lane *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host",         "port",     "head",   "workers", "timeout", "keepalive",
                             "max_response", "compress", "notify", "decode",  NULL};
    const char *host;
    int port, workers, compress;
    Py_buffer head;
    double timeout, keepalive;
    Py_ssize_t max_response;
    PyObject *notify, *decode;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "siy*$iddniOO:Lane", kwlist, &host, &port, &head, &workers,
                                     &timeout, &keepalive, &max_response, &compress, &notify, &decode)) {
        return -1;
    }
    const char *wrong = head.len == 0                ? "head must be a non-empty header block"
                        : !PyCallable_Check(decode) ? "decode must be callable"
                                                    : NULL;
    if (lane_init_common(self, host, port, &head, workers, timeout, keepalive, max_response, compress, notify, wrong) <
        0) {
        return -1;
    }
    Py_INCREF(decode);
    self->decode = decode;
    return 0;
}

static PyMethodDef Lane_methods[] = {
    {"submit", (PyCFunction)Lane_submit, METH_VARARGS, "submit(message, token) -> bool: send message on a free worker"},
    {"collect", (PyCFunction)Lane_collect, METH_NOARGS, "the outcomes since the last collect()"},
    {"wake_on_done", (PyCFunction)Lane_wake_on_done, METH_NOARGS,
     "call notify() after the next outcome; True when outcomes already wait to be collected"},
    {"preconnect", (PyCFunction)Lane_preconnect, METH_NOARGS, "each worker opens its connection now"},
    {"close", (PyCFunction)Lane_close, METH_NOARGS, "stop the workers; unfinished jobs are collected as CLOSED"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiotlp.transport._lane_h2.Lane",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "OTLP/gRPC (h2c) calls made by native worker threads, without the GIL",
    .tp_new = Lane_new,
    .tp_init = (initproc)Lane_init,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_methods = Lane_methods,
    .tp_getset = Lane_getset,
};

static struct PyModuleDef lane_module = {
    PyModuleDef_HEAD_INIT, "aiotlp.transport._lane_h2",
    "OTLP/gRPC (h2c) calls made by native threads, without the GIL", -1, NULL,
};

PyMODINIT_FUNC
PyInit__lane_h2(void)
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
