/* Part of labkit/native/_fold.c (included once, after the Fold type): a phone's timeline row,
 * marshalled as labkit.native._events.append_row writes it. */
#ifndef LABKIT_FOLD_ROW_H
#define LABKIT_FOLD_ROW_H

/* The timeline row (ops.timeline_row: time, service, action, request, answer, result, client,
 * None) marshalled onto `data`, as labkit.native._events.append_row writes it: ')' 8, 'g' and the
 * time, each str as 'z' (ASCII under 256), 'a' (longer ASCII) or 'u' (UTF-8, surrogatepass), None
 * as 'N'. The bytes added, -1 on error. */
static Py_ssize_t append_row(PyObject *data, PyObject **v) {
    static const int order[6] = {EV_SERVICE, EV_ACTION, EV_REQUEST, EV_ANSWER, EV_RESULT, EV_CLIENT};
    PyObject *utf8[6] = {NULL};
    Py_ssize_t size = 12, added = -1; /* tuple head 2, float 9, the rule's None 1 */
    for (int k = 0; k < 6; k++) {
        PyObject *s = v[order[k]];
        if (s == Py_None) {
            size += 1;
            continue;
        }
        Py_ssize_t n = PyUnicode_GET_LENGTH(s);
        if (!PyUnicode_IS_ASCII(s)) {
            if ((utf8[k] = PyUnicode_AsEncodedString(s, "utf8", "surrogatepass")) == NULL)
                goto done;
            n = PyBytes_GET_SIZE(utf8[k]);
        }
        if (n > 0x7fffffff) {
            PyErr_SetString(PyExc_ValueError, "str too long");
            goto done;
        }
        size += (utf8[k] == NULL && n < 256 ? 2 : 5) + n;
    }
    Py_ssize_t at = PyByteArray_GET_SIZE(data);
    if (PyByteArray_Resize(data, at + size) < 0)
        goto done;
    unsigned char *p = (unsigned char *)PyByteArray_AS_STRING(data) + at;
    *p++ = ')', *p++ = 8, *p++ = 'g';
    if (PyFloat_Pack8(PyFloat_AS_DOUBLE(v[EV_TIME]), (char *)p, 1) < 0)
        goto done;
    p += 8;
    for (int k = 0; k < 6; k++) {
        PyObject *s = v[order[k]];
        if (s == Py_None) {
            *p++ = 'N';
            continue;
        }
        const char *text = utf8[k] ? PyBytes_AS_STRING(utf8[k]) : (const char *)PyUnicode_DATA(s);
        Py_ssize_t n = utf8[k] ? PyBytes_GET_SIZE(utf8[k]) : PyUnicode_GET_LENGTH(s);
        if (utf8[k] == NULL && n < 256) {
            *p++ = 'z', *p++ = (unsigned char)n;
        } else {
            *p++ = utf8[k] ? 'u' : 'a';
            for (int b = 0; b < 4; b++)
                *p++ = (unsigned char)(n >> (8 * b));
        }
        memcpy(p, text, (size_t)n);
        p += n;
    }
    *p++ = 'N';
    added = size;
done:
    for (int k = 0; k < 6; k++)
        Py_XDECREF(utf8[k]);
    return added;
}
#endif
