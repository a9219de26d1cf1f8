/* Part of labkit/native/_events.c (included once, after the includes): the growing buffer and
 * the JSON writers for a line's strings, scalars, detail and time. Kept apart to keep _events.c
 * readable. */
#ifndef LABKIT_EVENTS_JSON_H
#define LABKIT_EVENTS_JSON_H

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
#endif
