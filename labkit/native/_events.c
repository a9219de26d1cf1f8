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
 * Python frame. The JSON writers are in events_json.h, Lines and Limited in
 * events_lines.h, the timeline row (`row`, `append_row`) in events_row.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "events_json.h"

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

#include "events_lines.h"
#include "events_row.h"

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
