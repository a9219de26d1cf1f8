/* Part of labkit/native/_fold.c (included once, after fold_row.h): what an event's fold touches,
 * looked up and checked before anything changes (Plan), and the timeline row's addition. */
#ifndef LABKIT_FOLD_PLAN_H
#define LABKIT_FOLD_PLAN_H

/* An attribute of an instance's __dict__ (borrowed), if it is of `type` (NULL: any), else NULL */
static PyObject *kept(PyObject *d, PyObject *name, PyTypeObject *type) {
    PyObject *found = PyDict_GetItemWithError(d, name);
    return found != NULL && (type == NULL || Py_IS_TYPE(found, type)) ? found : NULL;
}

/* What the fold touches, looked up and checked before anything changes */
typedef struct {
    PyObject *v[EV_N], *counters, *by_action, *by_reason, *ip, *leases, *phone, *timelines, *timeline, *unknown;
    int malformed, fine, lease;
} Plan;

static void plan_clear(Plan *p) {
    for (int k = 0; k < EV_N; k++)
        Py_XDECREF(p->v[k]);
    Py_XDECREF(p->counters), Py_XDECREF(p->by_action), Py_XDECREF(p->by_reason), Py_XDECREF(p->phone);
    Py_XDECREF(p->timeline);
}

/* The event's fields (new references) when they have the usual types: 1, else 0; -1 error */
static int read_event(Fold *self, PyObject *event, PyObject **v) {
    if (!Py_IS_TYPE(event, (PyTypeObject *)self->event_type))
        return 0;
    PyObject *d = PyObject_GetAttr(event, S_DICT);
    if (d == NULL)
        return -1;
    int shape = PyDict_CheckExact(d), walked = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *x;
    for (int k = 0; k < EV_N && shape; k++) {
        /* the usual dict has the fields in order under the interned names: a walk, no look-ups */
        if (walked == k && PyDict_Next(d, &pos, &key, &x) && key == FIELD[k])
            walked++;
        else if ((x = PyDict_GetItemWithError(d, FIELD[k])) == NULL) {
            shape = PyErr_Occurred() ? -1 : 0;
            break;
        }
        v[k] = Py_NewRef(x);
        shape = k == EV_TIME ? PyFloat_CheckExact(x)
                : k == EV_DETAIL ? PyDict_CheckExact(x)
                : PyUnicode_CheckExact(x) || (x == Py_None && (k == EV_CLIENT || k == EV_PHONE));
    }
    Py_DECREF(d);
    return shape;
}

/* status._phone_of's MAC for an event without one (borrowed; NULL: nobody's, or an error set) */
static PyObject *mac_at(Fold *self, Plan *p, int *usual) {
    PyObject *client = p->v[EV_CLIENT], *mac = NULL;
    if (client == Py_None)
        return NULL;
    PyObject *address = address_of(client);
    if (address == NULL)
        return NULL;
    if (PyUnicode_GET_LENGTH(address) && !starts(address, T_LOOP)) { /* on loopback all share one address */
        PyObject *fixed = kept(self->status_dict, S_FIXED, &PyDict_Type);
        mac = fixed == NULL ? NULL : PyDict_GetItemWithError(p->leases, address);
        int truth = mac == NULL ? 0 : PyObject_IsTrue(mac);
        if (truth == 0 && fixed != NULL)
            mac = PyDict_GetItemWithError(fixed, address);
        *usual = fixed != NULL && truth >= 0;
        if (mac == Py_None || !*usual || PyErr_Occurred())
            mac = NULL;
    }
    Py_DECREF(address);
    return mac;
}

/* The phone's record (a new reference in p->phone; a new phone's is made and kept, as _phone_of
 * does) and its timeline: 1, 0 (not the usual types), -1 error */
static int find_phone(Fold *self, Plan *p, PyObject *phones, PyObject *mac) {
    PyObject *phone = PyDict_GetItemWithError(phones, mac);
    if (phone == NULL) {
        if (PyErr_Occurred() || (phone = made(self, 0, mac)) == NULL)
            return -1;
        if (PyDict_SetItem(phones, mac, phone) < 0) {
            Py_DECREF(phone);
            return -1;
        }
        p->phone = phone;
    } else {
        p->phone = Py_NewRef(phone);
    }
    if (!Py_IS_TYPE(phone, (PyTypeObject *)self->phone_type))
        return 0;
    for (int k = 0; k < P_DATA; k++) {
        if (SLOT(phone, self->at[k]) == NULL)
            return 0;
    }
    if (!PyTuple_CheckExact(SLOT(phone, self->at[P_REACHED])) ||
        (p->timelines = kept(self->ops_dict, S_TIMELINES, &PyDict_Type)) == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *timeline = PyDict_GetItemWithError(p->timelines, SLOT(phone, self->at[P_MAC]));
    if (timeline == NULL)
        return PyErr_Occurred() ? -1 : 1;
    p->timeline = Py_NewRef(timeline);
    return Py_IS_TYPE(timeline, (PyTypeObject *)self->timeline_type) && SLOT(timeline, self->at[P_DATA]) &&
           PyByteArray_CheckExact(SLOT(timeline, self->at[P_DATA])) && SLOT(timeline, self->at[P_ROWS]);
}

/* Look up and check what the event will touch: 1 (the fold may go ahead), 0 (the Python path's
 * case: nothing changed but maybe a new phone's record, which the Python path would make too),
 * -1 error. */
static int plan(Fold *self, PyObject *event, Plan *p) {
    int shape = read_event(self, event, p->v);
    if (shape <= 0)
        return shape;
    PyObject **v = p->v, *sd = self->status_dict, *mac = v[EV_PHONE], *client = v[EV_CLIENT];
    int report = PySet_Contains(self->not_requests, v[EV_ACTION]);
    PyObject *services = kept(sd, S_SERVICES, &PyDict_Type), *phones = kept(sd, S_PHONES, &PyDict_Type);
    p->leases = kept(sd, S_LEASES, &PyDict_Type);
    if (report != 0 || kept(self->ops_dict, S_STATUS, NULL) != self->status || !services || !phones || !p->leases)
        return report < 0 ? -1 : 0;
    PyObject *counters = PyDict_GetItemWithError(services, v[EV_SERVICE]);
    if (counters == NULL || !Py_IS_TYPE(counters, (PyTypeObject *)self->counters_type))
        return 0; /* a service's first event: its counters are made in Python */
    p->counters = Py_NewRef(counters);
    if ((p->by_action = PyObject_GetAttr(counters, S_BY_ACTION)) == NULL ||
        (p->malformed = PySet_Contains(self->malformed, v[EV_RESULT])) < 0 ||
        (p->fine = PySet_Contains(self->fine, v[EV_RESULT])) < 0)
        return -1;
    if (!Py_IS_TYPE(p->by_action, (PyTypeObject *)self->counter_type))
        return 0;
    if (!p->malformed && !p->fine) {
        if ((p->by_reason = PyObject_GetAttr(counters, S_BY_REASON)) == NULL)
            return -1;
        if (!Py_IS_TYPE(p->by_reason, (PyTypeObject *)self->counter_type))
            return 0;
    }
    if (is(v[EV_SERVICE], "dhcp") && is(v[EV_RESULT], "ok")) { /* the address a DHCP answer gave */
        PyObject *ip = PyDict_GetItemWithError(v[EV_DETAIL], S_IP);
        if (ip == NULL && PyErr_Occurred())
            return -1;
        if (ip != NULL && ip != Py_None && !PyUnicode_CheckExact(ip))
            return 0; /* str(ip) is the Python path's */
        p->ip = ip != NULL && ip != Py_None && PyUnicode_GET_LENGTH(ip) ? ip : NULL;
    }
    p->lease = p->ip && mac != Py_None && PyUnicode_GET_LENGTH(mac) && starts(v[EV_ANSWER], T_ACK);
    if (mac == Py_None) {
        int usual = 1;
        if ((mac = mac_at(self, p, &usual)) == NULL && (PyErr_Occurred() || !usual))
            return PyErr_Occurred() ? -1 : 0;
    }
    if (mac != NULL)
        return find_phone(self, p, phones, mac);
    if (client != Py_None && PyUnicode_GET_LENGTH(client) && /* nobody's: an unknown client, by its address */
        (p->unknown = kept(sd, S_UNKNOWN, (PyTypeObject *)self->counter_type)) == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return 1;
}

/* The row onto the phone's timeline (made here on its first row), ops.timeline_bytes, and
 * ops._bound(timeline) past TIMELINE_EVENTS x 2 rows or TIMELINE_BYTES in all (read from the
 * ops module at each call, as the Python path reads them). */
static int add_row(Fold *self, Plan *p) {
    const Py_ssize_t *at = self->at;
    if (p->timeline == NULL) {
        if ((p->timeline = made(self, 1, NULL)) == NULL ||
            PyDict_SetItem(p->timelines, SLOT(p->phone, at[P_MAC]), p->timeline) < 0)
            return -1;
        if (!Py_IS_TYPE(p->timeline, (PyTypeObject *)self->timeline_type) || !SLOT(p->timeline, at[P_ROWS]) ||
            !SLOT(p->timeline, at[P_DATA]) || !PyByteArray_CheckExact(SLOT(p->timeline, at[P_DATA]))) {
            PyErr_SetString(PyExc_TypeError, "a Timeline's data is a bytearray");
            return -1;
        }
    }
    Py_ssize_t added = append_row(SLOT(p->timeline, at[P_DATA]), p->v);
    if (added < 0 || slot_add_one(p->timeline, at[P_ROWS]) < 0)
        return -1;
    PyObject *by = PyLong_FromSsize_t(added), *old = PyDict_GetItemWithError(self->ops_dict, S_TLBYTES);
    if (old == NULL && by != NULL && !PyErr_Occurred())
        PyErr_SetObject(PyExc_AttributeError, S_TLBYTES);
    PyObject *total = old == NULL || by == NULL ? NULL : PyNumber_InPlaceAdd(old, by);
    Py_XDECREF(by);
    if (total == NULL || PyDict_SetItem(self->ops_dict, S_TLBYTES, total) < 0) {
        Py_XDECREF(total);
        return -1;
    }
    PyObject *most = kept(self->globals, S_TL_EVENTS, &PyLong_Type), *limit = kept(self->globals, S_TL_BYTES, &PyLong_Type);
    PyObject *rows = SLOT(p->timeline, at[P_ROWS]);
    int over = 1; /* anything unusual: ops._bound decides */
    if (most && limit && PyLong_CheckExact(total) && PyLong_CheckExact(rows)) {
        long long r = PyLong_AsLongLong(rows), m = PyLong_AsLongLong(most), t = PyLong_AsLongLong(total),
                  l = PyLong_AsLongLong(limit);
        over = PyErr_Occurred() || r >= 2 * m || t > l;
    }
    Py_DECREF(total);
    PyErr_Clear();
    if (over) {
        PyObject *done = PyObject_CallMethodOneArg(self->ops, S_BOUND, p->timeline);
        if (done == NULL)
            return -1;
        Py_DECREF(done);
    }
    return 0;
}
#endif
