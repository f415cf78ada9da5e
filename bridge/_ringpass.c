/* bridge._ringpass: the worker's walk over an RX ring, compiled.
 *
 * ring_pass(rx, tx, inspect, meta, forward, hit, pidx, csum_mask, csum_hint, skip_hint,
 *           install, hit_pass, tables, events, max_frames)
 *   -> (stop, received, outgoing, inspected, bypassed, errors, last_ts, off, hdr, kind, value)
 *
 * Walks the ready slots of `rx` (a bridge.ring.V2Ring) from rx.head, at most max_frames of
 * them, and for each frame does what bridge.worker.Worker.drain does for the common one:
 * a PACKET_OUTGOING frame is skipped; otherwise `hit(pidx, view, mac, end, 0, ts)` when
 * `hit` is not None (the fast path; not asked about an IPv4 frame whose protocol's table in
 * `tables`, the port's (tcp, udp, icmp) dicts, is empty: `hit` answers MISS there; nor about
 * an IPv4 TCP or UDP frame or ICMP echo the walk answers itself, tcp_entry, udp_entry and
 * icmp_entry below; `hit_pass`, its FORWARD, forwards the frame with no inspection and
 * counts it in `bypassed`; any other truthy answer stops the walk), then meta.ts and
 * meta.checksum are set and `inspect(view[mac:end], meta)` is called (no call when
 * `inspect` is None: ForwardAll), and when it answers `forward` (the shared clean-frame
 * Result), or any Result that only forwards (verdict FORWARD, no inject, no frame, and no
 * bypass when `install` is not None -- a fast path to take the flow; its events, alerts,
 * appended to the list `events`, or dropped when it is None: EVE is off), the frame is
 * copied into the next slot of `tx` (a bridge.ring.TxRing; None: IDS,
 * nothing is forwarded) and its RX slot goes back to the kernel.  Everything else stops
 * the walk at that frame, which stays at rx.head, not handed back, for the Python path to
 * finish (bridge.worker.Worker._frame):
 *
 *   stop 0  no more ready frames (or max_frames done)
 *   stop 1  the frame at rx.head needs Python; `kind` says how far it got:
 *           0 RARE    nothing done (a status bit that needs work: checksum to fill, VLAN
 *                     tag; a frame cut by the ring)
 *           1 HIT     counted as received; `value` is the fast path's verdict
 *           2 RESULT  counted, inspected; `value` is the Result (not `forward`)
 *           3 TXFULL  counted, inspected, clean: the TX head slot is not free (or the frame
 *                     does not fit one): TxRing's slow path waits for it
 *           4 FAILED  counted; `hit` raised: the Python path drops it as "internal"
 *   stop 2  tx.queued reached tx.batch after a frame: flush, then call again
 *
 * An ICMP echo whose entry lets it go before it is inspected (rules.api.Bypass.late, kept
 * as e[8]; entry_answer's ENTRY_LATE) is forwarded as above and queued, (pidx, its bytes,
 * ts, checksum hint), on the FastPath's `late` list when it has one (the worker's, with
 * `run_late`, which inspects the queue); whenever that list holds frames, `run_late(events)`
 * is called before `hit` or `inspect` is asked about the next frame, so the inspector sees
 * frames in the order they came.
 *
 * rx.head, tx.head, tx.queued and tx.qbytes are written back on every return, an
 * exception included (the frames before the one being worked on are done).  An Exception
 * raised by `inspect` is counted in `errors` and the frame forwarded, as the Python path
 * does; a BaseException (KeyboardInterrupt, SystemExit) propagates with the frame left at
 * rx.head.  Slots are read status word first (acquire) and handed over status word last
 * (release), as bridge/ring.py's rules say.  `hdr` is the stopping frame's V2 header tuple
 * (status, tp_len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid), `off` its slot
 * offset; `last_ts` the time of the last frame received (-1.0: none).
 *
 * Built by the install (pyproject.toml ext-modules); without it the worker walks the ring
 * in Python (bridge.worker: `_c_ring_pass` None) with the same results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <sys/socket.h>
#include <poll.h>
#include "../rules/_scan.h"      /* compiled_scan: a scan offer's databases, shared with rules/_hotpath.c */

#define TP_STATUS_USER 0x1u
#define TP_STATUS_SEND_REQUEST 0x1u
#define TP_STATUS_CSUMNOTREADY 0x8u
#define TP_STATUS_VLAN_VALID 0x10u
#define PACKET_OUTGOING 4

enum { STOP_END = 0, STOP_FRAME = 1, STOP_FLUSH = 2 };
enum { K_RARE = 0, K_HIT = 1, K_RESULT = 2, K_TXFULL = 3, K_FAILED = 4 };

static PyObject *s_facts, *s_head, *s_queued, *s_qbytes, *s_batch,
    *s_ts, *s_checksum, *s_verdict, *s_events, *s_inject, *s_frame, *s_bypass, *s_extend;

static inline uint32_t
load_acquire(const unsigned char *p)
{
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}

static inline void
store_release(unsigned char *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE);
}

static inline uint32_t
rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint16_t
rd16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* `attr` of a Result is falsy (1), truthy (0); 0 on any error (cleared): not clean */
static int
falsy_attr(PyObject *res, PyObject *attr)
{
    PyObject *v = PyObject_GetAttr(res, attr);
    if (v == NULL) {
        PyErr_Clear();
        return 0;
    }
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (t < 0) {
        PyErr_Clear();
        return 0;
    }
    return !t;
}

/* A Result that forwards the frame as it came: verdict FORWARD, nothing to inject, no frame
 * to forward instead, and, when a fast path could take the flow (`bypass_matters`), no
 * bypass.  Its events (alerts) are appended to `events` (NULL: EVE is off), as
 * Worker._frame adds them.  1 taken, 0 not (the Python path finishes it), -1 an error. */
static int
take_forwarding(PyObject *res, int bypass_matters, PyObject *events)
{
    if (!(falsy_attr(res, s_verdict) && falsy_attr(res, s_inject) && falsy_attr(res, s_frame)))
        return 0;
    if (bypass_matters) {
        PyObject *b = PyObject_GetAttr(res, s_bypass);
        if (b == NULL) {
            PyErr_Clear();
            return 0;
        }
        int none = b == Py_None;
        Py_DECREF(b);
        if (!none)
            return 0;
    }
    if (events == NULL)
        return 1;
    PyObject *ev = PyObject_GetAttr(res, s_events);
    if (ev == NULL) {
        PyErr_Clear();
        return 0;
    }
    int t = PyObject_IsTrue(ev);
    if (t > 0) {
        PyObject *r = PyObject_CallMethodOneArg(events, s_extend, ev);
        t = r == NULL ? -1 : 1;
        Py_XDECREF(r);
    }
    Py_DECREF(ev);
    return t < 0 ? -1 : 1;
}

/* ------------------------------------------------------------------ UDP and ICMP echo fast-path entries
 * bridge.fastpath keys an untagged, unfragmented IPv4 UDP frame (IHL 5) by its 12 bytes of
 * addresses and ports (an ICMP echo by its addresses and types); an entry is a list
 * [action, frames, bytes, last seen, flow, scan, hits in a row, compiled scan].
 * FastPath.hit's answer for the two actions that only forward is worked out here, with the
 * same counts: FORWARD (a decided pass flow) and SCAN (a prefiltered direction) when the
 * scan finds nothing; and a direction backing off hands its frame to the engine here, as
 * hit() would, when no count waits to be pushed.  Everything else (a hit, a count to push,
 * a bad UDP length or echo code, no compiled scan) is left to hit(). */
#define ENTRY_FORWARD 1     /* bridge.fastpath.FORWARD */
#define ENTRY_SCAN 3        /* bridge.fastpath.SCAN */

static PyObject *s_one;

/* e[i] += by (an int) */
static int
list_add(PyObject *e, Py_ssize_t i, PyObject *by)
{
    PyObject *v = PyNumber_Add(PyList_GET_ITEM(e, i), by);
    if (v == NULL)
        return -1;
    PyList_SET_ITEM(e, i, v);           /* (the old value's reference goes with it) */
    return 0;
}

/* the entry's counts, as FastPath.hit keeps them: frames, bytes, last seen */
static int
count_entry(PyObject *e, Py_ssize_t flen, PyObject *tsobj)
{
    PyObject *n = PyLong_FromSsize_t(flen);
    if (n == NULL)
        return -1;
    int bad = list_add(e, 1, s_one) < 0 || list_add(e, 2, n) < 0;
    Py_DECREF(n);
    if (bad)
        return -1;
    PyObject *old = PyList_GET_ITEM(e, 3);
    PyList_SET_ITEM(e, 3, Py_NewRef(tsobj));
    Py_DECREF(old);
    return 0;
}

static int entry_answer(PyObject *e, const unsigned char *payload, Py_ssize_t plen, int len_ok, Py_ssize_t flen,
                        PyObject *tsobj, PyObject *fp, int can_defer);
static int attr_add(PyObject *obj, PyObject *name, Py_ssize_t by);
static PyObject *s_scan_backoff, *s_scan_hits, *s_scan_late, *s_late, *s_run_late;

/* bridge.fastpath's SCAN_STREAK and SCAN_BACKOFF (the module exports these; a test compares) */
#define SCAN_STREAK 8
#define SCAN_BACKOFF 256
#define ENTRY_LATE 3        /* entry_answer: forward it now, inspect it later */

/* The entry under the 12-byte key k in a port's table: 1 (*e borrowed), 2 none (hit()
 * answers MISS), 0 ask hit() (an error, cleared). */
static int
table_entry(PyObject *tab, const unsigned char *k, PyObject **e)
{
    PyObject *key = PyBytes_FromStringAndSize((const char *)k, 12);
    if (key == NULL) {
        PyErr_Clear();
        return 0;
    }
    *e = PyDict_GetItemWithError(tab, key);
    Py_DECREF(key);
    if (*e == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        return 2;
    }
    return 1;
}

/* An IPv4 UDP frame f[0:flen] (ethertype IPv4 checked by the caller) against the port's UDP
 * table: 1 forward it (the entry counted it, as hit() would have), 2 no entry can hold it
 * (hit() answers MISS), 0 ask hit(). */
static int
udp_entry(const unsigned char *f, Py_ssize_t flen, PyObject *tab, PyObject *tsobj, PyObject *fp)
{
    if (flen < 48 || f[14] != 0x45)
        return 0;                                   /* short, or IP options: hit()'s own parse */
    Py_ssize_t ip_len = (Py_ssize_t)f[16] << 8 | f[17];
    if (ip_len > flen - 14 || (f[20] & 0x3F) || f[21])
        return 0;                                   /* cut, or a fragment */
    if (ip_len < 28)
        return 0;
    PyObject *e;
    int found = table_entry(tab, f + 26, &e);
    if (found != 1)
        return found;
    const unsigned char *u = f + 34;
    Py_ssize_t ulen = (Py_ssize_t)u[4] << 8 | u[5];
    /* (a length the engine does not decode quietly: hit() hands it over) */
    return entry_answer(e, u + 8, ulen - 8, ulen >= 8 && 20 + ulen <= ip_len, flen, tsobj, fp, 0);
}

/* An IPv4 TCP frame f[0:flen] (ethertype IPv4 checked by the caller) against the port's TCP
 * table, as FastPath.hit answers it: 2 no entry can hold it (MISS: the engine inspects it);
 * 1 a decided pass flow's frame, counted; 0 ask hit() (a SYN, FIN or RST of a flow there,
 * which hit() takes out of the fast path; a drop flow's frame, whose drop hit() and the
 * Python path record; IP options, a fragment, anything short). */
static int
tcp_entry(const unsigned char *f, Py_ssize_t flen, PyObject *tab, PyObject *tsobj)
{
    if (flen < 48 || f[14] != 0x45)
        return 0;
    Py_ssize_t ip_len = (Py_ssize_t)f[16] << 8 | f[17];
    if (ip_len > flen - 14 || (f[20] & 0x3F) || f[21] || ip_len < 40)
        return 0;
    PyObject *e;
    int found = table_entry(tab, f + 26, &e);
    if (found != 1)
        return found;
    if ((f[47] & 0x07) || !PyList_CheckExact(e) || PyList_GET_SIZE(e) < 5)
        return 0;                                   /* (0x07: FIN, SYN, RST) */
    long action = PyLong_AsLong(PyList_GET_ITEM(e, 0));
    if (action != ENTRY_FORWARD || count_entry(e, flen, tsobj) < 0) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* An IPv4 ICMP frame f[0:flen] against the port's ICMP table, as udp_entry: an echo request
 * or reply (IHL 5, unfragmented) is keyed by its addresses and the "ports" 0, type, 0,
 * counterpart (bridge.fastpath.icmp_echo_ports); a prefiltered direction's scan takes only
 * code 0, the payload running to the IP packet's end.  can_defer: ENTRY_LATE may be
 * answered (entry_answer). */
static int
icmp_entry(const unsigned char *f, Py_ssize_t flen, PyObject *tab, PyObject *tsobj, PyObject *fp, int can_defer)
{
    if (flen < 42 || f[14] != 0x45)
        return 0;
    Py_ssize_t ip_len = (Py_ssize_t)f[16] << 8 | f[17];
    if (ip_len > flen - 14 || (f[20] & 0x3F) || f[21] || ip_len < 28)
        return 0;
    unsigned char itype = f[34];
    if (itype != 0 && itype != 8)
        return 2;                                   /* not an echo: no entry (hit() answers MISS) */
    unsigned char k[12];
    memcpy(k, f + 26, 8);
    k[8] = 0;
    k[9] = itype;
    k[10] = 0;
    k[11] = itype ^ 8;
    PyObject *e;
    int found = table_entry(tab, k, &e);
    if (found != 1)
        return found;
    return entry_answer(e, f + 42, ip_len - 28, f[35] == 0, flen, tsobj, fp, can_defer);
}

/* e[8] (rules.api.Bypass.late as the fast path keeps it) for payload[0:plen]: 1 the frame
 * may be forwarded before it is inspected (None: any frame; a compiled scan: one it finds
 * nothing in), else 0 (False; a pattern of a rule that could drop it; an error, cleared) */
static int
late_ok(PyObject *e, const unsigned char *payload, Py_ssize_t plen)
{
    if (PyList_GET_SIZE(e) < 9)
        return 0;
    PyObject *late = PyList_GET_ITEM(e, 8);
    if (late == Py_None)
        return 1;
    if (late == Py_False)
        return 0;
    return plen <= 0 || compiled_scan(late, payload, plen) == 0;
}

/* e[6] = v */
static int
set_streak(PyObject *e, long v)
{
    PyObject *n = PyLong_FromLong(v);
    if (n == NULL)
        return -1;
    PyObject *old = PyList_GET_ITEM(e, 6);
    PyList_SET_ITEM(e, 6, n);
    Py_DECREF(old);
    return 0;
}

/* A UDP or ICMP entry's answer (udp_entry, icmp_entry) for a frame of flen bytes whose
 * payload is payload[0:plen]; len_ok 0: a frame a prefiltered direction's scan does not
 * take (hit() hands it over).  1 forward it, counted; 2 to the engine without asking
 * hit() (a direction backing off, SCAN_BACKOFF, with no count waiting to be pushed: the
 * streak and `fp`'s scan_backoff counted as hit() counts them; fp NULL: hit() does it);
 * ENTRY_LATE (only when can_defer, fp set and no count waits to be pushed) forward it now
 * and queue it for inspection: a frame the scan found something in, or one while backing
 * off, that late_ok allows, counted as hit() would count it plus `fp`'s scan_late;
 * 0 ask hit(). */
static int
entry_answer(PyObject *e, const unsigned char *payload, Py_ssize_t plen, int len_ok, Py_ssize_t flen,
             PyObject *tsobj, PyObject *fp, int can_defer)
{
    if (!PyList_CheckExact(e) || PyList_GET_SIZE(e) < 5)
        return 0;
    long action = PyLong_AsLong(PyList_GET_ITEM(e, 0));
    if (action == ENTRY_FORWARD) {
        if (count_entry(e, flen, tsobj) < 0) {
            PyErr_Clear();
            return 0;
        }
        return 1;
    }
    if (action != ENTRY_SCAN || PyList_GET_SIZE(e) < 8) {
        PyErr_Clear();
        return 0;
    }
    if (!len_ok)
        return 0;
    long streak = PyLong_AsLong(PyList_GET_ITEM(e, 6));
    PyObject *spec = PyList_GET_ITEM(e, 7);
    if (streak < 0 && fp != NULL && !PyErr_Occurred()) {
        long pending = PyLong_AsLong(PyList_GET_ITEM(e, 1));
        if (pending != 0) {
            PyErr_Clear();
            return 0;
        }
        int late = can_defer && late_ok(e, payload, plen);
        if (set_streak(e, streak + 1) == 0 && attr_add(fp, s_scan_backoff, 1) == 0 &&
            (!late || attr_add(fp, s_scan_late, 1) == 0))
            return late ? ENTRY_LATE : 2;
        PyErr_Clear();
        return 0;
    }
    if (streak < 0 || spec == Py_None) {
        PyErr_Clear();
        return 0;                                   /* backing off, or no compiled scan */
    }
    if (PyList_GET_ITEM(e, 5) != Py_None && plen > 0) {
        int found = compiled_scan(spec, payload, plen);
        if (found == 0)
            goto nothing;
        if (found > 0 && can_defer && fp != NULL && PyLong_AsLong(PyList_GET_ITEM(e, 1)) == 0 &&
            late_ok(e, payload, plen)) {
            /* counted as hit() counts a hit (scan_hits, the streak: SCAN_STREAK in a row, then
             * SCAN_BACKOFF frames unscanned) */
            if (set_streak(e, streak + 1 >= SCAN_STREAK ? -SCAN_BACKOFF : streak + 1) == 0 &&
                attr_add(fp, s_scan_hits, 1) == 0 && attr_add(fp, s_scan_late, 1) == 0)
                return ENTRY_LATE;
        }
        PyErr_Clear();
        return 0;                                   /* something there: hit() scans and hands it over */
    }
nothing:
    if (count_entry(e, flen, tsobj) < 0) {
        PyErr_Clear();
        return 0;
    }
    if (streak != 0) {
        PyObject *old = PyList_GET_ITEM(e, 6);
        PyList_SET_ITEM(e, 6, Py_NewRef(scan_zero));
        Py_DECREF(old);
    }
    return 1;
}

/* an int attribute of obj, -1 with an exception set on failure */
static Py_ssize_t
int_attr(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    Py_ssize_t r = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    if (r < 0 && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "ring_pass: negative %U", name);
    return r;
}

static int
set_int_attr(PyObject *obj, PyObject *name, Py_ssize_t v)
{
    PyObject *o = PyLong_FromSsize_t(v);
    if (o == NULL)
        return -1;
    int r = PyObject_SetAttr(obj, name, o);
    Py_DECREF(o);
    return r;
}

/* offsets[i], or -1 with ValueError when the slot (room bytes from it) is outside the buffer */
static inline Py_ssize_t
slot_at(PyObject *lst, Py_ssize_t i, Py_ssize_t room, Py_ssize_t len)
{
    Py_ssize_t o = PyLong_AsSsize_t(PyList_GET_ITEM(lst, i));
    if (o < 0 || o > len - room) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "ring_pass: a slot lies outside its ring");
        return -1;
    }
    return o;
}

/* ring.facts: (view, offsets, n1[, n2, n3]) -- a ring's buffer, its non-empty list of slot
 * offsets and `size` - 2 non-negative ints (V2Ring: PKTTYPE; TxRing: batch, capacity, DATA).
 * New references to the view and the list; -1 with an exception set. */
static int
ring_facts(PyObject *ring, Py_ssize_t size, PyObject **view, PyObject **offs, Py_ssize_t *a, Py_ssize_t *b,
           Py_ssize_t *c)
{
    PyObject *f = PyObject_GetAttr(ring, s_facts);
    if (f == NULL)
        return -1;
    if (!PyTuple_CheckExact(f) || PyTuple_GET_SIZE(f) != size || !PyList_CheckExact(PyTuple_GET_ITEM(f, 1)) ||
        PyList_GET_SIZE(PyTuple_GET_ITEM(f, 1)) == 0) {
        Py_DECREF(f);
        PyErr_Format(PyExc_TypeError, "ring_pass: a ring's facts must be (view, offsets, %zd ints)", size - 2);
        return -1;
    }
    Py_ssize_t *outs[3] = {a, b, c};
    for (Py_ssize_t i = 2; i < size; i++) {
        Py_ssize_t v = PyLong_AsSsize_t(PyTuple_GET_ITEM(f, i));
        if (v < 0) {
            Py_DECREF(f);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "ring_pass: a negative ring fact");
            return -1;
        }
        *outs[i - 2] = v;
    }
    *view = PyTuple_GET_ITEM(f, 0);
    *offs = PyTuple_GET_ITEM(f, 1);
    Py_INCREF(*view);
    Py_INCREF(*offs);
    Py_DECREF(f);
    return 0;
}

/* ring_pass's send at the end of a walk that emptied the RX ring (drain_walk's: see there) */
struct early_send {
    int done;                          /* send() was called: its answer is n, code */
    ssize_t n;
    int code;
};
static PyObject *s_fd;

/* A TX ring's tx.fd in *fd (-1: no kernel socket): 0, or -1 with an exception set */
static int
tx_fd(PyObject *tx, long *fd)
{
    PyObject *fdo = PyObject_GetAttr(tx, s_fd);
    *fd = fdo == NULL ? -1 : PyLong_AsLong(fdo);
    Py_XDECREF(fdo);
    return fdo == NULL || (*fd == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* The send() that hands a TX ring's queued frames to the kernel: its answer, and in *code
 * its errno when it failed (0 when it did not) */
static ssize_t
tx_kick(long fd, int *code)
{
    ssize_t n;
    do {
        n = send((int)fd, "", 0, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    *code = n < 0 ? (errno ? errno : EIO) : 0;
    return n;
}

static PyObject *ring_pass_impl(PyObject *const *args, Py_ssize_t nargs, struct early_send *es);

static PyObject *
ring_pass(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return ring_pass_impl(args, nargs, NULL);
}

/* ring_pass; with `es`, a walk that ends with the RX ring empty and frames queued on a TX
 * ring with a kernel socket sends them before anything is written back (es->done and the
 * answer set; drain_walk counts it): on the path of a frame that woke the worker, every
 * Python object read before the send is a few cache misses after a sleep */
static PyObject *
ring_pass_impl(PyObject *const *args, Py_ssize_t nargs, struct early_send *es)
{
    if (nargs != 15) {
        PyErr_SetString(PyExc_TypeError, "ring_pass(rx, tx, inspect, meta, forward, hit, pidx, csum_mask, "
                                         "csum_hint, skip_hint, install, hit_pass, tables, events, max_frames)");
        return NULL;
    }
    PyObject *rx = args[0], *tx = args[1], *inspect = args[2], *meta = args[3], *forward = args[4],
             *hit = args[5], *pidx = args[6];
    long csum_mask = PyLong_AsLong(args[7]);
    PyObject *csum_hint = args[8], *skip_hint = args[9];
    int bypass_matters = args[10] != Py_None;     /* a fast path to install a Result's bypass in */
    long hit_pass = PyLong_AsLong(args[11]);      /* the fast path's FORWARD verdict */
    /* the fast path's TCP, UDP and ICMP tables of this port (None: ask `hit` every time) */
    PyObject *t_tcp = NULL, *t_udp = NULL, *t_icmp = NULL;
    if (args[12] != Py_None) {
        if (!PyTuple_CheckExact(args[12]) || PyTuple_GET_SIZE(args[12]) != 3 ||
            !PyDict_CheckExact(PyTuple_GET_ITEM(args[12], 0)) || !PyDict_CheckExact(PyTuple_GET_ITEM(args[12], 1)) ||
            !PyDict_CheckExact(PyTuple_GET_ITEM(args[12], 2))) {
            PyErr_SetString(PyExc_TypeError, "ring_pass: tables must be a tuple of three dicts or None");
            return NULL;
        }
        t_tcp = PyTuple_GET_ITEM(args[12], 0);
        t_udp = PyTuple_GET_ITEM(args[12], 1);
        t_icmp = PyTuple_GET_ITEM(args[12], 2);
    }
    PyObject *events = args[13];                  /* the drain's EVE events (None: EVE off) */
    if (events == Py_None)
        events = NULL;
    else if (!PyList_CheckExact(events)) {
        PyErr_SetString(PyExc_TypeError, "ring_pass: events must be a list or None");
        return NULL;
    }
    Py_ssize_t max_frames = PyLong_AsSsize_t(args[14]);
    if (PyErr_Occurred())
        return NULL;
    if (tx == Py_None)
        tx = NULL;
    if (inspect == Py_None)
        inspect = NULL;
    if (hit == Py_None)
        hit = NULL;

    Py_buffer rb, tb;
    PyObject *rx_offs = NULL, *tx_offs = NULL, *rx_view = NULL, *out = NULL, *late = NULL, *run_late = NULL;
    int have_tb = 0;
    /* a ring's fixed facts in one tuple (bridge.ring: V2Ring.facts, TxRing.facts), read with
     * one attribute lookup: after a sleep each lookup is a few cache misses on the path of
     * the frame that woke the worker; only the heads and the TX queue are read one by one */
    Py_ssize_t pkttype_at = -1, tx_batch = 1, tx_cap = 0, tx_data = 0;
    if (ring_facts(rx, 3, &rx_view, &rx_offs, &pkttype_at, NULL, NULL) < 0)
        return NULL;
    if (PyObject_GetBuffer(rx_view, &rb, PyBUF_WRITABLE) < 0) {
        Py_DECREF(rx_view);
        Py_DECREF(rx_offs);
        return NULL;
    }
    Py_ssize_t rx_head = int_attr(rx, s_head);
    Py_ssize_t tx_head = 0, tx_q = 0, tx_qb = 0, tx_n = 0;
    if (rx_head < 0)
        goto done_noframes;
    Py_ssize_t rx_n = PyList_GET_SIZE(rx_offs);
    if (rx_head >= rx_n) {
        PyErr_SetString(PyExc_ValueError, "ring_pass: rx.head past the ring");
        goto done_noframes;
    }
    if (tx != NULL) {
        PyObject *tx_view = NULL;
        if (ring_facts(tx, 5, &tx_view, &tx_offs, &tx_batch, &tx_cap, &tx_data) < 0)
            goto done_noframes;
        int got = PyObject_GetBuffer(tx_view, &tb, PyBUF_WRITABLE);
        Py_DECREF(tx_view);
        if (got < 0)
            goto done_noframes;
        have_tb = 1;
        tx_head = int_attr(tx, s_head);
        tx_q = int_attr(tx, s_queued);
        tx_qb = int_attr(tx, s_qbytes);
        if (tx_head < 0 || tx_q < 0 || tx_qb < 0)
            goto done_noframes;
        tx_n = PyList_GET_SIZE(tx_offs);
        if (tx_head >= tx_n) {
            PyErr_SetString(PyExc_ValueError, "ring_pass: tx.head past the ring");
            goto done_noframes;
        }
    }

    /* the FastPath (install is its bound method; hit may be wrapped), and its queue of frames
     * forwarded before inspection (bridge.fastpath.FastPath.late; None: none are) with the
     * call that inspects them */
    PyObject *fp = PyMethod_Check(args[10]) ? PyMethod_GET_SELF(args[10]) : NULL;
    if (fp != NULL && inspect != NULL) {
        late = PyObject_GetAttr(fp, s_late);
        if (late != NULL && PyList_CheckExact(late))
            run_late = PyObject_GetAttr(fp, s_run_late);
        if (run_late == NULL || run_late == Py_None) {
            Py_CLEAR(late);
            Py_CLEAR(run_late);
        }
        if (PyErr_Occurred())
            goto done_noframes;
    }
    unsigned char *r = (unsigned char *)rb.buf;
    unsigned char *t = have_tb ? (unsigned char *)tb.buf : NULL;
    Py_ssize_t received = 0, outgoing = 0, inspected = 0, errors = 0, bypassed = 0;
    double last_ts = -1.0;
    int stop = STOP_END, kind = K_RARE;
    Py_ssize_t stop_off = 0;
    PyObject *value = NULL;            /* owned: the verdict or Result handed back */
    int failed = 0;                    /* a BaseException to propagate */
    const uint32_t rare = TP_STATUS_CSUMNOTREADY | TP_STATUS_VLAN_VALID;

    for (Py_ssize_t k = 0; k < max_frames; k++) {
        Py_ssize_t off = slot_at(rx_offs, rx_head, (pkttype_at > 28 ? pkttype_at + 1 : 28), rb.len);
        if (off < 0) {
            failed = 1;
            break;
        }
        unsigned char *h = r + off;
        uint32_t status = load_acquire(h);
        if (!(status & TP_STATUS_USER))
            break;
        uint32_t tp_len = rd32(h + 4), snaplen = rd32(h + 8);
        Py_ssize_t mac = off + rd16(h + 12);
        Py_ssize_t end = mac + snaplen;
        if (h[pkttype_at] == PACKET_OUTGOING) {
            outgoing++;
            store_release(h, 0);
            if (++rx_head == rx_n)
                rx_head = 0;
            continue;
        }
        if ((status & rare) || snaplen < tp_len || end > rb.len) {
            stop = STOP_FRAME;
            kind = K_RARE;
            stop_off = off;
            break;
        }
        received++;
        double ts = (double)rd32(h + 16) + (double)rd32(h + 20) * 1e-9;
        last_ts = ts;
        PyObject *tsobj = PyFloat_FromDouble(ts);
        if (tsobj == NULL) {
            failed = 1;
            received--;
            break;
        }
        int ask = hit != NULL;
        if (ask && t_tcp != NULL && snaplen >= 24 && r[mac + 12] == 0x08 && r[mac + 13] == 0x00) {
            unsigned char p = r[mac + 23];           /* IPv4: its protocol; that table empty: a MISS */
            PyObject *tab = p == 6 ? t_tcp : p == 17 ? t_udp : p == 1 ? t_icmp : NULL;
            if (tab != NULL && PyDict_GET_SIZE(tab) == 0)
                ask = 0;
            else if (tab != NULL) {
                int u = p == 6 ? tcp_entry(r + mac, end - mac, tab, tsobj)
                        : p == 17 ? udp_entry(r + mac, end - mac, tab, tsobj, fp)
                                  : icmp_entry(r + mac, end - mac, tab, tsobj, fp, late != NULL);
                if (u == 1) {                        /* a pass flow's, or a prefiltered one's with nothing in it */
                    Py_DECREF(tsobj);
                    bypassed++;
                    goto forward_frame;
                }
                if (u == ENTRY_LATE) {
                    /* out now; (port, frame, ts, checksum hint) queued for run_late */
                    PyObject *fb = PyBytes_FromStringAndSize((const char *)r + mac, end - mac);
                    PyObject *item = fb == NULL ? NULL : PyTuple_Pack(4, pidx, fb, tsobj,
                                                                      ((long)status & csum_mask) ? skip_hint : csum_hint);
                    Py_XDECREF(fb);
                    Py_DECREF(tsobj);
                    int bad = item == NULL || PyList_Append(late, item) < 0;
                    Py_XDECREF(item);
                    if (bad) {
                        failed = 1;
                        received--;
                        break;
                    }
                    goto forward_frame;
                }
                if (u == 2)
                    ask = 0;
            }
        }
        if (late != NULL && PyList_GET_SIZE(late) > 0) {
            /* frames forwarded before inspection are inspected before anything else is asked */
            PyObject *ok = PyObject_CallOneArg(run_late, events != NULL ? events : Py_None);
            if (ok == NULL) {
                Py_DECREF(tsobj);
                failed = 1;
                received--;
                break;
            }
            Py_DECREF(ok);
        }
        if (ask) {
            PyObject *a[6];
            a[0] = pidx;
            a[1] = rx_view;
            a[2] = PyLong_FromSsize_t(mac);
            a[3] = PyLong_FromSsize_t(end);
            a[4] = PyLong_FromLong(0);
            a[5] = tsobj;
            PyObject *v = (a[2] && a[3] && a[4]) ? PyObject_Vectorcall(hit, a, 6, NULL) : NULL;
            Py_XDECREF(a[2]);
            Py_XDECREF(a[3]);
            Py_XDECREF(a[4]);
            if (v == NULL) {
                Py_DECREF(tsobj);
                if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                    failed = 1;
                    received--;
                    break;
                }
                PyErr_Clear();
                stop = STOP_FRAME;
                kind = K_FAILED;
                stop_off = off;
                break;
            }
            long verdict = PyLong_Check(v) ? PyLong_AsLong(v) : -1;
            if (verdict == -1 && PyErr_Occurred())
                PyErr_Clear();
            int truth = PyObject_IsTrue(v);
            if (truth > 0 && verdict == hit_pass) {
                Py_DECREF(v);          /* a decided flow's frame to forward: no inspection */
                Py_DECREF(tsobj);
                bypassed++;
                goto forward_frame;
            }
            if (truth != 0) {          /* another verdict (or an error deciding): the Python path */
                Py_DECREF(tsobj);
                if (truth < 0) {
                    PyErr_Clear();
                    Py_DECREF(v);
                    stop = STOP_FRAME;
                    kind = K_FAILED;
                    stop_off = off;
                    break;
                }
                value = v;
                stop = STOP_FRAME;
                kind = K_HIT;
                stop_off = off;
                break;
            }
            Py_DECREF(v);
        }
        if (inspect != NULL) {
            int err = PyObject_SetAttr(meta, s_ts, tsobj);
            Py_DECREF(tsobj);
            if (err == 0)
                err = PyObject_SetAttr(meta, s_checksum, ((long)status & csum_mask) ? skip_hint : csum_hint);
            PyObject *res = NULL;
            if (err == 0) {
                PyObject *lo = PyLong_FromSsize_t(mac), *hi = PyLong_FromSsize_t(end);
                PyObject *sl = (lo && hi) ? PySlice_New(lo, hi, NULL) : NULL;
                Py_XDECREF(lo);
                Py_XDECREF(hi);
                PyObject *frame = sl ? PyObject_GetItem(rx_view, sl) : NULL;
                Py_XDECREF(sl);
                if (frame != NULL) {
                    PyObject *args[2] = {frame, meta};         /* (the Lanes' own vectorcall) */
                    res = PyObject_Vectorcall(inspect, args, 2, NULL);
                    Py_DECREF(frame);
                }
            }
            if (res == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                    failed = 1;
                    received--;
                    break;
                }
                PyErr_Clear();     /* as Worker.drain: counted, the frame forwarded */
                errors++;
                res = Py_NewRef(forward);
            }
            inspected++;
            if (res != forward) {
                int t = take_forwarding(res, bypass_matters, events);
                if (t < 0) {                   /* (a failed append: propagated, the frame left at rx.head) */
                    Py_DECREF(res);
                    failed = 1;
                    received--;
                    inspected--;
                    break;
                }
                if (t > 0) {                   /* alerts only, or a bypass offer with no fast path */
                    Py_DECREF(res);
                    res = Py_NewRef(forward);
                }
            }
            if (res != forward) {
                value = res;
                stop = STOP_FRAME;
                kind = K_RESULT;
                stop_off = off;
                break;
            }
            Py_DECREF(res);
        } else {
            Py_DECREF(tsobj);
            inspected++;
        }
    forward_frame:
        if (t != NULL) {
            Py_ssize_t toff = slot_at(tx_offs, tx_head, tx_data + tx_cap, tb.len);
            if (toff < 0) {
                failed = 1;
                break;
            }
            unsigned char *th = t + toff;
            if ((Py_ssize_t)snaplen > tx_cap || load_acquire(th) != 0) {
                stop = STOP_FRAME;
                kind = K_TXFULL;
                stop_off = off;
                break;
            }
            memcpy(th + tx_data, r + mac, snaplen);
            memcpy(th + 4, &snaplen, 4);                       /* tp_len, then the status word */
            store_release(th, TP_STATUS_SEND_REQUEST);
            tx_qb += snaplen;
            tx_q++;
            if (++tx_head == tx_n)
                tx_head = 0;
        }
        store_release(h, 0);                                   /* the RX slot is the kernel's again */
        if (++rx_head == rx_n)
            rx_head = 0;
        if (t != NULL && tx_q >= tx_batch) {
            stop = STOP_FLUSH;
            break;
        }
    }

    if (es != NULL && !failed && stop == STOP_END && t != NULL && tx_q > 0) {
        long fd;
        if (tx_fd(tx, &fd) < 0) {
            failed = 1;
        } else if (fd >= 0) {
            es->n = tx_kick(fd, &es->code);
            es->done = 1;
        }
    }

    /* write the rings' state back before anything else can fail */
    {
        PyObject *et = NULL, *ev = NULL, *tb_ = NULL;
        if (failed)
            PyErr_Fetch(&et, &ev, &tb_);
        int bad = set_int_attr(rx, s_head, rx_head) < 0;
        if (!bad && tx != NULL)
            bad = set_int_attr(tx, s_head, tx_head) < 0 || set_int_attr(tx, s_queued, tx_q) < 0 ||
                  set_int_attr(tx, s_qbytes, tx_qb) < 0;
        if (failed) {
            if (bad)
                PyErr_Clear();
            PyErr_Restore(et, ev, tb_);
            Py_XDECREF(value);
            goto done;
        }
        if (bad) {
            Py_XDECREF(value);
            goto done;
        }
    }
    if (stop == STOP_FRAME) {
        unsigned char *h = r + stop_off;
        PyObject *hdr = Py_BuildValue("(kkkHHkkHH)", (unsigned long)rd32(h), (unsigned long)rd32(h + 4),
                                      (unsigned long)rd32(h + 8), rd16(h + 12), rd16(h + 14),
                                      (unsigned long)rd32(h + 16), (unsigned long)rd32(h + 20), rd16(h + 24),
                                      rd16(h + 26));
        if (hdr == NULL) {
            Py_XDECREF(value);
            goto done;
        }
        out = Py_BuildValue("(innnnndnNiN)", stop, received, outgoing, inspected, bypassed, errors, last_ts,
                            stop_off, hdr, kind, value != NULL ? value : Py_NewRef(Py_None));
    } else {
        out = Py_BuildValue("(innnnndOOiO)", stop, received, outgoing, inspected, bypassed, errors, last_ts,
                            Py_None, Py_None, 0, Py_None);
    }
    goto done;

done_noframes:
    /* nothing was walked: nothing to write back */
done:
    Py_XDECREF(late);
    Py_XDECREF(run_late);
    Py_XDECREF(rx_offs);
    Py_XDECREF(tx_offs);
    Py_XDECREF(rx_view);
    if (have_tb)
        PyBuffer_Release(&tb);
    PyBuffer_Release(&rb);
    return out;
}

/* obj.name += by (ints) */
static int
attr_add(PyObject *obj, PyObject *name, Py_ssize_t by)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    PyObject *n = PyLong_FromSsize_t(by);
    PyObject *sum = n ? PyNumber_Add(v, n) : NULL;
    Py_DECREF(v);
    Py_XDECREF(n);
    if (sum == NULL)
        return -1;
    int r = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return r;
}

/* drain_walk(walk, events, left, watchdog, tx, counters, seen, worker)
 *   -> int | (consumed, left, stop, off, hdr, kind, value)
 *
 * bridge.worker.Worker.drain's loop over ring_pass, for the drain whose every frame the
 * walk takes: `walk` is ring_pass's first 13 arguments (the port's, made once: rx, tx,
 * inspect, meta, forward, hit, pidx, csum_mask, csum_hint, skip_hint, install, hit_pass,
 * tables), `events` its 14th, `left` the most slots to walk.  After each ring_pass call the
 * watchdog's `batch` goes up by one (None: no watchdog); a FLUSH stop flushes the TX ring
 * (tx_flush: tx.flush(counters), its send() made here) and walks on; a pass that emptied
 * the RX ring has sent what it queued itself (ring_pass_impl's early send), counted here
 * by tx_sent.  At the end, or at a frame that needs Python (any other stop), what was
 * walked is counted as drain's `finally` counts it: counters.received, ignored_outgoing,
 * inspected, bypassed, inspector_errors; `seen` (the ForwardAll inspector, or None).seen
 * += inspected; worker.last_ts and last_ts_mono (CLOCK_MONOTONIC, as time.monotonic) when
 * frames came.  At the end the TX ring is flushed first, when it holds queued frames (the
 * frames leave before the counting), and the slots consumed are returned; at a frame for
 * Python, the tuple (slots consumed so far, slots left, and ring_pass's stop, off, hdr,
 * kind, value) with nothing flushed: drain goes on from there.  An exception (from ring_pass or a flush) is raised after the
 * counting and the flush, as drain's `finally` does. */
static PyObject *s_received, *s_ignored_outgoing, *s_inspected, *s_bypassed, *s_inspector_errors, *s_seen,
    *s_last_ts, *s_last_ts_mono, *s_flush, *s_first, *s_sent, *s_forwarded;

/* What tx.flush(c) (bridge.ring.TxRing) does once its first send() answered n bytes, or
 * failed with errno `code` (n < 0): the whole batch out, the queue is emptied and counted
 * as flush does; anything else goes on in tx.sent(c, bytes sent, errno).  0, or -1 with an
 * exception set. */
static int
tx_sent(PyObject *tx, PyObject *c, ssize_t n, int code)
{
    Py_ssize_t queued = int_attr(tx, s_queued), expected = int_attr(tx, s_qbytes);
    if (queued < 0 || expected < 0)
        return -1;
    if (n >= 0 && n == expected) {
        Py_ssize_t head = int_attr(tx, s_head);
        if (head < 0 || set_int_attr(tx, s_queued, 0) < 0 || set_int_attr(tx, s_qbytes, 0) < 0 ||
            set_int_attr(tx, s_first, head) < 0 || attr_add(c, s_forwarded, queued) < 0)
            return -1;
        return 0;
    }
    PyObject *a = PyLong_FromSsize_t(n < 0 ? 0 : n), *b = PyLong_FromLong(code);
    PyObject *r = (a && b) ? PyObject_CallMethodObjArgs(tx, s_sent, c, a, b, NULL) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* tx.flush(c) with its first send() made here when the ring has a kernel socket (tx.fd >=
 * 0; tx_sent does the rest).  0, or -1 with an exception set. */
static int
tx_flush(PyObject *tx, PyObject *c)
{
    long fd;
    if (tx_fd(tx, &fd) < 0)
        return -1;
    Py_ssize_t queued = fd < 0 ? 0 : int_attr(tx, s_queued);
    if (queued < 0)
        return -1;
    if (queued == 0) {        /* no socket, or nothing queued (flush resets what an empty flush resets) */
        PyObject *r = PyObject_CallMethodOneArg(tx, s_flush, c);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    int code;
    ssize_t n = tx_kick(fd, &code);
    return tx_sent(tx, c, n, code);
}

static PyObject *
drain_walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != 13) {
        PyErr_SetString(PyExc_TypeError, "drain_walk(walk13, events, left, watchdog, tx, counters, seen, worker)");
        return NULL;
    }
    PyObject *walk = args[0], *events = args[1], *wd = args[3], *tx = args[4], *c = args[5], *seen = args[6],
             *worker = args[7];
    Py_ssize_t left = PyLong_AsSsize_t(args[2]);
    if (left == -1 && PyErr_Occurred())
        return NULL;
    PyObject *argv[15];
    for (int i = 0; i < 13; i++)
        argv[i] = PyTuple_GET_ITEM(walk, i);
    argv[13] = events;
    Py_ssize_t received = 0, outgoing = 0, inspected = 0, bypassed = 0, errors = 0;
    double last_ts = -1.0;
    PyObject *stopped = NULL;          /* ring_pass's answer at a frame for Python */
    int failed = 0;
    while (left > 0) {
        PyObject *n = PyLong_FromSsize_t(left);
        if (n == NULL) {
            failed = 1;
            break;
        }
        argv[14] = n;
        struct early_send es = {0, 0, 0};
        PyObject *r = ring_pass_impl(argv, 15, tx != Py_None ? &es : NULL);
        Py_DECREF(n);
        if (es.done) {
            /* the pass sent its frames itself: counted as a flush counts them (an error of
             * the pass's comes first) */
            if (r == NULL) {
                PyObject *et, *ev, *etb;
                PyErr_Fetch(&et, &ev, &etb);
                if (tx_sent(tx, c, es.n, es.code) < 0)
                    PyErr_Clear();
                PyErr_Restore(et, ev, etb);
            } else if (tx_sent(tx, c, es.n, es.code) < 0) {
                Py_CLEAR(r);
            }
        }
        if (r == NULL) {
            failed = 1;
            break;
        }
        /* (after the pass: a pass stuck in one frame shows the watchdog the same batch) */
        if (wd != Py_None && attr_add(wd, s_batch, 1) < 0) {
            Py_DECREF(r);
            failed = 1;
            break;
        }
        int stop = (int)PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
        Py_ssize_t got = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 1)), out = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 2));
        received += got;
        outgoing += out;
        inspected += PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 3));
        bypassed += PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 4));
        errors += PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 5));
        double ts = PyFloat_AsDouble(PyTuple_GET_ITEM(r, 6));
        if (ts >= 0)
            last_ts = ts;
        left -= got + out;
        if (stop == STOP_END) {
            Py_DECREF(r);
            break;
        }
        if (stop == STOP_FLUSH) {
            Py_DECREF(r);
            if (tx_flush(tx, c) < 0) {
                failed = 1;
                break;
            }
            continue;
        }
        stopped = r;
        break;
    }
    /* drain's `finally` (an exception waits meanwhile): at the end of the drain (or a
     * failure) the queued frames go out first -- the counting below is not on the path of
     * a frame that woke the worker -- then what was walked is counted; the first error wins */
    PyObject *et = NULL, *ev = NULL, *etb = NULL;
    if (failed)
        PyErr_Fetch(&et, &ev, &etb);
    int bad = 0;
    if (stopped == NULL && tx != Py_None) {
        Py_ssize_t queued = int_attr(tx, s_queued);
        if (queued < 0 || (queued > 0 && tx_flush(tx, c) < 0))
            bad = 1;
    }
    PyObject *pt = NULL, *pv = NULL, *ptb = NULL;
    if (bad)
        PyErr_Fetch(&pt, &pv, &ptb);
    int cbad = 0;
    if (received && attr_add(c, s_received, received) < 0)
        cbad = 1;
    if (!cbad && outgoing && attr_add(c, s_ignored_outgoing, outgoing) < 0)
        cbad = 1;
    if (!cbad && inspected && attr_add(c, s_inspected, inspected) < 0)
        cbad = 1;
    if (!cbad && bypassed && attr_add(c, s_bypassed, bypassed) < 0)
        cbad = 1;
    if (!cbad && errors && attr_add(c, s_inspector_errors, errors) < 0)
        cbad = 1;
    if (!cbad && seen != Py_None && inspected && attr_add(seen, s_seen, inspected) < 0)
        cbad = 1;
    if (!cbad && received) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        PyObject *a = PyFloat_FromDouble(last_ts);
        PyObject *b = PyFloat_FromDouble((double)now.tv_sec + (double)now.tv_nsec * 1e-9);
        if (a == NULL || b == NULL || PyObject_SetAttr(worker, s_last_ts, a) < 0 ||
            PyObject_SetAttr(worker, s_last_ts_mono, b) < 0)
            cbad = 1;
        Py_XDECREF(a);
        Py_XDECREF(b);
    }
    if (bad) {                          /* the flush's error came first */
        if (cbad)
            PyErr_Clear();
        PyErr_Restore(pt, pv, ptb);
    }
    bad = bad || cbad;
    if (failed) {
        if (bad)
            PyErr_Clear();
        PyErr_Restore(et, ev, etb);
        Py_XDECREF(stopped);
        return NULL;
    }
    if (bad) {
        Py_XDECREF(stopped);
        return NULL;
    }
    if (stopped == NULL)
        return PyLong_FromSsize_t(received + outgoing);
    PyObject *out = Py_BuildValue("(nnOOOOO)", received + outgoing, left, PyTuple_GET_ITEM(stopped, 0),
                                  PyTuple_GET_ITEM(stopped, 7), PyTuple_GET_ITEM(stopped, 8),
                                  PyTuple_GET_ITEM(stopped, 9), PyTuple_GET_ITEM(stopped, 10));
    Py_DECREF(stopped);
    return out;
}

/* The (fd, revents) list select.poll would give for the descriptors with events. */
static PyObject *
revents_list(const struct pollfd *pfd, Py_ssize_t nfds)
{
    PyObject *out = PyList_New(0);
    for (Py_ssize_t i = 0; out != NULL && i < nfds; i++) {
        if (!pfd[i].revents)
            continue;
        PyObject *t = Py_BuildValue("(ii)", pfd[i].fd, (int)pfd[i].revents);
        if (t == NULL || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            Py_CLEAR(out);
            break;
        }
        Py_DECREF(t);
    }
    return out;
}

#define WAIT_MAX_FDS 32

/* wait_pass(fds, timeout_ms, ports, events, watchdog, worker)
 *   -> None | int | list | (index, consumed, walked, revents)
 *
 * bridge.worker.Worker.run's wait and pass when every frame is the walk's: poll() on `fds`
 * (the ports' sockets, in port order, then the supervisor's pipe when there is one), with
 * the GIL released, for at most timeout_ms; then drain_walk on each port in order (`ports`:
 * per port (walk, left, tx, counters, seen), drain_walk's arguments but `events`,
 * `watchdog` and `worker`, which are shared).  Answers:
 *   None     nothing came (the timeout), or a signal interrupted the wait (its Python
 *            handler has run; an exception it raised is raised here);
 *   int      every port drained in C: the slots consumed (0 too);
 *   list     the (fd, revents) pairs, nothing drained: the pipe has something, or a socket
 *            reported an error (POLLERR, POLLHUP, POLLNVAL); Python's loop takes them;
 *   tuple    (index, consumed by the ports before it, drain_walk's tuple or None, the
 *            (fd, revents) pairs): port `index` stopped at a frame that needs Python (drain
 *            goes on from it), or (None) its socket was readable and its drain found no
 *            frame (a hole: Python's pass keeps its time); the ports after it are Python's.
 * An exception from a drain is raised after that drain counted and flushed what it walked. */
static PyObject *
wait_pass(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyTuple_CheckExact(args[0]) || !PyTuple_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "wait_pass(fds, timeout_ms, ports, events, watchdog, worker)");
        return NULL;
    }
    PyObject *fds = args[0], *ports = args[2], *events = args[3], *wd = args[4], *worker = args[5];
    Py_ssize_t nfds = PyTuple_GET_SIZE(fds), nports = PyTuple_GET_SIZE(ports);
    long timeout = PyLong_AsLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (nfds > WAIT_MAX_FDS || nports > nfds) {
        PyErr_SetString(PyExc_ValueError, "wait_pass: at most 32 descriptors, a port's socket first for each port");
        return NULL;
    }
    struct pollfd pfd[WAIT_MAX_FDS];
    for (Py_ssize_t i = 0; i < nfds; i++) {
        long fd = PyLong_AsLong(PyTuple_GET_ITEM(fds, i));
        if (fd == -1 && PyErr_Occurred())
            return NULL;
        pfd[i].fd = (int)fd;
        pfd[i].events = POLLIN;
        pfd[i].revents = 0;
    }
    int n, err;
    Py_BEGIN_ALLOW_THREADS
    n = poll(pfd, (nfds_t)nfds, (int)timeout);
    err = errno;
    Py_END_ALLOW_THREADS
    if (n < 0) {
        if (err == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (n == 0)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < nfds; i++) {
        if (i >= nports ? pfd[i].revents != 0 : (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0)
            return revents_list(pfd, nfds);
    }
    Py_ssize_t consumed = 0;
    for (Py_ssize_t i = 0; i < nports; i++) {
        PyObject *spec = PyTuple_GET_ITEM(ports, i);
        if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 5) {
            PyErr_SetString(PyExc_TypeError, "wait_pass: a port is (walk, left, tx, counters, seen)");
            return NULL;
        }
        PyObject *argv[8] = {PyTuple_GET_ITEM(spec, 0), events, PyTuple_GET_ITEM(spec, 1), wd,
                             PyTuple_GET_ITEM(spec, 2), PyTuple_GET_ITEM(spec, 3), PyTuple_GET_ITEM(spec, 4), worker};
        PyObject *r = drain_walk(NULL, argv, 8);
        if (r == NULL)
            return NULL;
        if (PyLong_CheckExact(r)) {
            Py_ssize_t k = PyLong_AsSsize_t(r);
            Py_DECREF(r);
            if (k == 0 && (pfd[i].revents & POLLIN)) {
                Py_INCREF(Py_None);
                r = Py_None;          /* readable, yet no frame at the head: Python's pass */
            } else {
                consumed += k;
                continue;
            }
        }
        PyObject *rev = revents_list(pfd, nfds);
        if (rev == NULL) {
            Py_DECREF(r);
            return NULL;
        }
        PyObject *out = Py_BuildValue("(nnNN)", i, consumed, r, rev);
        return out;
    }
    return PyLong_FromSsize_t(consumed);
}

/* atomic_add(buffer, delta, offset=0) -> int: add delta to the native int64 at `offset`
 * in a writable buffer (the offloaded-flow counts of bridge.ebpf, an mmap of a BPF array
 * map shared by every worker and read by the eBPF programs), atomically; the new value. */
static PyObject *
atomic_add(PyObject *self, PyObject *args)
{
    Py_buffer b;
    long long delta;
    Py_ssize_t offset = 0;
    if (!PyArg_ParseTuple(args, "w*L|n", &b, &delta, &offset))
        return NULL;
    if (offset < 0 || b.len < 8 || offset > b.len - 8 || (((uintptr_t)b.buf + offset) & 7)) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "atomic_add: an aligned int64 inside the buffer is needed at the offset");
        return NULL;
    }
    long long v = __atomic_add_fetch((long long *)((char *)b.buf + offset), delta, __ATOMIC_SEQ_CST);
    PyBuffer_Release(&b);
    return PyLong_FromLongLong(v);
}

static PyMethodDef ringpass_methods[] = {
    {"atomic_add", atomic_add, METH_VARARGS,
     "atomic_add(buffer, delta, offset=0) -> int: atomically add delta to the int64 at the offset; the new value."},
    {"ring_pass", (PyCFunction)(void (*)(void))ring_pass, METH_FASTCALL,
     "ring_pass(rx, tx, inspect, meta, forward, hit, pidx, csum_mask, csum_hint, skip_hint, install, hit_pass, "
     "tables, max_frames) -> (stop, received, outgoing, inspected, bypassed, errors, last_ts, off, hdr, kind, value): "
     "see bridge/_ringpass.c."},
    {"drain_walk", (PyCFunction)(void (*)(void))drain_walk, METH_FASTCALL,
     "drain_walk(walk, events, left, watchdog, tx, counters, seen, worker) -> int | (consumed, left, stop, off, "
     "hdr, kind, value): Worker.drain's loop over ring_pass; see bridge/_ringpass.c."},
    {"wait_pass", (PyCFunction)(void (*)(void))wait_pass, METH_FASTCALL,
     "wait_pass(fds, timeout_ms, ports, events, watchdog, worker) -> None | int | list | (index, "
     "consumed, walked, revents): Worker.run's poll and pass in C; see bridge/_ringpass.c."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ringpass_module = {
    PyModuleDef_HEAD_INIT, "bridge._ringpass",
    "The worker's RX ring walk for the common frame, compiled (bridge/_ringpass.c).", -1, ringpass_methods,
};

PyMODINIT_FUNC
PyInit__ringpass(void)
{
    PyObject *m = PyModule_Create(&ringpass_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "SCAN_STREAK", SCAN_STREAK) < 0 ||
        PyModule_AddIntConstant(m, "SCAN_BACKOFF", SCAN_BACKOFF) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    s_facts = PyUnicode_InternFromString("facts");
    s_head = PyUnicode_InternFromString("head");
    s_queued = PyUnicode_InternFromString("queued");
    s_qbytes = PyUnicode_InternFromString("qbytes");
    s_batch = PyUnicode_InternFromString("batch");
    s_ts = PyUnicode_InternFromString("ts");
    s_checksum = PyUnicode_InternFromString("checksum");
    s_verdict = PyUnicode_InternFromString("verdict");
    s_events = PyUnicode_InternFromString("events");
    s_inject = PyUnicode_InternFromString("inject");
    s_frame = PyUnicode_InternFromString("frame");
    s_bypass = PyUnicode_InternFromString("bypass");
    s_extend = PyUnicode_InternFromString("extend");
    s_one = PyLong_FromLong(1);
    s_received = PyUnicode_InternFromString("received");
    s_ignored_outgoing = PyUnicode_InternFromString("ignored_outgoing");
    s_inspected = PyUnicode_InternFromString("inspected");
    s_bypassed = PyUnicode_InternFromString("bypassed");
    s_inspector_errors = PyUnicode_InternFromString("inspector_errors");
    s_seen = PyUnicode_InternFromString("seen");
    s_last_ts = PyUnicode_InternFromString("last_ts");
    s_last_ts_mono = PyUnicode_InternFromString("last_ts_mono");
    s_flush = PyUnicode_InternFromString("flush");
    s_scan_backoff = PyUnicode_InternFromString("scan_backoff");
    s_scan_hits = PyUnicode_InternFromString("scan_hits");
    s_scan_late = PyUnicode_InternFromString("scan_late");
    s_late = PyUnicode_InternFromString("late");
    s_run_late = PyUnicode_InternFromString("run_late");
    s_fd = PyUnicode_InternFromString("fd");
    s_first = PyUnicode_InternFromString("first");
    s_sent = PyUnicode_InternFromString("sent");
    s_forwarded = PyUnicode_InternFromString("forwarded");
    if (!s_received || !s_ignored_outgoing || !s_inspected || !s_bypassed || !s_inspector_errors || !s_seen ||
        !s_last_ts || !s_last_ts_mono || !s_flush || !s_fd || !s_first || !s_sent || !s_forwarded || !s_scan_backoff) {
        Py_DECREF(m);
        return NULL;
    }
    if (!s_facts || !s_head || !s_queued || !s_qbytes || !s_batch ||
        !s_ts || !s_checksum || !s_verdict || !s_events || !s_inject || !s_frame ||
        !s_bypass || !s_extend || !s_one || scan_init() < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "ENTRY_FORWARD", ENTRY_FORWARD) < 0 ||
        PyModule_AddIntConstant(m, "ENTRY_SCAN", ENTRY_SCAN) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
