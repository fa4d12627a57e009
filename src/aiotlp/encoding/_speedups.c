/*
 * aiotlp.encoding._speedups: the optional compiled twin of aiotlp's protobuf hot paths.
 *
 * Every function here produces exactly the bytes of the pure-Python function it stands in for (the test suite
 * runs every encoding test against both; see aiotlp/encoding/_compat.py, the one place that chooses):
 *
 *   write_attributes(buf, field_tag, mapping[, depth]) -> dropped   aiotlp.encoding._protobuf._write_attributes
 *   write_any(buf, field_tag, value[, depth])                     aiotlp.encoding._protobuf._write_any
 *   write_spans(buf, spans)                     aiotlp.encoding._protobuf._write_spans (aiotlp's model)
 *   write_sdk_spans(buf, spans, types)          aiotlp.sdk._encode._write_spans (OpenTelemetry SDK spans)
 *   sdk_span_field(types, span) -> bytes        aiotlp.sdk._encode._span_field (one span, encoded at the source)
 *
 * Sans-IO and duck-typed: nothing here imports opentelemetry or any I/O module. SDK objects are read by
 * attribute name, exactly as the pure-Python encoder reads them; the SDK classes the pure encoder compares
 * types against (BoundedAttributes, BoundedList, Event) and its trace-state formatter are passed in `types`.
 *
 * How it writes: straight into the caller's bytearray, grown geometrically and cut to size at the end (on an
 * error it is put back to its original length). A nested message gets a one-byte length placeholder that is
 * patched afterwards; a payload of 128 bytes or more moves right by the extra varint bytes (as the pure
 * encoder splices). Strings are read from CPython's UTF-8 form (no copy for ASCII); a string with lone
 * surrogates takes the pure encoder's route (UTF-16 with surrogatepass, decoded with "replace"), so a lone
 * surrogate becomes U+FFFD in both. Values of any type other than the exact built-ins are handed to the pure
 * encoder's _normalize (imported on first use) and the result encoded, so subclasses, other mappings and
 * sequences behave identically.
 *
 * Values left out, as in the pure encoder ("Values left out" in _protobuf.py): lists and mappings nest at most
 * MAX_NESTING_DEPTH deep, and an int must fit in int64 (read with PyLong_AsLongLongAndOverflow: the check costs
 * nothing more for the ints that fit). Otherwise the writers raise the pure encoder's _TooDeep or
 * _IntOutOfRange (both _LeftOut, imported on first use); an item's attribute whose value raises one is cut back
 * out of the buffer and counted (write_attributes returns the count; the span writers add it to the item's
 * dropped_attributes_count), exactly as the pure writer does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------- */
/* Module state (module-level statics: the module is single-phase initialised and holds only immutable data
 * and lazily imported functions). */

static PyObject *s_normalize;     /* aiotlp.encoding._protobuf._normalize, imported on first use */
static PyObject *s_encode_error;  /* aiotlp._exceptions.EncodeError, imported on first use */
static PyObject *s_left_out;      /* aiotlp.encoding._protobuf._LeftOut, imported on first use */
static PyObject *s_too_deep;      /* aiotlp.encoding._protobuf._TooDeep, imported on first use */
static PyObject *s_int_range;     /* aiotlp.encoding._protobuf._IntOutOfRange, imported on first use */

/* aiotlp.model.MAX_NESTING_DEPTH (exported as this module's MAX_NESTING_DEPTH; a test checks they agree). */
#define MAX_NESTING_DEPTH 24

static PyObject *str_items, *str_context, *str_parent, *str_name, *str_kind, *str_value_, *str_start_time,
    *str_end_time, *str_attributes, *str_events, *str_links, *str_status, *str_dict, *str_dropped, *str_dq,
    *str_timestamp, *str_event_name, *str_event_attributes, *str_event_timestamp, *str_status_code,
    *str_description, *str_lcontext, *str_status_code_, *str_description_;
/* model field names */
static PyObject *str_trace_id, *str_span_id, *str_parent_span_id, *str_trace_state, *str_flags,
    *str_start_time_unix_nano, *str_end_time_unix_nano, *str_time_unix_nano, *str_dropped_attributes_count,
    *str_dropped_events_count, *str_dropped_links_count, *str_code, *str_message, *str_m_kind, *str_m_events,
    *str_m_links, *str_m_status;

/* module.name, imported on first use and kept in *slot (a borrowed reference is returned; NULL on error). */
static PyObject *
lazy_attr(PyObject **slot, const char *module, const char *name)
{
    if (*slot == NULL) {
        PyObject *mod = PyImport_ImportModule(module);
        if (mod == NULL)
            return NULL;
        *slot = PyObject_GetAttrString(mod, name);
        Py_DECREF(mod);
    }
    return *slot;
}

/* Raise EncodeError(message); always returns -1. */
static int
raise_encode_error(const char *format, ...)
{
    va_list vargs;
    PyObject *type = lazy_attr(&s_encode_error, "aiotlp._exceptions", "EncodeError");
    if (type == NULL)
        return -1;
    va_start(vargs, format);
    PyObject *message = PyUnicode_FromFormatV(format, vargs);
    va_end(vargs);
    if (message != NULL) {
        PyErr_SetObject(type, message);
        Py_DECREF(message);
    }
    return -1;
}

/* The _LeftOut subclass in *slot (imported first, with _LeftOut itself, which clear_left_out matches). */
static PyObject *
left_out_type(PyObject **slot, const char *name)
{
    if (lazy_attr(&s_left_out, "aiotlp.encoding._protobuf", "_LeftOut") == NULL)
        return NULL;
    return lazy_attr(slot, "aiotlp.encoding._protobuf", name);
}

/* Raise _TooDeep with the pure encoder's message; always returns -1. */
static int
raise_too_deep(void)
{
    PyObject *type = left_out_type(&s_too_deep, "_TooDeep");
    if (type != NULL)
        PyErr_Format(type, "a value nests lists and mappings deeper than %d levels", MAX_NESTING_DEPTH);
    return -1;
}

/* Raise _IntOutOfRange with the pure encoder's message; always returns -1. */
static int
raise_int_out_of_range(PyObject *value)
{
    PyObject *type = left_out_type(&s_int_range, "_IntOutOfRange");
    if (type != NULL)
        PyErr_Format(type, "cannot encode the integer %S: it is outside the int64 range", value);
    return -1;
}

/* The error being raised is a _LeftOut (then it is cleared). Only the two raise functions above raise one here,
 * and they imported the types first: nothing is imported while an exception is set. */
static int
clear_left_out(void)
{
    if (s_left_out == NULL || !PyErr_ExceptionMatches(s_left_out))
        return 0;
    PyErr_Clear();
    return 1;
}

static PyObject *
normalize(PyObject *value)
{
    if (s_normalize == NULL) {
        PyObject *mod = PyImport_ImportModule("aiotlp.encoding._protobuf");
        if (mod == NULL)
            return NULL;
        s_normalize = PyObject_GetAttrString(mod, "_normalize");
        Py_DECREF(mod);
        if (s_normalize == NULL)
            return NULL;
    }
    return PyObject_CallOneArg(s_normalize, value);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* The output buffer: the caller's bytearray. */

typedef struct {
    PyObject *ba;
    char *data;
    Py_ssize_t len;  /* bytes written */
    Py_ssize_t cap;  /* the bytearray's current size */
    Py_ssize_t orig; /* its size on entry, restored on error */
} Buf;

static int
buf_open(Buf *b, PyObject *ba)
{
    if (!PyByteArray_Check(ba)) {
        PyErr_Format(PyExc_TypeError, "buf must be a bytearray, not %.100s", Py_TYPE(ba)->tp_name);
        return -1;
    }
    b->ba = ba;
    b->len = b->cap = b->orig = PyByteArray_GET_SIZE(ba);
    b->data = PyByteArray_AS_STRING(ba);
    return 0;
}

static int
buf_grow(Buf *b, Py_ssize_t need)
{
    Py_ssize_t cap = b->cap + (b->cap >> 1);
    if (cap < b->len + need)
        cap = b->len + need;
    if (cap < 4096)
        cap = 4096;
    if (PyByteArray_Resize(b->ba, cap) < 0)
        return -1;
    b->data = PyByteArray_AS_STRING(b->ba);
    b->cap = cap;
    return 0;
}

#define RESERVE(b, n) (((b)->len + (Py_ssize_t)(n) <= (b)->cap) ? 0 : buf_grow((b), (Py_ssize_t)(n)))

/* Cut the bytearray to what was written (ok) or back to its original size (error: the exception is kept). */
static PyObject *
buf_close(Buf *b, int ok)
{
    if (ok) {
        if (PyByteArray_Resize(b->ba, b->len) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (PyByteArray_Resize(b->ba, b->orig) < 0)
        PyErr_Clear();
    PyErr_Restore(type, value, traceback);
    return NULL;
}

static inline int
varint_size(uint64_t v)
{
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Unchecked writers: the caller reserved the room. */
static inline void
u_byte(Buf *b, unsigned char c)
{
    b->data[b->len++] = (char)c;
}

static inline void
u_bytes(Buf *b, const void *p, Py_ssize_t n)
{
    /* Keys and short values: two overlapping fixed-size copies are cheaper than a call to memcpy. */
    char *d = b->data + b->len;
    const char *q = (const char *)p;
    if (n >= 8 && n <= 16) {
        memcpy(d, q, 8);
        memcpy(d + n - 8, q + n - 8, 8);
    }
    else if (n >= 4 && n < 8) {
        memcpy(d, q, 4);
        memcpy(d + n - 4, q + n - 4, 4);
    }
    else if (n < 4) {
        for (Py_ssize_t i = 0; i < n; i++)
            d[i] = q[i];
    }
    else {
        memcpy(d, q, (size_t)n);
    }
    b->len += n;
}

static inline void
u_varint(Buf *b, uint64_t v)
{
    char *p = b->data + b->len;
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    b->len = p - b->data;
}

static inline void
u_fixed64(Buf *b, uint64_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    b->len += 8;
}

static inline void
u_fixed32(Buf *b, uint32_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    b->len += 4;
}

static inline void
u_double(Buf *b, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8); /* IEEE 754 binary64 bit for bit: NaN payloads, infinities and -0.0 pass through */
    u_fixed64(b, bits);
}

/* Big-endian 64-bit (ids). */
static inline void
u_be64(Buf *b, uint64_t v)
{
    unsigned char *p = (unsigned char *)b->data + b->len;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
    b->len += 8;
}

/* A field tag (one byte for every field but Span.flags). */
static inline void
u_tag(Buf *b, const char *tag, Py_ssize_t taglen)
{
    if (taglen == 1)
        b->data[b->len++] = tag[0];
    else
        u_bytes(b, tag, taglen);
}

/* Checked writers. */
static inline int
w_bytes(Buf *b, const void *p, Py_ssize_t n)
{
    if (RESERVE(b, n) < 0)
        return -1;
    u_bytes(b, p, n);
    return 0;
}

static inline int
w_varint(Buf *b, uint64_t v)
{
    if (RESERVE(b, 10) < 0)
        return -1;
    u_varint(b, v);
    return 0;
}

/* Tag + one-byte length placeholder; returns where the payload starts (or -1). */
static inline Py_ssize_t
begin(Buf *b, const char *tag, Py_ssize_t taglen)
{
    if (RESERVE(b, taglen + 1) < 0)
        return -1;
    u_tag(b, tag, taglen);
    b->data[b->len++] = 0;
    return b->len;
}

/* Fill in the placeholder written by begin() for the payload b->data[start:]. */
static inline int
end(Buf *b, Py_ssize_t start)
{
    uint64_t n = (uint64_t)(b->len - start);
    if (n < 0x80) {
        b->data[start - 1] = (char)n;
        return 0;
    }
    int extra = varint_size(n) - 1;
    if (RESERVE(b, extra) < 0)
        return -1;
    memmove(b->data + start + extra, b->data + start, (size_t)n);
    char *p = b->data + start - 1;
    while (n >= 0x80) {
        *p++ = (char)(n | 0x80);
        n >>= 7;
    }
    *p = (char)n;
    b->len += extra;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Python values */

typedef struct {
    const char *p;
    Py_ssize_t n;
    PyObject *owner; /* a bytes object to release, or NULL */
} Utf8;

static int utf8_slow(PyObject *s, Utf8 *u);

/* The UTF-8 of a str, as aiotlp.encoding._wire.utf8 makes it: lone surrogates become U+FFFD. */
static inline int
utf8_of(PyObject *s, Utf8 *u)
{
    u->owner = NULL;
    if (PyUnicode_IS_COMPACT_ASCII(s)) {
        u->p = (const char *)(((PyASCIIObject *)s) + 1);
        u->n = PyUnicode_GET_LENGTH(s);
        return 0;
    }
    return utf8_slow(s, u);
}

static int
utf8_slow(PyObject *s, Utf8 *u)
{
    if (PyUnicode_READY(s) < 0)
        return -1;
    u->p = PyUnicode_AsUTF8AndSize(s, &u->n);
    if (u->p != NULL)
        return 0;
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear();
    PyObject *utf16 = PyUnicode_AsEncodedString(s, "utf-16-le", "surrogatepass");
    if (utf16 == NULL)
        return -1;
    PyObject *fixed = PyUnicode_Decode(PyBytes_AS_STRING(utf16), PyBytes_GET_SIZE(utf16), "utf-16-le", "replace");
    Py_DECREF(utf16);
    if (fixed == NULL)
        return -1;
    PyObject *data = PyUnicode_AsUTF8String(fixed);
    Py_DECREF(fixed);
    if (data == NULL)
        return -1;
    u->owner = data;
    u->p = PyBytes_AS_STRING(data);
    u->n = PyBytes_GET_SIZE(data);
    return 0;
}

/* A text field (name, trace state, ...) of a non-str object: the pure encoder fails on it too. */
static int
not_a_str(const char *what, PyObject *value)
{
    return raise_encode_error("%s must be a str, got %.100s", what, Py_TYPE(value)->tp_name);
}

/* tag + length-prefixed UTF-8 of `text` (a str). */
static int
w_tag_str(Buf *b, unsigned char tag, PyObject *text, const char *what)
{
    Utf8 u;
    if (!PyUnicode_Check(text))
        return not_a_str(what, text);
    if (utf8_of(text, &u) < 0)
        return -1;
    int rc = RESERVE(b, 11 + u.n);
    if (rc == 0) {
        u_byte(b, tag);
        u_varint(b, (uint64_t)u.n);
        u_bytes(b, u.p, u.n);
    }
    Py_XDECREF(u.owner);
    return rc;
}

/* `if text: tag + lp(text)`: written when truthy (the pure encoder's test). */
static int
w_opt_str(Buf *b, unsigned char tag, PyObject *text, const char *what)
{
    if (text == Py_None)
        return 0;
    if (PyUnicode_Check(text)) {
        if (PyUnicode_GET_LENGTH(text) == 0)
            return 0;
        return w_tag_str(b, tag, text, what);
    }
    int truth = PyObject_IsTrue(text);
    if (truth <= 0)
        return truth;
    return not_a_str(what, text);
}

/* An int64 (AnyValue.int_value): its varint form, the 64-bit two's complement. */
static int
int64_of(PyObject *value, uint64_t *out)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        return raise_int_out_of_range(value);
    *out = (uint64_t)v;
    return 0;
}

/* What _wire.varint(value) writes for a count (a non-negative int; a negative int64 as 10 bytes). */
static int
w_tag_varint_obj(Buf *b, unsigned char tag, PyObject *value, const char *what)
{
    uint64_t u = 0;
    if (!PyLong_Check(value))
        return raise_encode_error("%s must be an int, got %.100s", what, Py_TYPE(value)->tp_name);
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow > 0) {
        u = PyLong_AsUnsignedLongLong(value);
        if (u == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return raise_encode_error("%s: cannot encode %S as a varint", what, value);
        }
    }
    else if (overflow < 0) {
        return raise_encode_error("%s: cannot encode %S as a varint", what, value);
    }
    else {
        u = (uint64_t)v;
    }
    if (RESERVE(b, 11) < 0)
        return -1;
    u_byte(b, tag);
    u_varint(b, u);
    return 0;
}

/* `if value: tag + varint(value)` */
static int
w_opt_count(Buf *b, unsigned char tag, PyObject *value, const char *what)
{
    int truth = PyObject_IsTrue(value);
    if (truth <= 0)
        return truth;
    return w_tag_varint_obj(b, tag, value, what);
}

/* An int (PyLong_Check) in [0, 2**64): 0, or -1 with nothing raised. PyLong_AsUnsignedLongLong goes through
 * _PyLong_AsByteArray's byte loop for every value of more than one digit (ids, times): the digits are read
 * directly where the layout is known. */
static inline int
u64_of(PyObject *v, uint64_t *out)
{
#if PY_VERSION_HEX < 0x030C0000
    Py_ssize_t size = Py_SIZE(v);
    if (size < 0)
        return -1;
    const digit *digits = ((PyLongObject *)v)->ob_digit;
    uint64_t acc = 0;
    for (Py_ssize_t i = size - 1; i >= 0; i--) {
        if (acc >> (64 - PyLong_SHIFT))
            return -1;
        acc = (acc << PyLong_SHIFT) | digits[i];
    }
    *out = acc;
    return 0;
#else
    uint64_t u = PyLong_AsUnsignedLongLong(v);
    if (u == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    *out = u;
    return 0;
#endif
}

/* A uint64 (times: fixed64) */
static int
uint64_of(PyObject *value, uint64_t *out, const char *what)
{
    if (!PyLong_Check(value))
        return raise_encode_error("%s must be an int, got %.100s", what, Py_TYPE(value)->tp_name);
    if (u64_of(value, out) < 0)
        return raise_encode_error("%s: %S is outside the uint64 range", what, value);
    return 0;
}

static int
uint32_of(PyObject *value, uint32_t *out, const char *what)
{
    uint64_t u = 0;
    if (uint64_of(value, &u, what) < 0)
        return -1;
    if (u > 0xFFFFFFFFu)
        return raise_encode_error("%s: %S is outside the uint32 range", what, value);
    *out = (uint32_t)u;
    return 0;
}

/* `if value: tag + fixed64(value)` */
static int
w_opt_fixed64(Buf *b, unsigned char tag, PyObject *value, const char *what)
{
    uint64_t u = 0;
    int truth = PyObject_IsTrue(value);
    if (truth <= 0)
        return truth;
    if (uint64_of(value, &u, what) < 0 || RESERVE(b, 9) < 0)
        return -1;
    u_byte(b, tag);
    u_fixed64(b, u);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* AnyValue and attributes */

static int w_any(Buf *b, const char *tag, Py_ssize_t taglen, PyObject *value, int depth);
static int w_attributes(Buf *b, const char *tag, Py_ssize_t taglen, PyObject *attributes, int depth,
                        Py_ssize_t *dropped);

/* The KeyValue.key field's size for a key of n UTF-8 bytes (an empty key is left out). */
static inline Py_ssize_t
key_field_size(Py_ssize_t n)
{
    return n ? 1 + varint_size((uint64_t)n) + n : 0;
}

static inline void
u_key_field(Buf *b, const Utf8 *k)
{
    if (k->n) {
        u_byte(b, 0x0a); /* KeyValue 1 key */
        u_varint(b, (uint64_t)k->n);
        u_bytes(b, k->p, k->n);
    }
}

/* tag + KeyValue(key, value); `value` sits inside `depth` lists and mappings */
static int
w_key_value(Buf *b, const char *tag, Py_ssize_t taglen, PyObject *key, PyObject *value, int depth)
{
    Utf8 k, s;
    int rc = -1;
    if (!PyUnicode_Check(key))
        return raise_encode_error("an attribute key must be a str, got %.100s", Py_TYPE(key)->tp_name);
    if (utf8_of(key, &k) < 0)
        return -1;
    Py_ssize_t kf = key_field_size(k.n);
    PyTypeObject *t = Py_TYPE(value);
    if (t == &PyUnicode_Type) {
        if (utf8_of(value, &s) < 0)
            goto done;
        uint64_t av = 1 + (uint64_t)varint_size((uint64_t)s.n) + (uint64_t)s.n; /* AnyValue 1 string_value */
        uint64_t kv = (uint64_t)kf + 1 + (uint64_t)varint_size(av) + av;
        if (RESERVE(b, taglen + 10 + (Py_ssize_t)kv) == 0) {
            u_tag(b, tag, taglen);
            u_varint(b, kv);
            u_key_field(b, &k);
            u_byte(b, 0x12); /* KeyValue 2 value */
            u_varint(b, av);
            u_byte(b, 0x0a);
            u_varint(b, (uint64_t)s.n);
            u_bytes(b, s.p, s.n);
            rc = 0;
        }
        Py_XDECREF(s.owner);
    }
    else if (t == &PyLong_Type) {
        uint64_t u = 0;
        if (int64_of(value, &u) < 0)
            goto done;
        uint64_t av = 1 + (uint64_t)varint_size(u); /* AnyValue 3 int_value */
        uint64_t kv = (uint64_t)kf + 2 + av;
        if (RESERVE(b, taglen + 10 + (Py_ssize_t)kv) == 0) {
            u_tag(b, tag, taglen);
            u_varint(b, kv);
            u_key_field(b, &k);
            u_byte(b, 0x12);
            u_byte(b, (unsigned char)av);
            u_byte(b, 0x18);
            u_varint(b, u);
            rc = 0;
        }
    }
    else if (t == &PyBool_Type) {
        uint64_t kv = (uint64_t)kf + 4;
        if (RESERVE(b, taglen + 10 + (Py_ssize_t)kv) == 0) {
            u_tag(b, tag, taglen);
            u_varint(b, kv);
            u_key_field(b, &k);
            u_byte(b, 0x12); /* KeyValue 2 value, len 2, AnyValue 2 bool_value */
            u_byte(b, 0x02);
            u_byte(b, 0x10);
            u_byte(b, value == Py_True ? 1 : 0);
            rc = 0;
        }
    }
    else if (t == &PyFloat_Type) {
        uint64_t kv = (uint64_t)kf + 11;
        if (RESERVE(b, taglen + 10 + (Py_ssize_t)kv) == 0) {
            u_tag(b, tag, taglen);
            u_varint(b, kv);
            u_key_field(b, &k);
            u_byte(b, 0x12); /* KeyValue 2 value, len 9, AnyValue 4 double_value */
            u_byte(b, 0x09);
            u_byte(b, 0x21);
            u_double(b, PyFloat_AS_DOUBLE(value));
            rc = 0;
        }
    }
    else {
        Py_ssize_t start = begin(b, tag, taglen);
        if (start < 0 || RESERVE(b, kf) < 0)
            goto done;
        u_key_field(b, &k);
        if (w_any(b, "\x12", 1, value, depth) < 0) /* KeyValue 2 value */
            goto done;
        rc = end(b, start);
    }
done:
    Py_XDECREF(k.owner);
    return rc;
}

/* One KeyValue written by w_key_value failed: an item's attribute (`dropped` given) whose value is left out
 * (_LeftOut: nests too deep, or holds an int outside int64) is cut back out of the buffer and counted (0: go
 * on); anything else is an error (-1). */
static inline int
drop_left_out(Buf *b, Py_ssize_t mark, Py_ssize_t *dropped)
{
    if (dropped == NULL || !clear_left_out())
        return -1;
    b->len = mark;
    (*dropped)++;
    return 0;
}

/* One tag + KeyValue per item of a mapping (a repeated KeyValue field). `dropped` (an item's attributes): count
 * the attributes left out there (_LeftOut); NULL (a nested mapping): let _LeftOut through. */
static int
w_attributes(Buf *b, const char *tag, Py_ssize_t taglen, PyObject *attributes, int depth, Py_ssize_t *dropped)
{
    if (PyDict_CheckExact(attributes)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(attributes, &pos, &key, &value)) {
            Py_ssize_t mark = b->len;
            Py_INCREF(key);
            Py_INCREF(value);
            int rc = w_key_value(b, tag, taglen, key, value, depth);
            Py_DECREF(key);
            Py_DECREF(value);
            if (rc < 0 && drop_left_out(b, mark, dropped) < 0)
                return -1;
        }
        return 0;
    }
    /* Any other mapping: its items(), as the pure encoder iterates it. */
    PyObject *items = PyObject_CallMethodNoArgs(attributes, str_items);
    if (items == NULL)
        return -1;
    PyObject *it = PyObject_GetIter(items);
    Py_DECREF(items);
    if (it == NULL)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        int rc;
        Py_ssize_t mark = b->len;
        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            rc = w_key_value(b, tag, taglen, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), depth);
        }
        else {
            PyObject *key = PySequence_GetItem(item, 0);
            PyObject *value = key ? PySequence_GetItem(item, 1) : NULL;
            rc = value ? w_key_value(b, tag, taglen, key, value, depth) : -1;
            Py_XDECREF(key);
            Py_XDECREF(value);
        }
        Py_DECREF(item);
        if (rc < 0 && drop_left_out(b, mark, dropped) < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* tag + an AnyValue message holding `value`, which sits inside `depth` lists and mappings. */
static int
w_any(Buf *b, const char *tag, Py_ssize_t taglen, PyObject *value, int depth)
{
    PyTypeObject *t = Py_TYPE(value);
    if (t == &PyUnicode_Type) {
        Utf8 s;
        if (utf8_of(value, &s) < 0)
            return -1;
        uint64_t av = 1 + (uint64_t)varint_size((uint64_t)s.n) + (uint64_t)s.n;
        int rc = RESERVE(b, taglen + 10 + (Py_ssize_t)av);
        if (rc == 0) {
            u_tag(b, tag, taglen);
            u_varint(b, av);
            u_byte(b, 0x0a); /* AnyValue 1 string_value */
            u_varint(b, (uint64_t)s.n);
            u_bytes(b, s.p, s.n);
        }
        Py_XDECREF(s.owner);
        return rc;
    }
    if (t == &PyLong_Type) {
        uint64_t u = 0;
        if (int64_of(value, &u) < 0 || RESERVE(b, taglen + 12) < 0)
            return -1;
        u_tag(b, tag, taglen);
        u_byte(b, (unsigned char)(1 + varint_size(u)));
        u_byte(b, 0x18); /* AnyValue 3 int_value */
        u_varint(b, u);
        return 0;
    }
    if (t == &PyBool_Type) {
        if (RESERVE(b, taglen + 3) < 0)
            return -1;
        u_tag(b, tag, taglen);
        u_byte(b, 0x02);
        u_byte(b, 0x10); /* AnyValue 2 bool_value */
        u_byte(b, value == Py_True ? 1 : 0);
        return 0;
    }
    if (t == &PyFloat_Type) {
        if (RESERVE(b, taglen + 10) < 0)
            return -1;
        u_tag(b, tag, taglen);
        u_byte(b, 0x09);
        u_byte(b, 0x21); /* AnyValue 4 double_value */
        u_double(b, PyFloat_AS_DOUBLE(value));
        return 0;
    }
    if (value == Py_None) {
        if (RESERVE(b, taglen + 1) < 0)
            return -1;
        u_tag(b, tag, taglen);
        u_byte(b, 0x00); /* the empty AnyValue */
        return 0;
    }
    if (t == &PyBytes_Type) {
        Py_ssize_t n = PyBytes_GET_SIZE(value);
        uint64_t av = 1 + (uint64_t)varint_size((uint64_t)n) + (uint64_t)n;
        if (RESERVE(b, taglen + 10 + (Py_ssize_t)av) < 0)
            return -1;
        u_tag(b, tag, taglen);
        u_varint(b, av);
        u_byte(b, 0x3a); /* AnyValue 7 bytes_value */
        u_varint(b, (uint64_t)n);
        u_bytes(b, PyBytes_AS_STRING(value), n);
        return 0;
    }
    if (t == &PyTuple_Type || t == &PyList_Type || t == &PyDict_Type) {
        if (depth >= MAX_NESTING_DEPTH)
            return raise_too_deep();
        if (Py_EnterRecursiveCall(" while encoding an attribute value"))
            return -1;
        int rc = -1;
        Py_ssize_t outer = begin(b, tag, taglen), inner;
        if (outer < 0)
            goto nested_done;
        if (t == &PyDict_Type) {
            inner = begin(b, "\x32", 1); /* AnyValue 6 kvlist_value */
            if (inner < 0 || w_attributes(b, "\x0a", 1, value, depth + 1, NULL) < 0) /* KeyValueList 1 values */
                goto nested_done;
        }
        else {
            inner = begin(b, "\x2a", 1); /* AnyValue 5 array_value */
            if (inner < 0)
                goto nested_done;
            /* A list is read as the pure encoder reads it (tuple(value)): a snapshot of its items. */
            PyObject *seq = t == &PyList_Type ? PyList_AsTuple(value) : Py_NewRef(value);
            if (seq == NULL)
                goto nested_done;
            Py_ssize_t n = PyTuple_GET_SIZE(seq);
            for (Py_ssize_t i = 0; i < n; i++) {
                if (w_any(b, "\x0a", 1, PyTuple_GET_ITEM(seq, i), depth + 1) < 0) { /* ArrayValue 1 values */
                    Py_DECREF(seq);
                    goto nested_done;
                }
            }
            Py_DECREF(seq);
        }
        if (end(b, inner) < 0 || end(b, outer) < 0)
            goto nested_done;
        rc = 0;
    nested_done:
        Py_LeaveRecursiveCall();
        return rc;
    }
    /* Anything else (subclasses, other mappings and sequences, bytearray, ...): as the pure encoder does. */
    PyObject *plain = normalize(value);
    if (plain == NULL)
        return -1;
    int rc;
    if (Py_TYPE(plain) == t) { /* cannot happen with _normalize; guards against endless recursion */
        rc = raise_encode_error("cannot encode a %.100s as an attribute value", t->tp_name);
    }
    else {
        rc = w_any(b, tag, taglen, plain, depth);
    }
    Py_DECREF(plain);
    return rc;
}

static int
tag_of(PyObject *field_tag, const char **tag, Py_ssize_t *taglen)
{
    if (!PyBytes_Check(field_tag)) {
        PyErr_Format(PyExc_TypeError, "field_tag must be bytes, not %.100s", Py_TYPE(field_tag)->tp_name);
        return -1;
    }
    *tag = PyBytes_AS_STRING(field_tag);
    *taglen = PyBytes_GET_SIZE(field_tag);
    return 0;
}

/* The optional `depth` argument (4th) of write_attributes / write_any: a non-negative int, 0 by default. */
static int
depth_of(PyObject *const *args, Py_ssize_t nargs, const char *usage, int *depth)
{
    *depth = 0;
    if (nargs != 3 && nargs != 4) {
        PyErr_Format(PyExc_TypeError, "%s takes 3 or 4 arguments", usage);
        return -1;
    }
    if (nargs == 4) {
        long d = PyLong_AsLong(args[3]);
        if (d == -1 && PyErr_Occurred())
            return -1;
        if (d < 0 || d > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "depth must be >= 0, got %ld", d);
            return -1;
        }
        *depth = (int)d;
    }
    return 0;
}

static PyObject *
py_write_attributes(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Buf b;
    const char *tag;
    Py_ssize_t taglen, dropped = 0;
    int depth;
    if (depth_of(args, nargs, "write_attributes(buf, field_tag, attributes[, depth])", &depth) < 0)
        return NULL;
    if (buf_open(&b, args[0]) < 0 || tag_of(args[1], &tag, &taglen) < 0)
        return NULL;
    PyObject *done = buf_close(&b, w_attributes(&b, tag, taglen, args[2], depth, depth ? NULL : &dropped) == 0);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    return PyLong_FromSsize_t(dropped);
}

static PyObject *
py_write_any(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Buf b;
    const char *tag;
    Py_ssize_t taglen;
    int depth;
    if (depth_of(args, nargs, "write_any(buf, field_tag, value[, depth])", &depth) < 0)
        return NULL;
    if (buf_open(&b, args[0]) < 0 || tag_of(args[1], &tag, &taglen) < 0)
        return NULL;
    return buf_close(&b, w_any(&b, tag, taglen, args[2], depth) == 0);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Shared by both span writers */

/* Span.status (15) with a message: Status 2 message, 3 code. */
static int
w_status_with_message(Buf *b, PyObject *message, long code)
{
    Py_ssize_t start = begin(b, "\x7a", 1);
    if (start < 0 || w_tag_str(b, 0x12, message, "Status.message") < 0)
        return -1;
    if (code) {
        if (code < 0 || code > 0x7f)
            return raise_encode_error("Status.code: %ld is not a status code", code);
        if (RESERVE(b, 2) < 0)
            return -1;
        u_byte(b, 0x18);
        u_byte(b, (unsigned char)code);
    }
    return end(b, start);
}

/* Span.status (15) without a message: empty for UNSET, else Status 3 code. */
static int
w_status_code_only(Buf *b, long code)
{
    if (code < 0 || code > 2)
        return raise_encode_error("Status.code: %ld is not a status code", code);
    if (RESERVE(b, 4) < 0)
        return -1;
    u_byte(b, 0x7a);
    if (code == 0) {
        u_byte(b, 0x00);
    }
    else {
        u_byte(b, 0x02);
        u_byte(b, 0x18);
        u_byte(b, (unsigned char)code);
    }
    return 0;
}

static int
long_of(PyObject *value, long *out, const char *what)
{
    if (!PyLong_Check(value))
        return raise_encode_error("%s must be an int, got %.100s", what, Py_TYPE(value)->tp_name);
    *out = PyLong_AsLong(value);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* OpenTelemetry SDK spans: aiotlp.sdk._encode._write_spans, read through the same private fields. */

typedef struct {
    PyObject *bounded_attributes; /* opentelemetry.attributes.BoundedAttributes */
    PyObject *bounded_list;       /* opentelemetry.sdk.util.BoundedList */
    PyObject *event;              /* opentelemetry.sdk.trace.Event */
    PyObject *trace_state_text;   /* aiotlp.sdk._encode._trace_state: TraceState -> "k=v,k2=v2" */
    PyObject *trace_state;        /* opentelemetry.trace.TraceState: its truth is len(self._dict) */
    PyObject *status;             /* opentelemetry.trace.Status: status_code/description are _status_code/_description */
    /* Identity caches for one call (strong references). */
    PyObject *last_status;        /* the previous span's status object ... */
    Py_ssize_t status_size;       /* ... the size of its field ... */
    Py_ssize_t status_at;         /* ... and where that field ends (6 bytes, Span.flags, before the span's end) */
    PyObject *last_kind;          /* the previous span's SpanKind ... */
    long kind;                    /* ... and its value */
    PyObject *last_code;          /* the previous StatusCode ... */
    long code;                    /* ... and its value */
    int length_guess;             /* bytes reserved for a span's length: that of the previous span */
} Sdk;

static int
sdk_open(PyObject *types, Sdk *out)
{
    memset(out, 0, sizeof(*out));
    if (!PyTuple_Check(types) || PyTuple_GET_SIZE(types) != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "types must be (BoundedAttributes, BoundedList, Event, trace_state_text, TraceState, Status)");
        return -1;
    }
    out->bounded_attributes = PyTuple_GET_ITEM(types, 0);
    out->bounded_list = PyTuple_GET_ITEM(types, 1);
    out->event = PyTuple_GET_ITEM(types, 2);
    out->trace_state_text = PyTuple_GET_ITEM(types, 3);
    out->trace_state = PyTuple_GET_ITEM(types, 4);
    out->status = PyTuple_GET_ITEM(types, 5);
    out->length_guess = 2;
    return 0;
}

static void
sdk_close(Sdk *sdk)
{
    Py_CLEAR(sdk->last_status);
    Py_CLEAR(sdk->last_kind);
    Py_CLEAR(sdk->last_code);
}

/* `item[index]` of a SpanContext (a tuple subclass), as a new reference. */
static PyObject *
context_item(PyObject *context, Py_ssize_t index)
{
    if (PyTuple_Check(context) && PyTuple_GET_SIZE(context) > index) {
        PyObject *item = PyTuple_GET_ITEM(context, index);
        Py_INCREF(item);
        return item;
    }
    return PySequence_GetItem(context, index);
}

/* An int in [0, 2**128) as two 64-bit halves; 0, or -1 (nothing raised) when out of range. */
static int
u128_of(PyObject *v, uint64_t *hi, uint64_t *lo)
{
#if defined(__SIZEOF_INT128__) && PY_VERSION_HEX < 0x030C0000
    /* CPython 3.10/3.11 layout: the sign in ob_size, |ob_size| digits of PyLong_SHIFT bits, least first. */
    Py_ssize_t size = Py_SIZE(v);
    if (size < 0)
        return -1;
    const digit *digits = ((PyLongObject *)v)->ob_digit;
    unsigned __int128 acc = 0;
    for (Py_ssize_t i = size - 1; i >= 0; i--) {
        if (acc >> (128 - PyLong_SHIFT))
            return -1;
        acc = (acc << PyLong_SHIFT) | digits[i];
    }
    *hi = (uint64_t)(acc >> 64);
    *lo = (uint64_t)acc;
    return 0;
#else
    unsigned char bytes[16];
#if PY_VERSION_HEX >= 0x030D0000
    int rc = _PyLong_AsByteArray((PyLongObject *)v, bytes, 16, 0, 0, 1);
#else
    int rc = _PyLong_AsByteArray((PyLongObject *)v, bytes, 16, 0, 0);
#endif
    if (rc < 0) {
        PyErr_Clear();
        return -1;
    }
    uint64_t h = 0, l = 0;
    for (int i = 0; i < 8; i++) {
        h = (h << 8) | bytes[i];
        l = (l << 8) | bytes[8 + i];
    }
    *hi = h;
    *lo = l;
    return 0;
#endif
}

/* Span/Link 1 trace_id (len 16, big-endian 128-bit int), 2 span_id (len 8, big-endian 64-bit int). */
static int
w_sdk_ids(Buf *b, PyObject *trace_id, PyObject *span_id)
{
    uint64_t hi = 0, lo = 0, span = 0;
    if (!PyLong_Check(trace_id))
        return raise_encode_error("a trace id must be an int, got %.100s", Py_TYPE(trace_id)->tp_name);
    if (u128_of(trace_id, &hi, &lo) < 0)
        return raise_encode_error("the trace id %S is not a 128-bit unsigned int", trace_id);
    if (uint64_of(span_id, &span, "a span id") < 0 || RESERVE(b, 28) < 0)
        return -1;
    u_byte(b, 0x0a);
    u_byte(b, 0x10);
    u_be64(b, hi);
    u_be64(b, lo);
    u_byte(b, 0x12);
    u_byte(b, 0x08);
    u_be64(b, span);
    return 0;
}

/* The truth of a TraceState (or whatever sits at context[4]). */
static int
trace_state_truth(PyObject *trace_state, const Sdk *sdk)
{
    if (trace_state == Py_None)
        return 0;
    if ((PyObject *)Py_TYPE(trace_state) == sdk->trace_state) {
        /* TraceState.__len__ is len(self._dict): read it without a Python-level call. */
        PyObject *d = PyObject_GetAttr(trace_state, str_dict);
        if (d != NULL && PyDict_Check(d)) {
            Py_ssize_t n = PyDict_GET_SIZE(d);
            Py_DECREF(d);
            return n != 0;
        }
        Py_XDECREF(d);
        PyErr_Clear();
    }
    return PyObject_IsTrue(trace_state);
}

/* tag + lp(_trace_state(trace_state)) */
static int
w_sdk_trace_state(Buf *b, unsigned char tag, PyObject *trace_state, const Sdk *sdk)
{
    PyObject *text = PyObject_CallOneArg(sdk->trace_state_text, trace_state);
    if (text == NULL)
        return -1;
    int rc = w_tag_str(b, tag, text, "a trace state");
    Py_DECREF(text);
    return rc;
}

/* Attributes (BoundedAttributes: its inner dict, and its dropped count) and dropped_attributes_count: the SDK's
 * count plus the attributes left out here (_LeftOut). */
static int
w_sdk_attributes(Buf *b, unsigned char tag, unsigned char dropped_tag, PyObject *attributes, const Sdk *sdk)
{
    char t = (char)tag;
    Py_ssize_t too_deep = 0;
    if ((PyObject *)Py_TYPE(attributes) == sdk->bounded_attributes) {
        PyObject *inner = PyObject_GetAttr(attributes, str_dict);
        if (inner == NULL)
            return -1;
        int truth = PyObject_IsTrue(inner);
        int rc = truth < 0 ? -1 : truth ? w_attributes(b, &t, 1, inner, 0, &too_deep) : 0;
        Py_DECREF(inner);
        if (rc < 0)
            return -1;
        PyObject *dropped = PyObject_GetAttr(attributes, str_dropped);
        if (dropped == NULL)
            return -1;
        if (too_deep) {
            PyObject *extra = PyLong_FromSsize_t(too_deep);
            PyObject *sum = extra ? PyNumber_Add(dropped, extra) : NULL;
            Py_XDECREF(extra);
            Py_DECREF(dropped);
            if ((dropped = sum) == NULL)
                return -1;
        }
        rc = w_opt_count(b, dropped_tag, dropped, "dropped_attributes_count");
        Py_DECREF(dropped);
        return rc;
    }
    int truth = PyObject_IsTrue(attributes);
    if (truth <= 0)
        return truth;
    if (w_attributes(b, &t, 1, attributes, 0, &too_deep) < 0)
        return -1;
    if (too_deep) {
        if (RESERVE(b, 11) < 0)
            return -1;
        u_byte(b, dropped_tag); /* dropped_attributes_count */
        u_varint(b, (uint64_t)too_deep);
    }
    return 0;
}

static int
w_sdk_event(Buf *b, PyObject *event, const Sdk *sdk)
{
    PyObject *time = NULL, *name = NULL, *attributes = NULL;
    int rc = -1;
    int direct = (PyObject *)Py_TYPE(event) == sdk->event;
    time = PyObject_GetAttr(event, direct ? str_event_timestamp : str_timestamp);
    name = time ? PyObject_GetAttr(event, direct ? str_event_name : str_name) : NULL;
    attributes = name ? PyObject_GetAttr(event, direct ? str_event_attributes : str_attributes) : NULL;
    if (attributes == NULL)
        goto done;
    Py_ssize_t start = begin(b, "\x5a", 1); /* Span 11 events */
    if (start < 0 || w_opt_fixed64(b, 0x09, time, "Event.timestamp") < 0 /* Event 1 time_unix_nano */
        || w_opt_str(b, 0x12, name, "Event.name") < 0                    /* Event 2 name */
        || w_sdk_attributes(b, 0x1a, 0x20, attributes, sdk) < 0)         /* Event 3 attributes, 4 dropped */
        goto done;
    rc = end(b, start);
done:
    Py_XDECREF(time);
    Py_XDECREF(name);
    Py_XDECREF(attributes);
    return rc;
}

static int
w_sdk_link(Buf *b, PyObject *link, const Sdk *sdk)
{
    PyObject *context = NULL, *trace_id = NULL, *span_id = NULL, *remote = NULL, *trace_state = NULL,
             *attributes = NULL;
    int rc = -1, truth;
    context = PyObject_GetAttr(link, str_lcontext);
    if (context == NULL)
        goto done;
    if ((trace_id = context_item(context, 0)) == NULL || (span_id = context_item(context, 1)) == NULL
        || (remote = context_item(context, 2)) == NULL || (trace_state = context_item(context, 4)) == NULL)
        goto done;
    Py_ssize_t start = begin(b, "\x6a", 1); /* Span 13 links */
    if (start < 0 || w_sdk_ids(b, trace_id, span_id) < 0)
        goto done;
    if ((truth = trace_state_truth(trace_state, sdk)) < 0)
        goto done;
    if (truth && w_sdk_trace_state(b, 0x1a, trace_state, sdk) < 0) /* Link 3 trace_state */
        goto done;
    if ((attributes = PyObject_GetAttr(link, str_attributes)) == NULL
        || w_sdk_attributes(b, 0x22, 0x28, attributes, sdk) < 0) /* Link 4 attributes, 5 dropped */
        goto done;
    if ((truth = PyObject_IsTrue(remote)) < 0 || RESERVE(b, 5) < 0)
        goto done;
    u_byte(b, 0x35); /* Link 6 flags: HAS_IS_REMOTE, | IS_REMOTE */
    u_fixed32(b, truth ? 0x300 : 0x100);
    rc = end(b, start);
done:
    Py_XDECREF(context);
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(remote);
    Py_XDECREF(trace_state);
    Py_XDECREF(attributes);
    return rc;
}

/* The events (or links) of a span: a BoundedList's deque and its dropped count, or any iterable; each item is
 * written by `write`, then `if dropped: dropped_tag + varint(dropped)`. */
static int
w_sdk_items(Buf *b, PyObject *span, PyObject *name, int (*write)(Buf *, PyObject *, const Sdk *),
            unsigned char dropped_tag, const Sdk *sdk)
{
    PyObject *list = PyObject_GetAttr(span, name), *items = NULL, *dropped = NULL, *item = NULL;
    int rc = -1;
    if (list == NULL)
        return -1;
    if ((PyObject *)Py_TYPE(list) == sdk->bounded_list) {
        if ((dropped = PyObject_GetAttr(list, str_dropped)) == NULL || (items = PyObject_GetAttr(list, str_dq)) == NULL)
            goto done;
    }
    else {
        items = Py_NewRef(list);
    }
    if (PyTuple_CheckExact(items) || PyList_CheckExact(items)) {
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items); i++) {
            item = Py_NewRef(PySequence_Fast_GET_ITEM(items, i));
            if (write(b, item, sdk) < 0)
                goto done;
            Py_CLEAR(item);
        }
    }
    else {
        /* A deque (BoundedList) or any other iterable; an empty sized container needs no iterator. */
        Py_ssize_t n = PyObject_Length(items);
        if (n < 0)
            PyErr_Clear();
        if (n != 0) {
            PyObject *it = PyObject_GetIter(items);
            if (it == NULL)
                goto done;
            while ((item = PyIter_Next(it)) != NULL) {
                if (write(b, item, sdk) < 0) {
                    Py_DECREF(it);
                    goto done;
                }
                Py_CLEAR(item);
            }
            Py_DECREF(it);
            if (PyErr_Occurred())
                goto done;
        }
    }
    rc = dropped != NULL ? w_opt_count(b, dropped_tag, dropped, "a dropped count") : 0;
done:
    Py_XDECREF(list);
    Py_XDECREF(items);
    Py_XDECREF(dropped);
    Py_XDECREF(item);
    return rc;
}

/* `enum_member._value_` as a C long, with a one-entry identity cache (enum members are singletons). */
static int
enum_value(PyObject *member, PyObject **last, long *value, const char *what)
{
    if (member == *last)
        return 0;
    PyObject *v = PyObject_GetAttr(member, str_value_);
    if (v == NULL)
        return -1;
    long result = 0;
    int rc = long_of(v, &result, what);
    Py_DECREF(v);
    if (rc < 0)
        return -1;
    Py_XSETREF(*last, Py_NewRef(member));
    *value = result;
    return 0;
}

/* Span.status (15) of an SDK Status: status_code._value_ and description. */
static int
w_sdk_status(Buf *b, PyObject *status, Sdk *sdk)
{
    PyObject *code_enum = NULL, *description = NULL;
    int rc = -1;
    /* An exact Status's properties return its _status_code and _description: read those directly. */
    int direct = (PyObject *)Py_TYPE(status) == sdk->status;
    if ((code_enum = PyObject_GetAttr(status, direct ? str_status_code_ : str_status_code)) == NULL
        || enum_value(code_enum, &sdk->last_code, &sdk->code, "Status.status_code") < 0
        || (description = PyObject_GetAttr(status, direct ? str_description_ : str_description)) == NULL)
        goto done;
    int truth = PyObject_IsTrue(description);
    if (truth < 0)
        goto done;
    rc = truth ? w_status_with_message(b, description, sdk->code) : w_status_code_only(b, sdk->code);
done:
    Py_XDECREF(code_enum);
    Py_XDECREF(description);
    return rc;
}

/* Everything of one span after ScopeSpans 2's tag and length placeholder. */
static int
w_sdk_span(Buf *b, PyObject *span, Sdk *sdk)
{
    PyObject *context = NULL, *parent = NULL, *trace_id = NULL, *span_id = NULL, *trace_state = NULL,
             *parent_id = NULL, *parent_remote = NULL, *v = NULL, *t0 = NULL, *t1 = NULL;
    int rc = -1, truth;

    if ((context = PyObject_GetAttr(span, str_context)) == NULL || (parent = PyObject_GetAttr(span, str_parent)) == NULL)
        goto done;
    if ((trace_id = context_item(context, 0)) == NULL || (span_id = context_item(context, 1)) == NULL
        || (trace_state = context_item(context, 4)) == NULL)
        goto done;
    if (parent != Py_None) {
        if ((parent_id = context_item(parent, 1)) == NULL || (parent_remote = context_item(parent, 2)) == NULL)
            goto done;
    }
    /* Span 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id */
    if (w_sdk_ids(b, trace_id, span_id) < 0 || (truth = trace_state_truth(trace_state, sdk)) < 0)
        goto done;
    if (truth && w_sdk_trace_state(b, 0x1a, trace_state, sdk) < 0)
        goto done;
    if (parent_id != NULL) {
        uint64_t pid = 0;
        if (uint64_of(parent_id, &pid, "a parent span id") < 0 || RESERVE(b, 10) < 0)
            goto done;
        u_byte(b, 0x22);
        u_byte(b, 0x08);
        u_be64(b, pid);
    }
    /* Span 5 name */
    if ((v = PyObject_GetAttr(span, str_event_name)) == NULL || w_opt_str(b, 0x2a, v, "Span.name") < 0)
        goto done;
    Py_CLEAR(v);
    /* Span 6 kind: the SDK's SpanKind value + 1 */
    if ((v = PyObject_GetAttr(span, str_kind)) == NULL || enum_value(v, &sdk->last_kind, &sdk->kind, "Span.kind") < 0)
        goto done;
    Py_CLEAR(v);
    if (sdk->kind < 0 || sdk->kind > 4) {
        raise_encode_error("Span.kind: %ld is not a SpanKind value", sdk->kind);
        goto done;
    }
    if (RESERVE(b, 2) < 0)
        goto done;
    u_byte(b, 0x30);
    u_byte(b, (unsigned char)(sdk->kind + 1));
    /* Span 7 start_time_unix_nano, 8 end_time_unix_nano */
    if ((t0 = PyObject_GetAttr(span, str_start_time)) == NULL || (t1 = PyObject_GetAttr(span, str_end_time)) == NULL
        || w_opt_fixed64(b, 0x39, t0, "Span.start_time") < 0 || w_opt_fixed64(b, 0x41, t1, "Span.end_time") < 0)
        goto done;
    /* Span 9 attributes, 10 dropped_attributes_count */
    if ((v = PyObject_GetAttr(span, str_event_attributes)) == NULL
        || w_sdk_attributes(b, 0x4a, 0x50, v, sdk) < 0)
        goto done;
    Py_CLEAR(v);
    /* Span 11 events, 12 dropped_events_count; 13 links, 14 dropped_links_count */
    if (w_sdk_items(b, span, str_events, w_sdk_event, 0x60, sdk) < 0
        || w_sdk_items(b, span, str_links, w_sdk_link, 0x70, sdk) < 0)
        goto done;
    /* Span 15 status: the bytes of the previous span's status when it is the same object */
    if ((v = PyObject_GetAttr(span, str_status)) == NULL)
        goto done;
    if (v == sdk->last_status) {
        Py_ssize_t n = sdk->status_size;
        if (RESERVE(b, n) < 0)
            goto done;
        /* the previous span ended with its status and the 6 bytes of Span.flags */
        memcpy(b->data + b->len, b->data + sdk->status_at - n, (size_t)n);
        b->len += n;
    }
    else {
        Py_ssize_t at = b->len;
        if (w_sdk_status(b, v, sdk) < 0)
            goto done;
        Py_XSETREF(sdk->last_status, Py_NewRef(v));
        sdk->status_size = b->len - at;
    }
    /* Span 16 flags: HAS_IS_REMOTE, | IS_REMOTE for a remote parent */
    truth = 0;
    if (parent_remote != NULL && (truth = PyObject_IsTrue(parent_remote)) < 0)
        goto done;
    if (RESERVE(b, 6) < 0)
        goto done;
    u_byte(b, 0x85);
    u_byte(b, 0x01);
    u_fixed32(b, truth ? 0x300 : 0x100);
    rc = 0;
done:
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(trace_state);
    Py_XDECREF(parent_id);
    Py_XDECREF(parent_remote);
    Py_XDECREF(v);
    Py_XDECREF(t0);
    Py_XDECREF(t1);
    return rc;
}

/* tag + a `guess`-byte length placeholder (the length is written as a minimal varint in any case). */
static inline Py_ssize_t
begin_guess(Buf *b, unsigned char tag, int guess)
{
    if (RESERVE(b, 1 + guess) < 0)
        return -1;
    u_byte(b, tag);
    b->len += guess;
    return b->len;
}

/* Write the length of b->data[start:] into the `guess` bytes before it, moving the payload if the varint is
 * shorter or longer; returns the varint's size (the next guess), or -1. */
static inline int
end_guess(Buf *b, Py_ssize_t start, int guess)
{
    uint64_t n = (uint64_t)(b->len - start);
    int size = varint_size(n);
    if (size != guess) {
        if (size > guess && RESERVE(b, size - guess) < 0)
            return -1;
        memmove(b->data + start + size - guess, b->data + start, (size_t)n);
        b->len += size - guess;
    }
    char *p = b->data + start - guess;
    while (n >= 0x80) {
        *p++ = (char)(n | 0x80);
        n >>= 7;
    }
    *p = (char)n;
    return size;
}

/* Bytes per span of the previous batch: the buffer is grown once, up front, instead of step by step (each
 * step copies everything written so far). Shared by all threads; a stale value only costs a resize. */
static Py_ssize_t span_size_hint = 512;

static int
reserve_for(Buf *b, Py_ssize_t count)
{
    Py_ssize_t hint = span_size_hint;
    if (count > 0 && hint > 0 && count < PY_SSIZE_T_MAX / 2 / hint)
        return RESERVE(b, count * hint + hint);
    return 0;
}

static void
learn_span_size(Buf *b, Py_ssize_t count, Py_ssize_t start)
{
    if (count > 0) {
        Py_ssize_t size = (b->len - start) / count;
        span_size_hint = size + size / 8 + 16;
    }
}

static PyObject *
py_write_sdk_spans(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Buf b;
    Sdk sdk;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_sdk_spans(buf, spans, types) takes 3 arguments");
        return NULL;
    }
    if (buf_open(&b, args[0]) < 0 || sdk_open(args[2], &sdk) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(args[1], "spans must be a sequence");
    if (seq == NULL)
        return buf_close(&b, 0);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), first = b.len;
    int ok = reserve_for(&b, n) == 0;
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        PyObject *span = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        Py_ssize_t start = begin_guess(&b, 0x12, sdk.length_guess); /* ScopeSpans 2 spans */
        ok = start >= 0 && w_sdk_span(&b, span, &sdk) == 0 && (sdk.length_guess = end_guess(&b, start, sdk.length_guess)) > 0;
        Py_DECREF(span);
        sdk.status_at = b.len - 6; /* where this span's status field ends */
    }
    if (ok)
        learn_span_size(&b, n, first);
    sdk_close(&sdk);
    Py_DECREF(seq);
    return buf_close(&b, ok);
}

/* One SDK span's ScopeSpans.spans field (tag, length, Span) as bytes: what write_sdk_spans writes for a batch of
 * one, without the caller's bytearray (encoding at the source, once per span in on_end). */
static PyObject *
py_sdk_span_field(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Buf b;
    Sdk sdk;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sdk_span_field(types, span) takes 2 arguments");
        return NULL;
    }
    PyObject *ba = PyByteArray_FromStringAndSize(NULL, 0);
    if (ba == NULL)
        return NULL;
    if (buf_open(&b, ba) < 0 || sdk_open(args[0], &sdk) < 0) {
        Py_DECREF(ba);
        return NULL;
    }
    PyObject *span = Py_NewRef(args[1]);
    Py_ssize_t start = begin_guess(&b, 0x12, 2); /* ScopeSpans 2 spans */
    int ok = start >= 0 && w_sdk_span(&b, span, &sdk) == 0 && end_guess(&b, start, 2) > 0;
    Py_DECREF(span);
    sdk_close(&sdk);
    PyObject *result = ok ? PyBytes_FromStringAndSize(b.data, b.len) : NULL;
    Py_DECREF(ba);
    return result;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* aiotlp's own model spans: aiotlp.encoding._protobuf._write_spans */

/* bytes `value` written as struct's "Ns" does: cut to n, or padded with zero bytes. */
static int
u_fixed_bytes(Buf *b, PyObject *value, Py_ssize_t n, const char *what)
{
    if (!PyBytes_Check(value))
        return raise_encode_error("%s must be bytes, got %.100s", what, Py_TYPE(value)->tp_name);
    Py_ssize_t m = PyBytes_GET_SIZE(value);
    if (m > n)
        m = n;
    u_bytes(b, PyBytes_AS_STRING(value), m);
    memset(b->data + b->len, 0, (size_t)(n - m));
    b->len += n - m;
    return 0;
}

static int
w_raw_bytes(Buf *b, PyObject *value, const char *what)
{
    if (!PyBytes_Check(value))
        return raise_encode_error("%s must be bytes, got %.100s", what, Py_TYPE(value)->tp_name);
    return w_bytes(b, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
}

/* A model item's `attributes` (tag) and `dropped_attributes_count` (dropped_tag): the item's count plus the
 * attributes left out (_LeftOut: the model lets ints outside int64 through), written when not 0. */
static int
w_model_attributes(Buf *b, PyObject *item, unsigned char tag, unsigned char dropped_tag, const char *what)
{
    char t = (char)tag;
    Py_ssize_t left_out = 0;
    int rc = -1;
    PyObject *attributes = PyObject_GetAttr(item, str_attributes), *dropped = NULL;
    if (attributes == NULL)
        return -1;
    int truth = PyObject_IsTrue(attributes);
    if (truth < 0 || (truth && w_attributes(b, &t, 1, attributes, 0, &left_out) < 0))
        goto done;
    if ((dropped = PyObject_GetAttr(item, str_dropped_attributes_count)) == NULL)
        goto done;
    if (left_out) {
        PyObject *extra = PyLong_FromSsize_t(left_out);
        PyObject *sum = extra ? PyNumber_Add(dropped, extra) : NULL;
        Py_XDECREF(extra);
        Py_SETREF(dropped, sum);
        if (dropped == NULL)
            goto done;
    }
    rc = w_opt_count(b, dropped_tag, dropped, what);
done:
    Py_DECREF(attributes);
    Py_XDECREF(dropped);
    return rc;
}

/* getattr + a writer taking (b, tag, value, what) */
#define FIELD(obj, name, expr)                                                                                      \
    do {                                                                                                            \
        PyObject *value = PyObject_GetAttr((obj), (name));                                                          \
        if (value == NULL)                                                                                          \
            goto done;                                                                                              \
        int field_rc = (expr);                                                                                      \
        Py_DECREF(value);                                                                                           \
        if (field_rc < 0)                                                                                           \
            goto done;                                                                                              \
    } while (0)

static int
w_model_event(Buf *b, PyObject *event)
{
    int rc = -1;
    Py_ssize_t start = begin(b, "\x5a", 1); /* Span 11 events */
    if (start < 0)
        return -1;
    FIELD(event, str_time_unix_nano, w_opt_fixed64(b, 0x09, value, "Event.time_unix_nano"));
    FIELD(event, str_name, w_opt_str(b, 0x12, value, "Event.name"));
    /* Event 3 attributes, 4 dropped_attributes_count */
    if (w_model_attributes(b, event, 0x1a, 0x20, "Event.dropped_attributes_count") < 0)
        goto done;
    rc = end(b, start);
done:
    return rc;
}

static int
w_opt_fixed32_field(Buf *b, const char *tag, Py_ssize_t taglen, PyObject *value, const char *what)
{
    uint32_t u = 0;
    int truth = PyObject_IsTrue(value);
    if (truth <= 0)
        return truth;
    if (uint32_of(value, &u, what) < 0 || RESERVE(b, taglen + 4) < 0)
        return -1;
    u_tag(b, tag, taglen);
    u_fixed32(b, u);
    return 0;
}

static int
w_model_link(Buf *b, PyObject *link)
{
    int rc = -1;
    Py_ssize_t start = begin(b, "\x6a", 1); /* Span 13 links */
    if (start < 0)
        return -1;
    FIELD(link, str_trace_id, w_bytes(b, "\x0a\x10", 2) < 0 ? -1 : w_raw_bytes(b, value, "Link.trace_id"));
    FIELD(link, str_span_id, w_bytes(b, "\x12\x08", 2) < 0 ? -1 : w_raw_bytes(b, value, "Link.span_id"));
    FIELD(link, str_trace_state, w_opt_str(b, 0x1a, value, "Link.trace_state"));
    /* Link 4 attributes, 5 dropped_attributes_count */
    if (w_model_attributes(b, link, 0x22, 0x28, "Link.dropped_attributes_count") < 0)
        goto done;
    FIELD(link, str_flags, w_opt_fixed32_field(b, "\x35", 1, value, "Link.flags"));
    rc = end(b, start);
done:
    return rc;
}

static int
w_model_status(Buf *b, PyObject *status)
{
    PyObject *code_obj = NULL, *message = NULL;
    long code = 0;
    int rc = -1;
    if ((code_obj = PyObject_GetAttr(status, str_code)) == NULL || long_of(code_obj, &code, "Status.code") < 0
        || (message = PyObject_GetAttr(status, str_message)) == NULL)
        goto done;
    int truth = PyObject_IsTrue(message);
    if (truth < 0)
        goto done;
    rc = truth ? w_status_with_message(b, message, code) : w_status_code_only(b, code);
done:
    Py_XDECREF(code_obj);
    Py_XDECREF(message);
    return rc;
}

static int
w_model_items(Buf *b, PyObject *obj, PyObject *name, int (*write)(Buf *, PyObject *))
{
    PyObject *items = PyObject_GetAttr(obj, name);
    if (items == NULL)
        return -1;
    PyObject *seq = PySequence_Fast(items, "expected a sequence");
    Py_DECREF(items);
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (write(b, PySequence_Fast_GET_ITEM(seq, i)) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int
w_model_span(Buf *b, PyObject *span)
{
    PyObject *trace_id = NULL, *span_id = NULL, *parent = NULL, *trace_state = NULL;
    int rc = -1, truth;
    if ((trace_id = PyObject_GetAttr(span, str_trace_id)) == NULL
        || (span_id = PyObject_GetAttr(span, str_span_id)) == NULL
        || (parent = PyObject_GetAttr(span, str_parent_span_id)) == NULL
        || (trace_state = PyObject_GetAttr(span, str_trace_state)) == NULL)
        goto done;
    /* Span 1 trace_id (len 16), 2 span_id (len 8), 3 trace_state, 4 parent_span_id (len 8) */
    if (RESERVE(b, 28) < 0)
        goto done;
    u_bytes(b, "\x0a\x10", 2);
    if (u_fixed_bytes(b, trace_id, 16, "Span.trace_id") < 0)
        goto done;
    u_bytes(b, "\x12\x08", 2);
    if (u_fixed_bytes(b, span_id, 8, "Span.span_id") < 0)
        goto done;
    if ((truth = PyObject_IsTrue(trace_state)) < 0)
        goto done;
    if (truth) {
        if (w_tag_str(b, 0x1a, trace_state, "Span.trace_state") < 0)
            goto done;
        if ((truth = PyObject_IsTrue(parent)) < 0)
            goto done;
        if (truth && (w_bytes(b, "\x22\x08", 2) < 0 || w_raw_bytes(b, parent, "Span.parent_span_id") < 0))
            goto done;
    }
    else {
        if ((truth = PyObject_IsTrue(parent)) < 0)
            goto done;
        if (truth) {
            if (RESERVE(b, 10) < 0)
                goto done;
            u_bytes(b, "\x22\x08", 2);
            if (u_fixed_bytes(b, parent, 8, "Span.parent_span_id") < 0)
                goto done;
        }
    }
    FIELD(span, str_name, w_opt_str(b, 0x2a, value, "Span.name"));
    long kind = 0;
    FIELD(span, str_m_kind, long_of(value, &kind, "Span.kind"));
    if (kind < 0 || kind > 5) {
        raise_encode_error("Span.kind: %ld is not a SpanKind", kind);
        goto done;
    }
    if (kind) { /* Span 6 kind: nothing for UNSPECIFIED */
        if (RESERVE(b, 2) < 0)
            goto done;
        u_byte(b, 0x30);
        u_byte(b, (unsigned char)kind);
    }
    FIELD(span, str_start_time_unix_nano, w_opt_fixed64(b, 0x39, value, "Span.start_time_unix_nano"));
    FIELD(span, str_end_time_unix_nano, w_opt_fixed64(b, 0x41, value, "Span.end_time_unix_nano"));
    /* Span 9 attributes, 10 dropped_attributes_count */
    if (w_model_attributes(b, span, 0x4a, 0x50, "Span.dropped_attributes_count") < 0)
        goto done;
    if (w_model_items(b, span, str_m_events, w_model_event) < 0)
        goto done;
    FIELD(span, str_dropped_events_count, w_opt_count(b, 0x60, value, "Span.dropped_events_count"));
    if (w_model_items(b, span, str_m_links, w_model_link) < 0)
        goto done;
    FIELD(span, str_dropped_links_count, w_opt_count(b, 0x70, value, "Span.dropped_links_count"));
    FIELD(span, str_m_status, w_model_status(b, value));
    FIELD(span, str_flags, w_opt_fixed32_field(b, "\x85\x01", 2, value, "Span.flags"));
    rc = 0;
done:
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(parent);
    Py_XDECREF(trace_state);
    return rc;
}

static PyObject *
py_write_spans(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Buf b;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "write_spans(buf, spans) takes 2 arguments");
        return NULL;
    }
    if (buf_open(&b, args[0]) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(args[1], "spans must be a sequence");
    if (seq == NULL)
        return buf_close(&b, 0);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), first = b.len;
    int ok = reserve_for(&b, n) == 0;
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        PyObject *span = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(span);
        Py_ssize_t start = begin(&b, "\x12", 1); /* ScopeSpans 2 spans */
        ok = start >= 0 && w_model_span(&b, span) == 0 && end(&b, start) == 0;
        Py_DECREF(span);
    }
    if (ok)
        learn_span_size(&b, n, first);
    Py_DECREF(seq);
    return buf_close(&b, ok);
}

/* ---------------------------------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"write_attributes", (PyCFunction)(void (*)(void))py_write_attributes, METH_FASTCALL,
     "write_attributes(buf, field_tag, attributes): one field_tag + KeyValue per item, appended to buf."},
    {"write_any", (PyCFunction)(void (*)(void))py_write_any, METH_FASTCALL,
     "write_any(buf, field_tag, value): field_tag + an AnyValue message, appended to buf."},
    {"write_spans", (PyCFunction)(void (*)(void))py_write_spans, METH_FASTCALL,
     "write_spans(buf, spans): ScopeSpans.spans entries of aiotlp model spans, appended to buf."},
    {"write_sdk_spans", (PyCFunction)(void (*)(void))py_write_sdk_spans, METH_FASTCALL,
     "write_sdk_spans(buf, spans, types): ScopeSpans.spans entries of OpenTelemetry SDK ReadableSpans."},
    {"sdk_span_field", (PyCFunction)(void (*)(void))py_sdk_span_field, METH_FASTCALL,
     "sdk_span_field(types, span) -> bytes: one SDK span's ScopeSpans.spans entry."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "aiotlp.encoding._speedups",
    "The optional compiled twin of aiotlp's protobuf hot paths (see aiotlp.encoding._compat).", -1, methods,
    NULL, NULL, NULL, NULL,
};

#define INTERN(var, text)                                                                                           \
    do {                                                                                                            \
        if ((var = PyUnicode_InternFromString(text)) == NULL)                                                       \
            return NULL;                                                                                            \
    } while (0)

PyMODINIT_FUNC
PyInit__speedups(void)
{
    INTERN(str_items, "items");
    INTERN(str_context, "_context");
    INTERN(str_parent, "_parent");
    INTERN(str_name, "name");
    INTERN(str_kind, "_kind");
    INTERN(str_value_, "_value_");
    INTERN(str_start_time, "_start_time");
    INTERN(str_end_time, "_end_time");
    INTERN(str_attributes, "attributes");
    INTERN(str_events, "_events");
    INTERN(str_links, "_links");
    INTERN(str_status, "_status");
    INTERN(str_dict, "_dict");
    INTERN(str_dropped, "dropped");
    INTERN(str_dq, "_dq");
    INTERN(str_timestamp, "timestamp");
    INTERN(str_event_name, "_name");
    INTERN(str_event_attributes, "_attributes");
    INTERN(str_event_timestamp, "_timestamp");
    INTERN(str_status_code, "status_code");
    INTERN(str_description, "description");
    INTERN(str_lcontext, "context");
    INTERN(str_status_code_, "_status_code");
    INTERN(str_description_, "_description");
    INTERN(str_trace_id, "trace_id");
    INTERN(str_span_id, "span_id");
    INTERN(str_parent_span_id, "parent_span_id");
    INTERN(str_trace_state, "trace_state");
    INTERN(str_flags, "flags");
    INTERN(str_start_time_unix_nano, "start_time_unix_nano");
    INTERN(str_end_time_unix_nano, "end_time_unix_nano");
    INTERN(str_time_unix_nano, "time_unix_nano");
    INTERN(str_dropped_attributes_count, "dropped_attributes_count");
    INTERN(str_dropped_events_count, "dropped_events_count");
    INTERN(str_dropped_links_count, "dropped_links_count");
    INTERN(str_code, "code");
    INTERN(str_message, "message");
    INTERN(str_m_kind, "kind");
    INTERN(str_m_events, "events");
    INTERN(str_m_links, "links");
    INTERN(str_m_status, "status");
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_NESTING_DEPTH", MAX_NESTING_DEPTH) < 0)
        Py_CLEAR(m);
    return m;
}
