/* A scan offer's compiled scan (rules.prefilter.AnyPattern.spec), for the two compiled
 * modules that run it: rules/_hotpath.c (the engine's UDP lane, Lanes) and
 * bridge/_ringpass.c (the ring walk's fast-path entries).  Included by both, so each has
 * its own copy of these static functions; call scan_init() once from the module's init.
 *
 * spec = (watch, ((hyperscan scan method, scratch, literals), ...)): watch is an app-layer
 * state whose parser, once it has one, makes every datagram a "found"; each database is
 * asked with a callback that stops it at the first match (hyperscan then raises, which
 * means found).  `literals`, for a database of a few patterns (a direction's 1-2 byte
 * ones), is those patterns as ((bytes, caseless), ...), caseless ones in lower case, or
 * None: a short payload is searched for them here (memchr on each pattern's first byte),
 * which costs less than the call through the hyperscan binding, and answers the same.
 *
 * With libhs loaded (rules/_hotpath.c, HsDatabase) a call is (database, handle capsule,
 * literals) instead: the capsule holds a `struct scan_hs`, and the database is asked
 * through libhs's own hs_scan, without the binding's argument parsing, lock, GIL release
 * and exception (about 30 ns for a short payload, against about 190). */
#ifndef IPSBRIDGE_SCAN_H
#define IPSBRIDGE_SCAN_H

#include <Python.h>

static PyObject *scan_s_parser, *scan_stop, *scan_zero;

/* What an HsDatabase lends the compiled scans: libhs's database, its scratch and hs_scan
 * itself (so bridge/_ringpass.c needs no libhs of its own).  The capsule is named
 * SCAN_HS_CAPSULE, and holds the HsDatabase (its context) for as long as it lives. */
typedef int (*scan_hs_match)(unsigned int id, unsigned long long from, unsigned long long to,
                             unsigned int flags, void *ctx);
typedef int (*scan_hs_scan_fn)(const void *db, const char *data, unsigned int length, unsigned int flags,
                               void *scratch, scan_hs_match on_match, void *ctx);
struct scan_hs {
    void *db;
    void *scratch;
    scan_hs_scan_fn scan;
};
#define SCAN_HS_CAPSULE "rules._hotpath.hs"
#define SCAN_HS_SUCCESS 0
#define SCAN_HS_TERMINATED (-3)

static int
scan_hs_stop(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags, void *ctx)
{
    return 1;                       /* the first match ends the scan: HS_SCAN_TERMINATED */
}

/* What hs_scan's return code `rc` of a scan with scan_hs_stop says: 1 a pattern is there
 * (the scan stopped at it), 0 none, -1 libhs failed. */
static inline int
scan_hs_found(int rc)
{
    return rc == SCAN_HS_TERMINATED ? 1 : rc == SCAN_HS_SUCCESS ? 0 : -1;
}

/* Does `h`'s database find a pattern in data[0:n]?  scan_hs_found's answer (-1 also when
 * n is over libhs's 4 GiB; no exception set). */
static int
scan_hs_any(const struct scan_hs *h, const char *data, Py_ssize_t n)
{
    if (n > (Py_ssize_t)0xFFFFFFFFu)
        return -1;
    return scan_hs_found(h->scan(h->db, data, (unsigned int)n, 0, h->scratch, scan_hs_stop, NULL));
}

static PyObject *
scan_stop_cb(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_RETURN_TRUE;         /* hyperscan's callback: the first match ends the scan */
}

static PyMethodDef scan_stop_def = {"_stop_scan", (PyCFunction)(void (*)(void))scan_stop_cb, METH_FASTCALL,
                                    "hyperscan match callback: stop at the first match"};

/* 0 fine, -1 an exception set */
static int
scan_init(void)
{
    scan_s_parser = PyUnicode_InternFromString("parser");
    scan_stop = PyCFunction_NewEx(&scan_stop_def, NULL, NULL);
    scan_zero = PyLong_FromLong(0);
    return (scan_s_parser && scan_stop && scan_zero) ? 0 : -1;
}

#define SCAN_LIT_DATA_MAX 512       /* payload bytes up to which the literals are searched here */
#define SCAN_LIT_MAX 16             /* patterns up to which (AnyPattern gives no more) */

static inline unsigned char
scan_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;     /* hyperscan's caseless: ASCII */
}

/* Does data[0:n] (low: the same in lower case) hold one of `literals`?  1 yes, 0 no, -1 not
 * in the expected shape (the caller then asks the database). */
static int
scan_literals(PyObject *literals, const unsigned char *data, const unsigned char *low, Py_ssize_t n)
{
    Py_ssize_t k = PyTuple_GET_SIZE(literals);
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *it = PyTuple_GET_ITEM(literals, i);
        if (!PyTuple_CheckExact(it) || PyTuple_GET_SIZE(it) != 2 || !PyBytes_CheckExact(PyTuple_GET_ITEM(it, 0)))
            return -1;
        PyObject *pat = PyTuple_GET_ITEM(it, 0);
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(pat);
        Py_ssize_t m = PyBytes_GET_SIZE(pat);
        const unsigned char *hay = PyTuple_GET_ITEM(it, 1) == Py_True ? low : data;
        if (m == 0)
            return 1;
        const unsigned char *at = hay, *end = hay + n;
        while (end - at >= m) {
            at = memchr(at, p[0], (size_t)(end - at - m + 1));
            if (at == NULL)
                break;
            if (memcmp(at + 1, p + 1, (size_t)(m - 1)) == 0)
                return 1;
            at++;
        }
    }
    return 0;
}

/* Does any database of the compiled scan `spec` find a pattern in data[0:n], or has its
 * watched app-layer state a parser?  1 yes, 0 no, -1 an error (cleared): the caller then
 * leaves the datagram to the Python code, which scans again itself. */
static int
compiled_scan(PyObject *spec, const unsigned char *data, Py_ssize_t n)
{
    if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 2 || !PyTuple_CheckExact(PyTuple_GET_ITEM(spec, 1)))
        return -1;
    PyObject *watch = PyTuple_GET_ITEM(spec, 0), *calls = PyTuple_GET_ITEM(spec, 1);
    if (watch != Py_None) {
        PyObject *parser = PyObject_GetAttr(watch, scan_s_parser);
        if (parser == NULL) {
            PyErr_Clear();
            return -1;
        }
        int has = parser != Py_None;
        Py_DECREF(parser);
        if (has)
            return 1;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(calls);
    if (k == 0)
        return 0;
    PyObject *bytes = NULL;
    unsigned char low[SCAN_LIT_DATA_MAX];
    int lowered = 0;
    int found = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *call = PyTuple_GET_ITEM(calls, i);
        if (!PyTuple_CheckExact(call) || PyTuple_GET_SIZE(call) != 3) {
            found = -1;
            break;
        }
        PyObject *lits = PyTuple_GET_ITEM(call, 2);
        if (lits != Py_None && n <= SCAN_LIT_DATA_MAX && PyTuple_CheckExact(lits) &&
            PyTuple_GET_SIZE(lits) <= SCAN_LIT_MAX) {
            if (!lowered) {
                for (Py_ssize_t j = 0; j < n; j++)
                    low[j] = scan_lower(data[j]);
                lowered = 1;
            }
            int got = scan_literals(lits, data, low, n);
            if (got > 0) {
                found = 1;
                break;
            }
            if (got == 0)
                continue;
        }
        PyObject *cap = PyTuple_GET_ITEM(call, 1);
        if (PyCapsule_CheckExact(cap)) {
            struct scan_hs *h = (struct scan_hs *)PyCapsule_GetPointer(cap, SCAN_HS_CAPSULE);
            int got = h != NULL ? scan_hs_any(h, (const char *)data, n) : (PyErr_Clear(), -1);
            if (got != 0) {
                found = got;
                break;
            }
            continue;
        }
        if (bytes == NULL) {
            bytes = PyBytes_FromStringAndSize((const char *)data, n);
            if (bytes == NULL) {
                PyErr_Clear();
                found = -1;
                break;
            }
        }
        PyObject *a[5] = {bytes, scan_stop, scan_zero, Py_None, PyTuple_GET_ITEM(call, 1)};
        PyObject *v = PyObject_Vectorcall(PyTuple_GET_ITEM(call, 0), a, 5, NULL);
        if (v == NULL) {                /* ScanTerminated: a match (anything else: the caller's fallback sees it again) */
            PyErr_Clear();
            found = 1;
            break;
        }
        Py_DECREF(v);
    }
    Py_XDECREF(bytes);
    return found;
}

#endif
