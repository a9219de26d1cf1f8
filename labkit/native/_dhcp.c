/* labkit.native._dhcp: the common case of reading a DHCP request in one call (issue 15).
 *
 * labkit/protocols/dhcp/message.py's `parse` (the reference) unpacks the header, walks the option
 * TLVs in Python and builds a Message's fields; that is about a sixth of the server's work per
 * DORA. `parse(data, zero, cache, make)` does the same steps for the messages servers see every
 * time, and gives up (returns None: the caller runs the reference path) on anything else:
 *
 *   - shorter than the 240-byte header, op not 1 or 2, hlen over 16, no magic cookie,
 *   - an option TLV that runs past the end, option 52 (overload: options in file/sname), or a
 *     code seen twice (RFC 3396 concatenation): all rare, and all the reference's to decide,
 *     with its own error text for the malformed ones.
 *
 * On success it returns the dict the reference builds for `Message.__dict__`: op, xid, chaddr
 * (hlen bytes), htype, hops, secs, flags, the four address fields as objects (`zero` for 0.0.0.0,
 * else `cache[raw]`, else `make(raw)`, exactly what message.address does), sname and file up to
 * their first NUL, options {code: payload} in wire order (PAD skipped, stopping at END), and mac
 * (chaddr as lowercase hex joined by ':'). It only reads `data` (any bytes-like object). With a fifth
 * argument `cls` (Message), that dict becomes the __dict__ of a new cls, as message._message does.
 *
 * `reply(htype, chaddr, xid, flags, ciaddr, yiaddr, giaddr, head, options, tail)` is the last step
 * of message.reply_wire's shortcut: the BOOTREPLY header (addresses as ints), the magic cookie,
 * head + options + tail + END, zero-padded to 300 bytes, in one allocation. The caller has
 * checked everything else (what fits, which codes): it builds the same bytes as the pure join.
 *
 * `Maker(cls, names)` makes instances of a slotted dataclass (the core's Fact, Result, Datagram
 * and its per-request _Ask) from positional values in `names`' order: the object allocated and its
 * slots filled, without the generated __init__ (a frozen one calls object.__setattr__ once per
 * field: ~1 µs for a Fact, three such objects per message). The caller checks once that `cls` is a
 * dataclass whose __init__ only stores its fields (no __post_init__, no init=False field); here each
 * name must be a writable object slot of `cls` itself (so a value always lands inside the object).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <string.h>
#include <structmember.h>

#define HEADER 240 /* the fixed BOOTP fields (236) and the magic cookie */
#define OVERLOAD 52

static const unsigned char MAGIC[4] = {0x63, 0x82, 0x53, 0x63};
static PyObject *names[15]; /* the dict's keys, interned once */
static const char *NAMES[15] = {"op", "xid", "chaddr", "htype", "hops", "secs", "flags", "ciaddr",
                                "yiaddr", "siaddr", "giaddr", "sname", "file", "options", "mac"};

/* An address field: `zero` for 0.0.0.0, else the cached object, else make(raw) (a new reference). */
static PyObject *address(const unsigned char *raw, PyObject *zero, PyObject *cache, PyObject *make) {
    if (raw[0] == 0 && raw[1] == 0 && raw[2] == 0 && raw[3] == 0) {
        Py_INCREF(zero);
        return zero;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)raw, 4);
    if (key == NULL)
        return NULL;
    PyObject *found = PyDict_GetItemWithError(cache, key); /* borrowed */
    if (found != NULL) {
        Py_DECREF(key);
        Py_INCREF(found);
        return found;
    }
    found = PyErr_Occurred() ? NULL : PyObject_CallOneArg(make, key);
    Py_DECREF(key);
    return found;
}

/* The options region as {code: payload}; Py_None (new reference) when the reference must decide. */
static PyObject *options(const unsigned char *data, Py_ssize_t size) {
    PyObject *found = _PyDict_NewPresized(8); /* room for a request's usual options: no resize */
    if (found == NULL)
        return NULL;
    Py_ssize_t i = HEADER;
    while (i < size) {
        unsigned char code = data[i];
        if (code == 0) { /* PAD */
            i++;
            continue;
        }
        if (code == 255) /* END */
            break;
        if (code == OVERLOAD || i + 2 > size || i + 2 + data[i + 1] > size)
            goto give_up;
        PyObject *key = PyLong_FromLong(code); /* a small int, cached by CPython */
        if (key == NULL)
            goto error;
        int seen = PyDict_Contains(found, key);
        if (seen != 0) { /* seen again (RFC 3396 join), or an error */
            Py_DECREF(key);
            if (seen < 0)
                goto error;
            goto give_up;
        }
        PyObject *payload = PyBytes_FromStringAndSize((const char *)data + i + 2, data[i + 1]);
        int failed = payload == NULL || PyDict_SetItem(found, key, payload) < 0;
        Py_DECREF(key);
        Py_XDECREF(payload);
        if (failed)
            goto error;
        i += 2 + data[i + 1];
    }
    return found;
give_up:
    Py_DECREF(found);
    Py_RETURN_NONE;
error:
    Py_DECREF(found);
    return NULL;
}

/* bytes up to the first NUL of a fixed-size field */
static PyObject *text_field(const unsigned char *field, size_t size) {
    const unsigned char *nul = memchr(field, 0, size);
    return PyBytes_FromStringAndSize((const char *)field, nul ? (Py_ssize_t)(nul - field) : (Py_ssize_t)size);
}

static PyObject *mac_text(const unsigned char *chaddr, unsigned int hlen) {
    static const char HEX[] = "0123456789abcdef";
    char text[16 * 3];
    size_t length = 0;
    for (unsigned int k = 0; k < hlen; k++) {
        if (k)
            text[length++] = ':';
        text[length++] = HEX[chaddr[k] >> 4];
        text[length++] = HEX[chaddr[k] & 15];
    }
    return PyUnicode_DecodeASCII(text, (Py_ssize_t)length, NULL);
}

static unsigned int be16(const unsigned char *p) { return ((unsigned int)p[0] << 8) | p[1]; }

static PyObject *fields(const unsigned char *d, PyObject *opts, PyObject *zero, PyObject *cache,
                        PyObject *make) {
    unsigned long xid = ((unsigned long)d[4] << 24) | ((unsigned long)d[5] << 16) | ((unsigned long)d[6] << 8) | d[7];
    PyObject *values[15] = {
        PyLong_FromLong(d[0]), PyLong_FromUnsignedLong(xid),
        PyBytes_FromStringAndSize((const char *)d + 28, d[2]), PyLong_FromLong(d[1]),
        PyLong_FromLong(d[3]), PyLong_FromLong(be16(d + 8)), PyLong_FromLong(be16(d + 10)),
        address(d + 12, zero, cache, make), address(d + 16, zero, cache, make),
        address(d + 20, zero, cache, make), address(d + 24, zero, cache, make),
        text_field(d + 44, 64), text_field(d + 108, 128), opts, mac_text(d + 28, d[2])};
    Py_INCREF(opts); /* values[] owns one reference of everything */
    PyObject *out = _PyDict_NewPresized(15); /* sized once: growing 8 -> 16 -> 32 cost more than the inserts */
    for (int k = 0; k < 15; k++) {
        if (out != NULL && (values[k] == NULL || PyDict_SetItem(out, names[k], values[k]) < 0))
            Py_CLEAR(out);
    }
    for (int k = 0; k < 15; k++)
        Py_XDECREF(values[k]);
    return out; /* NULL with the first error set */
}

/* `fields` (consumed) as the __dict__ of a new `cls` made by object.__new__: message._message's
 * two steps, for a class that keeps object's __new__ and has a __dict__ (checked by the caller). */
static PyObject *as_instance(PyObject *fields, PyTypeObject *cls) {
    static PyObject *dict_name = NULL;
    PyObject *made = NULL, *empty = NULL;
    if (dict_name == NULL && (dict_name = PyUnicode_InternFromString("__dict__")) == NULL)
        goto done;
    if ((empty = PyTuple_New(0)) == NULL)
        goto done;
    made = PyBaseObject_Type.tp_new(cls, empty, NULL);
    if (made != NULL && PyObject_GenericSetAttr(made, dict_name, fields) < 0)
        Py_CLEAR(made);
done:
    Py_XDECREF(empty);
    Py_DECREF(fields);
    return made;
}

static PyObject *parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if ((nargs != 4 && nargs != 5) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "parse(data, zero, cache: dict, make[, cls])");
        return NULL;
    }
    PyTypeObject *cls = NULL; /* the fields become a cls's __dict__ (a plain class only) */
    if (nargs == 5 && args[4] != Py_None) {
        cls = (PyTypeObject *)args[4];
        if (!PyType_Check(args[4]) || cls->tp_new != PyBaseObject_Type.tp_new || cls->tp_dictoffset == 0) {
            PyErr_SetString(PyExc_TypeError, "parse: cls must be a class with object's __new__ and a __dict__");
            return NULL;
        }
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *d = view.buf;
    PyObject *out = NULL;
    if (view.len < HEADER || (d[0] != 1 && d[0] != 2) || d[2] > 16 || memcmp(d + 236, MAGIC, 4) != 0) {
        out = Py_None; /* the reference raises its DhcpDecodeError */
        Py_INCREF(out);
    } else {
        PyObject *opts = options(d, view.len);
        if (opts == Py_None || opts == NULL)
            out = opts;
        else {
            out = fields(d, opts, args[1], args[2], args[3]);
            Py_DECREF(opts);
            if (out != NULL && cls != NULL)
                out = as_instance(out, cls);
        }
    }
    PyBuffer_Release(&view);
    return out;
}

/* 4 bytes big-endian */
static void put32(unsigned char *p, unsigned long value) {
    p[0] = (unsigned char)(value >> 24);
    p[1] = (unsigned char)(value >> 16);
    p[2] = (unsigned char)(value >> 8);
    p[3] = (unsigned char)value;
}

/* The arguments as PyArg_ParseTuple's "Iy*kIkkky*y*y*" reads them (ints masked, buffers of bytes-like
 * objects), read one by one: the format string's interpretation cost more than the reply. */
static int reply_args(PyObject *const *args, Py_ssize_t nargs, unsigned long *ints, Py_buffer *views) {
    static const int kinds[10] = {0, 1, 0, 0, 0, 0, 0, 1, 1, 1}; /* 0: an int, 1: a buffer */
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "reply() takes exactly 10 arguments (%zd given)", nargs);
        return -1;
    }
    int ni = 0, nb = 0;
    for (int k = 0; k < 10; k++) {
        if (kinds[k] == 0) {
            if (!PyLong_Check(args[k]) && !PyIndex_Check(args[k])) {
                PyErr_Format(PyExc_TypeError, "reply() argument %d must be int", k + 1);
                goto error;
            }
            unsigned long value = PyLong_AsUnsignedLongMask(args[k]);
            if (value == (unsigned long)-1 && PyErr_Occurred())
                goto error;
            ints[ni++] = (k == 0 || k == 3) ? (unsigned int)value : value; /* "I": an unsigned int */
        } else {
            if (PyObject_GetBuffer(args[k], &views[nb], PyBUF_SIMPLE) < 0)
                goto error;
            nb++;
        }
    }
    return 0;
error:
    while (nb > 0)
        PyBuffer_Release(&views[--nb]);
    return -1;
}

static PyObject *reply(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    unsigned long ints[6];
    Py_buffer views[4];
    if (reply_args(args, nargs, ints, views) < 0)
        return NULL;
    unsigned long htype = ints[0], xid = ints[1], flags = ints[2], ciaddr = ints[3], yiaddr = ints[4],
                  giaddr = ints[5];
    Py_buffer chaddr = views[0], head = views[1], options = views[2], tail = views[3];
    PyObject *out = NULL;
    Py_ssize_t size = HEADER + head.len + options.len + tail.len + 1;
    if (chaddr.len > 16 || htype > 255 || flags > 0xFFFF || xid > 0xFFFFFFFFUL || ciaddr > 0xFFFFFFFFUL ||
        yiaddr > 0xFFFFFFFFUL || giaddr > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "reply: a header field is out of range");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, size < 300 ? 300 : size); /* BOOTP's minimum */
    if (out == NULL)
        goto done;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    memset(p, 0, (size_t)PyBytes_GET_SIZE(out));
    p[0] = 2; /* BOOTREPLY; hops, secs, siaddr, sname and file stay zero */
    p[1] = (unsigned char)htype;
    p[2] = (unsigned char)chaddr.len;
    put32(p + 4, xid);
    p[10] = (unsigned char)(flags >> 8);
    p[11] = (unsigned char)flags;
    put32(p + 12, ciaddr);
    put32(p + 16, yiaddr);
    put32(p + 24, giaddr);
    memcpy(p + 28, chaddr.buf, (size_t)chaddr.len);
    memcpy(p + 236, MAGIC, 4);
    unsigned char *q = p + HEADER;
    memcpy(q, head.buf, (size_t)head.len);
    q += head.len;
    memcpy(q, options.buf, (size_t)options.len);
    q += options.len;
    memcpy(q, tail.buf, (size_t)tail.len);
    q[tail.len] = 255; /* END */
done:
    PyBuffer_Release(&chaddr);
    PyBuffer_Release(&head);
    PyBuffer_Release(&options);
    PyBuffer_Release(&tail);
    return out;
}


/* -- Maker: a slotted dataclass's instance from positional values (see the top comment) -------- */
#define MAKER_MAX 8

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *cls;
    Py_ssize_t count;
    Py_ssize_t offsets[MAKER_MAX]; /* where each value goes inside an instance */
} Maker;

static PyObject *maker_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Maker *maker = (Maker *)self;
    Py_ssize_t count = PyVectorcall_NARGS(nargsf);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) || count != maker->count) {
        PyErr_Format(PyExc_TypeError, "%s maker takes exactly %zd positional values", maker->cls->tp_name,
                     maker->count);
        return NULL;
    }
    PyObject *made = maker->cls->tp_alloc(maker->cls, 0); /* zeroed (and tracked by the GC if it is) */
    if (made == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_INCREF(args[k]);
        *(PyObject **)((char *)made + maker->offsets[k]) = args[k];
    }
    return made;
}

static PyObject *maker_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *cls, *names;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        PyErr_SetString(PyExc_TypeError, "Maker(cls, names) takes no keywords");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!O!:Maker", &PyType_Type, &cls, &PyTuple_Type, &names))
        return NULL;
    PyTypeObject *target = (PyTypeObject *)cls;
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    if (count > MAKER_MAX || target->tp_alloc == NULL) {
        PyErr_SetString(PyExc_ValueError, "Maker: too many fields, or a type that cannot be allocated");
        return NULL;
    }
    Maker *maker = (Maker *)type->tp_alloc(type, 0);
    if (maker == NULL)
        return NULL;
    maker->vectorcall = maker_call;
    maker->count = count;
    Py_INCREF(cls);
    maker->cls = target;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        PyObject *slot = PyUnicode_Check(name) ? PyDict_GetItemWithError(target->tp_dict, name) : NULL;
        PyMemberDef *member = NULL;
        if (slot != NULL && Py_IS_TYPE(slot, &PyMemberDescr_Type))
            member = ((PyMemberDescrObject *)slot)->d_member;
        /* an object slot of cls's own layout: its offset lies inside every instance */
        if (member == NULL || member->type != T_OBJECT_EX || (member->flags & READONLY) ||
            member->offset < (Py_ssize_t)sizeof(PyObject) ||
            member->offset + (Py_ssize_t)sizeof(PyObject *) > target->tp_basicsize) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "Maker: %R is not a writable object slot of %s", name,
                             target->tp_name);
            Py_DECREF(maker);
            return NULL;
        }
        maker->offsets[k] = member->offset;
    }
    return (PyObject *)maker;
}

static void maker_dealloc(PyObject *self) {
    Py_XDECREF(((Maker *)self)->cls);
    Py_TYPE(self)->tp_free(self);
}

static PyTypeObject MakerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labkit.native._dhcp.Maker",
    .tp_basicsize = sizeof(Maker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Maker, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = maker_new,
    .tp_dealloc = maker_dealloc,
    .tp_doc = "Maker(cls, names): calling it with len(names) values makes a cls with those slots set.",
};

static PyMethodDef methods[] = {
    {"reply", (PyCFunction)(void (*)(void))reply, METH_FASTCALL,
     "reply(htype, chaddr, xid, flags, ciaddr, yiaddr, giaddr, head, options, tail) -> the reply's bytes."},
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(data, zero, cache, make) -> the Message fields dict, or None: the reference decides."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_dhcp", NULL, -1, methods,
                                        NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__dhcp(void) {
    for (int k = 0; k < 15; k++) {
        if (names[k] == NULL && (names[k] = PyUnicode_InternFromString(NAMES[k])) == NULL)
            return NULL;
    }
    if (PyType_Ready(&MakerType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&MakerType);
    if (PyModule_AddObject(module, "Maker", (PyObject *)&MakerType) < 0) {
        Py_DECREF(&MakerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
