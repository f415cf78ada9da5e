/* rules.applayer._httphead: an HTTP message's header block, split and joined in C.
 *
 * split(buf, limit, to_server) answers for rules/applayer/http.py Parser._headers what its
 * Python reference (split_headers_py there) answers: the header lines of `buf` (a
 * bytearray holding the block from its first header line on), their names and values
 * as libhtp gives them -- repeated names joined with ", ", folded lines joined with " ",
 * a line without a colon kept as a name with an empty value -- and the events they raise.
 *
 *   None                          the block is not complete yet (and not over `limit`)
 *   False                         the block is over `limit` bytes: the caller gives up
 *   (end, headers, index, events) `end` bytes make the block (with its empty line);
 *                                 headers [(name, value)], index {lower name: value of
 *                                 its first header}, events a tuple of event names
 *
 * join(line, headers, kind, skip) makes what rules/applayer/http.py's join_headers_py
 * makes of a header list: the http.header, http.header_names or http.start buffer. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *ev_missing_colon, *ev_header_invalid, *empty_bytes;

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c; }

/* p[*a:*b] without the characters `sp` accepts at both ends */
static void
strip(const unsigned char *p, Py_ssize_t *a, Py_ssize_t *b, int (*sp)(unsigned char))
{
    while (*a < *b && sp(p[*a]))
        (*a)++;
    while (*b > *a && sp(p[*b - 1]))
        (*b)--;
}

static int is_blank(unsigned char c) { return c == ' ' || c == '\t'; }

/* ASCII lower case of p[0:n], as bytes.lower() */
static PyObject *
lower(const unsigned char *p, Py_ssize_t n)
{
    PyObject *o = PyBytes_FromStringAndSize(NULL, n);
    if (o == NULL)
        return NULL;
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(o);
    for (Py_ssize_t i = 0; i < n; i++)
        q[i] = (p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i];
    return o;
}

/* headers[i] = (name, old value + sep + more) */
static int
join_value(PyObject *headers, Py_ssize_t i, const char *sep, Py_ssize_t seplen, const unsigned char *more,
           Py_ssize_t n)
{
    PyObject *old = PyList_GET_ITEM(headers, i);
    PyObject *name = PyTuple_GET_ITEM(old, 0), *v = PyTuple_GET_ITEM(old, 1);
    Py_ssize_t vl = PyBytes_GET_SIZE(v);
    PyObject *nv = PyBytes_FromStringAndSize(NULL, vl + seplen + n);
    if (nv == NULL)
        return -1;
    char *q = PyBytes_AS_STRING(nv);
    memcpy(q, PyBytes_AS_STRING(v), vl);
    memcpy(q + vl, sep, seplen);
    memcpy(q + vl + seplen, more, n);
    PyObject *pair = PyTuple_Pack(2, name, nv);
    Py_DECREF(nv);
    if (pair == NULL)
        return -1;
    return PyList_SetItem(headers, i, pair);                      /* (steals pair) */
}

static PyObject *
split(PyObject *module, PyObject *args)
{
    PyObject *bufobj;
    Py_ssize_t limit;
    int to_server;
    if (!PyArg_ParseTuple(args, "Ynp", &bufobj, &limit, &to_server))
        return NULL;
    if (!PyByteArray_Check(bufobj)) {
        PyErr_SetString(PyExc_TypeError, "split: buf must be a bytearray");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyByteArray_AS_STRING(bufobj);
    Py_ssize_t len = PyByteArray_GET_SIZE(bufobj), pos = 0, end = -1;
    /* the lines, as (start, stop) pairs without their CR LF; the block ends at an empty line */
    Py_ssize_t cap = 32, nlines = 0;
    Py_ssize_t *lines = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * cap);
    if (lines == NULL)
        return PyErr_NoMemory();
    for (;;) {
        const unsigned char *nl = pos < len ? memchr(p + pos, '\n', len - pos) : NULL;
        if (nl == NULL) {
            PyMem_Free(lines);
            if (len > limit)
                Py_RETURN_FALSE;
            Py_RETURN_NONE;
        }
        Py_ssize_t stop = nl - p, start = pos;
        pos = stop + 1;
        if (stop > start && p[stop - 1] == '\r')
            stop--;
        if (stop == start) {
            end = pos;
            break;
        }
        if (nlines == cap) {
            Py_ssize_t *more = PyMem_Realloc(lines, sizeof(Py_ssize_t) * 4 * cap);
            if (more == NULL) {
                PyMem_Free(lines);
                return PyErr_NoMemory();
            }
            lines = more;
            cap *= 2;
        }
        lines[2 * nlines] = start;
        lines[2 * nlines + 1] = stop;
        nlines++;
        if (pos > limit) {
            PyMem_Free(lines);
            Py_RETURN_FALSE;
        }
    }
    PyObject *headers = PyList_New(0), *where = PyDict_New(), *events = PyList_New(0);
    PyObject *index = NULL, *result = NULL;
    if (headers == NULL || where == NULL || events == NULL)
        goto out;
    Py_ssize_t last = 0;
    for (Py_ssize_t k = 0; k < nlines; k++) {
        Py_ssize_t a = lines[2 * k], b = lines[2 * k + 1];
        if ((p[a] == ' ' || p[a] == '\t') && PyList_GET_SIZE(headers)) {  /* folded */
            strip(p, &a, &b, is_space);
            if (join_value(headers, last, " ", 1, p + a, b - a) < 0)
                goto out;
            continue;
        }
        const unsigned char *colon = memchr(p + a, ':', b - a);
        PyObject *name, *value, *low, *pair;
        if (colon == NULL) {
            if (to_server && PyList_Append(events, ev_missing_colon) < 0)
                goto out;
            last = PyList_GET_SIZE(headers);
            strip(p, &a, &b, is_space);
            name = PyBytes_FromStringAndSize((const char *)p + a, b - a);
            low = name ? lower(p + a, b - a) : NULL;
            PyObject *at = low ? PyLong_FromSsize_t(last) : NULL;
            PyObject *had = at ? PyDict_SetDefault(where, low, at) : NULL;      /* borrowed */
            Py_XDECREF(at);
            Py_XDECREF(low);
            pair = had ? PyTuple_Pack(2, name, empty_bytes) : NULL;
            Py_XDECREF(name);
            if (pair == NULL || PyList_Append(headers, pair) < 0) {
                Py_XDECREF(pair);
                goto out;
            }
            Py_DECREF(pair);
            continue;
        }
        Py_ssize_t na = a, nb = colon - p, va = nb + 1, vb = b;
        strip(p, &na, &nb, is_space);
        if (to_server && (memchr(p + na, ' ', nb - na) || memchr(p + na, '\t', nb - na)) &&
            PyList_Append(events, ev_header_invalid) < 0)
            goto out;
        strip(p, &va, &vb, is_blank);
        low = lower(p + na, nb - na);
        if (low == NULL)
            goto out;
        PyObject *i = PyDict_GetItemWithError(where, low);            /* borrowed */
        if (i != NULL) {                                               /* repeated: values joined */
            Py_DECREF(low);
            last = PyLong_AsSsize_t(i);
            if (join_value(headers, last, ", ", 2, p + va, vb - va) < 0)
                goto out;
            continue;
        }
        if (PyErr_Occurred()) {
            Py_DECREF(low);
            goto out;
        }
        last = PyList_GET_SIZE(headers);
        PyObject *at = PyLong_FromSsize_t(last);
        int r = at ? PyDict_SetItem(where, low, at) : -1;
        Py_XDECREF(at);
        Py_DECREF(low);
        if (r < 0)
            goto out;
        name = PyBytes_FromStringAndSize((const char *)p + na, nb - na);
        value = name ? PyBytes_FromStringAndSize((const char *)p + va, vb - va) : NULL;
        pair = value ? PyTuple_Pack(2, name, value) : NULL;
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (pair == NULL || PyList_Append(headers, pair) < 0) {
            Py_XDECREF(pair);
            goto out;
        }
        Py_DECREF(pair);
    }
    /* the index: each lower-case name to the value of its first header */
    index = PyDict_New();
    if (index == NULL)
        goto out;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(headers); k++) {
        PyObject *pair = PyList_GET_ITEM(headers, k), *name = PyTuple_GET_ITEM(pair, 0);
        PyObject *low = lower((const unsigned char *)PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
        PyObject *had = low ? PyDict_SetDefault(index, low, PyTuple_GET_ITEM(pair, 1)) : NULL;
        Py_XDECREF(low);
        if (had == NULL)
            goto out;
    }
    PyObject *evt = PyList_AsTuple(events);
    if (evt == NULL)
        goto out;
    result = Py_BuildValue("(nOON)", end, headers, index, evt);
out:
    PyMem_Free(lines);
    Py_XDECREF(index);
    Py_XDECREF(events);
    Py_XDECREF(where);
    Py_XDECREF(headers);
    return result;
}

/* does `name` (bytes) lower-cased equal `skip` (lower-case bytes)? (bytes.lower: ASCII only) */
static int
lower_eq(const unsigned char *n, Py_ssize_t nl, const unsigned char *k, Py_ssize_t kl)
{
    if (nl != kl)
        return 0;
    for (Py_ssize_t i = 0; i < nl; i++) {
        unsigned char c = n[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != k[i])
            return 0;
    }
    return 1;
}

/* join(line, headers, kind, skip): a buffer made of a header list, as
 * rules.applayer.http.join_headers_py makes it (kind 0 http.header, 1 http.header_names,
 * 2 http.start) */
static PyObject *
join(PyObject *module, PyObject *args)
{
    PyObject *line, *headers, *skip;
    int kind;
    if (!PyArg_ParseTuple(args, "SO!iS", &line, &PyList_Type, &headers, &kind, &skip))
        return NULL;
    if (kind < 0 || kind > 2) {
        PyErr_SetString(PyExc_ValueError, "join: kind is 0, 1 or 2");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(headers);
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(skip);
    Py_ssize_t kl = PyBytes_GET_SIZE(skip);
    /* a first pass checks the items and counts the bytes */
    Py_ssize_t size = kind == 2 ? PyBytes_GET_SIZE(line) + 4 : kind == 1 ? 4 : 0, kept = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "join: headers must be a list of (bytes, bytes)");
            return NULL;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        Py_ssize_t nl = PyBytes_GET_SIZE(name);
        if (kind == 1) {
            size += nl + 2;
        } else if (kind == 0 && lower_eq((const unsigned char *)PyBytes_AS_STRING(name), nl, k, kl)) {
            continue;
        } else {
            size += nl + 4 + PyBytes_GET_SIZE(PyTuple_GET_ITEM(pair, 1));
        }
        kept++;
    }
    if (kind != 2 && kept == 0)
        Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    char *w = PyBytes_AS_STRING(out);
#define PUT(p, l) do { memcpy(w, (p), (size_t)(l)); w += (l); } while (0)
    if (kind == 2)
        PUT(PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line));
    if (kind != 0)
        PUT("\r\n", 2);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t nl = PyBytes_GET_SIZE(name);
        if (kind == 1) {
            PUT(PyBytes_AS_STRING(name), nl);
            PUT("\r\n", 2);
            continue;
        }
        if (kind == 0 && lower_eq((const unsigned char *)PyBytes_AS_STRING(name), nl, k, kl))
            continue;
        PUT(PyBytes_AS_STRING(name), nl);
        PUT(": ", 2);
        PUT(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
        PUT("\r\n", 2);
    }
    if (kind != 0)
        PUT("\r\n", 2);
#undef PUT
    if (w - PyBytes_AS_STRING(out) != size) {      /* cannot happen: the list is not changed between passes */
        Py_DECREF(out);
        PyErr_SetString(PyExc_RuntimeError, "join: size mismatch");
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"split", split, METH_VARARGS,
     "split(buf, limit, to_server) -> None | False | (end, headers, index, events): an HTTP "
     "header block as rules.applayer.http.split_headers_py answers."},
    {"join", join, METH_VARARGS,
     "join(line, headers, kind, skip) -> bytes | None: http.header (kind 0, without the headers named "
     "`skip`), http.header_names (1) or http.start (2) as rules.applayer.http.join_headers_py makes it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "rules.applayer._httphead",
    "An HTTP message's header block, split and joined (rules/applayer/http.py split_headers_py).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__httphead(void)
{
    if ((ev_missing_colon = PyUnicode_InternFromString("http.request_field_missing_colon")) == NULL ||
        (ev_header_invalid = PyUnicode_InternFromString("http.request_header_invalid")) == NULL ||
        (empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
