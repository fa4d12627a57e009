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
 *   sdk_span_item(types, direct, memo, ids, span)  aiotlp.sdk._encode_source._span_item (on_end's hot path)
 *   SpanCore, set_warning_hook(hook)            aiotlp.encoding._spancore (a live span's state; its encode() writes
 *                                               what _span_field writes for the SDK span with the same content)
 *   sdk_log_field(types, record) -> bytes     aiotlp.sdk._encode_logs._log_field (one log record, at the source)
 *   sdk_log_item(types, direct, memo, ids, record)  aiotlp.sdk._encode_source._log_item (on_emit's hot path)
 *   write_sdk_logs(buf, records, types)       aiotlp.sdk._encode_logs._write_log_records (SDK log records)
 *   frame_source(items, groups) -> bytes|None aiotlp.sdk._encode_source._frame_one (a batch encoded at the source,
 *                                             framed into its request when it is the common one: one key)
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
#include <time.h>

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

/* A reusable buffer (a bytearray) for one kind of field written as bytes; busy while a call writes in it (a call
 * re-entered from another thread meanwhile takes a new buffer). */
typedef struct {
    PyObject *ba;
    int busy;
} Scratch;

static PyObject *scratch_field(Scratch *scratch, unsigned char tag, int (*write)(Buf *, void *), void *arg,
                               const char *what);

static Scratch s_sdk_scratch; /* sdk_field's */

typedef struct {
    PyObject *span;
    Sdk *sdk;
} SdkSpanArg;

static int
write_sdk_span(Buf *b, void *arg)
{
    return w_sdk_span(b, ((SdkSpanArg *)arg)->span, ((SdkSpanArg *)arg)->sdk);
}

/* One SDK span's ScopeSpans.spans field (tag, length, Span) as bytes: what write_sdk_spans writes for a batch of
 * one, without the caller's bytearray (encoding at the source, once per span in on_end), written in a buffer kept
 * from one span to the next (scratch_field): one allocation per span, the bytes returned. */
static PyObject *
sdk_field(PyObject *types, PyObject *span)
{
    Sdk sdk;
    if (sdk_open(types, &sdk) < 0)
        return NULL;
    Py_INCREF(span);
    SdkSpanArg arg = {span, &sdk};
    PyObject *result = scratch_field(&s_sdk_scratch, 0x12, write_sdk_span, &arg, "span"); /* ScopeSpans 2 spans */
    Py_DECREF(span);
    sdk_close(&sdk);
    return result;
}

static PyObject *
py_sdk_span_field(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sdk_span_field(types, span) takes 2 arguments");
        return NULL;
    }
    return sdk_field(args[0], args[1]);
}

/* The key of (resource, scope), found by identity: memo's (resource, scope, key) when they are its own, else
 * ids[(id(resource), id(scope))]'s (same form) when they are its own. 1 with *key (a new reference, an int >= 0),
 * 0 when neither holds them or the key is not such an int, -1 with an error set. */
static int
source_key(PyObject *memo, PyObject *ids, PyObject *resource, PyObject *scope, PyObject **key)
{
    if (PyTuple_GET_ITEM(memo, 0) != resource || PyTuple_GET_ITEM(memo, 1) != scope) {
        PyObject *pair = Py_BuildValue("(NN)", PyLong_FromVoidPtr(resource), PyLong_FromVoidPtr(scope));
        if (pair == NULL)
            return -1;
        memo = PyDict_GetItemWithError(ids, pair);
        Py_DECREF(pair);
        if (memo == NULL)
            return PyErr_Occurred() ? -1 : 0;
        if (!PyTuple_Check(memo) || PyTuple_GET_SIZE(memo) != 3 || PyTuple_GET_ITEM(memo, 0) != resource
            || PyTuple_GET_ITEM(memo, 1) != scope)
            return 0;
    }
    PyObject *k = Py_NewRef(PyTuple_GET_ITEM(memo, 2)); /* ids' entry may be replaced meanwhile */
    int overflow = 0;
    long value = PyLong_Check(k) ? PyLong_AsLongAndOverflow(k, &overflow) : -1;
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(k);
        return -1;
    }
    if (value < 0 || overflow < 0) {
        Py_DECREF(k);
        return 0;
    }
    *key = k;
    return 1;
}

/* (key, field) as the hot paths queue it: a tuple of an int and bytes, untracked by the garbage collector at
 * once (as a young collection would). Steals both; NULL on error. */
static PyObject *
source_pair(PyObject *key, PyObject *field)
{
    PyObject *item = PyTuple_New(2);
    if (item == NULL) {
        Py_DECREF(key);
        Py_DECREF(field);
        return NULL;
    }
    PyTuple_SET_ITEM(item, 0, key);
    PyTuple_SET_ITEM(item, 1, field);
    PyObject_GC_UnTrack(item);
    return item;
}

/* The hot paths' common end: (key, field_of(types, item)) when (resource, scope) have a key (source_key), else
 * `item` itself; an Exception on the way is cleared and gives `item` too (the caller's other path reads it again).
 * Steals resource and scope. */
static PyObject *
source_item(PyObject *types, PyObject *item, PyObject *resource, PyObject *scope, PyObject *memo, PyObject *ids,
            PyObject *(*field_of)(PyObject *, PyObject *))
{
    PyObject *key = NULL, *result = NULL;
    int found = source_key(memo, ids, resource, scope, &key);
    if (found == 0) {
        result = Py_NewRef(item);
    }
    else if (found > 0) {
        PyObject *field = field_of(types, item); /* NULL: the item is queued as the object (counted at export) */
        if (field != NULL)
            result = source_pair(key, field);
        else
            Py_DECREF(key);
    }
    Py_DECREF(resource);
    Py_DECREF(scope);
    if (result == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear(); /* as the pure twins: the other path decides (an Exception here never reaches the caller) */
        result = Py_NewRef(item);
    }
    return result;
}

/* on_end's hot path (aiotlp.sdk._encode_source._span_item, encoding at the source), in one call: None when the
 * span is not sampled (span._context[3] & 1 == 0); (key, field) when its class is read directly
 * (direct[type(span)] is True), its (_resource, _instrumentation_scope) are, by identity, those of memo
 * (resource, scope, key) or of ids[(id(resource), id(scope))] (same form), key >= 0, and it encodes (field: what
 * sdk_span_field returns); otherwise the span itself, for the caller's slow path (which reads it again: any
 * Exception here is cleared). The tuple holds an int and bytes only: it is untracked by the garbage collector at
 * once (as a young collection would). */
static PyObject *
py_sdk_span_item(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static PyObject *str_resource_, *str_scope_;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "sdk_span_item(types, direct, memo, ids, span) takes 5 arguments");
        return NULL;
    }
    PyObject *direct = args[1], *memo = args[2], *ids = args[3], *span = args[4];
    if (!PyDict_Check(direct) || !PyDict_Check(ids) || !PyTuple_Check(memo) || PyTuple_GET_SIZE(memo) != 3) {
        PyErr_SetString(PyExc_TypeError, "sdk_span_item: direct and ids must be dicts, memo a 3-tuple");
        return NULL;
    }
    if (str_resource_ == NULL && (str_resource_ = PyUnicode_InternFromString("_resource")) == NULL)
        return NULL;
    if (str_scope_ == NULL && (str_scope_ = PyUnicode_InternFromString("_instrumentation_scope")) == NULL)
        return NULL;
    /* sampled: SpanContext is a tuple, its item 3 the trace flags (an int) */
    PyObject *context = PyObject_GetAttr(span, str_context);
    if (context == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
        return Py_NewRef(span);
    }
    long flags = -1;
    if (PyTuple_Check(context) && PyTuple_GET_SIZE(context) > 3 && PyLong_Check(PyTuple_GET_ITEM(context, 3))) {
        flags = PyLong_AsLong(PyTuple_GET_ITEM(context, 3));
        if (flags == -1 && PyErr_Occurred())
            PyErr_Clear(); /* out of range: the slow path decides */
    }
    Py_DECREF(context);
    if (flags < 0)
        return Py_NewRef(span);
    if (!(flags & 1))
        Py_RETURN_NONE;
    PyObject *how = PyDict_GetItemWithError(direct, (PyObject *)Py_TYPE(span));
    if (how != Py_True)
        return PyErr_Occurred() ? NULL : Py_NewRef(span);
    /* the span's resource and scope, by identity: memo's, else ids' entry for them */
    PyObject *resource = PyObject_GetAttr(span, str_resource_), *scope = NULL;
    if (resource != NULL)
        scope = PyObject_GetAttr(span, str_scope_);
    if (resource == NULL || scope == NULL) {
        Py_XDECREF(resource);
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
        return Py_NewRef(span);
    }
    return source_item(args[0], span, resource, scope, memo, ids, sdk_field);
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
/* SpanCore: the state of one span, kept here, encoded straight from here (the twin of
 * aiotlp.encoding._spancore.SpanCore; the interface is in that module's docstring).
 *
 * Attributes are the SDK's BoundedAttributes (opentelemetry.attributes): values cleaned as _clean_attribute_value
 * cleans them, strings cut to max_attribute_length, a new key past max_attributes evicting the oldest. Events and
 * links are the SDK's BoundedList (a deque with a maxlen): C arrays of records, the oldest evicted past the limit.
 * Every count is as the SDK counts it.
 *
 * Thread safety comes from the GIL: everything that may run Python code (cleaning a value: isinstance against
 * the collections.abc ABCs, str() of odd values and keys, the warning hook, allocating a GC-tracked object) is
 * done before an update or after it, never in the middle. An update itself only touches C fields and a dict whose
 * keys are exact str objects; what it removes (an old value, an evicted item) is released after it. So two
 * threads updating one span at once lose nothing and never exceed a limit. */

static PyObject *s_warning_hook;   /* set_warning_hook(callable): one str argument; None: warnings are dropped */
static PyObject *s_abc_sequence;   /* collections.abc.Sequence, imported on first use */
static PyObject *s_abc_mapping;    /* collections.abc.Mapping, imported on first use */
static PyObject *s_object_str;     /* object.__str__ and object.__repr__ (the SDK's _is_non_custom_str) */
static PyObject *s_object_repr;

static Scratch s_scratch; /* encode()'s */

/* Report a warning through the hook (the SDK's text). Call it only outside an update. -1 if the hook raised. */
static int
core_warn(const char *format, ...)
{
    if (s_warning_hook == NULL || s_warning_hook == Py_None)
        return 0;
    va_list vargs;
    va_start(vargs, format);
    PyObject *message = PyUnicode_FromFormatV(format, vargs);
    va_end(vargs);
    if (message == NULL)
        return -1;
    PyObject *hook = Py_NewRef(s_warning_hook);
    PyObject *result = PyObject_CallOneArg(hook, message);
    Py_DECREF(hook);
    Py_DECREF(message);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static PyObject *
py_set_warning_hook(PyObject *self, PyObject *hook)
{
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_Format(PyExc_TypeError, "hook must be a callable or None, got %.100s", Py_TYPE(hook)->tp_name);
        return NULL;
    }
    PyObject *previous = s_warning_hook ? s_warning_hook : Py_NewRef(Py_None);
    s_warning_hook = Py_NewRef(hook);
    return previous; /* the hook it replaces (None: none), so a caller can put it back */
}

#define DICT_FULL_TEXT                                                                                              \
    "Attributes dict is full. Dropping the oldest key-value pair from attributes to make space for the new "       \
    "key-value pair."

typedef struct {
    PyObject *name;       /* str */
    uint64_t time;        /* ns */
    PyObject *attributes; /* dict (exact; its keys exact str) */
    Py_ssize_t dropped;   /* its dropped_attributes_count (the SDK's BoundedAttributes.dropped) */
} CoreEvent;

typedef struct {
    PyObject *trace_id;   /* int, for the property */
    uint64_t trace_hi, trace_lo, span_id;
    uint32_t flags;       /* Link.flags as written */
    PyObject *trace_state; /* str */
    PyObject *attributes; /* dict */
    Py_ssize_t dropped;
} CoreLink;

/* limits: LIM_LENGTH bounds event and link attribute values, LIM_SPAN_LENGTH the span's own (the SDK's
 * max_attribute_length and max_span_attribute_length). */
enum { LIM_ATTRS, LIM_EVENTS, LIM_LINKS, LIM_EVENT_ATTRS, LIM_LINK_ATTRS, LIM_LENGTH, LIM_SPAN_LENGTH, N_LIMITS };

typedef struct {
    PyObject_HEAD
    PyObject *name;        /* str */
    PyObject *trace_state; /* str */
    PyObject *attributes;  /* dict (exact; its keys exact str), NULL until the first attribute */
    PyObject *description; /* str: Status.message */
    uint64_t trace_hi, trace_lo, span_id, parent_span_id, start_time, end_time;
    uint32_t flags;
    int kind, status_code, ended;
    Py_ssize_t limits[N_LIMITS]; /* -1: unlimited */
    Py_ssize_t dropped_attributes, dropped_events, dropped_links;
    CoreEvent *events;
    Py_ssize_t n_events, cap_events;
    CoreLink *links;
    Py_ssize_t n_links, cap_links;
} SpanCoreObject;

static PyTypeObject SpanCore_Type;

/* Up to this many objects an update removed, released when it is over. */
#define GRAVE 6
typedef struct {
    PyObject *items[GRAVE];
    int n;
} Grave;

static inline void
grave_put(Grave *g, PyObject *o) /* steals o */
{
    g->items[g->n++] = o;
}

static void
grave_release(Grave *g)
{
    for (int i = 0; i < g->n; i++)
        Py_DECREF(g->items[i]);
    g->n = 0;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) == 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- cleaning: opentelemetry.attributes._clean_attribute_value ---- */

static int
load_abcs(void)
{
    if (s_abc_mapping != NULL)
        return 0;
    PyObject *abc = PyImport_ImportModule("collections.abc");
    if (abc == NULL)
        return -1;
    s_abc_sequence = PyObject_GetAttrString(abc, "Sequence");
    s_abc_mapping = s_abc_sequence ? PyObject_GetAttrString(abc, "Mapping") : NULL;
    Py_DECREF(abc);
    if (s_abc_mapping == NULL) {
        Py_CLEAR(s_abc_sequence);
        return -1;
    }
    s_object_str = PyObject_GetAttrString((PyObject *)&PyBaseObject_Type, "__str__");
    s_object_repr = s_object_str ? PyObject_GetAttrString((PyObject *)&PyBaseObject_Type, "__repr__") : NULL;
    if (s_object_repr == NULL) {
        Py_CLEAR(s_object_str);
        Py_CLEAR(s_abc_sequence);
        Py_CLEAR(s_abc_mapping);
        return -1;
    }
    return 0;
}

/* The SDK's _is_non_custom_str: the type defines __str__ or __repr__ (str() says more than object's default). */
static int
has_custom_str(PyObject *o)
{
    PyObject *t = (PyObject *)Py_TYPE(o);
    PyObject *s = PyObject_GetAttrString(t, "__str__");
    if (s == NULL)
        return -1;
    int custom = s != s_object_str;
    Py_DECREF(s);
    if (custom)
        return 1;
    PyObject *r = PyObject_GetAttrString(t, "__repr__");
    if (r == NULL)
        return -1;
    custom = r != s_object_repr;
    Py_DECREF(r);
    return custom;
}

/* A str cut to max_len code points (the SDK warns each time). New reference. */
static PyObject *
clean_str(PyObject *value, Py_ssize_t max_len)
{
    if (max_len >= 0 && PyUnicode_GET_LENGTH(value) > max_len) {
        if (core_warn("String attribute value exceeds max length of %zd, truncating.", max_len) < 0)
            return NULL;
        return PyUnicode_Substring(value, 0, max_len);
    }
    return Py_NewRef(value);
}

static PyObject *clean_value(PyObject *value, Py_ssize_t max_len);

/* A dict the SDK's cleaning leaves as it is, with exact str keys: its keys non-empty exact str, its values exact
 * int, float, bool, None, bytes, or str of at most max_len code points. Runs no Python code. */
static int
plain_dict(PyObject *mapping, Py_ssize_t max_len)
{
    if (!PyDict_CheckExact(mapping))
        return 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(mapping, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || PyUnicode_GET_LENGTH(key) == 0)
            return 0;
        PyTypeObject *t = Py_TYPE(value);
        if (t == &PyUnicode_Type) {
            if (max_len >= 0 && PyUnicode_GET_LENGTH(value) > max_len)
                return 0;
        }
        else if (!(t == &PyLong_Type || t == &PyFloat_Type || t == &PyBool_Type || value == Py_None
                   || t == &PyBytes_Type)) {
            return 0;
        }
    }
    return 1;
}

/* The SDK's cleaning of a mapping: a new dict; empty keys dropped, other non-str keys made str when they have a
 * str() of their own (else dropped), each with the SDK's warning. `exact_keys`: str subclass keys become exact
 * str (a span's or item's own attributes: a dict update then runs no Python code). */
static PyObject *
clean_mapping(PyObject *mapping, Py_ssize_t max_len, int exact_keys)
{
    if (exact_keys && plain_dict(mapping, max_len))
        return PyDict_Copy(mapping);
    PyObject *out = PyDict_New(), *items = NULL, *it = NULL, *item = NULL;
    if (out == NULL)
        return NULL;
    if (PyDict_CheckExact(mapping)) {
        items = PyDict_Items(mapping); /* a snapshot: cleaning runs Python code that may change the dict */
    }
    else {
        PyObject *view = PyObject_CallMethodNoArgs(mapping, str_items);
        items = view ? PySequence_List(view) : NULL;
        Py_XDECREF(view);
    }
    if (items == NULL)
        goto error;
    it = PyObject_GetIter(items);
    if (it == NULL)
        goto error;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *key, *value;
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
            key = Py_NewRef(PyTuple_GET_ITEM(item, 0));
            value = Py_NewRef(PyTuple_GET_ITEM(item, 1));
        }
        else {
            key = PySequence_GetItem(item, 0);
            value = key ? PySequence_GetItem(item, 1) : NULL;
            if (value == NULL) {
                Py_XDECREF(key);
                goto error;
            }
        }
        Py_CLEAR(item);
        int truth = PyObject_IsTrue(key), rc = -1;
        if (truth < 0)
            goto item_done;
        if (!truth) {
            rc = core_warn("invalid attribute key `%S`. must be non-empty string. Dropping key from attributes.", key);
            goto item_done;
        }
        if (!PyUnicode_Check(key)) {
            if (core_warn("Invalid type `%S` for attribute key `%S`, must be a str. Key's `__str__/__repr__` method "
                          "will be called if it exists, otherwise the key/value pair will be dropped.",
                          (PyObject *)Py_TYPE(key), key)
                < 0)
                goto item_done;
            int custom = has_custom_str(key);
            if (custom <= 0) {
                rc = custom;
                goto item_done;
            }
            Py_SETREF(key, PyObject_Str(key));
            if (key == NULL)
                goto item_done;
        }
        if (exact_keys && !PyUnicode_CheckExact(key)) { /* a str subclass (also what a __str__ may return) */
            Py_SETREF(key, PyUnicode_FromObject(key));
            if (key == NULL)
                goto item_done;
        }
        PyObject *cleaned = clean_value(value, max_len);
        if (cleaned != NULL) {
            rc = PyDict_SetItem(out, key, cleaned);
            Py_DECREF(cleaned);
        }
    item_done:
        Py_XDECREF(key);
        Py_DECREF(value);
        if (rc < 0)
            goto error;
    }
    if (PyErr_Occurred())
        goto error;
    Py_DECREF(it);
    Py_DECREF(items);
    return out;
error:
    Py_XDECREF(item);
    Py_XDECREF(it);
    Py_XDECREF(items);
    Py_DECREF(out);
    return NULL;
}

static PyObject *
clean_sequence(PyObject *value, Py_ssize_t max_len)
{
    PyObject *items = PySequence_Tuple(value);
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        Py_DECREF(items);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(items, i), *c;
        PyTypeObject *t = Py_TYPE(v);
        if (t == &PyLong_Type || t == &PyFloat_Type || t == &PyBool_Type || v == Py_None)
            c = Py_NewRef(v);
        else if (t == &PyUnicode_Type)
            c = clean_str(v, max_len);
        else
            c = clean_value(v, max_len);
        if (c == NULL) {
            Py_DECREF(items);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, c);
    }
    Py_DECREF(items);
    return out;
}

/* _clean_attribute_value: a new reference to the value the SDK would store. */
static PyObject *
clean_value(PyObject *value, Py_ssize_t max_len)
{
    PyTypeObject *t = Py_TYPE(value);
    if (t == &PyUnicode_Type)
        return clean_str(value, max_len);
    if (value == Py_None || PyLong_Check(value) || PyFloat_Check(value) || PyBytes_Check(value))
        return Py_NewRef(value); /* bool is an int */
    if (PyUnicode_Check(value))
        return clean_str(value, max_len);
    if (Py_EnterRecursiveCall(" while cleaning an attribute value"))
        return NULL;
    PyObject *out = NULL;
    int is;
    if (t == &PyTuple_Type || t == &PyList_Type) {
        out = clean_sequence(value, max_len);
        goto done;
    }
    if (t == &PyDict_Type) {
        out = clean_mapping(value, max_len, 0);
        goto done;
    }
    if (load_abcs() < 0)
        goto done;
    if ((is = PyObject_IsInstance(value, s_abc_sequence)) != 0) {
        out = is < 0 ? NULL : clean_sequence(value, max_len);
        goto done;
    }
    if ((is = PyObject_IsInstance(value, s_abc_mapping)) != 0) {
        out = is < 0 ? NULL : clean_mapping(value, max_len, 0);
        goto done;
    }
    if (core_warn("Invalid type `%S` for attribute value. Expected one of bool, str, None, bytes, int, float or a "
                  "Mapping or Sequence of those types. Value's __str__ method will be called if it exists, otherwise "
                  "the value will be replaced with None.",
                  (PyObject *)t)
        < 0)
        goto done;
    is = has_custom_str(value);
    if (is >= 0)
        out = is ? PyObject_Str(value) : Py_NewRef(Py_None);
done:
    Py_LeaveRecursiveCall();
    return out;
}

/* ---- bounded attributes: BoundedAttributes._setitem_locked ---- */

/* Store key (an exact str) -> value in `dict`, bounded by maxlen (-1: none): an existing key moves to the end, a
 * new key past the limit evicts the oldest (*dropped and *evicted + 1). Runs no Python code; what it removes goes
 * to `grave` (up to 3 objects). -1 only on a memory error. */
static int
bounded_set(PyObject *dict, PyObject *key, PyObject *value, Py_ssize_t maxlen, Py_ssize_t *dropped, int *evicted,
            Grave *grave)
{
    PyObject *old = PyDict_GetItemWithError(dict, key);
    if (old != NULL) {
        grave_put(grave, Py_NewRef(old));
        if (PyDict_DelItem(dict, key) < 0)
            return -1;
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    if (maxlen >= 0 && PyDict_GET_SIZE(dict) >= maxlen && PyDict_GET_SIZE(dict) > 0) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        if (PyDict_Next(dict, &pos, &k, &v)) {
            grave_put(grave, Py_NewRef(k));
            grave_put(grave, Py_NewRef(v));
            if (PyDict_DelItem(dict, k) < 0)
                return -1;
            (*dropped)++;
            (*evicted)++;
        }
    }
    return PyDict_SetItem(dict, key, value);
}

/* BoundedAttributes(maxlen, attributes, max_value_len=max_len): a new dict (*out) and its dropped count. */
static int
bounded_attributes(PyObject *attributes, Py_ssize_t maxlen, Py_ssize_t max_len, PyObject **out, Py_ssize_t *dropped)
{
    *out = NULL;
    *dropped = 0;
    int truth = attributes == Py_None ? 0 : PyObject_IsTrue(attributes);
    if (truth < 0)
        return -1;
    if (truth && !PyDict_Check(attributes)) {
        if (load_abcs() < 0)
            return -1;
        int is = PyObject_IsInstance(attributes, s_abc_mapping);
        if (is <= 0) {
            if (is == 0)
                PyErr_Format(PyExc_TypeError, "attributes must be a mapping or None, got %.100s",
                             Py_TYPE(attributes)->tp_name);
            return -1;
        }
    }
    if (truth && maxlen != 0 && PyDict_CheckExact(attributes)
        && (maxlen < 0 || PyDict_GET_SIZE(attributes) <= maxlen) && plain_dict(attributes, max_len))
        return (*out = PyDict_Copy(attributes)) == NULL ? -1 : 0; /* the common case: nothing to clean or drop */
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return -1;
    if (!truth) {
        *out = dict;
        return 0;
    }
    if (maxlen == 0) {
        Py_ssize_t n = PyObject_Size(attributes);
        if (n < 0) {
            Py_DECREF(dict);
            return -1;
        }
        *dropped = n;
        *out = dict;
        return 0;
    }
    PyObject *cleaned = clean_mapping(attributes, max_len, 1);
    Py_ssize_t n = cleaned ? PyObject_Size(attributes) : -1;
    if (n < 0) {
        Py_XDECREF(cleaned);
        Py_DECREF(dict);
        return -1;
    }
    *dropped = n - PyDict_GET_SIZE(cleaned);
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int evicted = 0, rc = 0;
    Grave grave = {{NULL}, 0};
    while (rc == 0 && PyDict_Next(cleaned, &pos, &key, &value)) {
        rc = bounded_set(dict, key, value, maxlen, dropped, &evicted, &grave);
        grave_release(&grave);
    }
    Py_DECREF(cleaned);
    for (; rc == 0 && evicted > 0; evicted--)
        rc = core_warn(DICT_FULL_TEXT);
    if (rc < 0) {
        Py_DECREF(dict);
        return -1;
    }
    *out = dict;
    return 0;
}

/* ---- the type ---- */

static void
core_clear_items(SpanCoreObject *self)
{
    CoreEvent *events = self->events;
    Py_ssize_t n = self->n_events;
    self->events = NULL;
    self->n_events = self->cap_events = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(events[i].name);
        Py_XDECREF(events[i].attributes);
    }
    PyMem_Free(events);
    CoreLink *links = self->links;
    n = self->n_links;
    self->links = NULL;
    self->n_links = self->cap_links = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(links[i].trace_id);
        Py_XDECREF(links[i].trace_state);
        Py_XDECREF(links[i].attributes);
    }
    PyMem_Free(links);
}

static int
core_traverse(SpanCoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->attributes);
    for (Py_ssize_t i = 0; i < self->n_events; i++)
        Py_VISIT(self->events[i].attributes);
    for (Py_ssize_t i = 0; i < self->n_links; i++)
        Py_VISIT(self->links[i].attributes);
    return 0;
}

static int
core_clear(SpanCoreObject *self)
{
    Py_CLEAR(self->attributes);
    core_clear_items(self);
    return 0;
}

static void
core_dealloc(SpanCoreObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_CLEAR(self->name);
    Py_CLEAR(self->trace_state);
    Py_CLEAR(self->description);
    type->tp_free((PyObject *)self);
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SpanCoreObject *self = (SpanCoreObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    /* A valid, empty state until __init__ runs (tp_alloc zeroed the rest). */
    self->name = PyUnicode_New(0, 0);
    self->trace_state = Py_NewRef(self->name);
    self->description = Py_NewRef(self->name);
    for (int i = 0; i < N_LIMITS; i++)
        self->limits[i] = -1;
    return (PyObject *)self;
}

/* Constructor argument checks: TypeError for a wrong type, ValueError for a value out of range, naming it. */
static int
arg_str(PyObject *value, const char *what)
{
    if (PyUnicode_Check(value))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s must be a str, got %.100s", what, Py_TYPE(value)->tp_name);
    return -1;
}

static int
arg_int(PyObject *value, const char *what)
{
    if (PyLong_Check(value) && !PyBool_Check(value))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s must be an int, got %.100s", what, Py_TYPE(value)->tp_name);
    return -1;
}

/* An int in [min, 2**bits): bits 32 or 64. */
static int
arg_uint(PyObject *value, const char *what, uint64_t min, int bits, uint64_t *out)
{
    if (arg_int(value, what) < 0)
        return -1;
    uint64_t u = 0;
    if (u64_of(value, &u) < 0 || u < min || (bits == 32 && u > 0xFFFFFFFFu)) {
        PyErr_Format(PyExc_ValueError, "%s must be an int in [%llu, 2**%d), got %R", what, (unsigned long long)min,
                     bits, value);
        return -1;
    }
    *out = u;
    return 0;
}

static int
arg_trace_id(PyObject *value, const char *what, int nonzero, uint64_t *hi, uint64_t *lo)
{
    if (arg_int(value, what) < 0)
        return -1;
    if (u128_of(value, hi, lo) < 0 || (nonzero && *hi == 0 && *lo == 0)) {
        PyErr_Format(PyExc_ValueError, "%s must be an int in [%d, 2**128), got %R", what, nonzero, value);
        return -1;
    }
    return 0;
}

static int
core_init(SpanCoreObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "trace_id", "span_id", "parent_span_id", "flags", "trace_state", "kind",
                             "start_time", "limits", NULL};
    PyObject *a[9];
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 9) {
        for (int i = 0; i < 9; i++)
            a[i] = PyTuple_GET_ITEM(args, i);
    }
    else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOO:SpanCore", kwlist, &a[0], &a[1], &a[2], &a[3],
                                          &a[4], &a[5], &a[6], &a[7], &a[8])) {
        return -1;
    }
    uint64_t hi, lo, span_id, parent, flags, kind, start;
    if (arg_str(a[0], "name") < 0 || arg_trace_id(a[1], "trace_id", 1, &hi, &lo) < 0
        || arg_uint(a[2], "span_id", 1, 64, &span_id) < 0 || arg_uint(a[3], "parent_span_id", 0, 64, &parent) < 0
        || arg_uint(a[4], "flags", 0, 32, &flags) < 0 || arg_str(a[5], "trace_state") < 0
        || arg_uint(a[6], "kind", 0, 32, &kind) < 0 || arg_uint(a[7], "start_time", 0, 64, &start) < 0)
        return -1;
    if (kind > 5) {
        PyErr_Format(PyExc_ValueError, "kind must be an OTLP Span.kind value (0 to 5), got %R", a[6]);
        return -1;
    }
    PyObject *limits = a[8];
    Py_ssize_t n_limits = PyTuple_Check(limits) ? PyTuple_GET_SIZE(limits) : 0;
    if (n_limits != N_LIMITS && n_limits != N_LIMITS - 1) {
        PyErr_Format(PyExc_TypeError,
                     "limits must be a tuple of 6 or 7 ints (max_attributes, max_events, max_links, "
                     "max_event_attributes, max_link_attributes, max_attribute_length[, max_span_attribute_length]), "
                     "got %.100s of %zd items",
                     Py_TYPE(limits)->tp_name, PyTuple_Check(limits) ? n_limits : (Py_ssize_t)-1);
        return -1;
    }
    Py_ssize_t lim[N_LIMITS];
    for (int i = 0; i < n_limits; i++) {
        PyObject *v = PyTuple_GET_ITEM(limits, i);
        if (arg_int(v, "limits item") < 0)
            return -1;
        lim[i] = PyLong_AsSsize_t(v);
        if (lim[i] == -1 && PyErr_Occurred())
            PyErr_Clear();
        else if (lim[i] >= -1)
            continue;
        PyErr_Format(PyExc_ValueError, "limits[%d] must be -1 (unlimited) or >= 0, got %R", i, v);
        return -1;
    }
    if (n_limits == N_LIMITS - 1) /* no max_span_attribute_length: max_attribute_length for the span's too */
        lim[LIM_SPAN_LENGTH] = lim[LIM_LENGTH];
    /* A second __init__ starts over. */
    core_clear(self);
    Py_SETREF(self->name, Py_NewRef(a[0]));
    Py_SETREF(self->trace_state, Py_NewRef(a[5]));
    Py_SETREF(self->description, PyUnicode_New(0, 0));
    self->trace_hi = hi;
    self->trace_lo = lo;
    self->span_id = span_id;
    self->parent_span_id = parent;
    self->flags = (uint32_t)flags;
    self->kind = (int)kind;
    self->start_time = start;
    self->end_time = 0;
    self->ended = 0;
    self->status_code = 0;
    self->dropped_attributes = self->dropped_events = self->dropped_links = 0;
    memcpy(self->limits, lim, sizeof(lim));
    return 0;
}

/* ---- methods ---- */

static PyObject *
core_ended_attribute(void)
{
    if (core_warn("Setting attribute on ended span.") < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* One cleaned attribute (key an exact str) into the span: the update (no Python code), then its warnings. */
static int
core_store(SpanCoreObject *self, PyObject *key, PyObject *value)
{
    Grave grave = {{NULL}, 0};
    int evicted = 0;
    if (self->ended) /* ended while the value was cleaned */
        return core_warn("Setting attribute on ended span.");
    int rc = bounded_set(self->attributes, key, value, self->limits[LIM_ATTRS], &self->dropped_attributes, &evicted,
                         &grave);
    grave_release(&grave);
    for (; rc == 0 && evicted > 0; evicted--)
        rc = core_warn(DICT_FULL_TEXT);
    return rc;
}

static int
core_need_dict(SpanCoreObject *self)
{
    if (self->attributes != NULL)
        return 0;
    /* Allocating may run the GC, and so other threads: the dict is set only if none was set meanwhile. */
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return -1;
    if (self->attributes == NULL)
        self->attributes = dict;
    else
        Py_DECREF(dict);
    return 0;
}

/* The arguments of a METH_FASTCALL | METH_KEYWORDS method, by position or by name, into out[0..n) (NULL: not
 * given); the first `required` must be given. `usage` names the method in the errors. */
static int
call_args(const char *usage, const char *const *names, int n, int required, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames, PyObject **out)
{
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s takes at most %d arguments (%zd given)", usage, n, nargs);
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nk; k++) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        while (i < n && PyUnicode_CompareWithASCIIString(kw, names[i]) != 0)
            i++;
        if (i == n) {
            PyErr_Format(PyExc_TypeError, "%s got an unexpected keyword argument '%U'", usage, kw);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s got multiple values for argument '%s'", usage, names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (int i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s missing required argument '%s'", usage, names[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *
core_set_attribute(SpanCoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key", "value"};
    PyObject *a[2];
    if (kwnames != NULL || nargs != 2) {
        if (call_args("set_attribute(key, value)", names, 2, 2, args, nargs, kwnames, a) < 0)
            return NULL;
        args = a;
    }
    if (self->ended)
        return core_ended_attribute();
    if (self->limits[LIM_ATTRS] == 0) {
        self->dropped_attributes++;
        Py_RETURN_NONE;
    }
    PyObject *key = args[0], *value = args[1];
    if (core_need_dict(self) < 0)
        return NULL;
    if (!PyUnicode_CheckExact(key) || PyUnicode_GET_LENGTH(key) == 0) {
        if (!PyUnicode_Check(key) || PyUnicode_GET_LENGTH(key) == 0) {
            if (core_warn("invalid key `%S`. must be non-empty string. Dropping key from attributes.", key) < 0)
                return NULL;
            self->dropped_attributes++;
            Py_RETURN_NONE;
        }
        key = PyUnicode_FromObject(key); /* a str subclass: an exact str, so the dict runs no Python code */
        if (key == NULL)
            return NULL;
    }
    else {
        Py_INCREF(key);
    }
    PyTypeObject *t = Py_TYPE(value);
    PyObject *cleaned;
    if (t == &PyLong_Type || t == &PyFloat_Type || t == &PyBool_Type || value == Py_None)
        cleaned = Py_NewRef(value);
    else if (t == &PyUnicode_Type)
        cleaned = clean_str(value, self->limits[LIM_SPAN_LENGTH]);
    else
        cleaned = clean_value(value, self->limits[LIM_SPAN_LENGTH]);
    int rc = cleaned == NULL ? -1 : core_store(self, key, cleaned);
    Py_DECREF(key);
    Py_XDECREF(cleaned);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
core_set_attributes(SpanCoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"attributes"};
    PyObject *attributes;
    if (kwnames != NULL || nargs != 1) {
        if (call_args("set_attributes(attributes)", names, 1, 1, args, nargs, kwnames, &attributes) < 0)
            return NULL;
    }
    else {
        attributes = args[0];
    }
    if (self->ended)
        return core_ended_attribute();
    if (self->limits[LIM_ATTRS] == 0) {
        Py_ssize_t n = PyObject_Size(attributes);
        if (n < 0)
            return NULL;
        self->dropped_attributes += n;
        Py_RETURN_NONE;
    }
    if (core_need_dict(self) < 0)
        return NULL;
    if (!PyDict_Check(attributes)) {
        if (load_abcs() < 0)
            return NULL;
        int is = PyObject_IsInstance(attributes, s_abc_mapping);
        if (is <= 0) {
            if (is == 0)
                PyErr_Format(PyExc_TypeError, "attributes must be a mapping, got %.100s", Py_TYPE(attributes)->tp_name);
            return NULL;
        }
    }
    PyObject *cleaned = clean_mapping(attributes, self->limits[LIM_SPAN_LENGTH], 1);
    if (cleaned == NULL)
        return NULL;
    Py_ssize_t n = PyObject_Size(attributes);
    if (n < 0) {
        Py_DECREF(cleaned);
        return NULL;
    }
    if (self->ended) {
        Py_DECREF(cleaned);
        return core_ended_attribute();
    }
    self->dropped_attributes += n - PyDict_GET_SIZE(cleaned);
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int rc = 0;
    while (rc == 0 && PyDict_Next(cleaned, &pos, &key, &value)) {
        Py_INCREF(key);
        Py_INCREF(value);
        rc = core_store(self, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
    }
    Py_DECREF(cleaned);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* A timestamp argument: None -> now; else an int in [0, 2**64). */
static int
arg_time(PyObject *value, const char *what, uint64_t *out)
{
    if (value == Py_None) {
        *out = now_ns();
        return 0;
    }
    return arg_uint(value, what, 0, 64, out);
}

/* Append to a bounded C array of records (the SDK's BoundedList): past maxlen the oldest is evicted (its fields
 * go to the grave) and counted. Runs no Python code. */
#define BOUNDED_APPEND(grave, arr, n, cap, maxlen, dropped, rec, evict)                                             \
    do {                                                                                                            \
        if ((maxlen) == 0) {                                                                                        \
            (dropped)++;                                                                                            \
            evict((grave), &(rec));                                                                                          \
            break;                                                                                                  \
        }                                                                                                           \
        if ((maxlen) > 0 && (n) >= (maxlen)) {                                                                      \
            evict((grave), &(arr)[0]);                                                                                       \
            memmove(&(arr)[0], &(arr)[1], sizeof((arr)[0]) * (size_t)((n)-1));                                      \
            (n)--;                                                                                                  \
            (dropped)++;                                                                                            \
        }                                                                                                           \
        if ((n) == (cap)) {                                                                                         \
            Py_ssize_t new_cap = (cap) ? (cap)*2 : 2;                                                               \
            void *grown = PyMem_Realloc((arr), sizeof((arr)[0]) * (size_t)new_cap);                                 \
            if (grown == NULL) {                                                                                    \
                evict((grave), &(rec));                                                                                      \
                PyErr_NoMemory();                                                                                   \
                ok = 0;                                                                                             \
                break;                                                                                              \
            }                                                                                                       \
            (arr) = grown;                                                                                          \
            (cap) = new_cap;                                                                                        \
        }                                                                                                           \
        (arr)[(n)++] = (rec);                                                                                       \
    } while (0)

static void
evict_event(Grave *grave, CoreEvent *e)
{
    grave_put(grave, e->name);
    grave_put(grave, e->attributes);
}

static void
evict_link(Grave *grave, CoreLink *l)
{
    grave_put(grave, l->trace_id);
    grave_put(grave, l->trace_state);
    grave_put(grave, l->attributes);
}

static PyObject *
core_add_event(SpanCoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"name", "attributes", "timestamp"};
    PyObject *a[3];
    if (call_args("add_event(name, attributes=None, timestamp=None)", names, 3, 1, args, nargs, kwnames, a) < 0)
        return NULL;
    PyObject *name = a[0], *attributes = a[1] ? a[1] : Py_None, *timestamp = a[2] ? a[2] : Py_None;
    CoreEvent rec;
    if (arg_str(name, "name") < 0)
        return NULL;
    if (bounded_attributes(attributes, self->limits[LIM_EVENT_ATTRS], self->limits[LIM_LENGTH], &rec.attributes,
                           &rec.dropped) < 0)
        return NULL;
    if (arg_time(timestamp, "timestamp", &rec.time) < 0) {
        Py_DECREF(rec.attributes);
        return NULL;
    }
    if (self->ended) {
        Py_DECREF(rec.attributes);
        if (core_warn("Tried calling _add_event on an ended span.") < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    rec.name = Py_NewRef(name);
    Grave grave = {{NULL}, 0};
    int ok = 1;
    BOUNDED_APPEND(&grave, self->events, self->n_events, self->cap_events, self->limits[LIM_EVENTS],
                   self->dropped_events, rec, evict_event);
    grave_release(&grave);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
core_add_link(SpanCoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 4 || nargs > 5) {
        PyErr_Format(PyExc_TypeError,
                     "add_link(trace_id, span_id, flags, trace_state, attributes=None) takes 4 or 5 arguments (%zd "
                     "given)",
                     nargs);
        return NULL;
    }
    CoreLink rec;
    uint64_t flags;
    PyObject *attributes = nargs > 4 ? args[4] : Py_None;
    if (arg_trace_id(args[0], "trace_id", 0, &rec.trace_hi, &rec.trace_lo) < 0
        || arg_uint(args[1], "span_id", 0, 64, &rec.span_id) < 0 || arg_uint(args[2], "flags", 0, 32, &flags) < 0
        || arg_str(args[3], "trace_state") < 0)
        return NULL;
    rec.flags = (uint32_t)flags;
    /* The SDK's _is_valid_link: a valid context, or else attributes or a trace state to carry. */
    if ((rec.trace_hi == 0 && rec.trace_lo == 0) || rec.span_id == 0) {
        int truth = attributes == Py_None ? 0 : PyObject_IsTrue(attributes);
        if (truth < 0)
            return NULL;
        if (!truth && PyUnicode_GET_LENGTH(args[3]) == 0)
            Py_RETURN_NONE;
    }
    if (bounded_attributes(attributes, self->limits[LIM_LINK_ATTRS], self->limits[LIM_LENGTH], &rec.attributes,
                           &rec.dropped) < 0)
        return NULL;
    if (self->ended) {
        Py_DECREF(rec.attributes);
        if (core_warn("Tried calling _add_link on an ended span.") < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    rec.trace_id = Py_NewRef(args[0]);
    rec.trace_state = Py_NewRef(args[3]);
    Grave grave = {{NULL}, 0};
    int ok = 1;
    BOUNDED_APPEND(&grave, self->links, self->n_links, self->cap_links, self->limits[LIM_LINKS], self->dropped_links,
                   rec, evict_link);
    grave_release(&grave);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
core_update_name(SpanCoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"name"};
    PyObject *name;
    if (kwnames != NULL || nargs != 1) {
        if (call_args("update_name(name)", names, 1, 1, args, nargs, kwnames, &name) < 0)
            return NULL;
    }
    else {
        name = args[0];
    }
    if (arg_str(name, "name") < 0)
        return NULL;
    if (self->ended) {
        if (core_warn("Tried calling update_name on an ended span.") < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    Py_SETREF(self->name, Py_NewRef(name));
    Py_RETURN_NONE;
}

static PyObject *
core_set_status_fields(SpanCoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t code;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "set_status_fields(code, description) takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (arg_uint(args[0], "code", 0, 32, &code) < 0)
        return NULL;
    if (code > 2) {
        PyErr_Format(PyExc_ValueError, "code must be an OTLP status code (0 unset, 1 ok, 2 error), got %R", args[0]);
        return NULL;
    }
    PyObject *description = args[1] == Py_None ? NULL : args[1];
    if (description != NULL && arg_str(description, "description") < 0)
        return NULL;
    self->status_code = (int)code;
    Py_SETREF(self->description, description ? Py_NewRef(description) : PyUnicode_New(0, 0));
    Py_RETURN_NONE;
}

static PyObject *
core_end(SpanCoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t t;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "end(end_time=None) takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    if (arg_time(nargs ? args[0] : Py_None, "end_time", &t) < 0)
        return NULL;
    if (self->ended)
        Py_RETURN_FALSE;
    self->end_time = t;
    self->ended = 1;
    Py_RETURN_TRUE;
}

/* ---- encode() ---- */

/* An item's attributes and dropped_attributes_count: what w_sdk_attributes writes for a BoundedAttributes. */
static int
w_core_attributes(Buf *b, unsigned char tag, unsigned char dropped_tag, PyObject *dict, Py_ssize_t dropped)
{
    char t = (char)tag;
    Py_ssize_t left_out = 0;
    if (dict != NULL && PyDict_GET_SIZE(dict) && w_attributes(b, &t, 1, dict, 0, &left_out) < 0)
        return -1;
    dropped += left_out;
    if (dropped) {
        if (RESERVE(b, 11) < 0)
            return -1;
        u_byte(b, dropped_tag);
        u_varint(b, (uint64_t)dropped);
    }
    return 0;
}

static inline int
w_fixed64_field(Buf *b, unsigned char tag, uint64_t v)
{
    if (RESERVE(b, 9) < 0)
        return -1;
    u_byte(b, tag);
    u_fixed64(b, v);
    return 0;
}

/* The Span message (no tag, no length): the field order of aiotlp.sdk._encode._write_spans. */
static int
w_core_span(Buf *b, SpanCoreObject *self)
{
    /* Span 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id */
    if (RESERVE(b, 38) < 0)
        return -1;
    u_byte(b, 0x0a);
    u_byte(b, 0x10);
    u_be64(b, self->trace_hi);
    u_be64(b, self->trace_lo);
    u_byte(b, 0x12);
    u_byte(b, 0x08);
    u_be64(b, self->span_id);
    if (PyUnicode_GET_LENGTH(self->trace_state) && w_tag_str(b, 0x1a, self->trace_state, "Span.trace_state") < 0)
        return -1;
    if (self->parent_span_id) {
        if (RESERVE(b, 10) < 0)
            return -1;
        u_byte(b, 0x22);
        u_byte(b, 0x08);
        u_be64(b, self->parent_span_id);
    }
    /* Span 5 name, 6 kind, 7 start_time_unix_nano, 8 end_time_unix_nano */
    if (PyUnicode_GET_LENGTH(self->name) && w_tag_str(b, 0x2a, self->name, "Span.name") < 0)
        return -1;
    if (RESERVE(b, 20) < 0)
        return -1;
    if (self->kind) { /* proto3: 0 (UNSPECIFIED) is left out */
        u_byte(b, 0x30);
        u_byte(b, (unsigned char)self->kind);
    }
    if (self->start_time) {
        u_byte(b, 0x39);
        u_fixed64(b, self->start_time);
    }
    if (self->end_time) {
        u_byte(b, 0x41);
        u_fixed64(b, self->end_time);
    }
    /* Writing a value of a type other than the built-ins runs Python code (_normalize), during which another
     * thread may update this span: what is being written is held (a new reference) until it is written, and the
     * events and links are read by index, each time from the span. */
    /* Span 9 attributes, 10 dropped_attributes_count */
    PyObject *attributes = Py_XNewRef(self->attributes);
    int rc = w_core_attributes(b, 0x4a, 0x50, attributes, self->dropped_attributes);
    Py_XDECREF(attributes);
    if (rc < 0)
        return -1;
    /* Span 11 events, 12 dropped_events_count */
    for (Py_ssize_t i = 0; i < self->n_events; i++) {
        CoreEvent e = self->events[i];
        Py_INCREF(e.name);
        Py_INCREF(e.attributes);
        Py_ssize_t start = begin(b, "\x5a", 1);
        rc = (start < 0 || (e.time && w_fixed64_field(b, 0x09, e.time) < 0)           /* Event 1 time_unix_nano */
              || (PyUnicode_GET_LENGTH(e.name) && w_tag_str(b, 0x12, e.name, "Event.name") < 0) /* 2 name */
              || w_core_attributes(b, 0x1a, 0x20, e.attributes, e.dropped) < 0       /* 3 attributes, 4 dropped */
              || end(b, start) < 0)
                 ? -1
                 : 0;
        Py_DECREF(e.name);
        Py_DECREF(e.attributes);
        if (rc < 0)
            return -1;
    }
    if (self->dropped_events && (w_varint(b, 0x60) < 0 || w_varint(b, (uint64_t)self->dropped_events) < 0))
        return -1;
    /* Span 13 links, 14 dropped_links_count */
    for (Py_ssize_t i = 0; i < self->n_links; i++) {
        CoreLink l = self->links[i];
        Py_ssize_t start = begin(b, "\x6a", 1);
        if (start < 0 || RESERVE(b, 28) < 0)
            return -1;
        u_byte(b, 0x0a); /* Link 1 trace_id, 2 span_id */
        u_byte(b, 0x10);
        u_be64(b, l.trace_hi);
        u_be64(b, l.trace_lo);
        u_byte(b, 0x12);
        u_byte(b, 0x08);
        u_be64(b, l.span_id);
        Py_INCREF(l.trace_state);
        Py_INCREF(l.attributes);
        rc = ((PyUnicode_GET_LENGTH(l.trace_state) && w_tag_str(b, 0x1a, l.trace_state, "Link.trace_state") < 0)
              || w_core_attributes(b, 0x22, 0x28, l.attributes, l.dropped) < 0 || RESERVE(b, 5) < 0)
                 ? -1
                 : 0;
        Py_DECREF(l.trace_state);
        Py_DECREF(l.attributes);
        if (rc < 0)
            return -1;
        if (l.flags) { /* Link 6 flags (0: left out) */
            u_byte(b, 0x35);
            u_fixed32(b, l.flags);
        }
        if (end(b, start) < 0)
            return -1;
    }
    if (self->dropped_links && (w_varint(b, 0x70) < 0 || w_varint(b, (uint64_t)self->dropped_links) < 0))
        return -1;
    /* Span 15 status, 16 flags */
    if (PyUnicode_GET_LENGTH(self->description)) {
        PyObject *description = Py_NewRef(self->description);
        rc = w_status_with_message(b, description, self->status_code);
        Py_DECREF(description);
        if (rc < 0)
            return -1;
    }
    else if (w_status_code_only(b, self->status_code) < 0) {
        return -1;
    }
    if (self->flags) { /* Span 16 flags (0: left out) */
        if (RESERVE(b, 6) < 0)
            return -1;
        u_byte(b, 0x85);
        u_byte(b, 0x01);
        u_fixed32(b, self->flags);
    }
    return 0;
}

#define FIELD_HEAD 6 /* room before the message for its field's tag and length (a varint of at most 5 bytes) */

/* The field `tag` (a length-delimited field number 2: ScopeSpans.spans, ScopeLogs.log_records) of the message
 * that write(b, arg) writes, as bytes: the message is written in scratch's buffer (or a new one when it is busy)
 * after FIELD_HEAD bytes of room, then the tag and length are put just before it. `what` names the message in
 * the error when it is too large. */
static PyObject *
scratch_field(Scratch *scratch, unsigned char tag, int (*write)(Buf *, void *), void *arg, const char *what)
{
    Buf b;
    PyObject *ba;
    int shared = 0;
    if (!scratch->busy && scratch->ba != NULL) {
        ba = Py_NewRef(scratch->ba);
        shared = 1;
    }
    else if ((ba = PyByteArray_FromStringAndSize(NULL, 0)) == NULL) {
        return NULL;
    }
    else if (!scratch->busy && scratch->ba == NULL) {
        scratch->ba = Py_NewRef(ba);
        shared = 1;
    }
    if (shared)
        scratch->busy = 1;
    b.ba = ba;
    b.data = PyByteArray_AS_STRING(ba);
    b.cap = PyByteArray_GET_SIZE(ba);
    b.len = b.orig = 0;
    PyObject *result = NULL;
    if (RESERVE(&b, 512) == 0) {
        b.len = FIELD_HEAD;
        if (write(&b, arg) == 0) {
            uint64_t n = (uint64_t)(b.len - FIELD_HEAD);
            if (n > 0xFFFFFFFFu) {
                raise_encode_error("a %s of %llu bytes is too large to encode", what, (unsigned long long)n);
            }
            else {
                int size = varint_size(n);
                Py_ssize_t at = FIELD_HEAD - 1 - size;
                b.len = at;
                u_byte(&b, tag);
                u_varint(&b, n);
                result = PyBytes_FromStringAndSize(b.data + at, (Py_ssize_t)n + 1 + size);
            }
        }
    }
    if (shared) {
        scratch->busy = 0;
        /* A very large message: give the memory back rather than keep it for every later one. */
        if (b.cap > (1 << 20) && PyByteArray_Resize(ba, 4096) < 0)
            PyErr_Clear();
    }
    Py_DECREF(ba);
    return result;
}

static int
write_core_span(Buf *b, void *self)
{
    return w_core_span(b, (SpanCoreObject *)self);
}

static PyObject *
core_encode(SpanCoreObject *self, PyObject *unused)
{
    return scratch_field(&s_scratch, 0x12, write_core_span, self, "span"); /* ScopeSpans 2 spans */
}

/* ---- properties ---- */

static PyObject *
u128_obj(uint64_t hi, uint64_t lo)
{
    if (hi == 0)
        return PyLong_FromUnsignedLongLong(lo);
    PyObject *h = PyLong_FromUnsignedLongLong(hi), *shift = PyLong_FromLong(64), *l = PyLong_FromUnsignedLongLong(lo);
    PyObject *s = (h && shift && l) ? PyNumber_Lshift(h, shift) : NULL;
    PyObject *r = s ? PyNumber_Or(s, l) : NULL;
    Py_XDECREF(h);
    Py_XDECREF(shift);
    Py_XDECREF(l);
    Py_XDECREF(s);
    return r;
}

static PyObject *
dict_copy(PyObject *dict)
{
    return dict ? PyDict_Copy(dict) : PyDict_New();
}

#define CORE_GETTER(field, expr)                                                                                    \
    static PyObject *core_get_##field(SpanCoreObject *self, void *closure) { return (expr); }

CORE_GETTER(name, Py_NewRef(self->name))
CORE_GETTER(trace_id, u128_obj(self->trace_hi, self->trace_lo))
CORE_GETTER(span_id, PyLong_FromUnsignedLongLong(self->span_id))
CORE_GETTER(parent_span_id, PyLong_FromUnsignedLongLong(self->parent_span_id))
CORE_GETTER(flags, PyLong_FromUnsignedLong(self->flags))
CORE_GETTER(trace_state, Py_NewRef(self->trace_state))
CORE_GETTER(kind, PyLong_FromLong(self->kind))
CORE_GETTER(start_time, PyLong_FromUnsignedLongLong(self->start_time))
CORE_GETTER(end_time, self->ended ? PyLong_FromUnsignedLongLong(self->end_time) : Py_NewRef(Py_None))
CORE_GETTER(ended, PyBool_FromLong(self->ended))
CORE_GETTER(status_code, PyLong_FromLong(self->status_code))
CORE_GETTER(status_description, Py_NewRef(self->description))
CORE_GETTER(dropped_attributes, PyLong_FromSsize_t(self->dropped_attributes))
CORE_GETTER(dropped_events, PyLong_FromSsize_t(self->dropped_events))
CORE_GETTER(dropped_links, PyLong_FromSsize_t(self->dropped_links))
CORE_GETTER(attributes, dict_copy(self->attributes))

static PyObject *
core_get_events(SpanCoreObject *self, void *closure)
{
    /* A snapshot of the records first: building the tuples may run the GC and so other threads' updates. */
    Py_ssize_t n = self->n_events;
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    CoreEvent *copy = PyMem_Malloc(sizeof(CoreEvent) * (size_t)(n ? n : 1));
    if (copy == NULL) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        copy[i] = self->events[i];
        Py_INCREF(copy[i].name);
        Py_INCREF(copy[i].attributes);
    }
    int ok = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        CoreEvent *e = &copy[i];
        if (ok) {
            PyObject *item = Py_BuildValue("(OKNn)", e->name, (unsigned long long)e->time, PyDict_Copy(e->attributes),
                                           e->dropped);
            if (item == NULL)
                ok = 0;
            else
                PyList_SET_ITEM(out, i, item);
        }
        Py_DECREF(e->name);
        Py_DECREF(e->attributes);
    }
    PyMem_Free(copy);
    if (!ok)
        Py_CLEAR(out);
    return out;
}

static PyObject *
core_get_links(SpanCoreObject *self, void *closure)
{
    Py_ssize_t n = self->n_links;
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    CoreLink *copy = PyMem_Malloc(sizeof(CoreLink) * (size_t)(n ? n : 1));
    if (copy == NULL) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        copy[i] = self->links[i];
        Py_INCREF(copy[i].trace_id);
        Py_INCREF(copy[i].trace_state);
        Py_INCREF(copy[i].attributes);
    }
    int ok = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        CoreLink *l = &copy[i];
        if (ok) {
            PyObject *item = Py_BuildValue("(NKkONn)", u128_obj(l->trace_hi, l->trace_lo),
                                           (unsigned long long)l->span_id, (unsigned long)l->flags, l->trace_state,
                                           PyDict_Copy(l->attributes), l->dropped);
            if (item == NULL)
                ok = 0;
            else
                PyList_SET_ITEM(out, i, item);
        }
        Py_DECREF(l->trace_id);
        Py_DECREF(l->trace_state);
        Py_DECREF(l->attributes);
    }
    PyMem_Free(copy);
    if (!ok)
        Py_CLEAR(out);
    return out;
}

#define GETSET(field, doc) {#field, (getter)core_get_##field, NULL, doc, NULL}

static PyGetSetDef core_getset[] = {
    GETSET(name, "The span's name (str)."),
    GETSET(trace_id, "The 128-bit trace id (int)."),
    GETSET(span_id, "The 64-bit span id (int)."),
    GETSET(parent_span_id, "The parent's span id (int; 0: no parent)."),
    GETSET(flags, "Span.flags as the encoder writes it (int)."),
    GETSET(trace_state, "The W3C trace state header form (str; \"\": none)."),
    GETSET(kind, "Span.kind, the OTLP enum value (int)."),
    GETSET(start_time, "Start time, ns since the epoch (int)."),
    GETSET(end_time, "End time, ns since the epoch (int), or None until ended."),
    GETSET(ended, "end() was called (bool)."),
    GETSET(status_code, "OTLP status code: 0 unset, 1 ok, 2 error (int)."),
    GETSET(status_description, "Status message (str; \"\": none)."),
    GETSET(dropped_attributes, "Attributes dropped by the limits (int)."),
    GETSET(dropped_events, "Events dropped by the limits (int)."),
    GETSET(dropped_links, "Links dropped by the limits (int)."),
    GETSET(attributes, "A new dict of the attributes, in insertion order."),
    GETSET(events, "A new list of (name, timestamp, attributes dict, dropped_attributes_count)."),
    GETSET(links, "A new list of (trace_id, span_id, flags, trace_state, attributes dict, dropped_attributes_count)."),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef core_methods[] = {
    {"set_attribute", (PyCFunction)(void (*)(void))core_set_attribute, METH_FASTCALL | METH_KEYWORDS,
     "set_attribute(key, value): the SDK's Span.set_attribute (BoundedAttributes rules)."},
    {"set_attributes", (PyCFunction)(void (*)(void))core_set_attributes, METH_FASTCALL | METH_KEYWORDS,
     "set_attributes(mapping): the SDK's Span.set_attributes."},
    {"add_event", (PyCFunction)(void (*)(void))core_add_event, METH_FASTCALL | METH_KEYWORDS,
     "add_event(name, attributes=None, timestamp=None): the SDK's Span.add_event (timestamp None: now)."},
    {"add_link", (PyCFunction)(void (*)(void))core_add_link, METH_FASTCALL,
     "add_link(trace_id, span_id, flags, trace_state, attributes=None): the SDK's Span.add_link."},
    {"update_name", (PyCFunction)(void (*)(void))core_update_name, METH_FASTCALL | METH_KEYWORDS, "update_name(name): a new name (not after end())."},
    {"set_status_fields", (PyCFunction)(void (*)(void))core_set_status_fields, METH_FASTCALL,
     "set_status_fields(code, description): the status as stored (the rules are the caller's)."},
    {"end", (PyCFunction)(void (*)(void))core_end, METH_FASTCALL,
     "end(end_time=None) -> bool: True the first time (end_time None: now); later calls change nothing."},
    {"encode", (PyCFunction)core_encode, METH_NOARGS,
     "encode() -> bytes: the span's ScopeSpans.spans field (tag, length, Span)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SpanCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aiotlp.encoding._speedups.SpanCore",
    .tp_basicsize = sizeof(SpanCoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SpanCore(name, trace_id, span_id, parent_span_id, flags, trace_state, kind, start_time, limits)\n\n"
              "The state of one span, encoded straight to OTLP protobuf (aiotlp.encoding._spancore.SpanCore's twin).",
    .tp_new = core_new,
    .tp_init = (initproc)core_init,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_methods = core_methods,
    .tp_getset = core_getset,
};

/* ---------------------------------------------------------------------------------------------------------- */
/* OpenTelemetry SDK log records, one at a time (encoding at the source): the twin of
 * aiotlp.sdk._encode_logs._log_field, a record's ScopeLogs.log_records entry (tag, length, LogRecord), read by
 * attribute name exactly as _write_log_records reads it: `readable.log_record` (a ReadableLogRecord, a
 * ReadWriteLogRecord, or what on_emit queues), then the API record's fields. `types` is (BoundedAttributes,).
 *
 * The body is written as the pure writer writes `_coerce(body)`: mapping keys as str(key), any Mapping as a
 * dict, any other Sequence (bytearray too) as a list, in one walk instead of a copy. A body the pure writer
 * replaces (_LeftOut: nested too deep, or an int outside int64) is replaced by the same text: _coerce raises
 * _TooDeep before anything is written, so when the walk fails the body is checked for depth the way _coerce
 * walks it (body_too_deep) before the walk's own error is believed. */

static PyObject *str_log_record, *str_observed_timestamp, *str_severity_number, *str_severity_text, *str_body,
    *str_trace_flags, *str_log_event_name;
static Scratch s_log_scratch; /* sdk_log_field's */

/* The field names, interned on first use (str_log_record last: it says they are all there). */
static int
log_names(void)
{
    if (str_log_record != NULL)
        return 0;
    PyObject *names[7];
    static const char *const texts[7] = {"observed_timestamp", "severity_number", "severity_text", "body",
                                         "trace_flags", "event_name", "log_record"};
    for (int i = 0; i < 7; i++) {
        if ((names[i] = PyUnicode_InternFromString(texts[i])) == NULL) {
            for (int j = 0; j < i; j++)
                Py_DECREF(names[j]);
            return -1;
        }
    }
    str_observed_timestamp = names[0];
    str_severity_number = names[1];
    str_severity_text = names[2];
    str_body = names[3];
    str_trace_flags = names[4];
    str_log_event_name = names[5];
    str_log_record = names[6];
    return 0;
}

/* _coerce's first test: returned as it is (the AnyValue writer normalises subclasses). */
static inline int
body_scalar(PyObject *v)
{
    PyTypeObject *t = Py_TYPE(v);
    return t == &PyUnicode_Type || t == &PyLong_Type || t == &PyFloat_Type || t == &PyBool_Type || v == Py_None ||
           t == &PyBytes_Type || PyUnicode_Check(v) || PyBytes_Check(v);
}

/* 1 a Mapping, 2 a Sequence (other than str and bytes: body_scalar first), 0 neither, -1 error. */
static int
body_kind(PyObject *v)
{
    if (PyDict_Check(v))
        return 1;
    if (PyList_Check(v) || PyTuple_Check(v))
        return 2;
    if (load_abcs() < 0)
        return -1;
    int r = PyObject_IsInstance(v, s_abc_mapping);
    if (r != 0)
        return r < 0 ? -1 : 1;
    r = PyObject_IsInstance(v, s_abc_sequence);
    if (r != 0)
        return r < 0 ? -1 : 2;
    return 0;
}

/* `value.items()` of a Mapping as an iterator of (key, item) pairs. */
static int
next_pair(PyObject *it, PyObject **key, PyObject **item)
{
    PyObject *pair = PyIter_Next(it);
    if (pair == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
        *key = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
        *item = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
    }
    else {
        *key = PySequence_GetItem(pair, 0);
        *item = *key ? PySequence_GetItem(pair, 1) : NULL;
        if (*item == NULL) {
            Py_XDECREF(*key);
            Py_DECREF(pair);
            return -1;
        }
    }
    Py_DECREF(pair);
    return 1;
}

/* A mapping as _coerce makes it: {str(key): item} (the items not coerced yet). An exact dict whose keys are all
 * exact str is itself. */
static PyObject *
str_keyed(PyObject *mapping)
{
    if (PyDict_CheckExact(mapping)) {
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        int plain = 1;
        while (PyDict_Next(mapping, &pos, &key, &item)) {
            if (!PyUnicode_CheckExact(key)) {
                plain = 0;
                break;
            }
        }
        if (plain)
            return Py_NewRef(mapping);
    }
    PyObject *items = PyObject_CallMethodNoArgs(mapping, str_items);
    PyObject *it = items ? PyObject_GetIter(items) : NULL;
    Py_XDECREF(items);
    if (it == NULL)
        return NULL;
    PyObject *out = PyDict_New(), *key, *item;
    int rc;
    while (out != NULL && (rc = next_pair(it, &key, &item)) != 0) {
        PyObject *text = rc > 0 ? PyObject_Str(key) : NULL;
        if (text == NULL || PyDict_SetItem(out, text, item) < 0)
            Py_CLEAR(out);
        Py_XDECREF(text);
        if (rc > 0) {
            Py_DECREF(key);
            Py_DECREF(item);
        }
    }
    Py_DECREF(it);
    return out;
}

/* tag + AnyValue of `_coerce(value)`; `value` sits inside `depth` lists and mappings. */
static int
w_body(Buf *b, const char *tag, Py_ssize_t taglen, PyObject *value, int depth)
{
    if (body_scalar(value))
        return w_any(b, tag, taglen, value, depth);
    int kind = body_kind(value);
    if (kind <= 0)
        return kind < 0 ? -1 : w_any(b, tag, taglen, value, depth);
    if (depth >= MAX_NESTING_DEPTH)
        return raise_too_deep();
    if (Py_EnterRecursiveCall(" while encoding a log body"))
        return -1;
    int rc = -1;
    Py_ssize_t outer = begin(b, tag, taglen), inner;
    if (outer < 0)
        goto done;
    if (kind == 1) {
        PyObject *dict = str_keyed(value);
        if (dict == NULL)
            goto done;
        inner = begin(b, "\x32", 1); /* AnyValue 6 kvlist_value */
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        int ok = inner >= 0;
        while (ok && PyDict_Next(dict, &pos, &key, &item)) {
            Utf8 k;
            Py_INCREF(key);
            Py_INCREF(item);
            Py_ssize_t kv = begin(b, "\x0a", 1); /* KeyValueList 1 values */
            ok = kv >= 0 && utf8_of(key, &k) == 0;
            if (ok) {
                ok = RESERVE(b, key_field_size(k.n)) == 0;
                if (ok)
                    u_key_field(b, &k);
                Py_XDECREF(k.owner);
            }
            ok = ok && w_body(b, "\x12", 1, item, depth + 1) == 0 && end(b, kv) == 0; /* KeyValue 2 value */
            Py_DECREF(key);
            Py_DECREF(item);
        }
        Py_DECREF(dict);
        if (!ok)
            goto done;
    }
    else {
        PyObject *seq = PyList_CheckExact(value)    ? PyList_AsTuple(value)
                        : PyTuple_CheckExact(value) ? Py_NewRef(value)
                                                    : PySequence_Tuple(value);
        if (seq == NULL)
            goto done;
        inner = begin(b, "\x2a", 1); /* AnyValue 5 array_value */
        int ok = inner >= 0;
        for (Py_ssize_t i = 0; ok && i < PyTuple_GET_SIZE(seq); i++)
            ok = w_body(b, "\x0a", 1, PyTuple_GET_ITEM(seq, i), depth + 1) == 0; /* ArrayValue 1 values */
        Py_DECREF(seq);
        if (!ok)
            goto done;
    }
    if (end(b, inner) < 0 || end(b, outer) < 0)
        goto done;
    rc = 0;
done:
    Py_LeaveRecursiveCall();
    return rc;
}

/* Whether _coerce(value, depth) raises _TooDeep: 1 yes, 0 no, -1 another error (str() of a key). */
static int
body_too_deep(PyObject *value, int depth)
{
    if (body_scalar(value))
        return 0;
    int kind = body_kind(value);
    if (kind <= 0)
        return kind;
    if (depth >= MAX_NESTING_DEPTH)
        return 1;
    if (Py_EnterRecursiveCall(" while checking a log body"))
        return -1;
    int rc = 0;
    PyObject *it, *key, *item;
    if (kind == 1) {
        PyObject *items = PyObject_CallMethodNoArgs(value, str_items);
        it = items ? PyObject_GetIter(items) : NULL;
        Py_XDECREF(items);
        int more;
        while (it != NULL && rc == 0 && (more = next_pair(it, &key, &item)) != 0) {
            PyObject *text = more > 0 ? PyObject_Str(key) : NULL;
            rc = text == NULL ? -1 : body_too_deep(item, depth + 1);
            Py_XDECREF(text);
            if (more > 0) {
                Py_DECREF(key);
                Py_DECREF(item);
            }
        }
    }
    else {
        it = PyObject_GetIter(value);
        while (it != NULL && rc == 0 && (item = PyIter_Next(it)) != NULL) {
            rc = body_too_deep(item, depth + 1);
            Py_DECREF(item);
        }
        if (rc == 0 && PyErr_Occurred())
            rc = -1;
    }
    if (it == NULL)
        rc = -1;
    Py_XDECREF(it);
    Py_LeaveRecursiveCall();
    return rc;
}

/* LogRecord 5 body: always (None as an empty AnyValue); a body left out (_LeftOut) replaced by its text. */
static int
w_log_body(Buf *b, PyObject *body)
{
    Py_ssize_t mark = b->len;
    if (w_body(b, "\x2a", 1, body, 0) == 0)
        return 0;
    b->len = mark;
    PyObject *type, *value, *traceback, *text = NULL;
    PyErr_Fetch(&type, &value, &traceback);
    int deep = body_too_deep(body, 0);
    if (deep != 0) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        PyObject *too_deep = deep > 0 ? left_out_type(&s_too_deep, "_TooDeep") : NULL;
        if (too_deep == NULL)
            return -1;
        text = PyObject_GetAttr(too_deep, str_body);
    }
    else {
        PyErr_Restore(type, value, traceback);
        if (s_left_out == NULL || !PyErr_ExceptionMatches(s_left_out))
            return -1;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        text = value != NULL ? PyObject_GetAttr(value, str_body) : NULL;
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
    }
    if (text == NULL)
        return -1;
    int rc = w_any(b, "\x2a", 1, text, 0);
    Py_DECREF(text);
    return rc;
}

/* A value struct packs as "Q" (an int, or an object with __index__) in [0, 2**64). */
static int
index_u64(PyObject *value, uint64_t *out, const char *what)
{
    if (PyLong_Check(value))
        return uint64_of(value, out, what);
    PyObject *index = PyNumber_Index(value);
    if (index == NULL)
        return -1;
    int rc = uint64_of(index, out, what);
    Py_DECREF(index);
    return rc;
}

/* `if value: tag + fixed64(value)` (struct "<Q") */
static int
w_log_time(Buf *b, unsigned char tag, PyObject *value, const char *what)
{
    uint64_t u = 0;
    if (value == Py_None)
        return 0;
    int truth = PyObject_IsTrue(value);
    if (truth <= 0)
        return truth;
    if (index_u64(value, &u, what) < 0 || RESERVE(b, 9) < 0)
        return -1;
    u_byte(b, tag);
    u_fixed64(b, u);
    return 0;
}

/* getattr(obj, name, None) as a new reference (NULL: an error other than AttributeError), without raising and
 * clearing an AttributeError where the interpreter allows (None has no attributes at all: at once). */
static PyObject *
attr_or_none(PyObject *obj, PyObject *name)
{
    PyObject *value = NULL;
    if (obj == Py_None)
        return Py_NewRef(Py_None);
#if PY_VERSION_HEX >= 0x030D0000
    int found = PyObject_GetOptionalAttr(obj, name, &value);
#else
    int found = _PyObject_LookupAttr(obj, name, &value);
#endif
    if (found < 0)
        return NULL;
    return found ? value : Py_NewRef(Py_None);
}

/* record.<name> in *v (a new reference): 1 when it is set (not None, and true), 0 when not, -1 on an error. */
static int
log_attr_set(PyObject *record, PyObject *name, PyObject **v)
{
    if ((*v = PyObject_GetAttr(record, name)) == NULL)
        return -1;
    return *v == Py_None ? 0 : PyObject_IsTrue(*v);
}

/* The LogRecord message of `record` (an API LogRecord). */
static int
w_log_record(Buf *b, PyObject *record, const Sdk *sdk)
{
    PyObject *v = NULL, *w = NULL;
    int rc = -1, set;
    uint64_t hi = 0, lo = 0, u = 0;
    /* LogRecord 1 time_unix_nano */
    if ((v = PyObject_GetAttr(record, str_timestamp)) == NULL || w_log_time(b, 0x09, v, "LogRecord.timestamp") < 0)
        goto done;
    Py_CLEAR(v);
    /* LogRecord 2 severity_number: SeverityNumber's value, as the official encoder reads it (else none) */
    if ((v = PyObject_GetAttr(record, str_severity_number)) == NULL || (w = attr_or_none(v, str_value_)) == NULL)
        goto done;
    if (w != Py_None) {
        int truth = PyObject_IsTrue(w);
        if (truth < 0 || (truth && w_tag_varint_obj(b, 0x10, w, "LogRecord.severity_number") < 0))
            goto done;
    }
    Py_CLEAR(v);
    Py_CLEAR(w);
    /* LogRecord 3 severity_text */
    if ((v = PyObject_GetAttr(record, str_severity_text)) == NULL || w_opt_str(b, 0x1a, v, "LogRecord.severity_text") < 0)
        goto done;
    Py_CLEAR(v);
    if ((v = PyObject_GetAttr(record, str_body)) == NULL || w_log_body(b, v) < 0)
        goto done;
    Py_CLEAR(v);
    /* LogRecord 6 attributes, 7 dropped_attributes_count */
    if ((v = PyObject_GetAttr(record, str_attributes)) == NULL)
        goto done;
    if (v != Py_None && w_sdk_attributes(b, 0x32, 0x38, v, sdk) < 0)
        goto done;
    Py_CLEAR(v);
    /* LogRecord 8 flags (fixed32): int(trace_flags) */
    if ((set = log_attr_set(record, str_trace_flags, &v)) < 0)
        goto done;
    if (set) {
        uint32_t flags = 0;
        if ((w = PyNumber_Long(v)) == NULL || uint32_of(w, &flags, "LogRecord.flags") < 0 || RESERVE(b, 5) < 0)
            goto done;
        u_byte(b, 0x45);
        u_fixed32(b, flags);
        Py_CLEAR(w);
    }
    Py_CLEAR(v);
    /* LogRecord 9 trace_id: trace_id.to_bytes(16, "big") */
    if ((set = log_attr_set(record, str_trace_id, &v)) < 0)
        goto done;
    if (set) {
        if (!PyLong_Check(v)) {
            raise_encode_error("a trace id must be an int, got %.100s", Py_TYPE(v)->tp_name);
            goto done;
        }
        if (u128_of(v, &hi, &lo) < 0) {
            raise_encode_error("the trace id %S is not a 128-bit unsigned int", v);
            goto done;
        }
        if (RESERVE(b, 18) < 0)
            goto done;
        u_byte(b, 0x4a);
        u_byte(b, 0x10);
        u_be64(b, hi);
        u_be64(b, lo);
    }
    Py_CLEAR(v);
    /* LogRecord 10 span_id (struct ">Q") */
    if ((set = log_attr_set(record, str_span_id, &v)) < 0)
        goto done;
    if (set) {
        if (index_u64(v, &u, "a span id") < 0 || RESERVE(b, 10) < 0)
            goto done;
        u_byte(b, 0x52);
        u_byte(b, 0x08);
        u_be64(b, u);
    }
    Py_CLEAR(v);
    /* LogRecord 11 observed_time_unix_nano */
    if ((v = PyObject_GetAttr(record, str_observed_timestamp)) == NULL ||
        w_log_time(b, 0x59, v, "LogRecord.observed_timestamp") < 0)
        goto done;
    Py_CLEAR(v);
    /* LogRecord 12 event_name, when the record has one (a record of an older API has none) */
    if ((v = attr_or_none(record, str_log_event_name)) == NULL || w_opt_str(b, 0x62, v, "LogRecord.event_name") < 0)
        goto done;
    rc = 0;
done:
    Py_XDECREF(v);
    Py_XDECREF(w);
    return rc;
}

/* The Sdk of `types` (a 1-tuple: BoundedAttributes) for writing log records, the field names interned. */
static int
log_sdk_open(PyObject *types, Sdk *sdk)
{
    if (!PyTuple_Check(types) || PyTuple_GET_SIZE(types) != 1) {
        PyErr_SetString(PyExc_TypeError, "types must be (BoundedAttributes,)");
        return -1;
    }
    if (log_names() < 0)
        return -1;
    memset(sdk, 0, sizeof(*sdk));
    sdk->bounded_attributes = PyTuple_GET_ITEM(types, 0);
    return 0;
}

typedef struct {
    PyObject *record;
    const Sdk *sdk;
} LogArg;

static int
write_log_record(Buf *b, void *arg)
{
    return w_log_record(b, ((LogArg *)arg)->record, ((LogArg *)arg)->sdk);
}

/* One SDK log record's ScopeLogs.log_records entry (tag, length, LogRecord) as bytes. */
static PyObject *
log_field(PyObject *types, PyObject *record)
{
    Sdk sdk;
    if (log_sdk_open(types, &sdk) < 0)
        return NULL;
    LogArg arg = {PyObject_GetAttr(record, str_log_record), &sdk};
    if (arg.record == NULL)
        return NULL;
    /* ScopeLogs 2 log_records */
    PyObject *result = scratch_field(&s_log_scratch, 0x12, write_log_record, &arg, "log record");
    Py_DECREF(arg.record);
    return result;
}

static PyObject *
py_sdk_log_field(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sdk_log_field(types, record) takes 2 arguments");
        return NULL;
    }
    return log_field(args[0], args[1]);
}

/* on_emit's hot path (aiotlp.sdk._encode_source._log_item), in one call: (key, field) when the record's
 * (resource, instrumentation_scope) are, by identity, those of memo (resource, scope, key) or of ids' entry for
 * them (source_key), and it encodes (field: what sdk_log_field returns); otherwise the record itself, for the
 * caller's other path (any Exception here is cleared: that path reads the record again). `direct` is unused (the
 * signature is the span item's, so that one HotPut serves both). */
static PyObject *
py_sdk_log_item(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static PyObject *str_resource, *str_scope;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "sdk_log_item(types, direct, memo, ids, record) takes 5 arguments");
        return NULL;
    }
    PyObject *memo = args[2], *ids = args[3], *record = args[4];
    if (!PyDict_Check(ids) || !PyTuple_Check(memo) || PyTuple_GET_SIZE(memo) != 3) {
        PyErr_SetString(PyExc_TypeError, "sdk_log_item: ids must be a dict, memo a 3-tuple");
        return NULL;
    }
    if ((str_resource == NULL && (str_resource = PyUnicode_InternFromString("resource")) == NULL)
        || (str_scope == NULL && (str_scope = PyUnicode_InternFromString("instrumentation_scope")) == NULL))
        return NULL;
    PyObject *resource = PyObject_GetAttr(record, str_resource), *scope = NULL;
    if (resource != NULL && resource != Py_None)
        scope = PyObject_GetAttr(record, str_scope);
    if (scope == NULL) { /* no resource (the other path gives it the default one), or an error */
        Py_XDECREF(resource);
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL;
            PyErr_Clear();
        }
        return Py_NewRef(record);
    }
    return source_item(args[0], record, resource, scope, memo, ids, log_field);
}

/* ScopeLogs.log_records entries of SDK log records, appended to buf: _write_log_records (a batch). */
static PyObject *
py_write_sdk_logs(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Buf b;
    Sdk sdk;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_sdk_logs(buf, records, types) takes 3 arguments");
        return NULL;
    }
    if (log_sdk_open(args[2], &sdk) < 0 || buf_open(&b, args[0]) < 0)
        return NULL;
    PyObject *it = PyObject_GetIter(args[1]);
    if (it == NULL)
        return buf_close(&b, 0);
    PyObject *readable;
    int ok = 1;
    while (ok && (readable = PyIter_Next(it)) != NULL) {
        PyObject *record = PyObject_GetAttr(readable, str_log_record);
        Py_ssize_t start = record != NULL ? begin(&b, "\x12", 1) : -1; /* ScopeLogs 2 log_records */
        ok = start >= 0 && w_log_record(&b, record, &sdk) == 0 && end(&b, start) == 0;
        Py_XDECREF(record);
        Py_DECREF(readable);
    }
    Py_DECREF(it);
    return buf_close(&b, ok && !PyErr_Occurred());
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Framing a batch encoded at the source: aiotlp.sdk._encode_source._frame_one, the common batch (every item a
 * SourceItem (key, field) of one key) in one pass over the items that checks and sums, one allocation and one
 * copy. Anything else (an object among the items, several keys, a key `groups` does not hold, a part that is not
 * exact bytes) returns None: the caller's general path frames it, with the same bytes. */

static inline char *
put_varint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static inline char *
put_bytes(char *p, PyObject *bytes)
{
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    memcpy(p, PyBytes_AS_STRING(bytes), (size_t)n);
    return p + n;
}

static PyObject *
py_frame_source(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "frame_source(items, groups) takes 2 arguments");
        return NULL;
    }
    PyObject *items = args[0], *groups = args[1];
    /* a list, or a subclass that iterates as a list (the queue's chunks are one), or a tuple */
    int listlike = PyList_Check(items) && Py_TYPE(items)->tp_iter == PyList_Type.tp_iter;
    if (!(listlike || PyTuple_CheckExact(items)) || !PyDict_CheckExact(groups) || PySequence_Fast_GET_SIZE(items) == 0)
        Py_RETURN_NONE;
    PyObject *first = PySequence_Fast_ITEMS(items)[0];
    if (!PyTuple_CheckExact(first) || PyTuple_GET_SIZE(first) != 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(first, 0)))
        Py_RETURN_NONE;
    PyObject *key = PyTuple_GET_ITEM(first, 0);
    Py_INCREF(key);
    /* looked up before the pass: nothing after it runs Python code, so the borrowed items stay valid */
    PyObject *group = PyDict_GetItemWithError(groups, key);
    if (group == NULL) {
        Py_DECREF(key);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    /* (index, resource, scope, resource field, scope field, scope schema_url field, resource schema_url field) */
    if (!PyTuple_CheckExact(group) || PyTuple_GET_SIZE(group) != 7) {
        Py_DECREF(key);
        Py_RETURN_NONE;
    }
    Py_INCREF(group);
    PyObject *result = NULL;
    PyObject *resource = PyTuple_GET_ITEM(group, 3), *scope = PyTuple_GET_ITEM(group, 4),
             *scope_schema = PyTuple_GET_ITEM(group, 5), *resource_schema = PyTuple_GET_ITEM(group, 6);
    if (!PyBytes_CheckExact(resource) || !PyBytes_CheckExact(scope) || !PyBytes_CheckExact(scope_schema)
        || !PyBytes_CheckExact(resource_schema))
        goto none;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    PyObject **v = PySequence_Fast_ITEMS(items);
    uint64_t parts = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = v[i];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
            goto none;
        PyObject *k = PyTuple_GET_ITEM(item, 0), *data = PyTuple_GET_ITEM(item, 1);
        if (!PyBytes_CheckExact(data))
            goto none;
        if (k != key) { /* equal ints (exact: comparing them runs no Python code) */
            if (!PyLong_CheckExact(k))
                goto none;
            int equal = PyObject_RichCompareBool(k, key, Py_EQ);
            if (equal < 0)
                goto done;
            if (!equal)
                goto none;
        }
        parts += (uint64_t)PyBytes_GET_SIZE(data);
    }
    /* Export* 1 resource_{spans,logs} { the resource, 2 scope_{spans,logs} { the scope, the items, the scope's
     * schema_url }, the resource's schema_url } */
    uint64_t scope_size = (uint64_t)PyBytes_GET_SIZE(scope) + parts + (uint64_t)PyBytes_GET_SIZE(scope_schema);
    uint64_t body = (uint64_t)PyBytes_GET_SIZE(resource) + 1 + (uint64_t)varint_size(scope_size) + scope_size
                    + (uint64_t)PyBytes_GET_SIZE(resource_schema);
    uint64_t total = 1 + (uint64_t)varint_size(body) + body;
    if (total > (uint64_t)PY_SSIZE_T_MAX) {
        PyErr_SetString(PyExc_OverflowError, "frame_source: the request is too large");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL)
        goto done;
    char *p = PyBytes_AS_STRING(result);
    *p++ = 0x0a;
    p = put_varint(p, body);
    p = put_bytes(p, resource);
    *p++ = 0x12;
    p = put_varint(p, scope_size);
    p = put_bytes(p, scope);
    for (Py_ssize_t i = 0; i < n; i++)
        p = put_bytes(p, PyTuple_GET_ITEM(v[i], 1));
    p = put_bytes(p, scope_schema);
    p = put_bytes(p, resource_schema);
    assert(p == PyBytes_AS_STRING(result) + total);
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(group);
    Py_DECREF(key);
    return result;
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
    {"sdk_span_item", (PyCFunction)(void (*)(void))py_sdk_span_item, METH_FASTCALL,
     "sdk_span_item(types, direct, memo, ids, span) -> None, (key, field) or span: on_end's hot path (encoding at the source)."},
    {"set_warning_hook", (PyCFunction)py_set_warning_hook, METH_O,
     "set_warning_hook(hook) -> previous hook: SpanCore's warnings (the SDK's texts) go to hook(text); None drops them."},
    {"sdk_log_field", (PyCFunction)(void (*)(void))py_sdk_log_field, METH_FASTCALL,
     "sdk_log_field(types, record) -> bytes: one SDK log record's ScopeLogs.log_records entry."},
    {"sdk_log_item", (PyCFunction)(void (*)(void))py_sdk_log_item, METH_FASTCALL,
     "sdk_log_item(types, direct, memo, ids, record) -> (key, field) or the record: on_emit's hot path."},
    {"write_sdk_logs", (PyCFunction)(void (*)(void))py_write_sdk_logs, METH_FASTCALL,
     "write_sdk_logs(buf, records, types): ScopeLogs.log_records entries of SDK log records, appended to buf."},
    {"frame_source", (PyCFunction)(void (*)(void))py_frame_source, METH_FASTCALL,
     "frame_source(items, groups) -> bytes or None: the request of a batch encoded at the source, when it is one key's."},
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
    if (m != NULL && (PyType_Ready(&SpanCore_Type) < 0 || PyModule_AddObjectRef(m, "SpanCore", (PyObject *)&SpanCore_Type) < 0))
        Py_CLEAR(m);
    return m;
}
