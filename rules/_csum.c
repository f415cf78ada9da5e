/* rules._csum: the 16-bit one's complement sum (RFC 1071) in C.
 *
 * The one leaf of the per-packet path that pure Python cannot do quickly: summing
 * the words of a 1448-byte TCP segment costs about 2.7 us with int.from_bytes and a
 * modulo, a quarter of what the engine spends on such a segment.  Everything
 * else stays in Python.  rules/checksum.py and rules/decode.py use it when it is
 * built (the install builds it: pyproject.toml ext-modules) and fall back to
 * Python otherwise; tests/unit/test_csum_ext.py checks both give the same sums
 * and that the extension was built.
 *
 * ones_sum(data, initial=0) -> int: the folded sum of `data` (any buffer: bytes,
 * memoryview of a ring slot, bytearray; an odd length is padded with a zero byte)
 * plus `initial`, in 0..0xFFFF -- the same value as rules.checksum.ones_sum.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
csum_ones_sum(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long initial = 0;
    if (!PyArg_ParseTuple(args, "y*|K:ones_sum", &view, &initial))
        return NULL;
    const unsigned char *p = (const unsigned char *)view.buf;
    Py_ssize_t n = view.len;
    uint64_t sum = 0;
    Py_ssize_t i = 0;
    /* 32-bit big-endian words into a 64-bit accumulator: no overflow below 2^32 words */
    for (; i + 4 <= n; i += 4)
        sum += ((uint64_t)p[i] << 24) | ((uint64_t)p[i + 1] << 16) | ((uint64_t)p[i + 2] << 8) | p[i + 3];
    if (i + 2 <= n) {
        sum += ((uint64_t)p[i] << 8) | p[i + 1];
        i += 2;
    }
    if (i < n)
        sum += (uint64_t)p[i] << 8;
    PyBuffer_Release(&view);
    /* initial is reduced first: any non-negative int the caller folds in */
    initial = (initial & 0xFFFFFFFFULL) + (initial >> 32);
    sum += initial;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return PyLong_FromUnsignedLong((unsigned long)sum);
}

static PyMethodDef csum_methods[] = {
    {"ones_sum", csum_ones_sum, METH_VARARGS,
     "ones_sum(data, initial=0) -> int: folded 16-bit one's complement sum of data (odd length "
     "padded with a zero byte) plus initial, 0..0xFFFF."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef csum_module = {
    PyModuleDef_HEAD_INIT, "rules._csum",
    "The 16-bit one's complement sum (RFC 1071) of a buffer, in C.", -1, csum_methods,
};

PyMODINIT_FUNC
PyInit__csum(void)
{
    return PyModule_Create(&csum_module);
}
