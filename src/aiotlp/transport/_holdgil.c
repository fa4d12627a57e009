/* aiotlp.transport._holdgil: non-blocking socket calls that keep the GIL.
 *
 * CPython's socket.send / recv and select.epoll.poll release the GIL around the system call, even when the call
 * cannot block (a non-blocking socket, a zero timeout). On a thread that shares the GIL with a busy producer
 * thread, each release hands the GIL to that thread, and getting it back takes up to the switch interval (5 ms).
 * These functions make the same system calls without releasing it: they are only for calls that return at once
 * (MSG_DONTWAIT, a zero timeout). Errors raise OSError with its errno subclass (BlockingIOError for EAGAIN),
 * as the socket module does. They work on file descriptors: never on a TLS socket object (asyncio's TLS sends
 * ciphertext through the plain socket, which is fine; an ssl.SSLSocket is not).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define MAX_EVENTS 64

static PyObject *
holdgil_send(PyObject *module, PyObject *args)
{
    int fd;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "iy*:send", &fd, &view)) {
        return NULL;
    }
    ssize_t sent;
    do {
        sent = send(fd, view.buf, (size_t)view.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    PyBuffer_Release(&view);
    if (sent < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSsize_t(sent);
}

static PyObject *
holdgil_recv(PyObject *module, PyObject *args)
{
    int fd;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "in:recv", &fd, &size)) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return NULL;
    }
    PyObject *buffer = PyBytes_FromStringAndSize(NULL, size);
    if (buffer == NULL) {
        return NULL;
    }
    ssize_t got;
    do {
        got = recv(fd, PyBytes_AS_STRING(buffer), (size_t)size, MSG_DONTWAIT);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        Py_DECREF(buffer);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (got != size && _PyBytes_Resize(&buffer, got) < 0) {
        return NULL;
    }
    return buffer;
}

static PyObject *
holdgil_poll0(PyObject *module, PyObject *args)
{
    int epfd, maxevents;
    if (!PyArg_ParseTuple(args, "ii:poll0", &epfd, &maxevents)) {
        return NULL;
    }
    if (maxevents < 1) {
        maxevents = 1;
    }
    if (maxevents > MAX_EVENTS) {
        maxevents = MAX_EVENTS;
    }
    struct epoll_event events[MAX_EVENTS];
    int count;
    do {
        count = epoll_wait(epfd, events, maxevents, 0);
    } while (count < 0 && errno == EINTR);
    if (count < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *result = PyList_New(count);
    if (result == NULL) {
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        PyObject *item = Py_BuildValue("(iI)", events[i].data.fd, (unsigned int)events[i].events);
        if (item == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, item);
    }
    return result;
}

static PyMethodDef holdgil_methods[] = {
    {"send", holdgil_send, METH_VARARGS,
     "send(fd, data) -> int: send(2) with MSG_DONTWAIT, without releasing the GIL; bytes sent (may be fewer)."},
    {"recv", holdgil_recv, METH_VARARGS,
     "recv(fd, size) -> bytes: recv(2) with MSG_DONTWAIT, without releasing the GIL; b'' at end of stream."},
    {"poll0", holdgil_poll0, METH_VARARGS,
     "poll0(epfd, maxevents) -> list[(fd, events)]: epoll_wait with a zero timeout, without releasing the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef holdgil_module = {
    PyModuleDef_HEAD_INIT, "aiotlp.transport._holdgil",
    "Non-blocking socket and epoll calls that keep the GIL (see aiotlp.transport._keepgil).", -1, holdgil_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__holdgil(void)
{
    return PyModule_Create(&holdgil_module);
}
