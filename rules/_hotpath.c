/* rules._hotpath: the compiled leaves of the per-packet path.
 *
 * Two functions that pure Python cannot do quickly, everything else stays in Python:
 *
 * ones_sum(data, initial=0) -> int: the 16-bit one's complement sum (RFC 1071) of `data`
 *   (any buffer: bytes, memoryview of a ring slot, bytearray; an odd length is padded with
 *   a zero byte) plus `initial`, folded to 0..0xFFFF -- the same value as
 *   rules.checksum._py_ones_sum.  Summing a 1448-byte segment in Python costs ~2.7 us.
 *
 * decode_common(mv, meta, validate, vxlan_ports) -> Packet | None: the decoder's one-pass
 *   path for the common frame (Ethernet, IPv4 without options or IPv6 straight to the
 *   transport header, unfragmented, TCP, UDP or an ICMP/ICMPv6 echo of code 0, every length
 *   consistent, not a VXLAN port), or None for anything else, which the general decoder in
 *   rules/decode.py then takes.  It makes exactly the Packet the general decoder makes
 *   (tests/unit/test_decode_common.py compares every slot, and fuzzes), stored straight into
 *   the Packet's slots: 1.6 us a UDP frame in Python, about 0.4 here.  The slots it fills
 *   are named in SLOTS below; rules/decode.py refuses to use it unless they are exactly
 *   Packet.__slots__ (set_packet_type checks each is a plain object slot).
 *
 * Built by the install (pyproject.toml ext-modules: pip compiles it with gcc and Python.h);
 * rules/checksum.py and rules/decode.py fall back to Python without it, and
 * tests/unit/test_csum_ext.py fails when it was not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

/* The one's complement sum of the big-endian 16-bit words of p[0..n) (odd length:
 * zero-padded), folded to 0..0xFFFF: congruent mod 0xFFFF to their plain sum, and 0 only
 * when every byte is 0.  Read 8 bytes at a time in the machine's order: the one's
 * complement sum of byte-swapped words is the byte-swapped sum (RFC 1071), so on a
 * little-endian machine the folded sum is swapped once at the end.  A 1448-byte segment
 * took 0.3-0.4 us a byte at a time, about a tenth of that here. */
static uint64_t
word_sum(const unsigned char *p, Py_ssize_t n)
{
    uint64_t sum = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        sum += (w & 0xFFFFFFFFu) + (w >> 32);   /* 2^32 == 1 (mod 0xFFFF): halves add */
    }
    for (; i + 2 <= n; i += 2) {
        uint16_t h;
        memcpy(&h, p + i, 2);
        sum += h;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (i < n)
        sum += (uint64_t)p[i] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return sum;
#else
    if (i < n)
        sum += p[i];                            /* the high byte of a big-endian word */
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return ((sum & 0xFF) << 8) | (sum >> 8);
#endif
}

static PyObject *
csum_ones_sum(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long initial = 0;
    if (!PyArg_ParseTuple(args, "y*|K:ones_sum", &view, &initial))
        return NULL;
    uint64_t sum = word_sum((const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    /* initial is reduced first: any non-negative int the caller folds in */
    initial = (initial & 0xFFFFFFFFULL) + (initial >> 32);
    sum += initial;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return PyLong_FromUnsignedLong((unsigned long)sum);
}

/* ------------------------------------------------------------------ decode_common */

/* The Packet slots decode_common stores, in this order (rules.packet.Packet.__slots__). */
static const char *slot_names[] = {
    "ts", "iface", "pcap_cnt", "vlan", "frame", "length", "eth_type", "l3_off",
    "ipver", "src", "dst", "proto", "ttl", "ip_id", "ip_len", "frag", "ip_off", "l4_off",
    "sport", "dport", "tcp_flags", "seq", "ack", "win", "tcp_opts",
    "icmp_type", "icmp_code", "icmp_id", "icmp_seq", "payload", "csum_ok", "events",
    "outer", "flow", "to_server",
};
enum {
    S_TS, S_IFACE, S_PCAP_CNT, S_VLAN, S_FRAME, S_LENGTH, S_ETH_TYPE, S_L3_OFF,
    S_IPVER, S_SRC, S_DST, S_PROTO, S_TTL, S_IP_ID, S_IP_LEN, S_FRAG, S_IP_OFF, S_L4_OFF,
    S_SPORT, S_DPORT, S_TCP_FLAGS, S_SEQ, S_ACK, S_WIN, S_TCP_OPTS,
    S_ICMP_TYPE, S_ICMP_CODE, S_ICMP_ID, S_ICMP_SEQ, S_PAYLOAD, S_CSUM_OK, S_EVENTS,
    S_OUTER, S_FLOW, S_TO_SERVER, N_SLOTS
};

static PyTypeObject *packet_type = NULL;        /* set_packet_type(Packet) */
static Py_ssize_t slot_off[N_SLOTS];
static PyObject *str_ts, *str_iface, *str_pcap_cnt, *str_vlan;
static PyObject *ev_duplicate, *ev_invalid_len;  /* the TCP option events */

static PyObject *
set_packet_type(PyObject *self, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "set_packet_type: a class is needed");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    Py_ssize_t off[N_SLOTS];          /* the class in use changes only once every slot is found */
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *d = PyDict_GetItemString(tp->tp_dict, slot_names[i]);      /* borrowed */
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "set_packet_type: %s has no slot %s", tp->tp_name, slot_names[i]);
            return NULL;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "set_packet_type: %s.%s is not a plain slot", tp->tp_name, slot_names[i]);
            return NULL;
        }
        off[i] = m->offset;
    }
    memcpy(slot_off, off, sizeof slot_off);
    Py_INCREF(cls);
    Py_XSETREF(packet_type, tp);
    Py_RETURN_NONE;
}

/* Store a new reference into a slot of a fresh object (its slots are all NULL). */
#define SET(obj, slot, value) (*(PyObject **)((char *)(obj) + slot_off[slot]) = (value))

static inline unsigned be16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }
static inline unsigned long be32(const unsigned char *p)
{
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) | ((unsigned long)p[2] << 8) | p[3];
}

static PyObject *
int_from_be128(const unsigned char *p)
{
    return _PyLong_FromByteArray(p, 16, 0, 0);
}

static PyObject *
mv_slice(PyObject *mv, Py_ssize_t a, Py_ssize_t b)
{
    PyObject *ia = PyLong_FromSsize_t(a), *ib = PyLong_FromSsize_t(b), *sl = NULL, *out = NULL;
    if (ia != NULL && ib != NULL)
        sl = PySlice_New(ia, ib, NULL);
    if (sl != NULL)
        out = PyObject_GetItem(mv, sl);
    Py_XDECREF(ia);
    Py_XDECREF(ib);
    Py_XDECREF(sl);
    return out;
}

/* decode_common(mv, meta, validate, vxlan_ports): see the top of this file. */
static PyObject *
decode_common(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "decode_common(mv, meta, validate, vxlan_ports)");
        return NULL;
    }
    if (packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "decode_common: set_packet_type(Packet) first");
        return NULL;
    }
    PyObject *mv = args[0], *meta = args[1], *vxlan = args[3];
    int validate = PyObject_IsTrue(args[2]);
    if (validate < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(mv, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *f = (const unsigned char *)view.buf;
    const Py_ssize_t n = view.len;

    int ipver, proto;
    unsigned ttl, ip_id = 0, ip_off = 0, ip_len, eth_type;
    Py_ssize_t l4, end;
    unsigned long src4 = 0, dst4 = 0;
    int csum_ok = -1;                 /* -1 None, 0 False, 1 True */
    uint64_t addr = 0;                /* pseudo-header address words */

    if (n < 42)
        goto other;
    if (f[12] == 0x08 && f[13] == 0 && f[14] == 0x45) {
        proto = f[23];
        if (proto == 6) {
            if (n < 54)
                goto other;
        } else if (proto == 1) {
            if (f[35] != 0 || (f[34] != 0 && f[34] != 8))
                goto other;           /* an echo request or reply of code 0, nothing else */
        } else if (proto != 17)
            goto other;
        ip_len = be16(f + 16);
        ip_off = be16(f + 20);
        if ((ip_off & 0x3FFF) || ip_len < 20 || (Py_ssize_t)ip_len + 14 > n)
            goto other;               /* a fragment, or a length the general decoder reports */
        ipver = 4;
        eth_type = 0x0800;
        ip_id = be16(f + 18);
        ttl = f[22];
        src4 = be32(f + 26);
        dst4 = be32(f + 30);
        l4 = 34;
        end = 14 + ip_len;
        if (validate) {
            addr = word_sum(f + 26, 8);
            csum_ok = word_sum(f + 14, 20) % 0xFFFF == 0;
        }
    } else if (f[12] == 0x86 && f[13] == 0xDD && (f[14] >> 4) == 6) {
        proto = f[20];
        if (proto == 6) {
            if (n < 74)
                goto other;
        } else if (proto == 17) {
            if (n < 62)
                goto other;
        } else if (proto == 58) {
            if (n < 62 || f[55] != 0 || (f[54] != 128 && f[54] != 129))
                goto other;
        } else
            goto other;
        unsigned plen = be16(f + 18);
        if ((Py_ssize_t)plen + 54 > n)
            goto other;
        ipver = 6;
        eth_type = 0x86DD;
        ttl = f[21];
        ip_len = plen + 40;
        l4 = 54;
        end = 54 + plen;
        if (validate) {
            addr = word_sum(f + 22, 32);
            csum_ok = 1;
        }
    } else
        goto other;

    const unsigned char *t = f + l4;
    Py_ssize_t avail = end - l4, pstart, csum_len, hlen = 0;
    unsigned sport = 0, dport = 0, flags = 0, win = 0;
    unsigned long seq = 0, ack = 0;
    if (proto == 6) {
        hlen = (t[12] >> 4) << 2;
        if (avail < 20 || hlen < 20 || hlen > avail)
            goto other;
        sport = be16(t);
        dport = be16(t + 2);
        seq = be32(t + 4);
        ack = be32(t + 8);
        flags = t[13];
        win = be16(t + 14);
        pstart = l4 + hlen;
        csum_len = avail;
    } else if (proto == 17) {
        unsigned ulen = be16(t + 4);
        if (avail < 8 || ulen < 8 || (Py_ssize_t)ulen > avail)
            goto other;
        sport = be16(t);
        dport = be16(t + 2);
        if (vxlan != Py_None) {
            PyObject *dp = PyLong_FromUnsignedLong(dport);
            if (dp == NULL)
                goto error;
            int in = PySequence_Contains(vxlan, dp);
            Py_DECREF(dp);
            if (in < 0)
                goto error;
            if (in)
                goto other;           /* the general decoder looks inside */
        }
        pstart = l4 + 8;
        csum_len = ulen;              /* the datagram only: bytes after it are ignored */
        end = l4 + ulen;
    } else {                          /* ICMP / ICMPv6 echo */
        if (avail < 8)
            goto other;
        pstart = l4 + 8;
        csum_len = avail;
    }
    if (csum_ok == 1) {
        if (proto == 17 && ipver == 4 && t[6] == 0 && t[7] == 0)
            ;                         /* UDP over IPv4: checksum optional */
        else if (proto == 1) {        /* no pseudo-header: a sum of 0 (all zero) is never valid */
            uint64_t s = word_sum(t, csum_len);
            csum_ok = s != 0 && s % 0xFFFF == 0;
        } else
            csum_ok = (word_sum(t, csum_len) + addr + (uint64_t)proto + (uint64_t)csum_len) % 0xFFFF == 0;
    }

    /* TCP options: only the events the general decoder reports (duplicate, invalid length) */
    int opt_dup = 0, opt_bad = 0;
    if (hlen > 20) {
        const unsigned char *o = t + 20;
        Py_ssize_t i = 0, on = hlen - 20;
        uint64_t seen = 0;
        while (i < on) {
            unsigned kind = o[i];
            if (kind == 0)
                break;
            if (kind == 1) {
                i++;
                continue;
            }
            if (i + 1 >= on) {
                opt_bad = 1;
                break;
            }
            unsigned olen = o[i + 1];
            if (olen < 2 || i + (Py_ssize_t)olen > on) {
                opt_bad = 1;
                break;
            }
            uint64_t bit = (uint64_t)1 << (kind & 63);
            if ((seen & bit) && kind < 64)
                opt_dup = 1;
            seen |= bit;
            i += olen;
        }
    }

    PyObject *pkt = packet_type->tp_alloc(packet_type, 0);
    if (pkt == NULL)
        goto error;
    /* from here every slot gets a value or the packet goes (a NULL slot is "unset") */
    PyObject *v;
#define PUT(slot, expr) do { v = (expr); if (v == NULL) goto fail; SET(pkt, slot, v); } while (0)
#define PUT_CONST(slot, obj) do { Py_INCREF(obj); SET(pkt, slot, (obj)); } while (0)
    PUT(S_TS, PyObject_GetAttr(meta, str_ts));
    PUT(S_IFACE, PyObject_GetAttr(meta, str_iface));
    PUT(S_PCAP_CNT, PyObject_GetAttr(meta, str_pcap_cnt));
    PUT(S_VLAN, PyObject_GetAttr(meta, str_vlan));
    PUT_CONST(S_FRAME, mv);
    PUT(S_LENGTH, PyLong_FromSsize_t(n));
    PUT(S_ETH_TYPE, PyLong_FromUnsignedLong(eth_type));
    PUT(S_L3_OFF, PyLong_FromLong(14));
    PUT(S_IPVER, PyLong_FromLong(ipver));
    if (ipver == 4) {
        PUT(S_SRC, PyLong_FromUnsignedLong(src4));
        PUT(S_DST, PyLong_FromUnsignedLong(dst4));
    } else {
        PUT(S_SRC, int_from_be128(f + 22));
        PUT(S_DST, int_from_be128(f + 38));
    }
    PUT(S_PROTO, PyLong_FromLong(proto));
    PUT(S_TTL, PyLong_FromUnsignedLong(ttl));
    PUT(S_IP_ID, PyLong_FromUnsignedLong(ip_id));
    PUT(S_IP_LEN, PyLong_FromUnsignedLong(ip_len));
    PUT_CONST(S_FRAG, Py_False);
    PUT(S_IP_OFF, PyLong_FromUnsignedLong(ip_off));
    PUT(S_L4_OFF, PyLong_FromSsize_t(l4));
    PUT(S_SPORT, PyLong_FromUnsignedLong(sport));
    PUT(S_DPORT, PyLong_FromUnsignedLong(dport));
    PUT(S_TCP_FLAGS, PyLong_FromUnsignedLong(flags));
    PUT(S_SEQ, PyLong_FromUnsignedLong(seq));
    PUT(S_ACK, PyLong_FromUnsignedLong(ack));
    PUT(S_WIN, PyLong_FromUnsignedLong(win));
    if (hlen > 20)
        PUT(S_TCP_OPTS, mv_slice(mv, l4 + 20, l4 + hlen));
    else
        PUT(S_TCP_OPTS, PyBytes_FromStringAndSize(NULL, 0));
    if (proto == 6 || proto == 17) {
        PUT(S_ICMP_TYPE, PyLong_FromLong(-1));
        PUT(S_ICMP_CODE, PyLong_FromLong(-1));
        PUT(S_ICMP_ID, PyLong_FromLong(-1));
        PUT(S_ICMP_SEQ, PyLong_FromLong(-1));
    } else {
        PUT(S_ICMP_TYPE, PyLong_FromLong(t[0]));
        PUT(S_ICMP_CODE, PyLong_FromLong(t[1]));
        PUT(S_ICMP_ID, PyLong_FromUnsignedLong(be16(t + 4)));
        PUT(S_ICMP_SEQ, PyLong_FromUnsignedLong(be16(t + 6)));
    }
    PUT(S_PAYLOAD, mv_slice(mv, pstart, end));
    PUT_CONST(S_CSUM_OK, csum_ok < 0 ? Py_None : csum_ok ? Py_True : Py_False);
    if (opt_dup && opt_bad)
        PUT(S_EVENTS, PyTuple_Pack(2, ev_duplicate, ev_invalid_len));
    else if (opt_dup || opt_bad)
        PUT(S_EVENTS, PyTuple_Pack(1, opt_dup ? ev_duplicate : ev_invalid_len));
    else
        PUT(S_EVENTS, PyTuple_New(0));
    PUT_CONST(S_OUTER, Py_None);
    PUT_CONST(S_FLOW, Py_None);
    PUT_CONST(S_TO_SERVER, Py_True);
#undef PUT
#undef PUT_CONST
    PyBuffer_Release(&view);
    return pkt;

fail:
    Py_DECREF(pkt);
error:
    PyBuffer_Release(&view);
    return NULL;
other:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef hotpath_methods[] = {
    {"ones_sum", csum_ones_sum, METH_VARARGS,
     "ones_sum(data, initial=0) -> int: folded 16-bit one's complement sum of data (odd length "
     "padded with a zero byte) plus initial, 0..0xFFFF."},
    {"decode_common", (PyCFunction)(void (*)(void))decode_common, METH_FASTCALL,
     "decode_common(mv, meta, validate, vxlan_ports) -> Packet | None: the common frame's Packet "
     "(every slot as rules.decode's general decoder sets it), None for any other frame. "
     "vxlan_ports: the UDP ports decoded as VXLAN, or None."},
    {"set_packet_type", set_packet_type, METH_O,
     "set_packet_type(Packet): the class decode_common builds; each name of SLOTS must be a "
     "plain slot of it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hotpath_module = {
    PyModuleDef_HEAD_INIT, "rules._hotpath",
    "The compiled leaves of the per-packet path: one's complement sum, common-frame decode.",
    -1, hotpath_methods,
};

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    PyObject *m = PyModule_Create(&hotpath_module);
    if (m == NULL)
        return NULL;
    str_ts = PyUnicode_InternFromString("ts");
    str_iface = PyUnicode_InternFromString("iface");
    str_pcap_cnt = PyUnicode_InternFromString("pcap_cnt");
    str_vlan = PyUnicode_InternFromString("vlan");
    ev_duplicate = PyUnicode_InternFromString("decoder.tcp.opt_duplicate");
    ev_invalid_len = PyUnicode_InternFromString("decoder.tcp.opt_invalid_len");
    PyObject *slots = PyTuple_New(N_SLOTS);
    if (!str_ts || !str_iface || !str_pcap_cnt || !str_vlan || !ev_duplicate || !ev_invalid_len || !slots) {
        Py_XDECREF(slots);
        Py_DECREF(m);
        return NULL;
    }
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *s = PyUnicode_InternFromString(slot_names[i]);
        if (s == NULL) {
            Py_DECREF(slots);
            Py_DECREF(m);
            return NULL;
        }
        PyTuple_SET_ITEM(slots, i, s);
    }
    if (PyModule_AddObject(m, "SLOTS", slots) < 0) {
        Py_DECREF(slots);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
