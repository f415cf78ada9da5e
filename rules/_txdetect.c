/* rules._txdetect: the transaction detector's candidate selection in C.
 *
 * candidates(txd, tx, d, memo, pkt, proto) answers what rules/detect_tx.py's
 * TxDetector._candidates_py answers, with the same effects on `tx.found` and on the
 * header memo, reading the same Python objects (TxDetector, _Slot, the transaction):
 * the Python method is the reference, and tests hold the two to the same answers.
 * What the slots' getters, transforms and databases do stays theirs (Python calls).
 *
 * setup(header_ok, order_key, empty, done, seen_value_max, seen_max) must be called once
 * (rules/detect_tx.py does on import) before candidates() is used. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *header_ok_fn, *empty_set;
static long long done_level = -1;
static Py_ssize_t seen_value_max, seen_max;
static PyObject *cands_key[2];          /* ("cands", False), ("cands", True): tx.found's keys */
static PyObject *kw_key;                /* {"key": order_key}: list.sort's keywords */
static PyObject *s_found, *s_progress, *s_slots, *s_always, *s_bucket, *s_reps, *s_proto, *s_scan,
    *s_order, *s_sort, *s_zero;

/* _Slot.packed: what candidates() reads of a slot, in one tuple (rules/detect_tx.py
 * PACKED, in its order; one attribute read a slot instead of one per field) */
enum { P_SIDE, P_PROGRESS, P_GET, P_MULTI, P_TRANSFORMS, P_GROWS, P_BODY, P_BY_PID, P_DB, P_SEEN, P_OVERLAP, P_ANCHORS,
       P_N };
static PyObject *s_packed, *s_placed;

/* slot.packed, checked (new reference; NULL with an exception) */
static PyObject *
packed_of(PyObject *slot)
{
    PyObject *p = PyObject_GetAttr(slot, s_packed);
    if (p != NULL && !(PyTuple_CheckExact(p) && PyTuple_GET_SIZE(p) == P_N)) {
        Py_DECREF(p);
        PyErr_SetString(PyExc_TypeError, "_Slot.packed: a tuple of 12 expected (_Slot.pack)");
        return NULL;
    }
    return p;
}

/* TxDetector._ok: the memo's answer for bucket `b`, header_ok(reps[b], pkt) remembered
 * when it has none.  1, 0, -1 with an exception. */
static int
bucket_ok(PyObject *memo, PyObject *b, PyObject *reps, PyObject *pkt)
{
    PyObject *v = PyDict_GetItemWithError(memo, b);                /* borrowed */
    if (v != NULL)
        return PyObject_IsTrue(v);
    if (PyErr_Occurred())
        return -1;
    PyObject *rep = PyObject_GetItem(reps, b);
    if (rep == NULL)
        return -1;
    v = PyObject_CallFunctionObjArgs(header_ok_fn, rep, pkt, NULL);
    Py_DECREF(rep);
    if (v == NULL)
        return -1;
    int t = PyDict_SetItem(memo, b, v) < 0 ? -1 : PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

/* Does signature `s` pass its bucket's header test (TxDetector._ok(memo, bucket[s.order], pkt))? */
static int
sig_ok(PyObject *s, PyObject *memo, PyObject *bucket, PyObject *reps, PyObject *pkt)
{
    PyObject *order = PyObject_GetAttr(s, s_order);
    if (order == NULL)
        return -1;
    PyObject *b = PyObject_GetItem(bucket, order);
    Py_DECREF(order);
    if (b == NULL)
        return -1;
    int t = bucket_ok(memo, b, reps, pkt);
    Py_DECREF(b);
    return t;
}

/* lst.sort(key=order_key): 0, -1 */
static int
sort_by_order(PyObject *lst)
{
    PyObject *meth = PyObject_GetAttr(lst, s_sort);
    if (meth == NULL)
        return -1;
    PyObject *empty = PyTuple_New(0);
    PyObject *r = empty ? PyObject_Call(meth, empty, kw_key) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(meth);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* _Slot.values: the list of what is inspected (each item of a multi-buffer, each through
 * the transforms); an empty list when the getter gives None */
static PyObject *
slot_values(PyObject *pk, PyObject *tx)
{
    PyObject *v = PyObject_CallOneArg(PyTuple_GET_ITEM(pk, P_GET), tx);
    if (v == NULL)
        return NULL;
    if (v == Py_None) {
        Py_DECREF(v);
        return PyList_New(0);
    }
    int multi = PyObject_IsTrue(PyTuple_GET_ITEM(pk, P_MULTI));
    PyObject *transforms = multi < 0 ? NULL : Py_NewRef(PyTuple_GET_ITEM(pk, P_TRANSFORMS));
    PyObject *vals = NULL, *tf = NULL;
    if (transforms == NULL)
        goto out;
    if (multi) {
        vals = PySequence_List(v);
    } else {
        vals = PyList_New(1);
        if (vals != NULL)
            PyList_SET_ITEM(vals, 0, Py_NewRef(v));
    }
    if (vals == NULL)
        goto out;
    tf = PySequence_Fast(transforms, "_Slot.transforms: a sequence expected");
    if (tf == NULL || PySequence_Fast_GET_SIZE(tf) == 0)
        goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(vals); i++) {
        PyObject *b = Py_NewRef(PyList_GET_ITEM(vals, i));
        for (Py_ssize_t k = 0; b != NULL && k < PySequence_Fast_GET_SIZE(tf); k++) {
            PyObject *nb = PyObject_CallOneArg(PySequence_Fast_GET_ITEM(tf, k), b);
            Py_DECREF(b);
            b = nb;
        }
        if (b == NULL) {
            Py_CLEAR(vals);
            goto out;
        }
        PyList_SetItem(vals, i, b);                                /* (steals b, drops the old) */
    }
out:
    Py_XDECREF(tf);
    Py_XDECREF(transforms);
    Py_DECREF(v);
    return vals;
}

/* _Slot.placed: `ids` (a scan's of v; a new reference, taken) without the anchored
 * patterns v does not hold at their place -- the slot's own method, called only when the
 * slot has anchored patterns and the scan found something */
static PyObject *
placed(PyObject *slot, PyObject *pk, PyObject *ids, PyObject *v)
{
    if (ids == NULL)
        return NULL;
    PyObject *anchors = PyTuple_GET_ITEM(pk, P_ANCHORS);
    if (!PyDict_Check(anchors)) {
        Py_DECREF(ids);
        PyErr_SetString(PyExc_TypeError, "_Slot.anchors: a dict expected");
        return NULL;
    }
    if (PyDict_GET_SIZE(anchors) == 0)
        return ids;
    int t = PyObject_IsTrue(ids);
    if (t <= 0) {
        if (t < 0)
            Py_CLEAR(ids);
        return ids;
    }
    PyObject *r = PyObject_CallMethodObjArgs(slot, s_placed, ids, v, NULL);
    Py_DECREF(ids);
    return r;
}

/* _Slot.scan: the ids of the slot's patterns in v (at their place, for anchored ones),
 * remembered per value up to seen_value_max bytes (at most seen_max values, then forgotten
 * at once) */
static PyObject *
slot_scan(PyObject *slot, PyObject *pk, PyObject *v)
{
    PyObject *db = Py_NewRef(PyTuple_GET_ITEM(pk, P_DB));
    PyObject *got = NULL, *seen = NULL;
    Py_ssize_t n = PyObject_Length(v);
    if (n < 0)
        goto out;
    if (n > seen_value_max) {
        got = placed(slot, pk, PyObject_CallMethodOneArg(db, s_scan, v), v);
        goto out;
    }
    seen = Py_NewRef(PyTuple_GET_ITEM(pk, P_SEEN));
    if (!PyDict_Check(seen)) {
        PyErr_SetString(PyExc_TypeError, "_Slot.seen: a dict expected");
        goto out;
    }
    got = PyDict_GetItemWithError(seen, v);                        /* borrowed */
    if (got != NULL) {
        Py_INCREF(got);
        goto out;
    }
    if (PyErr_Occurred())
        goto out;
    if (PyDict_GET_SIZE(seen) >= seen_max)
        PyDict_Clear(seen);
    PyObject *ids = placed(slot, pk, PyObject_CallMethodOneArg(db, s_scan, v), v);
    got = ids ? PyFrozenSet_New(ids) : NULL;
    Py_XDECREF(ids);
    if (got != NULL && PyDict_SetItem(seen, v, got) < 0)
        Py_CLEAR(got);
out:
    Py_XDECREF(seen);
    Py_DECREF(db);
    return got;
}

/* v[from:to] as bytes (a growing body is bytes, or the bytearray it grows in: the
 * databases are given bytes, as TxDetector._grown gives them) */
static PyObject *
as_bytes_slice(PyObject *v, Py_ssize_t from, Py_ssize_t to)
{
    if (PyByteArray_Check(v))
        return PyBytes_FromStringAndSize(PyByteArray_AS_STRING(v) + from, to - from);
    if (from == 0 && PyBytes_CheckExact(v) && PyBytes_GET_SIZE(v) == to)
        return Py_NewRef(v);
    return PySequence_GetSlice(v, from, to);
}

/* TxDetector._grown: a growing body's fast patterns, from the bytes it grew by (kept in
 * found under (id(slot), 0) as (bytes scanned, set)); vals holds one value */
static PyObject *
slot_grown(PyObject *slot, PyObject *pk, PyObject *vals, PyObject *found, PyObject *sid)
{
    PyObject *v = PyList_GET_ITEM(vals, 0);
    PyObject *key = PyTuple_Pack(2, sid, s_zero);
    PyObject *db = Py_NewRef(PyTuple_GET_ITEM(pk, P_DB));
    PyObject *got = NULL, *prev = NULL, *part = NULL, *ids = NULL;
    Py_ssize_t n = PyObject_Length(v);
    if (key == NULL || db == NULL || n < 0)
        goto out;
    prev = PyObject_GetItem(found, key);
    if (prev == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            goto out;
        PyErr_Clear();
    }
    long long done = -1;
    if (prev != NULL && prev != Py_None) {
        if (!PyTuple_Check(prev) || PyTuple_GET_SIZE(prev) != 2) {
            PyErr_SetString(PyExc_TypeError, "tx.found[(id(slot), 0)]: (int, set) expected");
            goto out;
        }
        done = PyLong_AsLongLong(PyTuple_GET_ITEM(prev, 0));
        if (done == -1 && PyErr_Occurred())
            goto out;
    }
    if (prev != NULL && prev != Py_None && done <= n) {
        got = Py_NewRef(PyTuple_GET_ITEM(prev, 1));
        if (done < n) {
            long long overlap = PyLong_AsLongLong(PyTuple_GET_ITEM(pk, P_OVERLAP));
            if (overlap == -1 && PyErr_Occurred())
                goto out;
            Py_ssize_t from = done - overlap > 0 ? (Py_ssize_t)(done - overlap) : 0;
            part = as_bytes_slice(v, from, n);
            ids = part ? placed(slot, pk, PyObject_CallMethodOneArg(db, s_scan, part), v) : NULL;
            PyObject *u = ids ? PyNumber_Or(got, ids) : NULL;
            Py_SETREF(got, u);
            if (got == NULL)
                goto out;
        }
    } else if (n > 0) {
        part = as_bytes_slice(v, 0, n);
        ids = part ? placed(slot, pk, PyObject_CallMethodOneArg(db, s_scan, part), v) : NULL;
        got = ids ? PySet_New(ids) : NULL;
    } else {
        got = PySet_New(NULL);
    }
    if (got != NULL) {
        PyObject *nobj = PyLong_FromSsize_t(n);
        PyObject *pair = nobj ? PyTuple_Pack(2, nobj, got) : NULL;
        Py_XDECREF(nobj);
        if (pair == NULL || PyObject_SetItem(found, key, pair) < 0)
            Py_CLEAR(got);
        Py_XDECREF(pair);
    }
out:
    Py_XDECREF(ids);
    Py_XDECREF(part);
    Py_XDECREF(prev);
    Py_XDECREF(db);
    Py_XDECREF(key);
    return got;
}

/* the rules of `got`'s pattern ids (slot.by_pid) that pass their header test, appended to dest */
static int
add_rules(PyObject *dest, PyObject *got, PyObject *by_pid, PyObject *memo, PyObject *bucket, PyObject *reps,
          PyObject *pkt)
{
    PyObject *it = PyObject_GetIter(got);
    if (it == NULL)
        return -1;
    PyObject *pid;
    while ((pid = PyIter_Next(it)) != NULL) {
        PyObject *sigs = PyObject_GetItem(by_pid, pid);
        Py_DECREF(pid);
        PyObject *fast = sigs ? PySequence_Fast(sigs, "_Slot.by_pid: lists expected") : NULL;
        Py_XDECREF(sigs);
        if (fast == NULL) {
            Py_DECREF(it);
            return -1;
        }
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
            PyObject *s = PySequence_Fast_GET_ITEM(fast, i);
            int t = sig_ok(s, memo, bucket, reps, pkt);
            if (t < 0 || (t && PyList_Append(dest, s) < 0)) {
                Py_DECREF(fast);
                Py_DECREF(it);
                return -1;
            }
        }
        Py_DECREF(fast);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* found[key] = fixed = [memo, the direction's slots of this protocol, the rules without a
 * fast pattern that pass their header test] (new reference) */
static PyObject *
fresh_fixed(PyObject *txd, PyObject *found, PyObject *key, int d, PyObject *memo, PyObject *pkt,
            PyObject *proto, PyObject *bucket, PyObject *reps)
{
    PyObject *slots_by_d = PyObject_GetAttr(txd, s_slots), *always = PyObject_GetAttr(txd, s_always);
    PyObject *dobj = PyBool_FromLong(d);
    PyObject *slots = NULL, *fslots = NULL, *open = NULL, *akey = NULL, *alist = NULL, *fal = NULL;
    PyObject *settled = NULL, *fixed = NULL;
    if (slots_by_d == NULL || always == NULL)
        goto out;
    slots = PyObject_GetItem(slots_by_d, dobj);
    fslots = slots ? PySequence_Fast(slots, "TxDetector.slots: tuples expected") : NULL;
    open = fslots ? PyList_New(0) : NULL;
    if (open == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fslots); i++) {
        PyObject *sl = PySequence_Fast_GET_ITEM(fslots, i);
        PyObject *p = PyObject_GetAttr(sl, s_proto);
        int eq = p ? PyObject_RichCompareBool(p, proto, Py_EQ) : -1;
        Py_XDECREF(p);
        if (eq < 0 || (eq && PyList_Append(open, sl) < 0))
            goto out;
    }
    akey = PyTuple_Pack(2, dobj, proto);
    if (akey == NULL)
        goto out;
    alist = PyObject_GetItem(always, akey);
    if (alist == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            goto out;
        PyErr_Clear();
        alist = PyTuple_New(0);
    }
    fal = alist ? PySequence_Fast(alist, "TxDetector.always: tuples expected") : NULL;
    settled = fal ? PyList_New(0) : NULL;
    if (settled == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fal); i++) {
        PyObject *s = PySequence_Fast_GET_ITEM(fal, i);
        int t = sig_ok(s, memo, bucket, reps, pkt);
        if (t < 0 || (t && PyList_Append(settled, s) < 0))
            goto out;
    }
    fixed = PyList_New(3);
    if (fixed == NULL)
        goto out;
    PyList_SET_ITEM(fixed, 0, Py_NewRef(memo));
    PyList_SET_ITEM(fixed, 1, open);
    PyList_SET_ITEM(fixed, 2, settled);
    open = settled = NULL;
    if (PyObject_SetItem(found, key, fixed) < 0)
        Py_CLEAR(fixed);
out:
    Py_XDECREF(settled);
    Py_XDECREF(fal);
    Py_XDECREF(alist);
    Py_XDECREF(akey);
    Py_XDECREF(open);
    Py_XDECREF(fslots);
    Py_XDECREF(slots);
    Py_XDECREF(dobj);
    Py_XDECREF(always);
    Py_XDECREF(slots_by_d);
    return fixed;
}

static PyObject *
candidates(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "candidates(txd, tx, d, memo, pkt, proto): 6 arguments");
        return NULL;
    }
    if (header_ok_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "rules._txdetect.setup() was not called");
        return NULL;
    }
    PyObject *txd = args[0], *tx = args[1], *memo = args[3], *pkt = args[4], *proto = args[5];
    int d = PyObject_IsTrue(args[2]);
    if (d < 0)
        return NULL;
    if (!PyDict_Check(memo)) {
        PyErr_SetString(PyExc_TypeError, "candidates: memo must be a dict");
        return NULL;
    }
    PyObject *found = PyObject_GetAttr(tx, s_found), *bucket = PyObject_GetAttr(txd, s_bucket);
    PyObject *reps = PyObject_GetAttr(txd, s_reps), *prog = PyObject_GetAttr(tx, s_progress);
    PyObject *fixed = NULL, *open = NULL, *settled = NULL, *out = NULL, *result = NULL;
    PyObject *slot = NULL, *pk = NULL, *sid = NULL, *got = NULL, *vals = NULL, *by_pid = NULL;
    int closed = 0;
    if (found == NULL || bucket == NULL || reps == NULL || prog == NULL)
        goto out;
    if (!PyDict_Check(found) || !PyList_Check(prog) || PyList_GET_SIZE(prog) != 2) {
        PyErr_SetString(PyExc_TypeError, "candidates: tx.found a dict and tx.progress a list of 2 expected");
        goto out;
    }
    long long pr[2];
    for (int i = 0; i < 2; i++) {
        pr[i] = PyLong_AsLongLong(PyList_GET_ITEM(prog, i));
        if (pr[i] == -1 && PyErr_Occurred())
            goto out;
    }
    PyObject *key = cands_key[d];
    fixed = PyDict_GetItemWithError(found, key);
    if (fixed == NULL && PyErr_Occurred())
        goto out;
    if (fixed != NULL && !(PyList_CheckExact(fixed) && PyList_GET_SIZE(fixed) == 3)) {
        PyErr_SetString(PyExc_TypeError, "tx.found[(\"cands\", d)]: a list of 3 expected");
        fixed = NULL;
        goto out;
    }
    if (fixed == NULL || PyList_GET_ITEM(fixed, 0) != memo)
        fixed = fresh_fixed(txd, found, key, d, memo, pkt, proto, bucket, reps);
    else
        Py_INCREF(fixed);
    if (fixed == NULL)
        goto out;
    open = Py_NewRef(PyList_GET_ITEM(fixed, 1));
    settled = Py_NewRef(PyList_GET_ITEM(fixed, 2));
    if (!PyList_CheckExact(open) || !PyList_CheckExact(settled)) {
        PyErr_SetString(PyExc_TypeError, "tx.found[(\"cands\", d)]: lists expected");
        goto out;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(open); i++) {
        slot = Py_NewRef(PyList_GET_ITEM(open, i));
        pk = packed_of(slot);
        if (pk == NULL)
            goto out;
        int side = PyObject_IsTrue(PyTuple_GET_ITEM(pk, P_SIDE));
        long long need = side < 0 ? -1 : PyLong_AsLongLong(PyTuple_GET_ITEM(pk, P_PROGRESS));
        if (side < 0 || (need == -1 && PyErr_Occurred()))
            goto out;
        long long p = pr[side];
        if (p < need) {                                            /* not there yet */
            Py_CLEAR(pk);
            Py_CLEAR(slot);
            continue;
        }
        sid = PyLong_FromVoidPtr(slot);                            /* id(slot) */
        if (sid == NULL)
            goto out;
        got = PyDict_GetItemWithError(found, sid);
        if (got == NULL && PyErr_Occurred())
            goto out;
        Py_XINCREF(got);
        int final = got != NULL;
        if (!final) {
            vals = slot_values(pk, tx);
            if (vals == NULL)
                goto out;
            Py_ssize_t nv = PyList_GET_SIZE(vals);
            int grows = PyObject_IsTrue(PyTuple_GET_ITEM(pk, P_GROWS));
            if (grows < 0)
                goto out;
            if (grows) {
                got = nv ? slot_grown(slot, pk, vals, found, sid) : Py_NewRef(empty_set);
            } else {
                got = Py_NewRef(empty_set);
                for (Py_ssize_t k = 0; k < PyList_GET_SIZE(vals); k++) {
                    PyObject *v = PyList_GET_ITEM(vals, k);
                    int t = PyObject_IsTrue(v);
                    if (t < 0)
                        goto out;
                    if (!t)
                        continue;
                    PyObject *hit = slot_scan(slot, pk, v);
                    if (hit == NULL)
                        goto out;
                    int h = PyObject_IsTrue(hit);
                    int g = h > 0 ? PyObject_IsTrue(got) : 0;
                    if (h < 0 || g < 0) {
                        Py_DECREF(hit);
                        goto out;
                    }
                    if (h) {
                        PyObject *u = g ? PyNumber_Or(got, hit) : Py_NewRef(hit);
                        Py_DECREF(hit);
                        Py_SETREF(got, u);
                        if (got == NULL)
                            goto out;
                    } else {
                        Py_DECREF(hit);
                    }
                }
            }
            if (got == NULL)
                goto out;
            int body = PyObject_IsTrue(PyTuple_GET_ITEM(pk, P_BODY));
            if (body < 0)
                goto out;
            if (p >= done_level || (!body && (nv || p > need))) {
                if (PyDict_SetItem(found, sid, got) < 0)
                    goto out;
                final = 1;
            }
            Py_CLEAR(vals);
        }
        PyObject *dest;
        if (final) {                                               /* its rules join the settled ones */
            closed = 1;
            dest = settled;
        } else {
            if (out == NULL && (out = PyList_New(0)) == NULL)
                goto out;
            dest = out;
        }
        by_pid = Py_NewRef(PyTuple_GET_ITEM(pk, P_BY_PID));
        if (add_rules(dest, got, by_pid, memo, bucket, reps, pkt) < 0)
            goto out;
        Py_CLEAR(by_pid);
        Py_CLEAR(got);
        Py_CLEAR(sid);
        Py_CLEAR(pk);
        Py_CLEAR(slot);
    }
    if (closed) {
        PyObject *still = PyList_New(0);
        if (still == NULL)
            goto out;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(open); i++) {
            PyObject *sl = PyList_GET_ITEM(open, i);
            PyObject *k = PyLong_FromVoidPtr(sl);
            int in = k ? PyDict_Contains(found, k) : -1;
            Py_XDECREF(k);
            if (in < 0 || (!in && PyList_Append(still, sl) < 0)) {
                Py_DECREF(still);
                goto out;
            }
        }
        if (PyList_SetItem(fixed, 1, still) < 0)                   /* (steals still) */
            goto out;
        if (PyList_GET_SIZE(settled) > 1 && sort_by_order(settled) < 0)
            goto out;
    }
    if (out == NULL || PyList_GET_SIZE(out) == 0) {
        result = Py_NewRef(settled);
        goto out;
    }
    if (PyList_SetSlice(out, PyList_GET_SIZE(out), PyList_GET_SIZE(out), settled) < 0)
        goto out;
    if (PyList_GET_SIZE(out) > 1 && sort_by_order(out) < 0)
        goto out;
    result = Py_NewRef(out);
out:
    Py_XDECREF(by_pid);
    Py_XDECREF(vals);
    Py_XDECREF(got);
    Py_XDECREF(sid);
    Py_XDECREF(pk);
    Py_XDECREF(slot);
    Py_XDECREF(out);
    Py_XDECREF(settled);
    Py_XDECREF(open);
    Py_XDECREF(fixed);
    Py_XDECREF(prog);
    Py_XDECREF(reps);
    Py_XDECREF(bucket);
    Py_XDECREF(found);
    return result;
}

static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyObject *hok, *okey, *empty;
    long long done;
    Py_ssize_t vmax, smax;
    if (!PyArg_ParseTuple(args, "OOOLnn", &hok, &okey, &empty, &done, &vmax, &smax))
        return NULL;
    Py_XSETREF(header_ok_fn, Py_NewRef(hok));
    Py_XSETREF(empty_set, Py_NewRef(empty));
    done_level = done;
    seen_value_max = vmax;
    seen_max = smax;
    Py_XSETREF(kw_key, Py_BuildValue("{s:O}", "key", okey));
    if (kw_key == NULL)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"candidates", (PyCFunction)(void (*)(void))candidates, METH_FASTCALL,
     "candidates(txd, tx, d, memo, pkt, proto) -> list: TxDetector._candidates_py's answer, with "
     "its effects on tx.found and the memo."},
    {"setup", setup, METH_VARARGS,
     "setup(header_ok, order_key, empty, done, seen_value_max, seen_max): what candidates() "
     "takes from rules.detect and rules.detect_tx."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "rules._txdetect",
    "The transaction detector's candidate selection (rules/detect_tx.py TxDetector._candidates).",
    -1, methods,
};

#define STR(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC
PyInit__txdetect(void)
{
    STR(s_found, "found");
    STR(s_progress, "progress");
    STR(s_slots, "slots");
    STR(s_always, "always");
    STR(s_bucket, "bucket");
    STR(s_reps, "reps");
    STR(s_proto, "proto");
    STR(s_scan, "scan");
    STR(s_order, "order");
    STR(s_sort, "sort");
    STR(s_packed, "packed");
    STR(s_placed, "placed");
    if ((s_zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    for (int d = 0; d < 2; d++)
        if ((cands_key[d] = Py_BuildValue("(sO)", "cands", d ? Py_True : Py_False)) == NULL)
            return NULL;
    return PyModule_Create(&module_def);
}
