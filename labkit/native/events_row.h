/* Part of labkit/native/_events.c (included once, after get_fields): the timeline row, as
 * marshal writes ops.timeline_row(event). */
#ifndef LABKIT_EVENTS_ROW_H
#define LABKIT_EVENTS_ROW_H

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
#endif
