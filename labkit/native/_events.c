/* labkit.native._events: an event's journal line in one call (issue 15).
 *
 * labkit/events.py's `_plain_json` (the reference) puts the line together from C-quoted strings
 * and a kept C encoder for the detail; at two events per DHCP exchange that was still about a
 * tenth of the server's instructions (one quoting call per field, an f-string, a join per
 * detail). `line(event, quote, detail_json)` writes the same text in one buffer:
 *
 *   {"time":<repr>,"service":"..","client":".."|null,"phone":".."|null,"action":"..",
 *    "request":"..","answer":"..","result":"..","detail":{...}}\n
 *
 * A string that is ASCII with nothing to escape (no '"', '\\', control character or DEL) is
 * copied between quotes; any other string goes through `quote` (json's encode_basestring_ascii,
 * the quoting the reference uses). The detail is written here when it is a dict with str keys
 * and values that are str, int, bool, None, a finite float, or a list/tuple of those; any other
 * detail is handed to `detail_json` (the reference's kept encoder). Anything else the reference
 * treats specially (a time that is not a finite float, a field that is not a str) returns None:
 * the caller then uses event.to_json(). tests/unit/test_event_line.py shows the text is the same.
 * The time is written without dtoa where repr's shortest digits can be worked out exactly
 * (put_time). `append_line` adds the line to a bytearray; `Lines` is JsonLinesLog's whole
 * per-event step (the line, the size; Python only to rotate, write or for to_json's shapes) and
 * `Limited` the MalformedLimiter in front of it, so that the bus reaches the journal without a
 * Python frame. The timeline row (`row`, `append_row`) is at the end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static inline int grow(Buffer *b, Py_ssize_t more) {
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap * 2;
    if (cap < b->len + more)
        cap = b->len + more + 256;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int put(Buffer *b, const char *text, Py_ssize_t n) {
    if (grow(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, text, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT(b, literal) put((b), (literal), (Py_ssize_t)sizeof(literal) - 1)

/* An ASCII str (the result of quote, repr, or a detail encoder) appended as is. */
static int put_ascii(Buffer *b, PyObject *text) {
    if (!PyUnicode_Check(text) || PyUnicode_READY(text) < 0 || !PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_TypeError, "expected ASCII text");
        return -1;
    }
    return put(b, (const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text));
}

static unsigned char plain[128]; /* 1: an ASCII byte json writes as itself (set at import) */

/* A str as JSON: plain ASCII copied between quotes, anything else through `quote`. */
static int put_string(Buffer *b, PyObject *s, PyObject *quote) {
    if (PyUnicode_READY(s) < 0)
        return -1;
    if (PyUnicode_IS_ASCII(s)) {
        const unsigned char *p = PyUnicode_DATA(s);
        Py_ssize_t n = PyUnicode_GET_LENGTH(s), k = 0;
        while (k + 4 <= n && plain[p[k]] & plain[p[k + 1]] & plain[p[k + 2]] & plain[p[k + 3]])
            k += 4;
        while (k < n && plain[p[k]])
            k++;
        if (k == n) {
            if (grow(b, n + 2) < 0)
                return -1;
            b->data[b->len++] = '"';
            memcpy(b->data + b->len, p, (size_t)n);
            b->len += n;
            b->data[b->len++] = '"';
            return 0;
        }
    }
    PyObject *quoted = PyObject_CallOneArg(quote, s);
    if (quoted == NULL)
        return -1;
    int status = put_ascii(b, quoted);
    Py_DECREF(quoted);
    return status;
}

/* One detail value this encoder writes: 1 written, 0 not one of its kinds, -1 error. */
static int put_scalar(Buffer *b, PyObject *v, PyObject *quote) {
    if (PyUnicode_CheckExact(v))
        return put_string(b, v, quote) < 0 ? -1 : 1;
    if (v == Py_None)
        return PUT(b, "null") < 0 ? -1 : 1;
    if (v == Py_True)
        return PUT(b, "true") < 0 ? -1 : 1;
    if (v == Py_False)
        return PUT(b, "false") < 0 ? -1 : 1;
    if (PyLong_CheckExact(v)) { /* int.__repr__'s digits, without a str object for small ones */
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred())
            return -1;
        if (!overflow && n > -1000000000000000000LL && n < 1000000000000000000LL) {
            char digits[24], *end = digits + sizeof digits, *q = end;
            unsigned long long u = n < 0 ? (unsigned long long)(-n) : (unsigned long long)n;
            do {
                *--q = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            if (n < 0)
                *--q = '-';
            return put(b, q, end - q) < 0 ? -1 : 1;
        }
    }
    if (PyLong_CheckExact(v) || (PyFloat_CheckExact(v) && isfinite(PyFloat_AS_DOUBLE(v)))) {
        PyObject *text = PyObject_Repr(v); /* json: int.__repr__ / float.__repr__ */
        if (text == NULL)
            return -1;
        int status = put_ascii(b, text);
        Py_DECREF(text);
        return status < 0 ? -1 : 1;
    }
    return 0;
}

/* The detail dict, if every key is a str and every value a scalar or a list/tuple of scalars:
 * 1 written, 0 not (the buffer is then left where it was), -1 error. */
static int put_detail(Buffer *b, PyObject *detail, PyObject *quote) {
    Py_ssize_t start = b->len, pos = 0;
    PyObject *key, *value;
    int first = 1;
    if (PUT(b, "{") < 0)
        return -1;
    while (PyDict_Next(detail, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key))
            goto not_mine;
        if ((!first && PUT(b, ",") < 0) || put_string(b, key, quote) < 0 || PUT(b, ":") < 0)
            return -1;
        first = 0;
        int done = put_scalar(b, value, quote);
        if (done < 0)
            return -1;
        if (done == 1)
            continue;
        if (!PyList_CheckExact(value) && !PyTuple_CheckExact(value))
            goto not_mine;
        PyObject *items = PySequence_Fast(value, "");
        if (items == NULL)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
        int status = PUT(b, "[") < 0 ? -1 : 1;
        for (Py_ssize_t k = 0; k < n && status == 1; k++) {
            if (k && PUT(b, ",") < 0)
                status = -1;
            else
                status = put_scalar(b, PySequence_Fast_GET_ITEM(items, k), quote);
        }
        Py_DECREF(items);
        if (status != 1) {
            if (status < 0)
                return -1;
            goto not_mine;
        }
        if (PUT(b, "]") < 0)
            return -1;
    }
    return PUT(b, "}") < 0 ? -1 : 1;
not_mine:
    b->len = start;
    return 0;
}

static PyObject *names[9]; /* the Event's fields, interned once */
static const char *NAMES[9] = {"time", "service", "client", "phone", "action",
                               "request", "answer", "result", "detail"};
static const char *KEYS[9] = {"{\"time\":", ",\"service\":", ",\"client\":", ",\"phone\":",
                              ",\"action\":", ",\"request\":", ",\"answer\":", ",\"result\":",
                              ",\"detail\":"};
static PyObject *dict_name = NULL; /* "__dict__" */

/* The event's fields 0..count-1 but `skip` (-1: none) into values[] (new references): from the
 * instance dict when it has them (one look-up each), else by getattr. -1 on error. */
static int get_fields(PyObject *event, PyObject **values, int count, int skip) {
    PyObject *dict = PyObject_GetAttr(event, dict_name);
    if (dict == NULL)
        PyErr_Clear();
    if (dict != NULL && PyDict_CheckExact(dict) && PyDict_GET_SIZE(dict) == 9) {
        /* the usual dict: the fields in their order, under the interned names (a walk, no look-ups) */
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        int k = 0;
        while (k < 9 && PyDict_Next(dict, &pos, &key, &value) && key == names[k])
            values[k++] = value;
        for (int j = 0; j < k && k == 9; j++)
            values[j] = j == skip || j >= count ? NULL : Py_NewRef(values[j]);
        if (k == 9) {
            Py_DECREF(dict);
            return 0;
        }
        for (int j = 0; j < k; j++)
            values[j] = NULL;
    }
    for (int k = 0; k < count; k++) {
        if (k == skip)
            continue;
        PyObject *found = dict != NULL && PyDict_CheckExact(dict) ? PyDict_GetItemWithError(dict, names[k]) : NULL;
        if (found != NULL) {
            values[k] = Py_NewRef(found);
        } else if (PyErr_Occurred() || (values[k] = PyObject_GetAttr(event, names[k])) == NULL) {
            Py_XDECREF(dict);
            return -1;
        }
    }
    Py_XDECREF(dict);
    return 0;
}

/* repr(v) for 1 <= v < 2**53 (a clock's time: seconds since the epoch) without dtoa, which is
 * half of a line's cost when every event has its own time. repr gives the fewest digits that read
 * back as v (the nearest such, in fixed notation below 1e16); above 1 that is the fewest decimals
 * d for which N = round(v * 10**d) reads back: |N / 10**d - v| < ulp / 2. Worked out exactly in
 * 128-bit integers (v = m * 2**e). 1 written, 0 left to repr: a power of two (its neighbours are
 * not equally far), an exact tie anywhere, or a value out of that range. */
static int put_time(Buffer *b, double v) {
    if (!(v >= 1.0 && v < 9007199254740992.0))
        return 0;
    int exp;
    uint64_t m = (uint64_t)ldexp(frexp(v, &exp), 53); /* v = m * 2**(exp - 53), 2**52 <= m < 2**53 */
    int shift = 53 - exp;                              /* 1..52 */
    if (m == (1ULL << 52) || shift < 1 || shift > 52)
        return 0;
    unsigned __int128 scaled = m, p10 = 1, half = (unsigned __int128)1 << (shift - 1), n;
    int d = 0;
    for (;; d++, scaled *= 10, p10 *= 10) {
        if (d > 17)
            return 0; /* (never: 17 significant digits always read back) */
        if ((scaled & (((unsigned __int128)1 << shift) - 1)) == half) { /* v * 10**d half-way between two N */
            if (2 * half < p10)
                return 0; /* both read back: repr's choice, not guessed here */
            continue;     /* neither does */
        }
        n = (scaled + half) >> shift;
        unsigned __int128 back = n << shift, diff = back > scaled ? back - scaled : scaled - back;
        if (2 * diff == p10)
            return 0;
        if (2 * diff < p10)
            break;
    }
    uint64_t whole = (uint64_t)(n / p10), part = (uint64_t)(n % p10);
    char text[48], *end = text + sizeof text, *q = end;
    for (int k = 0; k < (d ? d : 1); k++, part /= 10)
        *--q = (char)('0' + part % 10);
    *--q = '.';
    do {
        *--q = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    return put(b, q, end - q) < 0 ? -1 : 1;
}

static double kept_time = 0.0; /* the last time written, and its text (events of a batch share it) */
static char kept_chars[40];
static Py_ssize_t kept_len = 0;

/* Fields 1-7 (service .. result): str, or None for client and phone; 0 when not that shape. */
static int put_fields(Buffer *b, PyObject **values, PyObject *quote) {
    for (int k = 1; k < 8; k++) {
        if (put(b, KEYS[k], (Py_ssize_t)strlen(KEYS[k])) < 0)
            return -1;
        PyObject *v = values[k];
        if (v == Py_None && (k == 2 || k == 3)) {
            if (PUT(b, "null") < 0)
                return -1;
        } else if (!PyUnicode_CheckExact(v)) {
            return 0;
        } else if (put_string(b, v, quote) < 0) {
            return -1;
        }
    }
    return 1;
}

/* The line into b: 1 written, 0 a shape left to to_json, -1 error */
static int build_line(Buffer *b, PyObject *event, PyObject *quote, PyObject *detail_json) {
    PyObject *values[9] = {NULL};
    int out = -1;
    if (get_fields(event, values, 9, -1) < 0)
        goto done;
    PyObject *when = values[0], *detail = values[8];
    if (!PyFloat_CheckExact(when) || !isfinite(PyFloat_AS_DOUBLE(when)) || !PyDict_CheckExact(detail)) {
        out = 0;
        goto done;
    }
    double seconds = PyFloat_AS_DOUBLE(when);
    if (grow(b, 512) < 0 || put(b, KEYS[0], (Py_ssize_t)strlen(KEYS[0])) < 0)
        goto done;
    if (kept_len && memcmp(&kept_time, &seconds, sizeof seconds) == 0) { /* bits: -0.0 is not 0.0 */
        if (put(b, kept_chars, kept_len) < 0)
            goto done;
    } else {
        Py_ssize_t at = b->len;
        int fast = put_time(b, seconds);
        PyObject *text = fast ? NULL : PyObject_Repr(when);
        if (fast < 0 || (!fast && (text == NULL || put_ascii(b, text) < 0))) {
            Py_XDECREF(text);
            goto done;
        }
        Py_XDECREF(text);
        kept_len = b->len - at < (Py_ssize_t)sizeof kept_chars ? b->len - at : 0;
        memcpy(kept_chars, b->data + at, (size_t)kept_len);
        kept_time = seconds;
    }
    int shape = put_fields(b, values, quote);
    if (shape <= 0) {
        out = shape;
        goto done;
    }
    if (put(b, KEYS[8], (Py_ssize_t)strlen(KEYS[8])) < 0)
        goto done;
    int written = PyDict_GET_SIZE(detail) ? put_detail(b, detail, quote) : (PUT(b, "{}") < 0 ? -1 : 1);
    if (written < 0)
        goto done;
    if (written == 0) {
        PyObject *text = PyObject_CallOneArg(detail_json, detail);
        if (text == NULL)
            goto done;
        int status = put_ascii(b, text);
        Py_DECREF(text);
        if (status < 0)
            goto done;
    }
    out = PUT(b, "}\n") < 0 ? -1 : 1;
done:
    for (int k = 0; k < 9; k++)
        Py_XDECREF(values[k]);
    return out;
}

/* One buffer kept for every line (no allocation per event); a call made while it is in use (a
 * detail's encoder that logs) gets its own. */
static Buffer kept_buffer = {NULL, 0, 0};
static int kept_busy = 0;

/* line(event, quote, detail_json) as text, or (into != NULL) added to the bytearray `into`:
 * the str / the bytes added; None / 0 for a shape left to to_json */
static PyObject *line_to(PyObject *const *args, Py_ssize_t nargs, PyObject *into) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "(event, quote, detail_json)");
        return NULL;
    }
    Buffer local = {NULL, 0, 0}, *b = kept_busy ? &local : &kept_buffer;
    int mine = b == &kept_buffer;
    kept_busy |= mine;
    b->len = 0;
    int status = build_line(b, args[0], args[1], args[2]);
    PyObject *out = NULL;
    if (status == 0) {
        out = into != NULL ? PyLong_FromLong(0) : Py_NewRef(Py_None);
    } else if (status == 1 && into == NULL) {
        if ((out = PyUnicode_New(b->len, 127)) != NULL)
            memcpy(PyUnicode_DATA(out), b->data, (size_t)b->len);
    } else if (status == 1) {
        Py_ssize_t size = PyByteArray_GET_SIZE(into);
        if (PyByteArray_Resize(into, size + b->len) == 0) {
            memcpy(PyByteArray_AS_STRING(into) + size, b->data, (size_t)b->len);
            out = PyLong_FromSsize_t(b->len);
        }
    }
    if (mine) {
        kept_busy = 0;
        if (b->cap > 65536) { /* an odd long line: its buffer is not kept */
            PyMem_Free(b->data);
            *b = (Buffer){NULL, 0, 0};
        }
    }
    PyMem_Free(local.data);
    return out;
}

static PyObject *line(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    return line_to(args, nargs, NULL);
}

/* append_line(data, event, quote, detail_json): line(...) added to the bytearray `data` */
static PyObject *append_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4 || !PyByteArray_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "append_line(data: bytearray, event, quote, detail_json)");
        return NULL;
    }
    return line_to(args + 1, nargs - 1, args[0]);
}

/* Lines(pending, Event, quote, detail_json, journal, flush_at, max_bytes): JsonLinesLog's per-event
 * step as one C call (the journal's MalformedLimiter calls it straight, no Python frame between):
 * the line onto `pending`, `size` kept here; Python only for the rare steps: journal._slow(event)
 * (a shape line leaves to to_json, or not an Event), journal._rotate_with(n) (the line just added
 * opens the next file; it sets size to 0) and journal._write() past flush_at pending bytes. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *pending, *event_type, *quote, *detail_json, *journal;
    Py_ssize_t size, max_bytes, flush_at;
} Lines;

static PyObject *lines_call(Lines *self, PyObject *const *args, size_t nargsf, PyObject *kw) {
    if (PyVectorcall_NARGS(nargsf) != 1 || kw != NULL) {
        PyErr_SetString(PyExc_TypeError, "Lines(event)");
        return NULL;
    }
    PyObject *event = args[0], *added = NULL, *done;
    if (Py_IS_TYPE(event, (PyTypeObject *)self->event_type)) {
        PyObject *line_args[3] = {event, self->quote, self->detail_json};
        added = line_to(line_args, 3, self->pending);
        if (added == NULL)
            return NULL;
    }
    Py_ssize_t n = added == NULL ? 0 : PyLong_AsSsize_t(added);
    Py_XDECREF(added);
    if (n <= 0) /* (-1: an error set) */
        return n < 0 ? NULL : PyObject_CallMethod(self->journal, "_slow", "O", event);
    if (self->size && self->size + n > self->max_bytes) {
        if ((done = PyObject_CallMethod(self->journal, "_rotate_with", "n", n)) == NULL)
            return NULL;
        Py_DECREF(done);
    }
    self->size += n;
    if (PyByteArray_GET_SIZE(self->pending) >= self->flush_at) {
        if ((done = PyObject_CallMethod(self->journal, "_write", NULL)) == NULL)
            return NULL;
        Py_DECREF(done);
    }
    Py_RETURN_NONE;
}

static PyObject *lines_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kw);

static PyObject *lines_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *pending, *event_type, *quote, *detail_json, *journal;
    Py_ssize_t flush_at, max_bytes;
    if ((kw != NULL && PyDict_GET_SIZE(kw)) ||
        !PyArg_ParseTuple(args, "O!OOOOnn", &PyByteArray_Type, &pending, &event_type, &quote, &detail_json, &journal,
                          &flush_at, &max_bytes)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Lines takes positional arguments");
        return NULL;
    }
    if (!PyType_Check(event_type)) {
        PyErr_SetString(PyExc_TypeError, "Lines: the event class");
        return NULL;
    }
    Lines *self = (Lines *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->pending = Py_NewRef(pending), self->event_type = Py_NewRef(event_type), self->journal = Py_NewRef(journal);
    self->quote = Py_NewRef(quote), self->detail_json = Py_NewRef(detail_json);
    self->flush_at = flush_at, self->max_bytes = max_bytes, self->size = 0;
    self->vectorcall = lines_vectorcall;
    return (PyObject *)self;
}

static int lines_traverse(Lines *self, visitproc visit, void *arg) {
    Py_VISIT(self->pending);
    Py_VISIT(self->event_type);
    Py_VISIT(self->journal);
    Py_VISIT(self->quote);
    Py_VISIT(self->detail_json);
    return 0;
}

static int lines_clear(Lines *self) {
    Py_CLEAR(self->pending);
    Py_CLEAR(self->event_type);
    Py_CLEAR(self->journal);
    Py_CLEAR(self->quote);
    Py_CLEAR(self->detail_json);
    return 0;
}

static void lines_dealloc(Lines *self) {
    PyObject_GC_UnTrack(self);
    lines_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *lines_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kw) {
    return lines_call((Lines *)self, args, nargsf, kw);
}

static PyObject *lines_tp_call(PyObject *self, PyObject *args, PyObject *kw) {
    return PyVectorcall_Call(self, args, kw);
}

static PyMemberDef lines_members[] = {
    {"size", T_PYSSIZET, offsetof(Lines, size), 0, "the journal file's bytes, its pending lines included"},
    {"max_bytes", T_PYSSIZET, offsetof(Lines, max_bytes), 0, "the size past which a line opens the next file"},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject LinesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labkit.native._events.Lines",
    .tp_basicsize = sizeof(Lines),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "JsonLinesLog's per-event step in one call.",
    .tp_new = lines_new,
    .tp_dealloc = (destructor)lines_dealloc,
    .tp_traverse = (traverseproc)lines_traverse,
    .tp_clear = (inquiry)lines_clear,
    .tp_call = lines_tp_call,
    .tp_vectorcall_offset = offsetof(Lines, vectorcall),
    .tp_members = lines_members,
};

/* Limited(lines, malformed_results, limiter): the MalformedLimiter in front of a journal as one C
 * call for the bus: an event whose result is not in malformed_results goes straight to `lines`
 * (a Lines), any other to limiter._limit(event) (the Python window and count). */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *lines, *malformed, *limiter;
} Limited;

static PyObject *result_name = NULL, *limit_name = NULL;

static PyObject *limited_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kw) {
    Limited *self = (Limited *)op;
    if (PyVectorcall_NARGS(nargsf) != 1 || kw != NULL) {
        PyErr_SetString(PyExc_TypeError, "Limited(event)");
        return NULL;
    }
    PyObject *result = PyObject_GetAttr(args[0], result_name);
    if (result == NULL)
        return NULL;
    int malformed = PySet_Contains(self->malformed, result);
    Py_DECREF(result);
    if (malformed < 0)
        return NULL;
    if (malformed)
        return PyObject_CallMethodOneArg(self->limiter, limit_name, args[0]);
    return PyObject_Vectorcall(self->lines, args, 1, NULL);
}

static PyObject *limited_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *lines, *malformed, *limiter;
    if ((kw != NULL && PyDict_GET_SIZE(kw)) || !PyArg_ParseTuple(args, "OOO", &lines, &malformed, &limiter) ||
        !PyAnySet_Check(malformed)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Limited(lines, malformed_results: a set, limiter)");
        return NULL;
    }
    Limited *self = (Limited *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->lines = Py_NewRef(lines), self->malformed = Py_NewRef(malformed), self->limiter = Py_NewRef(limiter);
    self->vectorcall = limited_vectorcall;
    return (PyObject *)self;
}

static int limited_traverse(Limited *self, visitproc visit, void *arg) {
    Py_VISIT(self->lines);
    Py_VISIT(self->malformed);
    Py_VISIT(self->limiter);
    return 0;
}

static int limited_clear(Limited *self) {
    Py_CLEAR(self->lines);
    Py_CLEAR(self->malformed);
    Py_CLEAR(self->limiter);
    return 0;
}

static void limited_dealloc(Limited *self) {
    PyObject_GC_UnTrack(self);
    limited_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject LimitedType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labkit.native._events.Limited",
    .tp_basicsize = sizeof(Limited),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A MalformedLimiter in front of a journal's Lines, in one call.",
    .tp_new = limited_new,
    .tp_dealloc = (destructor)limited_dealloc,
    .tp_traverse = (traverseproc)limited_traverse,
    .tp_clear = (inquiry)limited_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Limited, vectorcall),
};

/* A str in marshal's format: 'z' len8 + bytes (ASCII under 256), 'a' len32 + bytes (longer
 * ASCII), 'u' len32 + UTF-8 with surrogatepass (as marshal writes any other str). */
static int put_marshal_str(Buffer *b, PyObject *s) {
    if (PyUnicode_READY(s) < 0)
        return -1;
    if (PyUnicode_IS_ASCII(s)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(s);
        if (n > 0x7fffffff) {
            PyErr_SetString(PyExc_ValueError, "str too long");
            return -1;
        }
        unsigned char head[5] = {n < 256 ? 'z' : 'a', (unsigned char)n, (unsigned char)(n >> 8),
                                 (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
        if (put(b, (const char *)head, n < 256 ? 2 : 5) < 0)
            return -1;
        return put(b, (const char *)PyUnicode_DATA(s), n);
    }
    PyObject *utf8 = PyUnicode_AsEncodedString(s, "utf8", "surrogatepass");
    if (utf8 == NULL)
        return -1;
    Py_ssize_t n = PyBytes_GET_SIZE(utf8);
    int status = -1;
    if (n > 0x7fffffff) {
        PyErr_SetString(PyExc_ValueError, "str too long");
    } else {
        unsigned char head[5] = {'u', (unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16),
                                 (unsigned char)(n >> 24)};
        if (put(b, (const char *)head, 5) == 0)
            status = put(b, PyBytes_AS_STRING(utf8), n);
    }
    Py_DECREF(utf8);
    return status;
}

/* row(event): ops.timeline_row(event) marshalled (marshal.loads gives the same tuple back:
 * (time, service, action, request, answer, result, client, None)), or None for a fault event (its
 * rule label is any object: the caller marshals it) or fields of other types. Written without
 * marshal's reference table, which cost more than the row. */
/* The row into b: 1 written, 0 not this encoder's shape, -1 error. */
static int put_row(Buffer *b, PyObject *event) {
    static const int order[6] = {1, 4, 5, 6, 7, 2}; /* service, action, request, answer, result, client */
    PyObject *values[9] = {NULL};
    int status = -1;
    if (get_fields(event, values, 8, 3) < 0)
        goto done;
    if (!PyFloat_CheckExact(values[0]) || !PyUnicode_CheckExact(values[4]) ||
        PyUnicode_CompareWithASCIIString(values[4], "fault") == 0) {
        status = 0;
        goto done;
    }
    unsigned char head[11] = {')', 8, 'g'};
    if (PyFloat_Pack8(PyFloat_AS_DOUBLE(values[0]), (char *)head + 3, 1) < 0 || grow(b, 256) < 0 ||
        put(b, (const char *)head, 11) < 0)
        goto done;
    for (int k = 0; k < 6; k++) {
        PyObject *v = values[order[k]];
        if (v == Py_None && order[k] == 2) {
            if (PUT(b, "N") < 0)
                goto done;
        } else if (!PyUnicode_CheckExact(v)) {
            status = 0;
            goto done;
        } else if (put_marshal_str(b, v) < 0) {
            goto done;
        }
    }
    status = PUT(b, "N") < 0 ? -1 : 1;
done:
    for (int k = 0; k < 9; k++)
        Py_XDECREF(values[k]);
    return status;
}

/* row(event): ops.timeline_row(event) marshalled (marshal.loads gives the same tuple back:
 * (time, service, action, request, answer, result, client, None)), or None for a fault event (its
 * rule label is any object: the caller marshals it) or fields of other types. Written without
 * marshal's reference table, which cost more than the row. */
static PyObject *row(PyObject *self, PyObject *event) {
    (void)self;
    Buffer b = {NULL, 0, 0};
    int status = put_row(&b, event);
    PyObject *out = status < 0 ? NULL : status == 0 ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(b.data, b.len);
    PyMem_Free(b.data);
    return out;
}

/* append_row(data, event): row(event) added to the bytearray `data`; the bytes added, 0 (nothing
 * added) when row would be None. */
static PyObject *append_row(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyByteArray_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "append_row(data: bytearray, event)");
        return NULL;
    }
    Buffer b = {NULL, 0, 0};
    int status = put_row(&b, args[1]);
    PyObject *out = NULL;
    if (status == 0) {
        out = PyLong_FromLong(0);
    } else if (status == 1) {
        Py_ssize_t size = PyByteArray_GET_SIZE(args[0]);
        if (PyByteArray_Resize(args[0], size + b.len) == 0) {
            memcpy(PyByteArray_AS_STRING(args[0]) + size, b.data, (size_t)b.len);
            out = PyLong_FromSsize_t(b.len);
        }
    }
    PyMem_Free(b.data);
    return out;
}

/* time_text(v): put_time's text, or None where it leaves v to repr (tests compare it with repr) */
static PyObject *time_text(PyObject *self, PyObject *v) {
    (void)self;
    double x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred())
        return NULL;
    Buffer b = {NULL, 0, 0};
    int fast = put_time(&b, x);
    PyObject *out = fast < 0 ? NULL : fast == 0 ? Py_NewRef(Py_None) : PyUnicode_FromStringAndSize(b.data, b.len);
    PyMem_Free(b.data);
    return out;
}

static PyMethodDef methods[] = {
    {"time_text", time_text, METH_O, "time_text(v) -> repr(v) worked out without dtoa, or None (left to repr)."},
    {"append_row", (PyCFunction)(void (*)(void))append_row, METH_FASTCALL,
     "append_row(data, event) -> bytes of row(event) added to the bytearray data (0: none, as row's None)."},
    {"row", row, METH_O, "row(event) -> the event's timeline row, marshalled, or None (a fault event)."},
    {"append_line", (PyCFunction)(void (*)(void))append_line, METH_FASTCALL,
     "append_line(data, event, quote, detail_json) -> bytes of line(...) added to the bytearray data (0: None)."},
    {"line", (PyCFunction)(void (*)(void))line, METH_FASTCALL,
     "line(event, quote, detail_json) -> the event's journal line (with its newline), or None."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_events", NULL, -1, methods,
                                        NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__events(void) {
    if (dict_name == NULL && (dict_name = PyUnicode_InternFromString("__dict__")) == NULL)
        return NULL;
    for (int c = 0x20; c < 0x7f; c++)
        plain[c] = c != '"' && c != '\\';
    for (int k = 0; k < 9; k++) {
        if (names[k] == NULL && (names[k] = PyUnicode_InternFromString(NAMES[k])) == NULL)
            return NULL;
    }
    if (PyType_Ready(&LinesType) < 0 || PyType_Ready(&LimitedType) < 0)
        return NULL;
    if ((result_name == NULL && (result_name = PyUnicode_InternFromString("result")) == NULL) ||
        (limit_name == NULL && (limit_name = PyUnicode_InternFromString("_limit")) == NULL))
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && (PyModule_AddObjectRef(module, "Lines", (PyObject *)&LinesType) < 0 ||
                           PyModule_AddObjectRef(module, "Limited", (PyObject *)&LimitedType) < 0))
        Py_CLEAR(module);
    return module;
}
