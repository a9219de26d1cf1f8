/* Part of labkit/native/_events.c (included once, after line_to): the journal's per-event step
 * (Lines) and the malformed-event limiter in front of it (Limited) as C callables. */
#ifndef LABKIT_EVENTS_LINES_H
#define LABKIT_EVENTS_LINES_H

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
#endif
