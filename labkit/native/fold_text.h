/* Part of labkit/native/_fold.c (included once, after the interned names): small steps on str,
 * dict and counter values, and the milestone and stage of an event, as labkit/services/status.py
 * and timeline.py work them out. */
#ifndef LABKIT_FOLD_TEXT_H
#define LABKIT_FOLD_TEXT_H

static int is(PyObject *s, const char *text) { return PyUnicode_CompareWithASCIIString(s, text) == 0; }

static int starts(PyObject *s, PyObject *prefix) { return PyUnicode_Tailmatch(s, prefix, 0, PY_SSIZE_T_MAX, -1) == 1; }

static int ends(PyObject *s, PyObject *suffix) { return PyUnicode_Tailmatch(s, suffix, 0, PY_SSIZE_T_MAX, 1) == 1; }

/* s.rsplit(sep, 1)[0], or [-1] with after=1: a new reference */
static PyObject *cut(PyObject *s, Py_UCS4 sep, int after) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), at = PyUnicode_FindChar(s, sep, 0, n, -1);
    if (at == -2)
        return NULL;
    if (at == -1)
        return Py_NewRef(s);
    return after ? PyUnicode_Substring(s, at + 1, n) : PyUnicode_Substring(s, 0, at);
}

static PyObject *last_address = NULL; /* the last client's address: most events come from a few */

/* client.rsplit(":", 1)[0] (a new reference), the last one's object again when it is the same
 * text (its hash kept: no new str and no hashing per event) */
static PyObject *address_of(PyObject *client) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(client), at = PyUnicode_FindChar(client, ':', 0, n, -1);
    if (at == -2)
        return NULL;
    if (at >= 0 && last_address != NULL && PyUnicode_IS_ASCII(client) && PyUnicode_GET_LENGTH(last_address) == at &&
        memcmp(PyUnicode_DATA(client), PyUnicode_DATA(last_address), (size_t)at) == 0)
        return Py_NewRef(last_address);
    PyObject *address = at == -1 ? Py_NewRef(client) : PyUnicode_Substring(client, 0, at);
    if (address != NULL && PyUnicode_IS_ASCII(address))
        Py_XSETREF(last_address, Py_NewRef(address));
    return address;
}

/* counter[key] += 1 on a collections.Counter (a missing key counts 0, as Counter.__missing__) */
static int bump(PyObject *counter, PyObject *key) {
    PyObject *old = PyDict_GetItemWithError(counter, key);
    if (old == NULL && PyErr_Occurred())
        return -1;
    PyObject *now = old == NULL ? Py_NewRef(ONE) : PyNumber_InPlaceAdd(old, ONE);
    if (now == NULL)
        return -1;
    int status = PyDict_SetItem(counter, key, now);
    Py_DECREF(now);
    return status;
}

static int set_new(PyObject *obj, PyObject *name, PyObject *value) { /* obj.name = value; steals value */
    if (value == NULL)
        return -1;
    int status = PyObject_SetAttr(obj, name, value);
    Py_DECREF(value);
    return status;
}

/* obj.name += 1 */
static int add_one(PyObject *obj, PyObject *name) {
    PyObject *old = PyObject_GetAttr(obj, name);
    if (old == NULL)
        return -1;
    PyObject *now = PyNumber_InPlaceAdd(old, ONE);
    Py_DECREF(old);
    return set_new(obj, name, now);
}

/* d[name] += by, in an instance's __dict__ (where LabOps and LabStatus keep their attributes) */
static int dict_add(PyObject *d, PyObject *name, PyObject *by) {
    PyObject *old = PyDict_GetItemWithError(d, name);
    if (old == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_AttributeError, name);
        return -1;
    }
    PyObject *now = PyNumber_InPlaceAdd(old, by);
    if (now == NULL)
        return -1;
    int status = PyDict_SetItem(d, name, now);
    Py_DECREF(now);
    return status;
}

/* timeline._reached(event): the milestone (borrowed), or NULL */
static PyObject *milestone(PyObject **v) {
    PyObject *service = v[EV_SERVICE], *path = v[EV_REQUEST];
    if (is(service, "dhcp"))
        return starts(v[EV_ANSWER], T_ACK) && is(v[EV_RESULT], "ok") ? T_LEASE : NULL;
    if (!(is(service, "tftp") || is(service, "http") || is(service, "https")) || !is(v[EV_RESULT], "ok"))
        return NULL;
    if (ends(path, T_LOADS))
        return T_FIRMWARE;
    if (PyUnicode_Find(path, T_CISCO, 0, PY_SSIZE_T_MAX, 1) >= 0 && ends(path, T_CFG))
        return T_OWN;
    return ends(path, T_XML) || ends(path, T_CFG) ? T_PROFILE : NULL;
}

/* status._stage(reached, heard=True) (borrowed), NULL on error */
static PyObject *stage_of(PyObject *reached) {
    int lease = PySequence_Contains(reached, T_LEASE), profile, own, firmware;
    if (lease <= 0)
        return lease < 0 ? NULL : T_DHCP;
    if ((profile = PySequence_Contains(reached, T_PROFILE)) < 0 || (own = PySequence_Contains(reached, T_OWN)) < 0)
        return NULL;
    if (!profile || !own)
        return T_PROFILE;
    if ((firmware = PySequence_Contains(reached, T_FIRMWARE)) < 0)
        return NULL;
    return firmware ? T_PROVISIONED : T_FIRMWARE;
}

/* reached + (step,): a new tuple */
static PyObject *with(PyObject *reached, PyObject *step) {
    Py_ssize_t n = PyTuple_GET_SIZE(reached);
    PyObject *out = PyTuple_New(n + 1);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n; k++)
        PyTuple_SET_ITEM(out, k, Py_NewRef(PyTuple_GET_ITEM(reached, k)));
    PyTuple_SET_ITEM(out, n, Py_NewRef(step));
    return out;
}
#endif
