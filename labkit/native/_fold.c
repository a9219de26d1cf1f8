/* labkit.native._fold: one event folded into the lab's status and its phone's timeline in one call
 * (issue 15).
 *
 * LabOps (labkit/services/ops.py) runs for every event of every service in the main process:
 * LabStatus.apply (labkit/services/status.py, the reference) and the phone's timeline row. In
 * Python that was ~22k instructions per event, the eval loop almost all of it. `Fold(ops, ...)`
 * is called with each event and does the same steps on the same objects:
 *
 *   - the service's counters (requests, by_action, malformed, errors, errors_by_reason),
 *   - a DHCP ACK's lease (address -> MAC),
 *   - the phone (by the event's MAC, else by its lease or fixed address; loopback is nobody) or
 *     the unknown client's count,
 *   - the phone's events, contact times, address, milestones (timeline._reached), firmware,
 *     problem and stage (status._advance),
 *   - the phone's timeline row, marshalled into its bytearray (as _events.append_row writes it),
 *     and ops.timeline_bytes; past a bound it calls ops._bound(timeline) (the Python trim).
 *
 * It answers the phone, None (no phone), or NotImplemented, decided before it changes anything,
 * for every case it leaves to the Python path: an event that reports (fault, kernel-drops,
 * suppressed), a service or phone seen for the first time (their records are made in Python),
 * and any field or record of another type than the usual. tests/unit/test_fold_native.py folds
 * the same events both ways and compares status, snapshot and timelines.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <string.h>

enum { EV_TIME, EV_SERVICE, EV_CLIENT, EV_PHONE, EV_ACTION, EV_REQUEST, EV_ANSWER, EV_RESULT, EV_DETAIL, EV_N };
static const char *FIELD_NAMES[EV_N] = {"time", "service", "client", "phone", "action",
                                        "request", "answer", "result", "detail"};

/* PhoneStatus's and Timeline's slots, read and written at their offsets (as their member
 * descriptors do, without the attribute look-up: ~200 instructions each) */
enum { P_MAC, P_ADDRESS, P_STAGE, P_REACHED, P_PROBLEM, P_FIRST, P_LASTC, P_PROV_AT, P_FIRMWARE, P_EVENTS, P_DATA,
       P_ROWS, P_N };
static const char *SLOT_NAMES[P_N] = {"mac", "address", "stage", "reached", "problem", "first_contact",
                                      "last_contact", "provisioned_at", "firmware", "events", "data", "rows"};
#define SLOT(obj, at) (*(PyObject **)((char *)(obj) + (at)))
#define MAX_SLOTS 24

static void slot_set(PyObject *obj, Py_ssize_t at, PyObject *value) { /* steals value */
    PyObject *old = SLOT(obj, at);
    SLOT(obj, at) = value;
    Py_XDECREF(old);
}

/* interned names and texts, made at import */
static PyObject *FIELD[EV_N], *S_DICT, *S_STATUS, *S_TIMELINES, *S_TLBYTES, *S_SERVICES, *S_PHONES,
    *S_LEASES, *S_FIXED, *S_UNKNOWN, *S_EVENTS, *S_LAST, *S_REQUESTS, *S_ERRORS, *S_MALFORMED,
    *S_BY_ACTION, *S_BY_REASON, *S_MAC, *S_ADDRESS, *S_STAGE, *S_REACHED, *S_PROBLEM, *S_FIRST,
    *S_LASTC, *S_PROV_AT, *S_FIRMWARE, *S_DATA, *S_ROWS, *S_IP, *S_TL_EVENTS, *S_TL_BYTES, *S_BOUND,
    *T_LEASE, *T_PROFILE, *T_OWN, *T_FIRMWARE, *T_WAITING, *T_DHCP, *T_PROVISIONED, *T_ACK, *T_LOADS,
    *T_CISCO, *T_XML, *T_CFG, *T_LOOP, *ONE, *S_FOLD, *S_REFERENCE, *S_SUBSCRIBERS, *S_TELL;

#include "fold_text.h"

typedef struct {
    PyObject_HEAD
    PyObject *ops, *ops_dict, *status, *status_dict, *globals; /* globals: the ops module's (its bounds) */
    PyObject *event_type, *counters_type, *phone_type, *timeline_type, *counter_type;
    PyObject *not_requests, *malformed, *fine; /* status.NOT_REQUESTS, events.MALFORMED_RESULTS, status.FINE */
    Py_ssize_t at[P_N];                        /* the slots' offsets in a PhoneStatus (a Timeline: data, rows) */
    PyObject *templates[2];                    /* a new PhoneStatus (its mac "") and Timeline, or None */
    Py_ssize_t slots[2][MAX_SLOTS];            /* every slot of each template's type */
    int count[2];
} Fold;

#define MEMBERS(X) X(ops) X(ops_dict) X(status) X(status_dict) X(globals) X(event_type) X(counters_type) \
    X(phone_type) X(timeline_type) X(counter_type) X(not_requests) X(malformed) X(fine) X(templates[0]) \
    X(templates[1])

/* A new record as its class would make it: a copy of the template's slots (a bytearray copied,
 * the rest immutable and shared), `mac` (if not NULL) in the mac slot; the class called where the
 * Python side gave no template (its __init__ does more than set defaults). */
static PyObject *made(Fold *self, int which, PyObject *mac) {
    PyObject *template = self->templates[which];
    if (template == Py_None)
        return which == 0 ? PyObject_CallOneArg(self->phone_type, mac) : PyObject_CallNoArgs(self->timeline_type);
    PyTypeObject *type = Py_TYPE(template);
    PyObject *out = type->tp_alloc(type, 0);
    for (int k = 0; out != NULL && k < self->count[which]; k++) {
        PyObject *value = SLOT(template, self->slots[which][k]);
        value = value != NULL && PyByteArray_CheckExact(value) ? PyByteArray_FromObject(value) : Py_XNewRef(value);
        if (value == NULL && PyErr_Occurred())
            Py_CLEAR(out);
        else
            SLOT(out, self->slots[which][k]) = value;
    }
    if (out != NULL && mac != NULL)
        slot_set(out, self->at[P_MAC], Py_NewRef(mac));
    return out;
}

/* slot += 1 (a slot the plan saw set) */
static int slot_add_one(PyObject *obj, Py_ssize_t at) {
    PyObject *now = PyNumber_InPlaceAdd(SLOT(obj, at), ONE);
    if (now == NULL)
        return -1;
    slot_set(obj, at, now);
    return 0;
}

/* status._advance: address, milestones, firmware, problem and stage of a phone (a request event;
 * its slots are set, reached is a tuple; `ip` an exact non-empty str or NULL) */
static int advance(Fold *self, PyObject *phone, PyObject **v, PyObject *ip, int fine) {
    const Py_ssize_t *at = self->at;
    if (ip != NULL)
        slot_set(phone, at[P_ADDRESS], Py_NewRef(ip));
    PyObject *step = milestone(v), *reached = SLOT(phone, at[P_REACHED]);
    int stepped = 0, has = step == NULL ? 1 : PySequence_Contains(reached, step);
    if (has < 0)
        return -1;
    if (!has) {
        stepped = 1;
        PyObject *more = with(reached, step);
        if (more == NULL)
            return -1;
        int profile = step == T_OWN ? PySequence_Contains(more, T_PROFILE) : 1;
        if (profile == 0)
            Py_SETREF(more, with(more, T_PROFILE));
        if (profile < 0 || more == NULL) {
            Py_XDECREF(more);
            return -1;
        }
        slot_set(phone, at[P_REACHED], more);
        slot_set(phone, at[P_PROBLEM], Py_NewRef(Py_None));
    }
    if (step == T_FIRMWARE || (SLOT(phone, at[P_FIRMWARE]) == Py_None && ends(v[EV_REQUEST], T_LOADS))) {
        PyObject *name = cut(v[EV_REQUEST], '/', 1);
        if (name == NULL)
            return -1;
        slot_set(phone, at[P_FIRMWARE], name);
    }
    if (!fine) {
        PyObject *problem = PyUnicode_FromFormat("%U %U -> %U [%U]", v[EV_SERVICE], v[EV_REQUEST], v[EV_ANSWER],
                                                 v[EV_RESULT]);
        if (problem == NULL)
            return -1;
        slot_set(phone, at[P_PROBLEM], problem);
    }
    PyObject *before = Py_NewRef(SLOT(phone, at[P_STAGE]));
    int waiting = stepped ? 1 : PyObject_RichCompareBool(before, T_WAITING, Py_EQ), status = -1;
    if (waiting <= 0) {
        Py_DECREF(before);
        return waiting;
    }
    PyObject *stage = stage_of(SLOT(phone, at[P_REACHED]));
    if (stage != NULL) {
        slot_set(phone, at[P_STAGE], Py_NewRef(stage));
        int was = stage == T_PROVISIONED ? PyObject_RichCompareBool(before, T_PROVISIONED, Py_EQ) : 1;
        if (was == 0)
            slot_set(phone, at[P_PROV_AT], Py_NewRef(v[EV_TIME]));
        status = was < 0 ? -1 : 0;
    }
    Py_DECREF(before);
    return status;
}

#include "fold_row.h"
#include "fold_plan.h"

/* apply(event): the phone whose status changed, None, or NotImplemented (the Python path's case) */
static PyObject *fold_apply(Fold *self, PyObject *event) {
    Plan p;
    memset(&p, 0, sizeof p);
    PyObject *out = NULL, **v = p.v, *sd = self->status_dict;
    int ready = plan(self, event, &p);
    if (ready <= 0) {
        if (ready == 0 && !PyErr_Occurred())
            out = Py_NewRef(Py_NotImplemented);
        goto done;
    }
    if (dict_add(sd, S_EVENTS, ONE) < 0 || PyDict_SetItem(sd, S_LAST, v[EV_TIME]) < 0 ||
        add_one(p.counters, S_REQUESTS) < 0 || bump(p.by_action, v[EV_ACTION]) < 0)
        goto done;
    if (p.malformed ? add_one(p.counters, S_MALFORMED) < 0
                    : !p.fine && (add_one(p.counters, S_ERRORS) < 0 || bump(p.by_reason, v[EV_RESULT]) < 0))
        goto done;
    if (p.lease && PyDict_SetItem(p.leases, p.ip, v[EV_PHONE]) < 0)
        goto done;
    if (p.phone == NULL) {
        PyObject *address = p.unknown == NULL ? NULL : address_of(v[EV_CLIENT]);
        if (p.unknown == NULL || (address != NULL && bump(p.unknown, address) == 0))
            out = Py_NewRef(Py_None);
        Py_XDECREF(address);
        goto done;
    }
    if (slot_add_one(p.phone, self->at[P_EVENTS]) < 0)
        goto done;
    if (SLOT(p.phone, self->at[P_FIRST]) == Py_None)
        slot_set(p.phone, self->at[P_FIRST], Py_NewRef(v[EV_TIME]));
    slot_set(p.phone, self->at[P_LASTC], Py_NewRef(v[EV_TIME]));
    if (advance(self, p.phone, v, p.ip, p.fine) < 0 || add_row(self, &p) < 0)
        goto done;
    out = Py_NewRef(p.phone);
done:
    plan_clear(&p);
    return out;
}

/* deliver(event): LabOps.__call__'s steps, for a bus that calls it instead of the instance: the fold,
 * else (NotImplemented) ops._reference(event); ops._tell_phone(phone) when a dashboard listens.
 * Once ops.fold is None (the pure path chosen) it calls ops(event). */
static PyObject *fold_deliver(Fold *self, PyObject *event) {
    PyObject *fold = PyDict_GetItemWithError(self->ops_dict, S_FOLD), *out;
    if (fold == NULL && PyErr_Occurred())
        return NULL;
    if (fold == NULL || fold == Py_None)
        return PyObject_CallOneArg(self->ops, event);
    PyObject *changed = fold_apply(self, event);
    if (changed == Py_NotImplemented) {
        Py_DECREF(changed);
        return PyObject_CallMethodOneArg(self->ops, S_REFERENCE, event);
    }
    if (changed == NULL || changed == Py_None)
        return changed;
    PyObject *listening = PyDict_GetItemWithError(self->ops_dict, S_SUBSCRIBERS);
    int told = listening == NULL ? (PyErr_Occurred() ? -1 : 0) : PyObject_IsTrue(listening);
    out = told < 0 ? NULL : told ? PyObject_CallMethodOneArg(self->ops, S_TELL, changed) : Py_NewRef(Py_None);
    Py_DECREF(changed);
    return out;
}

static int fold_traverse(Fold *self, visitproc visit, void *arg) {
#define VISIT(m) Py_VISIT(self->m);
    MEMBERS(VISIT)
    return 0;
}

static int fold_clear(Fold *self) {
#define CLEAR(m) Py_CLEAR(self->m);
    MEMBERS(CLEAR)
    return 0;
}

static void fold_dealloc(Fold *self) {
    PyObject_GC_UnTrack(self);
    fold_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The offsets of every slot of the template's type (its __slots__, no base class's) into out:
 * their count, or -1 with an error */
static int slot_offsets(PyObject *template, Py_ssize_t *out) {
    PyTypeObject *type = Py_TYPE(template);
    PyObject *names = PyObject_GetAttrString((PyObject *)type, "__slots__");
    int n = -1;
    if (names != NULL && PyTuple_CheckExact(names) && PyTuple_GET_SIZE(names) <= MAX_SLOTS &&
        type->tp_base == &PyBaseObject_Type && !(type->tp_flags & Py_TPFLAGS_MANAGED_DICT)) {
        for (n = 0; n >= 0 && n < PyTuple_GET_SIZE(names); n++) {
            PyObject *d = PyObject_GetAttr((PyObject *)type, PyTuple_GET_ITEM(names, n));
            PyMemberDef *member = d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type) ? ((PyMemberDescrObject *)d)->d_member : NULL;
            if (member == NULL || member->type != T_OBJECT_EX)
                n = -2;
            else
                out[n] = member->offset;
            Py_XDECREF(d);
        }
    }
    Py_XDECREF(names);
    if (n < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "Fold: a template's type has slots only");
    return n < 0 ? -1 : n;
}

/* Fold(ops, status, ops_globals, Event, ServiceCounters, PhoneStatus, Timeline, Counter,
 *      NOT_REQUESTS, MALFORMED_RESULTS, FINE, phone_template, timeline_template): the templates
 *      are a PhoneStatus("") and a Timeline() whose slots a new one copies, or None */
static PyObject *fold_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *a[13];
    if (kw != NULL && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "Fold takes positional arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Fold", 13, 13, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7], &a[8],
                           &a[9], &a[10], &a[11], &a[12]))
        return NULL;
    for (int k = 3; k < 8; k++) {
        if (!PyType_Check(a[k])) {
            PyErr_SetString(PyExc_TypeError, "Fold: arguments 4-8 are classes");
            return NULL;
        }
    }
    if (!PyDict_CheckExact(a[2]) || !PyAnySet_Check(a[8]) || !PyAnySet_Check(a[9]) || !PyAnySet_Check(a[10])) {
        PyErr_SetString(PyExc_TypeError, "Fold: the module's globals, then three sets");
        return NULL;
    }
    Fold *self = (Fold *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->ops = Py_NewRef(a[0]), self->status = Py_NewRef(a[1]), self->globals = Py_NewRef(a[2]);
    self->event_type = Py_NewRef(a[3]), self->counters_type = Py_NewRef(a[4]), self->phone_type = Py_NewRef(a[5]);
    self->timeline_type = Py_NewRef(a[6]), self->counter_type = Py_NewRef(a[7]);
    self->not_requests = Py_NewRef(a[8]), self->malformed = Py_NewRef(a[9]), self->fine = Py_NewRef(a[10]);
    self->templates[0] = Py_NewRef(a[11]), self->templates[1] = Py_NewRef(a[12]);
    for (int k = 0; k < 2; k++) {
        if (a[11 + k] != Py_None && (!Py_IS_TYPE(a[11 + k], (PyTypeObject *)a[5 + k]) ||
                                     (self->count[k] = slot_offsets(a[11 + k], self->slots[k])) < 0)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "Fold: the templates are a PhoneStatus and a Timeline");
            Py_DECREF(self);
            return NULL;
        }
    }
    self->ops_dict = PyObject_GetAttr(a[0], S_DICT); /* instance dicts: looked up per event by key */
    self->status_dict = self->ops_dict == NULL ? NULL : PyObject_GetAttr(a[1], S_DICT);
    if (self->status_dict == NULL || !PyDict_CheckExact(self->ops_dict) || !PyDict_CheckExact(self->status_dict)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Fold: ops and status keep their attributes in a dict");
        Py_DECREF(self);
        return NULL;
    }
    for (int k = 0; k < P_N; k++) { /* each slot's offset, from its member descriptor */
        PyObject *d = PyObject_GetAttrString(k < P_DATA ? a[5] : a[6], SLOT_NAMES[k]);
        PyMemberDef *member = d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type) ? ((PyMemberDescrObject *)d)->d_member : NULL;
        if (member != NULL && member->type == T_OBJECT_EX && !(member->flags & READONLY))
            self->at[k] = member->offset;
        else if (d != NULL)
            PyErr_Format(PyExc_TypeError, "Fold: %s is not a slot", SLOT_NAMES[k]);
        Py_XDECREF(d);
        if (PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static PyMethodDef fold_methods[] = {
    {"deliver", (PyCFunction)fold_deliver, METH_O, "deliver(event): LabOps.__call__(event), compiled."},
    {"apply", (PyCFunction)fold_apply, METH_O,
     "apply(event) -> the phone whose status changed, None, or NotImplemented (the Python path's case)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject FoldType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labkit.native._fold.Fold",
    .tp_basicsize = sizeof(Fold),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "LabStatus.apply and the phone's timeline row for an event, in one call.",
    .tp_new = fold_new,
    .tp_dealloc = (destructor)fold_dealloc,
    .tp_traverse = (traverseproc)fold_traverse,
    .tp_clear = (inquiry)fold_clear,
    .tp_methods = fold_methods,
};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_fold", NULL, -1, NULL, NULL, NULL, NULL, NULL};

static int intern(PyObject **slot, const char *text) {
    return *slot != NULL || (*slot = PyUnicode_InternFromString(text)) != NULL ? 0 : -1;
}

PyMODINIT_FUNC PyInit__fold(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {{&S_DICT, "__dict__"}, {&S_STATUS, "status"}, {&S_TIMELINES, "timelines"},
                 {&S_TLBYTES, "timeline_bytes"}, {&S_SERVICES, "services"}, {&S_PHONES, "phones"},
                 {&S_LEASES, "leases"}, {&S_FIXED, "fixed"}, {&S_UNKNOWN, "unknown_clients"}, {&S_EVENTS, "events"},
                 {&S_LAST, "last_event"}, {&S_REQUESTS, "requests"}, {&S_ERRORS, "errors"},
                 {&S_MALFORMED, "malformed"}, {&S_BY_ACTION, "by_action"}, {&S_BY_REASON, "errors_by_reason"},
                 {&S_MAC, "mac"}, {&S_ADDRESS, "address"}, {&S_STAGE, "stage"}, {&S_REACHED, "reached"},
                 {&S_PROBLEM, "problem"}, {&S_FIRST, "first_contact"}, {&S_LASTC, "last_contact"},
                 {&S_PROV_AT, "provisioned_at"}, {&S_FIRMWARE, "firmware"}, {&S_DATA, "data"}, {&S_ROWS, "rows"},
                 {&S_IP, "ip"}, {&S_TL_EVENTS, "TIMELINE_EVENTS"}, {&S_TL_BYTES, "TIMELINE_BYTES"},
                 {&S_BOUND, "_bound"}, {&S_FOLD, "fold"}, {&S_REFERENCE, "_reference"},
                 {&S_SUBSCRIBERS, "subscribers"}, {&S_TELL, "_tell_phone"}, {&T_LEASE, "lease"}, {&T_PROFILE, "profile"}, {&T_OWN, "own profile"},
                 {&T_FIRMWARE, "firmware"}, {&T_WAITING, "waiting"}, {&T_DHCP, "dhcp"},
                 {&T_PROVISIONED, "provisioned"}, {&T_ACK, "ACK"}, {&T_LOADS, ".loads"}, {&T_CISCO, "/Cisco/"},
                 {&T_XML, ".xml"}, {&T_CFG, ".cfg"}, {&T_LOOP, "127."}};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        if (intern(names[k].slot, names[k].text) < 0)
            return NULL;
    }
    for (int k = 0; k < EV_N; k++) {
        if (intern(&FIELD[k], FIELD_NAMES[k]) < 0)
            return NULL;
    }
    if (ONE == NULL && (ONE = PyLong_FromLong(1)) == NULL)
        return NULL;
    if (PyType_Ready(&FoldType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && PyModule_AddObjectRef(module, "Fold", (PyObject *)&FoldType) < 0)
        Py_CLEAR(module);
    return module;
}
