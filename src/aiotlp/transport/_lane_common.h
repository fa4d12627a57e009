/* aiotlp.transport._lane_common.h: what the two native lanes share, word for word (their threads, jobs, the
 * connection's opening, the notify call, and the Python methods that do not depend on the protocol).
 *
 * Included by _lane.c (OTLP/HTTP over HTTP/1.1) and _lane_h2.c (OTLP/gRPC over HTTP/2) right after their own Job,
 * Lane and WorkerArg types, which keep the same field names for what is here; each file then writes its worker
 * (the exchange of its protocol), Lane_init, Lane_submit, Lane_close and Lane_dealloc. Every function is static:
 * each extension module gets its own copy, compiled against its own types.
 */
#ifndef AIOTLP_LANE_COMMON_H
#define AIOTLP_LANE_COMMON_H

/* What a lane adds (define before including): the largest body it takes, what close() and dealloc release besides */
#ifndef LANE_MAX_BODY
#define LANE_MAX_BODY ((unsigned long long)PY_SSIZE_T_MAX)
#endif
#ifndef LANE_CLOSED_EXTRA
#define LANE_CLOSED_EXTRA(self) ((void)(self))
#endif
#ifndef LANE_DEALLOC_EXTRA
#define LANE_DEALLOC_EXTRA(self) ((void)(self))
#endif

static void *worker(void *raw);

/* What a lane does to each body before it sends it (Lane's ``compress``): nothing, gzip, or deflate (a zlib stream,
 * what ``deflate`` means in HTTP and in gRPC), as aiotlp.transport._compression does (level 6). zlib is there when
 * the extension was built with it (AIOTLP_LANE_ZLIB, setup.py); the module's ZLIB constant says so. */
enum { LANE_IDENTITY = 0, LANE_GZIP = 1, LANE_DEFLATE = 2 };
#include <limits.h>
#ifdef AIOTLP_LANE_ZLIB
#include <zlib.h>
#define LANE_HAS_ZLIB 1
#else
#define LANE_HAS_ZLIB 0
#endif

/* --------------------------------------------------------------------------------------------- time, buffers */

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
remaining_ms(double deadline)
{
    double left = deadline - now();
    if (left <= 0) {
        return 0;
    }
    double ms = left * 1000.0 + 1.0;
    return ms > 2000000000.0 ? 2000000000 : (int)ms;
}

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int
buf_reserve(Buf *b, size_t extra)
{
    if (b->len + extra <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* 0 when ready, -1 with errno (ETIMEDOUT at the deadline) */
static int
wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, ms);
        if (r > 0) {
            return 0; /* readable, writable, or an error/hang-up the next call reports */
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
    }
}

/* ------------------------------------------------------------------------------------- the socket, the lane */

static void
set_fd(Lane *lane, int index, int fd)
{
    pthread_mutex_lock(&lane->mu);
    int old = lane->fds[index];
    lane->fds[index] = fd;
    if (old >= 0 && old != fd) {
        close(old);
    }
    pthread_mutex_unlock(&lane->mu);
}

static int
is_closing(Lane *lane)
{
    pthread_mutex_lock(&lane->mu);
    int closing = lane->closing;
    pthread_mutex_unlock(&lane->mu);
    return closing;
}

static int
connect_to(Lane *lane, int index, double deadline, int *err)
{
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(lane->host, lane->port, &hints, &found);
    if (rc != 0) {
        *err = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
        return -1;
    }
    int fd = -1;
    *err = ECONNREFUSED;
    for (struct addrinfo *a = found; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            *err = errno;
            continue;
        }
        set_fd(lane, index, fd); /* close() can shutdown() it: that aborts the connect */
        if (is_closing(lane)) {
            *err = ECANCELED;
            set_fd(lane, index, -1);
            fd = -1;
            break;
        }
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            if (wait_fd(fd, POLLOUT, deadline) == 0) {
                int soerr = 0;
                socklen_t len = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
                if (soerr == 0) {
                    r = 0;
                }
                else {
                    errno = soerr;
                }
            }
        }
        if (r == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            break;
        }
        *err = errno;
        set_fd(lane, index, -1); /* closes it */
        fd = -1;
    }
    freeaddrinfo(found);
    return fd;
}

static void
call_notify(Lane *lane)
{
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_IsFinalizing()) {
        return;
    }
#else
    if (_Py_IsFinalizing()) {
        return;
    }
#endif
    PyGILState_STATE state = PyGILState_Ensure();
    PyObject *notify = lane->notify;
    if (notify != NULL) {
        Py_INCREF(notify);
        PyObject *result = PyObject_CallNoArgs(notify);
        if (result == NULL) {
            PyErr_WriteUnraisable(notify);
        }
        Py_XDECREF(result);
        Py_DECREF(notify);
    }
    PyGILState_Release(state);
}

/* ------------------------------------------------------------------------------------------ the Python type */

static int
lane_foreign(Lane *self)
{
    if (self->pid != getpid()) {
        PyErr_SetString(PyExc_RuntimeError, "this lane belongs to the parent process (forked since)");
        return 1;
    }
    return 0;
}

static PyObject *
Lane_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Lane *self = (Lane *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    for (int i = 0; i < MAX_WORKERS; i++) {
        self->fds[i] = -1;
    }
    self->pid = getpid();
    return (PyObject *)self;
}

static int
start_workers(Lane *self)
{
    /* the workers use the Lane's memory until close() joins them: the lane keeps itself alive until then */
    for (int i = 0; i < self->nworkers; i++) {
        WorkerArg *arg = malloc(sizeof *arg);
        if (arg == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        arg->lane = self;
        arg->index = i;
        /* the workers take no signals: the process's go to Python's main thread */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&self->threads[i], NULL, worker, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            free(arg);
            if (self->started > 0) {
                pthread_mutex_lock(&self->mu);
                self->nworkers = self->started; /* run with the threads there are */
                pthread_mutex_unlock(&self->mu);
                return 0;
            }
            errno = rc;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (self->started++ == 0) {
            Py_INCREF(self); /* the workers' hold, dropped by close() once it joined them */
        }
    }
    return 0;
}

static PyObject *
job_outcome(Job *job)
{
    PyObject *head = Py_None, *body = Py_None;
    Py_INCREF(head);
    Py_INCREF(body);
    if (job->resp_head != NULL) {
        Py_DECREF(head);
        head = PyBytes_FromStringAndSize(job->resp_head, (Py_ssize_t)job->resp_head_len);
    }
    if (job->kind == K_RESPONSE) {
        Py_DECREF(body);
        body = PyBytes_FromStringAndSize(job->resp_body ? job->resp_body : "", (Py_ssize_t)job->resp_body_len);
    }
    if (head == NULL || body == NULL) {
        Py_XDECREF(head);
        Py_XDECREF(body);
        return NULL;
    }
    return Py_BuildValue("(OiiNNidi)", job->token, job->kind, job->status, head, body, job->sys_errno,
                         job->elapsed, job->received);
}

/* The bytes a job sends, set once before its first attempt: its body as submitted, or, on a lane that compresses,
 * the body compressed into job->packed (malloc'd; freed with the job). Runs without the GIL: the body is an
 * immutable bytes object the job owns. 0, or -1 (out of memory, or a body too large for one zlib call). */
static int
job_payload(const Lane *lane, Job *job)
{
    job->data = PyBytes_AS_STRING(job->body);
    job->data_len = (size_t)PyBytes_GET_SIZE(job->body);
    if (lane->compress == LANE_IDENTITY) {
        return 0;
    }
#if LANE_HAS_ZLIB
    if (job->data_len > (size_t)UINT_MAX / 2) {
        return -1;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int bits = lane->compress == LANE_GZIP ? 16 + MAX_WBITS : MAX_WBITS;
    if (deflateInit2(&zs, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return -1;
    }
    uLong bound = deflateBound(&zs, (uLong)job->data_len);
    char *out = malloc(bound ? bound : 1);
    if (out == NULL) {
        deflateEnd(&zs);
        return -1;
    }
    zs.next_in = (Bytef *)job->data;
    zs.avail_in = (uInt)job->data_len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    size_t n = (size_t)zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(out);
        return -1;
    }
    job->packed = out;
    job->data = out;
    job->data_len = n;
    return 0;
#else
    return -1; /* (not reached: such a lane cannot be made) */
#endif
}

static void
job_free(Job *job)
{
    free(job->packed);
    Py_XDECREF(job->body);
    Py_XDECREF(job->token);
    free(job->resp_head);
    free(job->resp_body);
    free(job);
}

static PyObject *
Lane_collect(Lane *self, PyObject *unused)
{
    if (lane_foreign(self)) {
        return NULL;
    }
    pthread_mutex_lock(&self->mu);
    Job *jobs = self->done;
    Py_ssize_t n = self->ndone;
    self->done = self->done_tail = NULL;
    self->ndone = 0;
    pthread_mutex_unlock(&self->mu);
    /* every outcome made first, the jobs freed only then: a failure puts the whole chain back, nothing lost */
    PyObject *list = PyList_New(n);
    if (list != NULL) {
        Py_ssize_t i = 0;
        for (Job *j = jobs; j != NULL && i < n; j = j->next, i++) {
            PyObject *item = job_outcome(j);
            if (item == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, i, item);
        }
    }
    if (list == NULL) {
        goto put_back;
    }
    while (jobs != NULL) {
        Job *next = jobs->next;
        job_free(jobs);
        jobs = next;
    }
    return list;
put_back:
    if (jobs != NULL) {
        Job *last = jobs;
        int n = 1;
        while (last->next != NULL) {
            last = last->next;
            n++;
        }
        pthread_mutex_lock(&self->mu);
        last->next = self->done;
        self->done = jobs;
        if (self->done_tail == NULL) {
            self->done_tail = last;
        }
        self->ndone += n;
        pthread_mutex_unlock(&self->mu);
    }
    return NULL;
}

static PyObject *
Lane_preconnect(Lane *self, PyObject *unused)
{
    if (self->pid != getpid()) {
        Py_RETURN_NONE;
    }
    pthread_mutex_lock(&self->mu);
    int closing = self->closing;
    pthread_mutex_unlock(&self->mu);
    if (closing) {
        Py_RETURN_NONE;
    }
    if (self->started == 0 && start_workers(self) < 0) {
        return NULL;
    }
    pthread_mutex_lock(&self->mu);
    for (int i = 0; i < self->nworkers; i++) {
        self->ahead[i] = 1;
    }
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_NONE;
}

static PyObject *
Lane_wake_on_done(Lane *self, PyObject *unused)
{
    if (self->pid != getpid()) {
        Py_RETURN_FALSE;
    }
    pthread_mutex_lock(&self->mu);
    self->wake = 1;
    int waiting = self->ndone > 0;
    pthread_mutex_unlock(&self->mu);
    /* True: outcomes wait to be collected already (they ended before this asked: collect them now) */
    return PyBool_FromLong(waiting);
}

static PyObject *
Lane_get_room(Lane *self, void *closure)
{
    if (self->pid != getpid()) {
        return PyLong_FromLong(0); /* a forked child: the parent's mutex may be held for ever here */
    }
    pthread_mutex_lock(&self->mu);
    int room = self->closing ? 0 : self->nworkers - self->npending - self->nbusy;
    pthread_mutex_unlock(&self->mu);
    return PyLong_FromLong(room);
}

static PyObject *
Lane_get_in_flight(Lane *self, void *closure)
{
    if (self->pid != getpid()) {
        return PyLong_FromLong(0);
    }
    pthread_mutex_lock(&self->mu);
    int n = self->npending + self->nbusy + self->ndone;
    pthread_mutex_unlock(&self->mu);
    return PyLong_FromLong(n);
}

static PyObject *
Lane_get_connections_made(Lane *self, void *closure)
{
    if (self->pid != getpid()) {
        return PyLong_FromLong(0);
    }
    pthread_mutex_lock(&self->mu);
    long n = self->connections_made;
    pthread_mutex_unlock(&self->mu);
    return PyLong_FromLong(n);
}

static PyObject *
Lane_get_closed(Lane *self, void *closure)
{
    if (self->pid != getpid()) {
        Py_RETURN_TRUE;
    }
    pthread_mutex_lock(&self->mu);
    int closed = self->closing;
    pthread_mutex_unlock(&self->mu);
    return PyBool_FromLong(closed);
}

static PyObject *
Lane_submit(Lane *self, PyObject *args)
{
    PyObject *body, *token;
    if (!PyArg_ParseTuple(args, "SO:submit", &body, &token)) {
        return NULL;
    }
    if (!PyBytes_CheckExact(body)) {
        PyErr_SetString(PyExc_TypeError, "submit() takes the body as bytes");
        return NULL;
    }
    if (self->pid != getpid() || self->host == NULL || (unsigned long long)PyBytes_GET_SIZE(body) > LANE_MAX_BODY) {
        Py_RETURN_FALSE;
    }
    pthread_mutex_lock(&self->mu);
    int refuse = self->closing || self->npending + self->nbusy >= self->nworkers;
    pthread_mutex_unlock(&self->mu);
    if (refuse) {
        Py_RETURN_FALSE;
    }
    if (self->started == 0 && start_workers(self) < 0) {
        /* the threads that did start are joined by close() */
        return NULL;
    }
    Job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        return PyErr_NoMemory();
    }
    Py_INCREF(body);
    Py_INCREF(token);
    job->body = body;
    job->token = token;
    pthread_mutex_lock(&self->mu);
    if (self->closing) {
        pthread_mutex_unlock(&self->mu);
        Py_DECREF(body);
        Py_DECREF(token);
        free(job);
        Py_RETURN_FALSE;
    }
    if (self->pending_tail) {
        self->pending_tail->next = job;
    }
    else {
        self->pending = job;
    }
    self->pending_tail = job;
    self->npending++;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_TRUE;
}

static PyObject *
Lane_close(Lane *self, PyObject *unused)
{
    if (self->pid != getpid()) {
        Py_RETURN_NONE; /* the parent's threads: nothing of them here */
    }
    for (int i = 0; i < self->started; i++) {
        if (pthread_equal(pthread_self(), self->threads[i])) {
            PyErr_SetString(PyExc_RuntimeError, "close() called on one of the lane's own threads (in notify)");
            return NULL;
        }
    }
    pthread_mutex_lock(&self->mu);
    if (self->closing) {
        /* closed, or being closed by another thread: wait for it (without the GIL, and never taking the GIL
         * while holding the mutex) */
        pthread_mutex_unlock(&self->mu);
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->mu);
        while (!self->closed) {
            pthread_cond_wait(&self->cv, &self->mu);
        }
        pthread_mutex_unlock(&self->mu);
        Py_END_ALLOW_THREADS
        Py_RETURN_NONE;
    }
    self->closing = 1;
    for (int i = 0; i < self->nworkers; i++) {
        if (self->fds[i] >= 0) {
            shutdown(self->fds[i], SHUT_RDWR); /* a worker in poll() or recv() returns now */
        }
    }
    /* the jobs no worker took: collected as CLOSED */
    Job *job = self->pending;
    self->pending = self->pending_tail = NULL;
    self->npending = 0;
    while (job != NULL) {
        Job *next = job->next;
        job->next = NULL;
        job->kind = K_CLOSED;
        if (self->done_tail) {
            self->done_tail->next = job;
        }
        else {
            self->done = job;
        }
        self->done_tail = job;
        self->ndone++;
        job = next;
    }
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    int started = self->started;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < started; i++) {
        pthread_join(self->threads[i], NULL);
    }
    Py_END_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    self->closed = 1;
    self->started = 0;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    Py_CLEAR(self->notify);
    LANE_CLOSED_EXTRA(self); /* no worker calls it any more; and it may refer back to the lane (a cycle) */
    if (started > 0) {
        Py_DECREF(self); /* the workers' hold (start_workers) */
    }
    Py_RETURN_NONE;
}

static void
Lane_dealloc(Lane *self)
{
    /* only reached with no worker running (they hold the lane until close() joins them), or in a forked child */
    if (self->pid == getpid()) {
        Job *lists[2] = {self->pending, self->done};
        for (int l = 0; l < 2; l++) {
            Job *job = lists[l];
            while (job != NULL) {
                Job *next = job->next;
                job_free(job);
                job = next;
            }
        }
        for (int i = 0; i < MAX_WORKERS; i++) {
            if (self->fds[i] >= 0) {
                close(self->fds[i]);
            }
        }
        pthread_mutex_destroy(&self->mu);
        pthread_cond_destroy(&self->cv);
    }
    free(self->host);
    free(self->head);
    Py_XDECREF(self->notify);
    LANE_DEALLOC_EXTRA(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyGetSetDef Lane_getset[] = {
    {"room", (getter)Lane_get_room, NULL, "how many more bodies submit() takes now", NULL},
    {"in_flight", (getter)Lane_get_in_flight, NULL, "bodies submitted and not yet collected", NULL},
    {"connections_made", (getter)Lane_get_connections_made, NULL, "connections opened so far", NULL},
    {"closed", (getter)Lane_get_closed, NULL, "whether close() was called (or this is a forked child)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* the module's Lane type and its outcome kinds; 0, or -1 with an exception (the module is then released) */
static int
lane_module_add(PyObject *module, PyTypeObject *type)
{
    Py_INCREF(type);
    if (PyModule_AddObject(module, "Lane", (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    if (PyModule_AddIntConstant(module, "OK", K_OK) < 0 || PyModule_AddIntConstant(module, "RESPONSE", K_RESPONSE) < 0 ||
        PyModule_AddIntConstant(module, "CONNECT", K_CONNECT) < 0 ||
        PyModule_AddIntConstant(module, "DISCONNECTED", K_DISCONNECTED) < 0 ||
        PyModule_AddIntConstant(module, "TIMEOUT", K_TIMEOUT) < 0 ||
        PyModule_AddIntConstant(module, "BAD_RESPONSE", K_BAD_RESPONSE) < 0 ||
        PyModule_AddIntConstant(module, "CLOSED", K_CLOSED) < 0 ||
        PyModule_AddIntConstant(module, "IDENTITY", LANE_IDENTITY) < 0 ||
        PyModule_AddIntConstant(module, "GZIP", LANE_GZIP) < 0 ||
        PyModule_AddIntConstant(module, "DEFLATE", LANE_DEFLATE) < 0 ||
        PyModule_AddIntConstant(module, "ZLIB", LANE_HAS_ZLIB) < 0) {
        return -1;
    }
    return 0;
}

/* Lane.__init__'s common part, after the arguments were parsed: checks them (``wrong``: the caller's own finding,
 * checked after these), keeps them, and releases ``head``; 0, or -1 with an exception that names the argument. */
static int
lane_init_common(Lane *self, const char *host, int port, Py_buffer *head, int workers, double timeout,
                 double keepalive, Py_ssize_t max_response, int compress, PyObject *notify, const char *wrong)
{
    if (self->host != NULL) {
        PyBuffer_Release(head);
        PyErr_SetString(PyExc_RuntimeError, "Lane.__init__ called twice");
        return -1;
    }
    const char *bad = workers < 1 || workers > MAX_WORKERS ? "workers must be 1-16"
                      : port < 1 || port > 65535            ? "port must be 1-65535"
                      : !(timeout > 0)                       ? "timeout must be a positive number of seconds"
                      : !(keepalive >= 0)                    ? "keepalive must be 0 or more seconds"
                      : max_response < 0                     ? "max_response must be 0 or more bytes"
                      : !PyCallable_Check(notify)            ? "notify must be callable"
                      : compress < LANE_IDENTITY || compress > LANE_DEFLATE
                          ? "compress must be IDENTITY, GZIP or DEFLATE"
                      : compress != LANE_IDENTITY && !LANE_HAS_ZLIB ? "compress: this lane was built without zlib"
                                                                    : wrong;
    if (bad != NULL) {
        PyBuffer_Release(head);
        PyErr_SetString(PyExc_ValueError, bad);
        return -1;
    }
    self->host = strdup(host);
    self->head = malloc(head->len ? (size_t)head->len : 1);
    if (self->host == NULL || self->head == NULL) {
        PyBuffer_Release(head);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(self->head, head->buf, (size_t)head->len);
    self->head_len = (size_t)head->len;
    PyBuffer_Release(head);
    snprintf(self->port, sizeof self->port, "%d", port);
    self->nworkers = workers;
    self->timeout = timeout;
    self->keepalive = keepalive;
    self->max_response = (size_t)max_response;
    self->compress = compress;
    Py_INCREF(notify);
    self->notify = notify;
    return 0;
}

#endif /* AIOTLP_LANE_COMMON_H */
