/* A scan offer's compiled scan (rules.prefilter.AnyPattern.spec), for the two compiled
 * modules that run it: rules/_hotpath.c (the engine's UDP lane, Lanes) and
 * bridge/_ringpass.c (the ring walk's fast-path entries).  Included by both, so each has
 * its own copy of these static functions; call scan_init() once from the module's init.
 *
 * spec = (watch, ((hyperscan scan method, scratch), ...)): watch is an app-layer state
 * whose parser, once it has one, makes every datagram a "found"; each database is asked
 * with a callback that stops it at the first match (hyperscan then raises, which means
 * found). */
#ifndef IPSBRIDGE_SCAN_H
#define IPSBRIDGE_SCAN_H

#include <Python.h>

static PyObject *scan_s_parser, *scan_stop, *scan_zero;

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
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, n);
    if (bytes == NULL) {
        PyErr_Clear();
        return -1;
    }
    int found = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *call = PyTuple_GET_ITEM(calls, i);
        if (!PyTuple_CheckExact(call) || PyTuple_GET_SIZE(call) != 2) {
            found = -1;
            break;
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
    Py_DECREF(bytes);
    return found;
}

#endif
