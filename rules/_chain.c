/* rules._chain: a payload chain made only of content matches, matched in C.
 *
 * match(buf, spec, next_rel, budget) answers what rules/payload.py's PayloadChain._m
 * answers for a chain whose items are all Content (PayloadChain.match_buffer and the
 * items part of PayloadChain.match): the Python method is the reference, and tests hold
 * the two to the same answers.  `spec` is PayloadChain._cspec, one tuple per item:
 *
 *   (pattern, flags, offset, depth, distance, within)
 *
 * pattern is the bytes looked for (lower-case when nocase: Content.lpattern); flags
 * F_NOCASE, F_NEGATED, F_ENDSWITH, F_RELATIVE (distance or within given), F_DEPTH,
 * F_WITHIN; absent numbers are 0.  `next_rel` is PayloadChain._next_rel (retry an item
 * at its next occurrence).  `budget` is the steps allowed (STEP_BUDGET): one per item
 * tried, shared by the whole match, as the reference's state[0]. */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <string.h>

enum { F_NOCASE = 1, F_NEGATED = 2, F_ENDSWITH = 4, F_RELATIVE = 8, F_DEPTH = 16, F_WITHIN = 32 };

typedef struct {
    const char *pat;
    Py_ssize_t plen;
    long flags;
    long long offset, depth, distance, within;
    int retry;
} Item;

typedef struct {
    const char *buf;
    char *low;                  /* buf lower-cased (ASCII), made when a nocase item first needs it */
    Py_ssize_t n;
    Item *items;
    Py_ssize_t count;
    long long budget;
    int nomem;
} Match;

/* the first occurrence of pat in hay[start:end), or -1 (bytes.find with bounds) */
static Py_ssize_t
find(const char *hay, Py_ssize_t start, Py_ssize_t end, const char *pat, Py_ssize_t plen)
{
    if (end - start < plen)
        return -1;
    if (plen == 0)
        return start;
    const char *p = memmem(hay + start, (size_t)(end - start), pat, (size_t)plen);
    return p == NULL ? -1 : p - hay;
}

static const char *
hay_of(Match *m, const Item *it)
{
    if (!(it->flags & F_NOCASE))
        return m->buf;
    if (m->low == NULL) {
        m->low = PyMem_Malloc(m->n ? (size_t)m->n : 1);
        if (m->low == NULL) {
            m->nomem = 1;
            return NULL;
        }
        for (Py_ssize_t k = 0; k < m->n; k++) {
            unsigned char c = (unsigned char)m->buf[k];
            m->low[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
    }
    return m->low;
}

/* PayloadChain._m from item i with the previous match ending at prev: 1, 0 (-1: no memory) */
static int
m_from(Match *m, Py_ssize_t i, Py_ssize_t prev)
{
    if (i == m->count)
        return 1;
    if (--m->budget < 0)
        return 0;
    const Item *it = &m->items[i];
    Py_ssize_t n = m->n, start, end;
    if (it->flags & F_RELATIVE) {                                   /* PayloadChain._window */
        long long s = (long long)prev + it->distance;
        long long e = (it->flags & F_WITHIN) ? s + it->within : n;
        if (e > n)
            e = n;
        if (s < 0)
            s = 0;
        start = (Py_ssize_t)s;
        end = (Py_ssize_t)e;
    } else {
        long long s = it->offset;
        long long e = (it->flags & F_DEPTH) ? s + it->depth : n;
        if (e > n)
            e = n;
        start = (Py_ssize_t)s;
        end = (Py_ssize_t)e;
    }
    const char *hay = hay_of(m, it);
    if (hay == NULL)
        return -1;
    Py_ssize_t plen = it->plen;
    if (it->flags & F_ENDSWITH) {
        if (it->flags & F_NEGATED) {
            /* one search: only the first occurrence in the window is held to the end */
            Py_ssize_t first = find(hay, start, end, it->pat, plen);
            if (first >= 0 && first + plen == n)
                return 0;
            return m_from(m, i + 1, prev);
        }
        Py_ssize_t pos = n - plen;
        if (!(end == n && pos >= start && memcmp(hay + pos, it->pat, (size_t)plen) == 0))
            return 0;
        return m_from(m, i + 1, pos + plen);
    }
    Py_ssize_t pos = find(hay, start, end, it->pat, plen);
    if (it->flags & F_NEGATED)
        return pos < 0 ? m_from(m, i + 1, prev) : 0;
    while (pos >= 0) {
        int r = m_from(m, i + 1, pos + plen);
        if (r != 0)
            return r;
        if (!it->retry || m->budget < 0)
            return 0;
        pos = find(hay, pos + 1, end, it->pat, plen);
    }
    return 0;
}

static int
as_ll(PyObject *o, long long *out)
{
    *out = PyLong_AsLongLong(o);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *
match(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "match(buf, spec, next_rel, budget): 4 arguments");
        return NULL;
    }
    PyObject *bufo = args[0], *spec = args[1], *next_rel = args[2];
    if (!PyBytes_Check(bufo) || !PyTuple_Check(spec) || !PyTuple_Check(next_rel) ||
        PyTuple_GET_SIZE(next_rel) != PyTuple_GET_SIZE(spec)) {
        PyErr_SetString(PyExc_TypeError, "match: bytes, a spec tuple and a next_rel tuple of its length expected");
        return NULL;
    }
    Match m = {PyBytes_AS_STRING(bufo), NULL, PyBytes_GET_SIZE(bufo), NULL, PyTuple_GET_SIZE(spec), 0, 0};
    if (as_ll(args[3], &m.budget) < 0)
        return NULL;
    Item small[16];
    m.items = m.count <= 16 ? small : PyMem_Calloc((size_t)m.count, sizeof(Item));
    if (m.items == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < m.count; i++) {
        PyObject *t = PyTuple_GET_ITEM(spec, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 6 || !PyBytes_Check(PyTuple_GET_ITEM(t, 0))) {
            PyErr_SetString(PyExc_TypeError, "match: each spec item is (pattern, flags, offset, depth, distance, within)");
            goto out;
        }
        Item *it = &m.items[i];
        it->pat = PyBytes_AS_STRING(PyTuple_GET_ITEM(t, 0));
        it->plen = PyBytes_GET_SIZE(PyTuple_GET_ITEM(t, 0));
        long long flags;
        if (as_ll(PyTuple_GET_ITEM(t, 1), &flags) < 0 || as_ll(PyTuple_GET_ITEM(t, 2), &it->offset) < 0 ||
            as_ll(PyTuple_GET_ITEM(t, 3), &it->depth) < 0 || as_ll(PyTuple_GET_ITEM(t, 4), &it->distance) < 0 ||
            as_ll(PyTuple_GET_ITEM(t, 5), &it->within) < 0)
            goto out;
        it->flags = (long)flags;
        int r = PyObject_IsTrue(PyTuple_GET_ITEM(next_rel, i));
        if (r < 0)
            goto out;
        it->retry = r;
    }
    int r = m_from(&m, 0, 0);
    if (r < 0 || m.nomem) {
        PyErr_NoMemory();
        goto out;
    }
    result = Py_NewRef(r ? Py_True : Py_False);
out:
    if (m.items != small)
        PyMem_Free(m.items);
    PyMem_Free(m.low);
    return result;
}

static PyMethodDef methods[] = {
    {"match", (PyCFunction)(void (*)(void))match, METH_FASTCALL,
     "match(buf, spec, next_rel, budget) -> bool: PayloadChain._m(0, buf, 0, [budget, None]) for a "
     "chain of Content items only (PayloadChain._cspec)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "rules._chain",
    "A payload chain made only of content matches, matched in C (rules/payload.py PayloadChain._m).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__chain(void)
{
    return PyModule_Create(&module_def);
}
