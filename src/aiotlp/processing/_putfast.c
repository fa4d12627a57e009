/*
 * aiotlp.processing._putfast: the optional compiled twin of BoundedQueue.put_sized's plain case, for the SDK
 * batch span processor's on_end hot path (one C call; chosen in aiotlp.processing, exposed there as put_sized).
 *
 *   queue_slots(queue_type, chunk_type)      register BoundedQueue's and its chunks' __slots__ (done at import
 *                                            by aiotlp.processing)
 *   queue_put_sized(queue, item, size) -> 0 (ADMITTED), 1 (READY) or -1 (call BoundedQueue.put_sized)
 *   HotPut(namespace, name, encode, ...)     on_end's whole hot path (encode, put, wake) as one callable
 *
 * Imports nothing: the queue is read and written through its __slots__ (offsets registered by queue_slots).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* BoundedQueue.put_sized's compiled twin (aiotlp.processing._queue; chosen in aiotlp.processing), for
 * on_end's hot path: the item appended to the tail chunk, the ledger counted, READY once per batch, exactly as
 * the Python method does, on the queue's __slots__ read and written in place (their offsets registered once by
 * queue_slots). The queue's lock is honoured: when another thread holds it, this waits for it (acquire, which
 * lets go of the GIL) and does its work under it; when nobody holds it, the work is done without taking it, as
 * nothing here lets go of the GIL or runs Python code (ints, list appends), so no thread can take it meanwhile.
 * Anything else than the plain case (the queue full or closed, a new chunk needed, a queue or chunk of another
 * type) returns -1, touching nothing: the caller then calls BoundedQueue.put_sized. */

#include <structmember.h> /* PyMemberDef (3.11; in descrobject.h from 3.12 on) */

typedef struct {
    Py_ssize_t lock, queued, limit, queued_bytes, max_bytes, tail, batch_size, produced, admitted, wake_pending,
        chunks;
} QueueSlots;
typedef struct {
    Py_ssize_t weight, sizes, nbytes;
} ChunkSlots;

static PyTypeObject *q_type, *q_chunk_type; /* strong references, once registered */
static QueueSlots q_slots;
static ChunkSlots q_chunk_slots;
static PyObject *str_locked, *str_acquire, *str_release;

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL)
        return -1;
    if (Py_TYPE(descr) != &PyMemberDescr_Type || ((PyMemberDescrObject *)descr)->d_member->type != 16 /* T_OBJECT_EX */) {
        PyErr_Format(PyExc_TypeError, "queue_slots: %.100s.%.100s is not a slot", type->tp_name, name);
        Py_DECREF(descr);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    Py_DECREF(descr);
    return 0;
}

static PyObject *
py_queue_slots(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "queue_slots(queue_type, chunk_type) takes 2 types");
        return NULL;
    }
    PyTypeObject *qt = (PyTypeObject *)args[0], *ct = (PyTypeObject *)args[1];
    QueueSlots q;
    ChunkSlots c;
    if (slot_offset(qt, "lock", &q.lock) < 0 || slot_offset(qt, "queued", &q.queued) < 0
        || slot_offset(qt, "_limit", &q.limit) < 0 || slot_offset(qt, "queued_bytes", &q.queued_bytes) < 0
        || slot_offset(qt, "_max_bytes", &q.max_bytes) < 0 || slot_offset(qt, "_tail", &q.tail) < 0
        || slot_offset(qt, "_batch_size", &q.batch_size) < 0 || slot_offset(qt, "produced", &q.produced) < 0
        || slot_offset(qt, "admitted", &q.admitted) < 0 || slot_offset(qt, "wake_pending", &q.wake_pending) < 0
        || slot_offset(qt, "_chunks", &q.chunks) < 0 || slot_offset(ct, "weight", &c.weight) < 0
        || slot_offset(ct, "sizes", &c.sizes) < 0 || slot_offset(ct, "nbytes", &c.nbytes) < 0)
        return NULL;
    if (!PyType_IsSubtype(ct, &PyList_Type)) {
        PyErr_SetString(PyExc_TypeError, "queue_slots: the chunk type must be a list");
        return NULL;
    }
    if (str_locked == NULL && (str_locked = PyUnicode_InternFromString("locked")) == NULL)
        return NULL;
    if (str_acquire == NULL && (str_acquire = PyUnicode_InternFromString("acquire")) == NULL)
        return NULL;
    if (str_release == NULL && (str_release = PyUnicode_InternFromString("release")) == NULL)
        return NULL;
    Py_XSETREF(q_type, (PyTypeObject *)Py_NewRef(qt));
    Py_XSETREF(q_chunk_type, (PyTypeObject *)Py_NewRef(ct));
    q_slots = q;
    q_chunk_slots = c;
    Py_RETURN_NONE;
}

/* An int slot's value, or -1 (with no error) when it is not set or not an int that fits. */
static inline Py_ssize_t
slot_int(PyObject *obj, Py_ssize_t offset)
{
    PyObject *v = SLOT(obj, offset);
    if (v == NULL || !PyLong_CheckExact(v))
        return -1;
    Py_ssize_t n = PyLong_AsSsize_t(v);
    if (n == -1 && PyErr_Occurred())
        PyErr_Clear();
    return n;
}

static inline void
slot_set(PyObject *obj, Py_ssize_t offset, PyObject *value) /* steals value */
{
    PyObject *old = SLOT(obj, offset);
    SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

static int
queue_admit(PyObject *q, PyObject *item, PyObject *size_obj, Py_ssize_t size)
{
    QueueSlots *s = &q_slots;
    ChunkSlots *c = &q_chunk_slots;
    Py_ssize_t queued = slot_int(q, s->queued), limit = slot_int(q, s->limit), nbytes = slot_int(q, s->queued_bytes);
    Py_ssize_t max_bytes = slot_int(q, s->max_bytes), batch = slot_int(q, s->batch_size);
    Py_ssize_t produced = slot_int(q, s->produced), admitted = slot_int(q, s->admitted);
    if (queued < 0 || limit < 0 || nbytes < 0 || max_bytes < 0 || batch < 0 || produced < 0 || admitted < 0)
        return -1;
    if (queued >= limit || nbytes > max_bytes - size)
        return -1; /* full or closed: BoundedQueue.put_sized drops, evicts or waits */
    PyObject *tail = SLOT(q, s->tail), *chunks = SLOT(q, s->chunks), *wake = SLOT(q, s->wake_pending);
    if (tail == NULL || Py_TYPE(tail) != q_chunk_type || chunks == NULL || wake == NULL)
        return -1; /* no tail yet */
    Py_ssize_t weight = slot_int(tail, c->weight), tail_bytes = slot_int(tail, c->nbytes);
    PyObject *sizes = SLOT(tail, c->sizes);
    if (weight < 0 || tail_bytes < 0 || sizes == NULL || !PyList_CheckExact(sizes))
        return -1;
    if (PyList_GET_SIZE(tail) > 0 && weight >= batch)
        return -1; /* a new chunk is needed */
    Py_ssize_t nchunks = PyObject_Length(chunks);
    if (nchunks < 0)
        return -2;
    PyObject *v[6] = {
        PyLong_FromSsize_t(weight + 1), PyLong_FromSsize_t(tail_bytes + size), PyLong_FromSsize_t(produced + 1),
        PyLong_FromSsize_t(queued + 1), PyLong_FromSsize_t(nbytes + size), PyLong_FromSsize_t(admitted + 1),
    };
    int ok = 1;
    for (int i = 0; i < 6; i++)
        ok = ok && v[i] != NULL;
    if (ok && PyList_Append(tail, item) < 0)
        ok = 0;
    else if (ok && PyList_Append(sizes, size_obj) < 0) {
        ok = 0;
        PyList_SetSlice(tail, PyList_GET_SIZE(tail) - 1, PyList_GET_SIZE(tail), NULL); /* back out */
    }
    if (!ok) {
        for (int i = 0; i < 6; i++)
            Py_XDECREF(v[i]);
        return -2;
    }
    slot_set(tail, c->weight, v[0]);
    slot_set(tail, c->nbytes, v[1]);
    slot_set(q, s->produced, v[2]);
    slot_set(q, s->queued, v[3]);
    slot_set(q, s->queued_bytes, v[4]);
    slot_set(q, s->admitted, v[5]);
    if (wake == Py_False && (weight + 1 >= batch || nchunks > 1)) {
        slot_set(q, s->wake_pending, Py_NewRef(Py_True));
        return 1; /* READY */
    }
    return 0; /* ADMITTED */
}

/* The plain put of `item` (`size` bytes; `size_obj` the same as an int) in the queue `q`, under its lock when
 * another thread holds it: 0 (ADMITTED), 1 (READY), -1 (anything else: nothing changed, call q.put_sized), or -2
 * (an error is set). */
static int
queue_put(PyObject *q, PyObject *item, PyObject *size_obj, Py_ssize_t size)
{
    if (q_type == NULL || Py_TYPE(q) != q_type || size < 0)
        return -1;
    PyObject *lock = SLOT(q, q_slots.lock);
    if (lock == NULL)
        return -1;
    PyObject *held = PyObject_VectorcallMethod(str_locked, &lock, 1, NULL);
    if (held == NULL)
        return -2;
    int acquire = PyObject_IsTrue(held);
    Py_DECREF(held);
    if (acquire < 0)
        return -2;
    if (acquire) { /* another thread is in the queue: wait for it, then work under the lock */
        PyObject *r = PyObject_VectorcallMethod(str_acquire, &lock, 1, NULL);
        if (r == NULL)
            return -2;
        Py_DECREF(r);
    }
    int code = queue_admit(q, item, size_obj, size);
    if (acquire) {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        PyObject *r = PyObject_VectorcallMethod(str_release, &lock, 1, NULL);
        if (r == NULL) {
            Py_XDECREF(exc_type);
            Py_XDECREF(exc_value);
            Py_XDECREF(exc_tb);
            return -2;
        }
        Py_DECREF(r);
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
    return code;
}

static PyObject *
py_queue_put_sized(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "queue_put_sized(queue, item, size) takes 3 arguments");
        return NULL;
    }
    PyObject *size_obj = args[2];
    Py_ssize_t size = PyLong_CheckExact(size_obj) ? PyLong_AsSsize_t(size_obj) : -1;
    if (size == -1 && PyErr_Occurred())
        PyErr_Clear();
    int code = queue_put(args[0], args[1], size_obj, size);
    return code == -2 ? NULL : PyLong_FromLong(code);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* HotPut: a producer's whole hot path in one call (the SDK span processor's on_end, installed on the instance)

 * hot(item): if namespace[name] is still `encode` (the encoders' switch, aiotlp.encoding.use, rebinds it), call
 * encode(types, direct, source._memo, ids, item): a tuple (key, field) is put in `queue` with len(field) as its
 * size (queue_put, else queue.put_sized), and `ready()` is called when that made a batch ready; None ends there;
 * anything else is passed to slow(item). When the encoder was switched, everything goes to full(item), and so
 * does a call of another form (a keyword argument, no argument: the method's own call says what is wrong).
 * Returns what slow / full return, else None. Errors propagate as from the Python it stands for. */

typedef struct {
    PyObject_HEAD
    PyObject *namespace, *name, *encode, *types, *direct, *source, *ids, *queue, *ready, *slow, *full;
    vectorcallfunc vectorcall;
} HotPut;

static PyObject *str_memo, *str_put_sized;

static PyObject *
hot_call(PyObject *raw, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    HotPut *self = (HotPut *)raw;
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0))
        return PyObject_Vectorcall(self->full, args, nargsf, kwnames); /* on_end(span=...): the method's call */
    PyObject *item = args[0];
    PyObject *bound = PyDict_GetItemWithError(self->namespace, self->name);
    if (bound != self->encode)
        return PyErr_Occurred() ? NULL : PyObject_CallOneArg(self->full, item);
    PyObject *memo = PyObject_GetAttr(self->source, str_memo);
    if (memo == NULL)
        return NULL;
    PyObject *call[5] = {self->types, self->direct, memo, self->ids, item};
    PyObject *encoded = PyObject_Vectorcall(self->encode, call, 5, NULL);
    Py_DECREF(memo);
    if (encoded == NULL)
        return NULL;
    if (encoded == Py_None)
        return encoded;
    if (!PyTuple_CheckExact(encoded)) {
        Py_DECREF(encoded);
        return PyObject_CallOneArg(self->slow, item);
    }
    if (PyTuple_GET_SIZE(encoded) < 2) {
        Py_DECREF(encoded);
        PyErr_SetString(PyExc_IndexError, "HotPut: the encoder returned a tuple of fewer than 2 items");
        return NULL;
    }
    Py_ssize_t size = PyObject_Length(PyTuple_GET_ITEM(encoded, 1));
    PyObject *size_obj = size < 0 ? NULL : PyLong_FromSsize_t(size);
    if (size_obj == NULL) {
        Py_DECREF(encoded);
        return NULL;
    }
    int code = queue_put(self->queue, encoded, size_obj, size);
    if (code == -1) { /* full, closed, a new chunk: the queue's own put */
        PyObject *put[3] = {self->queue, encoded, size_obj};
        PyObject *r = PyObject_VectorcallMethod(str_put_sized, put, 3, NULL);
        long c = r == NULL ? -1 : PyLong_AsLong(r);
        Py_XDECREF(r);
        code = c == -1 && PyErr_Occurred() ? -2 : (int)c;
    }
    Py_DECREF(encoded);
    Py_DECREF(size_obj);
    if (code == -2)
        return NULL;
    if (code == 1) /* READY */
        return PyObject_CallNoArgs(self->ready);
    Py_RETURN_NONE;
}

static PyObject *
HotPut_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"namespace", "name", "encode", "types", "direct", "source", "ids",
                            "queue", "ready", "slow", "full", NULL};
    PyObject *v[11];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!UOOOOOOOOO:HotPut", names, &PyDict_Type, &v[0], &v[1], &v[2],
                                     &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10]))
        return NULL;
    for (int i = 8; i < 11; i++) {
        if (!PyCallable_Check(v[i])) {
            PyErr_Format(PyExc_TypeError, "HotPut: %s must be callable", names[i]);
            return NULL;
        }
    }
    if ((str_memo == NULL && (str_memo = PyUnicode_InternFromString("_memo")) == NULL)
        || (str_put_sized == NULL && (str_put_sized = PyUnicode_InternFromString("put_sized")) == NULL))
        return NULL;
    HotPut *self = PyObject_GC_New(HotPut, type);
    if (self == NULL)
        return NULL;
    PyObject **slots = &self->namespace;
    for (int i = 0; i < 11; i++)
        slots[i] = Py_NewRef(v[i]);
    self->vectorcall = hot_call;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
HotPut_traverse(HotPut *self, visitproc visit, void *arg)
{
    PyObject **slots = &self->namespace;
    for (int i = 0; i < 11; i++)
        Py_VISIT(slots[i]);
    return 0;
}

static int
HotPut_clear(HotPut *self)
{
    PyObject **slots = &self->namespace;
    for (int i = 0; i < 11; i++)
        Py_CLEAR(slots[i]);
    return 0;
}

static void
HotPut_dealloc(HotPut *self)
{
    PyObject_GC_UnTrack(self);
    HotPut_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject HotPut_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiotlp.processing._putfast.HotPut",
    .tp_basicsize = sizeof(HotPut),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "HotPut(namespace, name, encode, types, direct, source, ids, queue, ready, slow, full): a producer's "
              "hot path (encode, put, wake) in one call; see aiotlp.processing._putfast's source.",
    .tp_new = HotPut_new,
    .tp_traverse = (traverseproc)HotPut_traverse,
    .tp_clear = (inquiry)HotPut_clear,
    .tp_dealloc = (destructor)HotPut_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(HotPut, vectorcall),
};

/* ---------------------------------------------------------------------------------------------------------- */
/* The module (single-phase initialised; its state is the statics above, set once by queue_slots) */

static PyMethodDef methods[] = {
    {"queue_slots", (PyCFunction)(void (*)(void))py_queue_slots, METH_FASTCALL,
     "queue_slots(queue_type, chunk_type): register BoundedQueue's and its chunks' slots for queue_put_sized."},
    {"queue_put_sized", (PyCFunction)(void (*)(void))py_queue_put_sized, METH_FASTCALL,
     "queue_put_sized(queue, item, size) -> 0 (ADMITTED), 1 (READY), or -1: call BoundedQueue.put_sized."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "aiotlp.processing._putfast",
    "The optional compiled twin of BoundedQueue.put_sized's plain case (see aiotlp.processing.put_sized).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__putfast(void)
{
    if (PyType_Ready(&HotPut_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddObjectRef(m, "HotPut", (PyObject *)&HotPut_Type) < 0)
        Py_CLEAR(m);
    return m;
}
