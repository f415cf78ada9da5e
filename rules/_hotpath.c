/* rules._hotpath: the compiled leaves of the per-packet path.
 *
 * What pure Python cannot do quickly, everything else stays in Python:
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
 * Lanes(engine, ...)(frame, meta) -> Result: the engine's lanes compiled in front of
 *   Engine.inspect (Engine.front(), what the worker and replay call): the UDP lane
 *   (Engine._lean_udp: a datagram of a flow direction whose rules all need a fast pattern),
 *   and the TCP lane (Engine._lean_tcp) for a pure ACK, and for in-order data (with an app
 *   layer, handed to Engine._lane_app once taken into the stream).  A 64-byte datagram: about 0.9 us with the benchmark's 100 rules,
 *   against 2.3 through inspect.  Every other frame goes to inspect unchanged
 *   (tests/unit/test_lanes_compiled.py runs both in lockstep).
 *
 * hs_compile(expressions, flags, empty) / hs_load(data, empty) -> HsDatabase: the
 *   prefilter's databases (rules/prefilter.py PatternDB) in Debian's libhs, opened at run
 *   time with dlopen (hs_library() says which, or why not), scanned without the hyperscan
 *   module: about 30 ns a short scan against 190.
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
#include "_scan.h"           /* compiled_scan, shared with bridge/_ringpass.c */

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

/* The offsets of `names` in class `tp`, each a plain object slot (inherited ones too);
 * -1 with TypeError (saying `who` wanted them) when one is not.  For the Packet class
 * decode_common fills and for the flow class the lanes read. */
static int
slot_offsets(PyTypeObject *tp, const char *const *names, int n, Py_ssize_t *off, const char *who)
{
    for (int i = 0; i < n; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL)
            return -1;
        PyObject *d = _PyType_Lookup(tp, name);      /* borrowed */
        Py_DECREF(name);
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "%s: %s has no slot %s", who, tp->tp_name, names[i]);
            return -1;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "%s: %s.%s is not a plain slot", who, tp->tp_name, names[i]);
            return -1;
        }
        off[i] = m->offset;
    }
    return 0;
}

/* Where obj.name lives when it is a plain slot of obj's class, by (class, name): the lanes
 * read and write some eighty fields of engine objects on a body segment, and
 * PyObject_GetAttr through a member descriptor costs about 180 instructions a field
 * (callgrind, the 256 KiB capture: 15% of the engine's count), a cached offset about ten.
 * An entry holds the class's version tag (CPython changes or invalidates it whenever the
 * class or a base is modified), so a class changed since is looked up again; a class with
 * its own __getattribute__ / __setattr__, a name that is not a plain writable object slot
 * (a property, a method, an instance-dict attribute) or an unset slot take
 * PyObject_GetAttr / PyObject_SetAttr, so the answer and the error are always the
 * attribute's.  The cache holds strong references to the classes and names in it. */
#define FA_SETS 256                 /* (a power of two) sets of FA_WAYS entries: about 100 pairs */
#define FA_WAYS 4                   /* are in use, and two hot ones in one place would evict each */
struct fa_entry {                   /* other on every frame */
    PyTypeObject *tp;
    PyObject *name;
    unsigned int tag;
    Py_ssize_t get_off, set_off;    /* -1: through PyObject_GetAttr / PyObject_SetAttr */
};
static struct fa_entry fa_cache[FA_SETS][FA_WAYS];
static unsigned char fa_victim[FA_SETS];

static struct fa_entry *
fa_entry_of(PyTypeObject *tp, PyObject *name)
{
    uint64_t mix = ((uint64_t)(uintptr_t)tp * 0x9E3779B97F4A7C15u) ^ ((uint64_t)(uintptr_t)name * 0xC2B2AE3D27D4EB4Fu);
    size_t h = (size_t)(mix >> 40) & (FA_SETS - 1);
    struct fa_entry *e = NULL;
    for (int i = 0; i < FA_WAYS; i++) {
        struct fa_entry *w = &fa_cache[h][i];
        if (w->tp == tp && w->name == name) {
            if (PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) && w->tag == tp->tp_version_tag)
                return w;
            e = w;                          /* (the class changed: this entry is redone) */
            break;
        }
    }
    if (e == NULL)
        e = &fa_cache[h][fa_victim[h]++ % FA_WAYS];
    Py_ssize_t off = -1;
    int plain = 0;
    PyObject *d = _PyType_Lookup(tp, name);          /* borrowed; (gives the class a version tag) */
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX) {
            off = m->offset;
            plain = !(m->flags & READONLY);
        }
    }
    static struct fa_entry uncached;
    if (!PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG))
        e = &uncached;                              /* (no tag to check it by: answered, not kept) */
    else {
        Py_XSETREF(e->tp, (PyTypeObject *)Py_NewRef(tp));
        Py_XSETREF(e->name, Py_NewRef(name));
        e->tag = tp->tp_version_tag;
    }
    e->get_off = tp->tp_getattro == PyObject_GenericGetAttr ? off : -1;
    e->set_off = tp->tp_setattro == PyObject_GenericSetAttr && plain ? off : -1;
    return e;
}

/* Each place in this file that reads or writes a field by name keeps the last answer it
 * got in its own `struct fa_site` (FA_SITE: a static per expansion of fa_get, fa_set and
 * the attr_* helpers below): the class, its version tag, the name and the offsets.  A
 * place almost always meets the same class and name, and then the field is read after
 * three compares, where fa_entry_of's hashed lookup cost about thirty instructions (6% of
 * the engine's count on the 256 KiB capture).  Anything else asks fa_entry_of and keeps
 * its answer (strong references, as the cache's). */
struct fa_site {
    PyTypeObject *tp;
    PyObject *name;
    unsigned int tag;
    Py_ssize_t get_off, set_off;
};
#define FA_SITE ({ static struct fa_site fa_site_; &fa_site_; })

static struct fa_site *
fa_site_fill(struct fa_site *s, PyTypeObject *tp, PyObject *name)
{
    struct fa_entry *e = fa_entry_of(tp, name);
    if (!PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) || e->tp != tp) {
        s->tag = 0;                                 /* (not kept: no tag to check it by) */
    } else {
        Py_XSETREF(s->tp, (PyTypeObject *)Py_NewRef(tp));
        Py_XSETREF(s->name, Py_NewRef(name));
        s->tag = e->tag;
    }
    s->get_off = e->get_off;
    s->set_off = e->set_off;
    return s;
}

/* The site's answer for (tp, name): kept, or asked for now */
static inline struct fa_site *
fa_site_of(struct fa_site *s, PyTypeObject *tp, PyObject *name)
{
    if (s->tp == tp && s->name == name && s->tag != 0 && s->tag == tp->tp_version_tag &&
        PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG))
        return s;
    return fa_site_fill(s, tp, name);
}

/* obj.name (a new reference), NULL with an exception */
static PyObject *
fa_get_at(struct fa_site *s, PyObject *obj, PyObject *name)
{
    Py_ssize_t off = fa_site_of(s, Py_TYPE(obj), name)->get_off;
    if (off >= 0) {
        PyObject *v = *(PyObject **)((char *)obj + off);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(obj, name);
}
#define fa_get(obj, name) fa_get_at(FA_SITE, (obj), (name))

/* obj.name = v: 0, -1 with an exception */
static int
fa_set_at(struct fa_site *s, PyObject *obj, PyObject *name, PyObject *v)
{
    Py_ssize_t off = fa_site_of(s, Py_TYPE(obj), name)->set_off;
    if (off < 0)
        return PyObject_SetAttr(obj, name, v);
    Py_XSETREF(*(PyObject **)((char *)obj + off), Py_NewRef(v));
    return 0;
}
#define fa_set(obj, name, v) fa_set_at(FA_SITE, (obj), (name), (v))

/* The truth of obj.name: 1, 0, or -1 with an exception set. */
static int
attr_true_at(struct fa_site *s, PyObject *obj, PyObject *name)
{
    PyObject *v = fa_get_at(s, obj, name);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}
#define attr_true(obj, name) attr_true_at(FA_SITE, (obj), (name))

/* Fields of the slotted classes the lanes read on every frame, by the slots' offsets:
 * PyObject_GetAttr through a member descriptor costs about 20-25 ns a field, and the lanes
 * read up to twenty per frame.  A `struct slotted` names a class's fields; the offsets are
 * worked out whenever the object's class changes, and a class without those plain slots
 * (or a slot not set) takes PyObject_GetAttr / PyObject_SetAttr and their errors, so the
 * answer is always the attribute's.  The classes: rules.api.FrameMeta,
 * rules.stream.TcpSession and TcpStream, rules.applayer.AppState. */
#define SLOTTED_MAX 8
struct slotted {
    const char *const names[SLOTTED_MAX];
    int n;
    PyTypeObject *tp;               /* the class `off` is for (a new reference) */
    int ok;                         /* ... and whether it has every name as a plain slot */
    Py_ssize_t off[SLOTTED_MAX];
};

static PyObject **
slotted_at(struct slotted *c, PyObject *obj, int i)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp != c->tp) {
        Py_ssize_t off[SLOTTED_MAX];
        /* (a class with its own __getattribute__ or __setattr__ is asked, never read past) */
        int ok = tp->tp_getattro == PyObject_GenericGetAttr && tp->tp_setattro == PyObject_GenericSetAttr &&
                 slot_offsets(tp, c->names, c->n, off, "slotted") == 0;
        if (!ok)
            PyErr_Clear();
        Py_XSETREF(c->tp, (PyTypeObject *)Py_NewRef(tp));
        c->ok = ok;
        if (ok)
            memcpy(c->off, off, sizeof off);
    }
    return c->ok ? (PyObject **)((char *)obj + c->off[i]) : NULL;
}

/* obj.<name i> (a new reference), NULL with an exception */
static PyObject *
slotted_get(struct slotted *c, PyObject *obj, int i, PyObject *name)
{
    PyObject **at = slotted_at(c, obj, i);
    if (at != NULL && *at != NULL)
        return Py_NewRef(*at);
    return PyObject_GetAttr(obj, name);
}

/* the truth of obj.<name i>: 1, 0, -1 with an exception */
static int
slotted_true(struct slotted *c, PyObject *obj, int i, PyObject *name)
{
    PyObject **at = slotted_at(c, obj, i);
    if (at != NULL && *at != NULL) {
        PyObject *v = *at;
        return v == Py_False || v == Py_None ? 0 : v == Py_True ? 1 : PyObject_IsTrue(v);
    }
    return attr_true(obj, name);
}

/* obj.<name i> as a C long long; -1 with an exception set on failure (check PyErr_Occurred) */
static long long
slotted_ll(struct slotted *c, PyObject *obj, int i, PyObject *name)
{
    PyObject *v = slotted_get(c, obj, i, name);
    if (v == NULL)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return x;
}

/* obj.<name i> = v: 0, or -1 with an exception */
static int
slotted_set(struct slotted *c, PyObject *obj, int i, PyObject *name, PyObject *v)
{
    PyObject **at = slotted_at(c, obj, i);
    if (at == NULL)
        return PyObject_SetAttr(obj, name, v);
    Py_XSETREF(*at, Py_NewRef(v));
    return 0;
}

enum { M_TS, M_IFACE, M_VLAN, M_PCAP_CNT, M_LINKTYPE, M_CHECKSUM, N_META };
static struct slotted meta_slots = {{"ts", "iface", "vlan", "pcap_cnt", "linktype", "checksum"}, N_META};

static PyObject *
meta_attr(PyObject *meta, int i, PyObject *name)
{
    return slotted_get(&meta_slots, meta, i, name);
}

/* the stream and app-layer classes' fields the lanes read and write */
enum { SS_SIMPLE, SS_FIN_DUE, SS_CLIENT, SS_SERVER, N_SSN };
static struct slotted ssn_slots = {{"simple", "fin_due", "client", "server"}, N_SSN};
enum { TS_DONE, TS_END, TS_BASE, TS_WINDOW, TS_LAST_ACK, TS_SCALE, TS_OOO, TS_NEXT_SEQ, N_TS };
static struct slotted stream_slots = {{"done", "end", "base", "window", "last_ack", "scale", "ooo", "next_seq"}, N_TS};
enum { AS_FED, AS_PARSER, AS_ERROR_SEEN, AS_PROTO, AS_REFUSED, N_AS };
static struct slotted app_slots = {{"fed", "parser", "error_seen", "proto", "refused"}, N_AS};

static PyObject *
set_packet_type(PyObject *self, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "set_packet_type: a class is needed");
        return NULL;
    }
    Py_ssize_t off[N_SLOTS];          /* the class in use changes only once every slot is found */
    if (slot_offsets((PyTypeObject *)cls, slot_names, N_SLOTS, off, "set_packet_type") < 0)
        return NULL;
    memcpy(slot_off, off, sizeof slot_off);
    Py_INCREF(cls);
    Py_XSETREF(packet_type, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

/* Store a new reference into a slot of a fresh object (its slots are all NULL). */
#define SET(obj, slot, value) (*(PyObject **)((char *)(obj) + slot_off[slot]) = (value))
/* A Packet's slot, as an lvalue (its reference). */
#define PSLOT(obj, slot) (*(PyObject **)((char *)(obj) + slot_off[slot]))

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

/* What decode_common reads of the common frame f[0:n], before it makes the Packet. */
struct common {
    int ipver, proto, csum_ok, opt_dup, opt_bad;
    unsigned ttl, ip_id, ip_off, ip_len, eth_type, sport, dport, flags, win;
    unsigned long src4, dst4, seq, ack;
    Py_ssize_t l4, end, hlen, pstart;
};

/* Parse the common frame f[0:n] into *out: 1 it is one, 0 any other frame (the general
 * decoder's), -1 an exception set.  decode_common's one test of what is common, shared by
 * compiled lanes (Lanes), which need no Packet. */
static int
parse_common(const unsigned char *f, const Py_ssize_t n, int validate, PyObject *vxlan, struct common *out)
{
    int ipver, proto;
    unsigned ttl, ip_id = 0, ip_off = 0, ip_len, eth_type;
    Py_ssize_t l4, end;
    unsigned long src4 = 0, dst4 = 0;
    int csum_ok = -1;                 /* -1 None, 0 False, 1 True */
    uint64_t addr = 0;                /* pseudo-header address words */

    if (n < 42)
        return 0;
    if (f[12] == 0x08 && f[13] == 0 && f[14] == 0x45) {
        proto = f[23];
        if (proto == 6) {
            if (n < 54)
                return 0;
        } else if (proto == 1) {
            if (f[35] != 0 || (f[34] != 0 && f[34] != 8))
                return 0;           /* an echo request or reply of code 0, nothing else */
        } else if (proto != 17)
            return 0;
        ip_len = be16(f + 16);
        ip_off = be16(f + 20);
        if ((ip_off & 0x3FFF) || ip_len < 20 || (Py_ssize_t)ip_len + 14 > n)
            return 0;               /* a fragment, or a length the general decoder reports */
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
                return 0;
        } else if (proto == 17) {
            if (n < 62)
                return 0;
        } else if (proto == 58) {
            if (n < 62 || f[55] != 0 || (f[54] != 128 && f[54] != 129))
                return 0;
        } else
            return 0;
        unsigned plen = be16(f + 18);
        if ((Py_ssize_t)plen + 54 > n)
            return 0;
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
        return 0;

    const unsigned char *t = f + l4;
    Py_ssize_t avail = end - l4, pstart, csum_len, hlen = 0;
    unsigned sport = 0, dport = 0, flags = 0, win = 0;
    unsigned long seq = 0, ack = 0;
    if (proto == 6) {
        hlen = (t[12] >> 4) << 2;
        if (avail < 20 || hlen < 20 || hlen > avail)
            return 0;
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
            return 0;
        sport = be16(t);
        dport = be16(t + 2);
        if (vxlan != Py_None) {
            PyObject *dp = PyLong_FromUnsignedLong(dport);
            if (dp == NULL)
                return -1;
            int in = PySequence_Contains(vxlan, dp);
            Py_DECREF(dp);
            if (in < 0)
                return -1;
            if (in)
                return 0;           /* the general decoder looks inside */
        }
        pstart = l4 + 8;
        csum_len = ulen;              /* the datagram only: bytes after it are ignored */
        end = l4 + ulen;
    } else {                          /* ICMP / ICMPv6 echo */
        if (avail < 8)
            return 0;
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

    out->ipver = ipver;
    out->proto = proto;
    out->csum_ok = csum_ok;
    out->opt_dup = opt_dup;
    out->opt_bad = opt_bad;
    out->ttl = ttl;
    out->ip_id = ip_id;
    out->ip_off = ip_off;
    out->ip_len = ip_len;
    out->eth_type = eth_type;
    out->sport = sport;
    out->dport = dport;
    out->flags = flags;
    out->win = win;
    out->src4 = src4;
    out->dst4 = dst4;
    out->seq = seq;
    out->ack = ack;
    out->l4 = l4;
    out->end = end;
    out->hlen = hlen;
    out->pstart = pstart;
    return 1;
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

    struct common cm;
    int common = parse_common(f, n, validate, vxlan, &cm);
    if (common < 0)
        goto error;
    if (common == 0)
        goto other;
    const int ipver = cm.ipver, proto = cm.proto, csum_ok = cm.csum_ok, opt_dup = cm.opt_dup, opt_bad = cm.opt_bad;
    const unsigned ttl = cm.ttl, ip_id = cm.ip_id, ip_off = cm.ip_off, ip_len = cm.ip_len, eth_type = cm.eth_type,
        sport = cm.sport, dport = cm.dport, flags = cm.flags, win = cm.win;
    const unsigned long src4 = cm.src4, dst4 = cm.dst4, seq = cm.seq, ack = cm.ack;
    const Py_ssize_t l4 = cm.l4, end = cm.end, hlen = cm.hlen, pstart = cm.pstart;
    const unsigned char *t = f + l4;

    PyObject *pkt = packet_type->tp_alloc(packet_type, 0);
    if (pkt == NULL)
        goto error;
    /* from here every slot gets a value or the packet goes (a NULL slot is "unset") */
    PyObject *v;
#define PUT(slot, expr) do { v = (expr); if (v == NULL) goto fail; SET(pkt, slot, v); } while (0)
#define PUT_CONST(slot, obj) do { Py_INCREF(obj); SET(pkt, slot, (obj)); } while (0)
    PUT(S_TS, meta_attr(meta, M_TS, str_ts));
    PUT(S_IFACE, meta_attr(meta, M_IFACE, str_iface));
    PUT(S_PCAP_CNT, meta_attr(meta, M_PCAP_CNT, str_pcap_cnt));
    PUT(S_VLAN, meta_attr(meta, M_VLAN, str_vlan));
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

/* ------------------------------------------------------------------ Lanes */

/* The lanes' flow keys, by the frame's raw endpoints: a frame of a flow seen lately reuses
 * the key tuple (and its address and port ints) made for an earlier one, so the flow table's
 * lookup meets the very key object it holds (an identity test, no element compares) and no
 * ints or tuple are made.  Direct-mapped; an entry is only ever replaced. */
#define KEY_CACHE 64
#define KEY_RAW_MAX 38              /* version, protocol, 2 ports, 2 IPv6 addresses */
struct key_entry {
    unsigned char raw[KEY_RAW_MAX];
    int rawlen;                     /* 0: empty */
    PyObject *vlan, *key, *sa, *sp;
};

/* Lanes(engine, inspect, counters, flows, streams, sources, validate, vxlan_ports,
 *       any_pattern, flow_type, forward, csum_auto, csum_skip, sample_count):
 *   callable (frame, meta) -> Result.
 *
 * The engine's lanes (rules.engine.Engine._lean_udp, _lean_tcp) compiled, in front of the
 * engine's `inspect`: what the data plane calls per frame (Engine.front()).  A frame it
 * can answer is one `inspect` would answer on a lane -- the common frame's decode
 * (decode_common above, with the checksum decision rules.decode.decode makes), no decoder
 * event, a flow the table knows, nothing that stops the lane (a dropped or passed flow, a
 * bad checksum, an app-layer state that could still change) -- and then: a datagram whose
 * direction has a scan offer and whose scan finds nothing (udp_check); a pure ACK, or the
 * next in-order data, of an established session (tcp_check).  It does what `inspect` does
 * for it: the packet counter, the checksum sample's frame count, the flow's place in the
 * table and its counters, the stream's acknowledgment, window and (data) bytes, the
 * IP-only rules detection skips; it answers the offer's Result or FORWARD, for data with
 * a fast pattern in its window Engine._lane_detect's, and with an app layer loaded
 * Engine._lane_app's for data (the parser and the transaction rules are Python's).  Any
 * other frame, or anything unexpected before that (an error is cleared), goes to `inspect`
 * unchanged: nothing was changed before the lane is sure.
 *
 * engine: rules.engine.Engine (its `lean`, `app` and `detector` are read per frame: a
 * rule reload replaces the last two); inspect: its bound `inspect`; counters: engine.c;
 * flows: the flow table's OrderedDict; streams: engine.streams (rules.stream.StreamEngine,
 * its settings read per frame); sources: engine.checksums.sources; validate:
 * stream.checksum-validation; vxlan_ports: as decode_common; any_pattern: the class
 * rules.prefilter.AnyPattern, whose `spec` is scanned here (other scans are called);
 * flow_type: rules.flow.TrackedFlow, whose slots are read and written in place; forward:
 * rules.api.FORWARD;
 * csum_auto, csum_skip: rules.api.CSUM_AUTO, CSUM_SKIP; sample_count:
 * rules.decode.CHECKSUM_SAMPLE_COUNT. */
typedef struct {
    PyObject_HEAD
    PyObject *engine, *inspect, *counters, *flows, *streams, *sources, *vxlan, *any_pattern, *forward;
    PyObject *move_to_end;          /* flows.move_to_end, bound once */
    PyTypeObject *flow_type;
    vectorcallfunc vectorcall;
    int validate;
    long csum_auto, csum_skip, sample_count;
    Py_ssize_t flow_off[15];        /* N_FLOW_SLOTS (below): where the Flow slots are */
    struct key_entry keys[KEY_CACHE];
    /* the body lane's (body_lane): the HTTP parser's class (NULL: no body lane), the TCP
     * session's CLOSED state, stream.PRUNE_STEP, the Body states _LENGTH, _CLOSE, _DATA */
    PyTypeObject *body_parser;
    long long closed, prune_step, body_length, body_close, body_data;
    /* the quiet transaction run's (tx_quiet): (TxDetector, TxDetector.run, TxDetector._candidates,
     * detect_tx._CANDIDATES, detect_tx._QUIET, DONE[, grown]), or NULL; and how many segments it
     * answered.  grown (quiet_cands): the HTTP bodies' GROWN getters by side, and where
     * _Slot.packed holds side, progress, get, grows, db and overlap; NULL: not given, every
     * quiet run's candidates are TxDetector._candidates'.  quiet_scans: the quiet runs whose
     * candidates quiet_cands answered */
    PyObject *txq, *grown;
    long long done_level;
    Py_ssize_t pk_side, pk_progress, pk_get, pk_grows, pk_db, pk_overlap;
    Py_ssize_t quiet_answers, quiet_scans;
} Lanes;

static int body_lane(Lanes *self, PyObject *frame, PyObject *meta, int validate, PyObject *det, PyObject *flow,
                     PyObject *me, int to_server, const unsigned char *pl, Py_ssize_t n, long long right,
                     PyObject *shorts, PyObject *skipped, PyObject **res);

static PyObject *ls_lean, *ls_app, *ls_detector, *ls_linktype, *ls_checksum, *ls_parser, *ls_proto, *ls_refused,
    *ls_probed_names, *ls_spec, *ls_packets, *ls_frames, *ls_off, *ls_move_to_end, *ls_evaluated, *ls_empty,
    *ls_inline, *ls_established, *ls_simple, *ls_fin_due, *ls_client, *ls_server, *ls_done, *ls_end,
    *ls_base, *ls_window, *ls_last_ack, *ls_scale, *ls_fed, *ls_bypass_ready, *ls_failed, *ls_error_seen,
    *ls_hdr_cache, *ls_ooo, *ls_s, *ls_depth, *ls_mem, *ls_reassembly_memcap, *ls_next_seq,
    *ls_take_in_order, *ls_inline_window, *ls_lane_detect, *ls_lane_app, *ls_no_inspect_payload, *ls_one,
    *ls_udp, *ls_tcp, *ls_window_candidates;

/* the body lane's (body_lane, below) */
static PyObject *bs_tx_idle, *bs_flowbits, *bs_app_on, *bs_data, *bs_data_off, *bs_seen, *bs_app_off, *bs_raw_progress, *bs_scanner, *bs_scan, *bs_overlap,
    *bs_lengths, *bs_track_segs, *bs_chunk, *bs_sides, *bs_state, *bs_buf, *bs_gone, *bs_body, *bs_tx, *bs_decoding,
    *bs_bstate, *bs_left, *bs_msg, *bs_entity, *bs_limit, *bs_raw_len, *bs_body_grew, *bs_min_inspect, *bs_gen,
    *bs_idle, *bs_txs, *bs_events, *bs_marks, *bs_id, *bs_progress, *bs_fp_short, *bs_prune,
    *bs_lane_tx;

/* the quiet transaction run's (tx_quiet, below) */
static PyObject *tq_run, *tq_candidates, *tq_quiet_runs, *tq_protos, *tq_hdr, *tq_reads, *tq_only, *tq_found,
    *tq_final, *tq_srv, *tq_srv_port, *tq_packed, *tq_bodies[2], *tq_cands[2], *tq_zero;

static int
lane_init_strings(void)
{
#define S(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    S(ls_lean, "lean"); S(ls_app, "app"); S(ls_detector, "detector"); S(ls_linktype, "linktype");
    S(ls_checksum, "checksum"); S(ls_parser, "parser"); S(ls_proto, "proto"); S(ls_refused, "refused");
    S(ls_probed_names, "probed_names"); S(ls_spec, "spec"); S(ls_packets, "packets"); S(ls_frames, "frames");
    S(ls_off, "off"); S(ls_move_to_end, "move_to_end"); S(ls_evaluated, "evaluated"); S(ls_empty, "");
    S(ls_inline, "inline"); S(ls_established, "established"); S(ls_simple, "simple");
    S(ls_fin_due, "fin_due"); S(ls_client, "client"); S(ls_server, "server"); S(ls_done, "done"); S(ls_end, "end");
    S(ls_base, "base"); S(ls_window, "window"); S(ls_last_ack, "last_ack"); S(ls_scale, "scale"); S(ls_fed, "fed");
    S(ls_bypass_ready, "bypass_ready"); S(ls_failed, "failed"); S(ls_error_seen, "error_seen");
    S(ls_hdr_cache, "_hdr_cache"); S(ls_ooo, "ooo"); S(ls_s, "s"); S(ls_depth, "depth"); S(ls_mem, "mem");
    S(ls_reassembly_memcap, "reassembly_memcap"); S(ls_next_seq, "next_seq");
    S(ls_take_in_order, "take_in_order"); S(ls_inline_window, "inline_window"); S(ls_lane_detect, "_lane_detect");
    S(ls_lane_app, "_lane_app"); S(ls_no_inspect_payload, "no_inspect_payload"); S(ls_window_candidates, "window_candidates");
    S(bs_tx_idle, "tx_idle"); S(bs_flowbits, "flowbits"); S(bs_app_on, "app_on"); S(bs_data, "data"); S(bs_data_off, "data_off"); S(bs_seen, "seen"); S(bs_app_off, "app_off");
    S(bs_raw_progress, "raw_progress"); S(bs_scanner, "scanner"); S(bs_scan, "scan"); S(bs_overlap, "overlap");
    S(bs_lengths, "lengths"); S(bs_track_segs, "track_segs"); S(bs_chunk, "chunk"); S(bs_sides, "sides");
    S(bs_state, "state"); S(bs_buf, "buf"); S(bs_gone, "gone"); S(bs_body, "body"); S(bs_tx, "tx");
    S(bs_decoding, "_decoding"); S(bs_bstate, "_state"); S(bs_left, "_left"); S(bs_msg, "_msg");
    S(bs_entity, "_entity"); S(bs_limit, "limit"); S(bs_raw_len, "raw_len"); S(bs_body_grew, "body_grew");
    S(bs_min_inspect, "min_inspect"); S(bs_gen, "gen"); S(bs_idle, "idle");
    S(bs_txs, "txs"); S(bs_events, "events"); S(bs_marks, "marks"); S(bs_id, "id"); S(bs_progress, "progress");
    S(bs_fp_short, "fp_short"); S(bs_prune, "_prune"); S(bs_lane_tx, "_lane_tx");
    S(tq_run, "run"); S(tq_candidates, "_candidates"); S(tq_quiet_runs, "quiet_runs"); S(tq_protos, "protos");
    S(tq_hdr, "_hdr"); S(tq_reads, "reads"); S(tq_only, "only"); S(tq_found, "found"); S(tq_final, "final");
    S(tq_srv, "srv"); S(tq_srv_port, "srv_port"); S(tq_packed, "packed");
    S(tq_bodies[0], "resp_body"); S(tq_bodies[1], "req_body");
#undef S
    PyObject *cands = PyUnicode_InternFromString("cands");
    if (cands == NULL)
        return -1;
    tq_cands[0] = PyTuple_Pack(2, cands, Py_False);             /* detect_tx's ("cands", d) */
    tq_cands[1] = PyTuple_Pack(2, cands, Py_True);
    Py_DECREF(cands);
    if (tq_cands[0] == NULL || tq_cands[1] == NULL)
        return -1;
    ls_one = PyLong_FromLong(1);
    if ((tq_zero = PyLong_FromLong(0)) == NULL)
        return -1;
    ls_udp = PyLong_FromLong(17);
    ls_tcp = PyLong_FromLong(6);
    return (ls_one && ls_udp && ls_tcp) ? 0 : -1;
}

/* obj.name += by */
static int
attr_add_at(struct fa_site *s, PyObject *obj, PyObject *name, PyObject *by)
{
    PyObject *v = fa_get_at(s, obj, name);
    if (v == NULL)
        return -1;
    PyObject *w = PyNumber_Add(v, by);
    Py_DECREF(v);
    if (w == NULL)
        return -1;
    int err = fa_set_at(s, obj, name, w);
    Py_DECREF(w);
    return err;
}
#define attr_add(obj, name, by) attr_add_at(FA_SITE, (obj), (name), (by))

/* The Flow slots the lane reads and writes (rules.packet.Flow, of the table's TrackedFlow). */
enum {
    F_PREFILTER, F_DROPPED, F_ACTION_PASS, F_STATE, F_TCP, F_FLOW_ID, F_CLI, F_CLI_PORT, F_APP, F_LAST_TS,
    F_PKTS_TOSERVER, F_BYTES_TOSERVER, F_PKTS_TOCLIENT, F_BYTES_TOCLIENT, F_KEY, N_FLOW_SLOTS
};
static const char *flow_slot_names[N_FLOW_SLOTS] = {
    [F_PREFILTER] = "prefilter", [F_DROPPED] = "dropped", [F_ACTION_PASS] = "action_pass", [F_STATE] = "state",
    [F_TCP] = "tcp", [F_FLOW_ID] = "flow_id", [F_CLI] = "cli", [F_CLI_PORT] = "cli_port", [F_APP] = "app",
    [F_LAST_TS] = "last_ts", [F_PKTS_TOSERVER] = "pkts_toserver", [F_BYTES_TOSERVER] = "bytes_toserver",
    [F_PKTS_TOCLIENT] = "pkts_toclient", [F_BYTES_TOCLIENT] = "bytes_toclient", [F_KEY] = "key",
};
_Static_assert(N_FLOW_SLOTS == sizeof ((Lanes *)0)->flow_off / sizeof(Py_ssize_t), "Lanes.flow_off");

/* Slot `i` of a flow of the lane's flow class (borrowed; NULL when unset). */
#define FSLOT(self, flow, i) (*(PyObject **)((char *)(flow) + (self)->flow_off[i]))

/* flow.<slot i> += by (the slot set: an unset one is refused, as Python's AttributeError) */
static int
fslot_add(PyObject **slot, PyObject *by)
{
    if (*slot == NULL) {
        PyErr_SetString(PyExc_AttributeError, "flow counter unset");
        return -1;
    }
    PyObject *w = PyNumber_Add(*slot, by);
    if (w == NULL)
        return -1;
    Py_SETREF(*slot, w);
    return 0;
}

/* The truth of a flow slot: 1, 0, -1 (unset or an error). */
static int
fslot_true(PyObject *v)
{
    return v == NULL ? -1 : v == Py_False || v == Py_None ? 0 : v == Py_True ? 1 : PyObject_IsTrue(v);
}

/* The UDP lane's test on a datagram of `flow` (Engine._lean_udp after the lookup): the
 * direction's scan offer, AppLayer.udp_quiet (`app`: engine.app), the scan.  1 taken (*result
 * and *skipped set, borrowed from the offer, which *hold keeps), else 0 (an error on the way
 * is left set: the caller clears it). */
static int
udp_check(Lanes *self, PyObject *app, PyObject *flow, int to_server, const unsigned char *payload, Py_ssize_t plen,
          PyObject **result, PyObject **skipped, PyObject **hold)
{
    PyObject *pf = FSLOT(self, flow, F_PREFILTER);                      /* borrowed */
    if (pf == NULL || !PyList_CheckExact(pf) || PyList_GET_SIZE(pf) != 2)
        return 0;
    PyObject *own = PyList_GET_ITEM(pf, to_server);                    /* borrowed */
    if (!PyTuple_CheckExact(own) || PyTuple_GET_SIZE(own) != 3)       /* None (not worked out) or False */
        return 0;
    PyObject *offer = Py_NewRef(own);
    /* AppLayer.udp_quiet: no parser, and a protocol, or this direction refused every one probed */
    if (app != Py_None) {
        PyObject *st = FSLOT(self, flow, F_APP);
        int quiet = 0;
        if (st != NULL && st != Py_None) {
            PyObject *parser = slotted_get(&app_slots, st, AS_PARSER, ls_parser);
            if (parser != NULL && parser == Py_None) {
                quiet = slotted_true(&app_slots, st, AS_PROTO, ls_proto);
                if (quiet == 0) {
                    PyObject *refused = slotted_get(&app_slots, st, AS_REFUSED, ls_refused);
                    PyObject *probed = fa_get(app, ls_probed_names);
                    PyObject *mine = refused ? PySequence_GetItem(refused, to_server) : NULL;
                    PyObject *names = probed ? PyObject_GetItem(probed, ls_udp) : NULL;
                    quiet = (mine && names) ? PyObject_RichCompareBool(mine, names, Py_GE) : -1;
                    Py_XDECREF(refused);
                    Py_XDECREF(probed);
                    Py_XDECREF(mine);
                    Py_XDECREF(names);
                }
            }
            Py_XDECREF(parser);
        }
        if (quiet != 1)
            goto done;
    }
    PyObject *scan = PyTuple_GET_ITEM(offer, 2);
    if (plen && scan != Py_None) {
        int found = -1;
        PyObject *spec = Py_TYPE(scan) == (PyTypeObject *)self->any_pattern ? fa_get(scan, ls_spec) : NULL;
        if (spec != NULL && spec != Py_None) {
            found = compiled_scan(spec, payload, plen);
        } else {
            PyErr_Clear();
            PyObject *bytes = PyBytes_FromStringAndSize((const char *)payload, plen);
            PyObject *v = bytes ? PyObject_CallOneArg(scan, bytes) : NULL;
            found = v ? PyObject_IsTrue(v) : -1;
            Py_XDECREF(bytes);
            Py_XDECREF(v);
        }
        Py_XDECREF(spec);
        if (found != 0)                              /* a fast pattern (or an error): the rules run */
            goto done;
    }
    *result = PyTuple_GET_ITEM(offer, 0);
    *skipped = PyTuple_GET_ITEM(offer, 1);
    *hold = offer;
    return 1;
done:
    Py_DECREF(offer);
    return 0;
}

/* obj.name as a C long long; -1 with an exception set on failure (check PyErr_Occurred). */
static long long
attr_ll_at(struct fa_site *s, PyObject *obj, PyObject *name)
{
    PyObject *v = fa_get_at(s, obj, name);
    if (v == NULL)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return x;
}
#define attr_ll(obj, name) attr_ll_at(FA_SITE, (obj), (name))

/* meta's field i as a C long long */
static long long
meta_ll(PyObject *meta, int i, PyObject *name)
{
    return slotted_ll(&meta_slots, meta, i, name);
}

/* The TCP lane's test on an ACK or ACK+PSH segment of `flow` with `n` payload bytes at
 * sequence number `seqno` (Engine._lean_tcp after the lookup): an established, simple
 * session not closing, a later packet of its direction, neither direction done, an
 * acknowledgment inside the peer's window; for a pure ACK an app layer with nothing
 * pending, for data the next in-order bytes that fit (StreamEngine.fits_in_order) and,
 * with an app layer, a flow whose payload is still inspected; and a detector whose cached
 * candidates for the direction need a fast pattern in the packet (Detector.prefilter_gate)
 * or, app-layer data, in its inline window (Detector.data_gate) (`app`, `det`: engine.app,
 * engine.detector).  1 taken (*peer, *me new references, *ackoff the acknowledgment's
 * stream offset, *right the data's right edge, *skipped a new reference; for app-layer
 * data *short a new reference to the direction's 1-2 byte pattern rules), 0 not, -1 an
 * exception set. */
static int
tcp_check(Lanes *self, PyObject *app, PyObject *det, PyObject *flow, int to_server, unsigned int flags,
          unsigned long ackno, unsigned long seqno, Py_ssize_t n,
          PyObject *sa, PyObject *sp, PyObject **peer_out, PyObject **me_out, long long *ackoff,
          long long *right, PyObject **skipped, PyObject **short_out)
{
    PyObject *state = FSLOT(self, flow, F_STATE), *ssn = FSLOT(self, flow, F_TCP);
    if (state == NULL || ssn == NULL || ssn == Py_None)
        return 0;
    int t = PyObject_RichCompareBool(state, ls_established, Py_EQ);
    if (t <= 0)
        return t;
    PyObject *dir_pkts = FSLOT(self, flow, to_server ? F_PKTS_TOSERVER : F_PKTS_TOCLIENT);
    if (dir_pkts == NULL || (t = PyObject_IsTrue(dir_pkts)) <= 0)
        return t;                                   /* a direction's first packet: IP-only rules, decisions */
    if ((t = slotted_true(&ssn_slots, ssn, SS_SIMPLE, ls_simple)) <= 0)
        return t;
    if ((t = slotted_true(&ssn_slots, ssn, SS_FIN_DUE, ls_fin_due)) != 0)
        return t < 0 ? -1 : 0;
    PyObject *me = to_server ? slotted_get(&ssn_slots, ssn, SS_CLIENT, ls_client) : slotted_get(&ssn_slots, ssn, SS_SERVER, ls_server);
    PyObject *peer = to_server ? slotted_get(&ssn_slots, ssn, SS_SERVER, ls_server) : slotted_get(&ssn_slots, ssn, SS_CLIENT, ls_client);
    PyObject *per_flow = NULL, *dkey = NULL;
    int taken = -1;
    if (me == NULL || peer == NULL)
        goto done;
    if ((t = slotted_true(&stream_slots, me, TS_DONE, ls_done)) != 0 ||
        (t = slotted_true(&stream_slots, peer, TS_DONE, ls_done)) != 0) {
        taken = t < 0 ? -1 : 0;
        goto done;
    }
    /* TcpStream.offset: the acknowledgment's stream offset, nearest the contiguous data */
    long long end = slotted_ll(&stream_slots, peer, TS_END, ls_end), base = slotted_ll(&stream_slots, peer, TS_BASE, ls_base);
    long long window = slotted_ll(&stream_slots, peer, TS_WINDOW, ls_window);
    long long last_ack = slotted_ll(&stream_slots, peer, TS_LAST_ACK, ls_last_ack);
    if (PyErr_Occurred())
        goto done;
    long long d = ((long long)ackno - base - end) & 0xFFFFFFFFLL;
    *ackoff = d >= 0x80000000LL ? end + d - 0x100000000LL : end + d;
    taken = 0;
    if (window >= 0 && *ackoff > last_ack + window)
        goto done;                                  /* an invalid acknowledgment: its event */
    const int app_data = n && app != Py_None;
    if (app_data) {
        /* app-layer data: not once the flow's payload is encrypted (no payload inspection) */
        PyObject *st = FSLOT(self, flow, F_APP);
        if (st == NULL) {
            taken = -1;
            goto done;
        }
        if (st != Py_None) {
            PyObject *parser = slotted_get(&app_slots, st, AS_PARSER, ls_parser);
            if (parser == NULL) {
                taken = -1;
                goto done;
            }
            t = parser == Py_None ? 0 : attr_true(parser, ls_no_inspect_payload);
            Py_DECREF(parser);
            if (t != 0) {
                taken = t < 0 ? -1 : 0;
                goto done;
            }
        }
    }
    if (n) {
        /* data: the next in-order bytes, nothing held out of order, inside the window, depth
         * and memcap */
        long long mbase = slotted_ll(&stream_slots, me, TS_BASE, ls_base), mend = slotted_ll(&stream_slots, me, TS_END, ls_end);
        long long mlast = slotted_ll(&stream_slots, me, TS_LAST_ACK, ls_last_ack);
        long long mwin = slotted_ll(&stream_slots, me, TS_WINDOW, ls_window);
        PyObject *ooo = slotted_get(&stream_slots, me, TS_OOO, ls_ooo);
        int held = ooo ? PyObject_IsTrue(ooo) : -1;
        Py_XDECREF(ooo);
        if (held != 0 || PyErr_Occurred()) {
            taken = held < 0 || PyErr_Occurred() ? -1 : 0;
            goto done;
        }
        if ((((long long)seqno - mbase - mend) & 0xFFFFFFFFLL) != 0)
            goto done;                              /* not the next in-order segment */
        *right = mend + n;
        PyObject *sset = fa_get(self->streams, ls_s);
        long long depth = attr_ll(self->streams, ls_depth), mem = attr_ll(self->streams, ls_mem);
        long long memcap = sset ? attr_ll(sset, ls_reassembly_memcap) : -1;
        Py_XDECREF(sset);
        if (PyErr_Occurred()) {
            taken = -1;
            goto done;
        }
        if (!(*right >= mlast && (mwin < 0 || *right <= mlast + mwin) && (!depth || *right <= depth) &&
              mem + n <= memcap))
            goto done;
    } else if (app != Py_None) {
        /* a pure ACK of an app-layer flow: nothing for the app layer, unless transactions were
         * left uninspected (fed) or the parser gave up or turned to bypass */
        PyObject *st = FSLOT(self, flow, F_APP);
        if (st == NULL) {
            taken = -1;
            goto done;
        }
        if (st != Py_None) {
            if ((t = slotted_true(&app_slots, st, AS_FED, ls_fed)) != 0) {
                taken = t < 0 ? -1 : 0;
                goto done;
            }
            PyObject *parser = slotted_get(&app_slots, st, AS_PARSER, ls_parser);
            if (parser == NULL) {
                taken = -1;
                goto done;
            }
            int busy = 0;
            if (parser != Py_None) {
                busy = attr_true(parser, ls_bypass_ready);
                if (busy == 0) {
                    busy = attr_true(parser, ls_failed);
                    if (busy > 0) {
                        int seen = slotted_true(&app_slots, st, AS_ERROR_SEEN, ls_error_seen);
                        busy = seen < 0 ? -1 : !seen;
                    }
                }
            }
            Py_DECREF(parser);
            if (busy != 0) {
                taken = busy < 0 ? -1 : 0;
                goto done;
            }
        }
    }
    /* Detector.prefilter_gate(flow, to_server, src, sport, flags, empty=not n), or for
     * app-layer data Detector.data_gate(flow, to_server, src, sport, flags): the direction's
     * cached entry */
    PyObject *cache = fa_get(det, ls_hdr_cache);
    PyObject *fid = FSLOT(self, flow, F_FLOW_ID);
    if (cache == NULL || fid == NULL || !PyDict_Check(cache)) {
        Py_XDECREF(cache);
        taken = -1;
        goto done;
    }
    per_flow = PyDict_GetItemWithError(cache, fid);                    /* borrowed */
    Py_DECREF(cache);
    if (per_flow == NULL || !PyDict_Check(per_flow)) {
        taken = PyErr_Occurred() ? -1 : 0;
        per_flow = NULL;
        goto done;
    }
    Py_INCREF(per_flow);
    dkey = PyTuple_Pack(3, to_server ? Py_True : Py_False, sa, sp);
    PyObject *ent = dkey ? PyDict_GetItemWithError(per_flow, dkey) : NULL;  /* borrowed */
    if (ent == NULL || !PyTuple_CheckExact(ent) || PyTuple_GET_SIZE(ent) != 6) {
        taken = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    /* the flags prefilter (Detector._flags_gate): could a plain candidate match these flags? */
    PyObject *plain = PyTuple_GET_ITEM(ent, 0), *gate = PyTuple_GET_ITEM(ent, 5);
    t = 0;
    if (!PyBytes_CheckExact(gate) || PyBytes_GET_SIZE(gate) != 32 ||
        ((((const unsigned char *)PyBytes_AS_STRING(gate))[(flags & 0xFF) >> 3] >> (flags & 7)) & 1) ||
        (n && !app_data && (t = PyObject_IsTrue(PyTuple_GET_ITEM(ent, 4))) != 0)) {
        taken = t < 0 ? -1 : 0;                     /* (a 1-2 byte pattern is looked for in bytes only) */
        goto done;
    }
    Py_ssize_t k = PyObject_Length(plain);
    *skipped = k < 0 ? NULL : PyLong_FromSsize_t(k);
    if (*skipped == NULL) {
        taken = -1;
        goto done;
    }
    if (app_data)                                   /* (Engine._app_segment looks for them in the window) */
        *short_out = Py_NewRef(PyTuple_GET_ITEM(ent, 4));
    *peer_out = Py_NewRef(peer);
    *me_out = Py_NewRef(me);
    taken = 1;
done:
    Py_XDECREF(me);
    Py_XDECREF(peer);
    Py_XDECREF(per_flow);
    Py_XDECREF(dkey);
    return taken;
}

/* The Packet of a frame the lane took (decode_common's, with its flow and direction), for
 * the engine's methods it hands the frame on to: a new reference, or NULL with an
 * exception set. */
static PyObject *
lane_packet(Lanes *self, PyObject *frame, PyObject *meta, int validate, PyObject *flow, int to_server)
{
    PyObject *mv = PyMemoryView_FromObject(frame);
    PyObject *dargs[4] = {mv, meta, validate ? Py_True : Py_False, self->vxlan};
    PyObject *pkt = mv ? decode_common(NULL, dargs, 4) : NULL;
    Py_XDECREF(mv);
    if (pkt == Py_None) {
        Py_DECREF(pkt);
        PyErr_SetString(PyExc_RuntimeError, "the lane's segment is not a common frame");
        return NULL;
    }
    if (pkt != NULL) {
        Py_SETREF(PSLOT(pkt, S_FLOW), Py_NewRef(flow));
        Py_SETREF(PSLOT(pkt, S_TO_SERVER), Py_NewRef(to_server ? Py_True : Py_False));
    }
    return pkt;
}

/* Could the frame f[0:n] be one of the lane's, by its first bytes alone: IPv4 (IHL 5) or
 * IPv6 carrying UDP (1), or a TCP segment with ACK or ACK+PSH, no payload (2) or some (3)?
 * Anything else goes to inspect before anything is read or summed; parse_common decides
 * the rest. */
static int
lane_candidate(const unsigned char *f, Py_ssize_t n)
{
    Py_ssize_t l4, room;
    int proto;
    if (n >= 34 && f[12] == 0x08 && f[13] == 0 && f[14] == 0x45) {
        proto = f[23];
        l4 = 34;
        room = (Py_ssize_t)be16(f + 16) - 20;
    } else if (n >= 54 && f[12] == 0x86 && f[13] == 0xDD) {
        proto = f[20];
        l4 = 54;
        room = be16(f + 18);
    } else {
        return 0;
    }
    if (proto == 17)
        return 1;
    if (proto != 6 || n < l4 + 20)
        return 0;
    unsigned flags = f[l4 + 13];
    if (flags != 0x10 && flags != 0x18)
        return 0;
    return room == (Py_ssize_t)((f[l4 + 12] >> 4) << 2) ? 2 : 3;
}

/* The cache entry of the frame's endpoints (cm, frame f) under `vlan`.  On a hit *key, *sa
 * and *sp are new references to what a miss would have made; on a miss they stay NULL and
 * the entry is returned for key_keep (NULL with an exception set only on an error). */
static struct key_entry *
key_cached(Lanes *self, const struct common *cm, const unsigned char *f, PyObject *vlan, PyObject **key,
           PyObject **sa, PyObject **sp)
{
    unsigned char raw[KEY_RAW_MAX];
    int alen = cm->ipver == 4 ? 4 : 16;
    raw[0] = (unsigned char)cm->ipver;
    raw[1] = (unsigned char)cm->proto;
    raw[2] = (unsigned char)(cm->sport >> 8);
    raw[3] = (unsigned char)cm->sport;
    raw[4] = (unsigned char)(cm->dport >> 8);
    raw[5] = (unsigned char)cm->dport;
    if (cm->ipver == 4) {
        for (int i = 0; i < 4; i++) {
            raw[6 + i] = (unsigned char)(cm->src4 >> (24 - 8 * i));
            raw[10 + i] = (unsigned char)(cm->dst4 >> (24 - 8 * i));
        }
    } else {
        memcpy(raw + 6, f + 22, 16);
        memcpy(raw + 22, f + 38, 16);
    }
    int n = 6 + 2 * alen;
    uint32_t h = 2166136261u;                       /* FNV-1a */
    for (int i = 0; i < n; i++)
        h = (h ^ raw[i]) * 16777619u;
    struct key_entry *e = &self->keys[(h ^ (h >> 16)) % KEY_CACHE];
    if (e->rawlen == n && memcmp(e->raw, raw, (size_t)n) == 0) {
        int same = e->vlan == vlan ? 1 : PyObject_RichCompareBool(e->vlan, vlan, Py_EQ);
        if (same < 0)
            return NULL;
        if (same) {
            *key = Py_NewRef(e->key);
            *sa = Py_NewRef(e->sa);
            *sp = Py_NewRef(e->sp);
            return e;
        }
    }
    memcpy(e->raw, raw, (size_t)n);
    e->rawlen = -n;                                 /* (filled by key_keep) */
    return e;
}

static void
key_keep(struct key_entry *e, PyObject *vlan, PyObject *key, PyObject *sa, PyObject *sp)
{
    if (e->rawlen >= 0)
        return;                                     /* a hit, or not prepared */
    Py_XSETREF(e->vlan, Py_NewRef(vlan));
    Py_XSETREF(e->key, Py_NewRef(key));
    Py_XSETREF(e->sa, Py_NewRef(sa));
    Py_XSETREF(e->sp, Py_NewRef(sp));
    e->rawlen = -e->rawlen;
}

/* The lane's answer for (frame, meta): a new reference to the Result, or NULL -- with or
 * without an exception set -- when `inspect` must take the frame. */
static PyObject *
lane_answer(Lanes *self, PyObject *frame, PyObject *meta)
{
    PyObject *eng = self->engine;
    PyObject *key = NULL, *src = NULL, *res = NULL, *app = NULL, *det = NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *f = (const unsigned char *)view.buf;
    const int kind = lane_candidate(f, view.len);
    int t = kind > 0 ? attr_true(eng, ls_lean) : 0;
    if (t > 0) {                                    /* (a rule reload may replace the app layer) */
        app = fa_get(eng, ls_app);
        t = app == NULL ? -1 : 1;
    }
    if (t <= 0)
        goto out;
    if (meta_ll(meta, M_LINKTYPE, ls_linktype) != 1)          /* LINKTYPE_ETHERNET */
        goto out;
    long long hint = meta_ll(meta, M_CHECKSUM, ls_checksum);
    if (hint == -1 && PyErr_Occurred())
        goto out;
    int validate = self->validate;
    if (hint && validate) {                         /* rules.decode.decode's checksum decision */
        if (hint == self->csum_auto) {
            PyObject *cnt = meta_attr(meta, M_PCAP_CNT, str_pcap_cnt);
            if (cnt == NULL)
                goto out;
            int replay = PyObject_IsTrue(cnt);
            Py_DECREF(cnt);
            if (replay < 0)
                goto out;
            PyObject *skey = replay ? Py_NewRef(ls_empty) : meta_attr(meta, M_IFACE, str_iface);
            if (skey == NULL)
                goto out;
            src = PyDict_GetItemWithError(self->sources, skey);    /* borrowed */
            Py_DECREF(skey);
            if (src == NULL)
                goto out;                           /* the source's first frame: inspect counts it */
            t = attr_true(src, ls_off);
            if (t < 0)
                goto out;
            if (t) {
                validate = 0;
                src = NULL;                         /* an offloaded source counts nothing more */
            } else {
                long long frames = attr_ll(src, ls_frames);
                if (frames < self->sample_count)    /* still sampling (or an error): inspect decides */
                    goto out;
            }
        } else if (hint == self->csum_skip) {
            validate = 0;
        }
    }
    struct common cm;
    /* decode_common's Packet, without making it: a UDP datagram, or a TCP ACK (PSH allowed)
     * with no payload and no option event; no bad checksum (it never makes a fragment) */
    t = parse_common(f, view.len, validate, self->vxlan, &cm);
    if (t <= 0 || cm.csum_ok == 0)
        goto out;
    if (cm.proto == 6) {
        if ((cm.flags != 0x10 && cm.flags != 0x18) || cm.opt_dup || cm.opt_bad)
            goto out;
        if (attr_true(self->streams, ls_inline) <= 0)
            goto out;
    } else if (cm.proto != 17) {
        goto out;
    }
    /* the flow table's key (rules.flow.flow_key): the lower endpoint first */
    PyObject *vlan = meta_attr(meta, M_VLAN, str_vlan);
    PyObject *sa = NULL, *sp = NULL;
    struct key_entry *ke = NULL;
    if (vlan != NULL)
        ke = key_cached(self, &cm, f, vlan, &key, &sa, &sp);
    if (vlan != NULL && key == NULL && !PyErr_Occurred()) {
        sa = cm.ipver == 4 ? PyLong_FromUnsignedLong(cm.src4) : int_from_be128(f + 22);
        PyObject *da = cm.ipver == 4 ? PyLong_FromUnsignedLong(cm.dst4) : int_from_be128(f + 38);
        sp = PyLong_FromUnsignedLong(cm.sport);
        PyObject *dp = PyLong_FromUnsignedLong(cm.dport);
        PyObject *ver = PyLong_FromLong(cm.ipver), *proto = cm.proto == 6 ? ls_tcp : ls_udp;
        if (sa && da && sp && dp && ver) {
            int lt = PyObject_RichCompareBool(sa, da, Py_LT);
            int eq = lt == 0 ? PyObject_RichCompareBool(sa, da, Py_EQ) : 0;
            int low = lt > 0 || (eq > 0 && cm.sport <= cm.dport);
            if (lt >= 0 && eq >= 0)
                key = low ? PyTuple_Pack(7, ver, proto, sa, sp, da, dp, vlan)
                          : PyTuple_Pack(7, ver, proto, da, dp, sa, sp, vlan);
        }
        Py_XDECREF(da);
        Py_XDECREF(dp);
        Py_XDECREF(ver);
        if (key != NULL && ke != NULL)
            key_keep(ke, vlan, key, sa, sp);
    }
    Py_XDECREF(vlan);
    PyObject *flow = key ? PyDict_GetItemWithError(self->flows, key) : NULL;   /* borrowed */
    if (flow == NULL || Py_TYPE(flow) != self->flow_type) {
        Py_XDECREF(sa);
        Py_XDECREF(sp);
        goto out;
    }
    Py_INCREF(flow);
    PyObject *own = FSLOT(self, flow, F_KEY);
    if (ke != NULL && ke->rawlen > 0 && own != NULL && own != ke->key) {
        /* the flow's own key (the table's), when it is this key: later frames find it by identity */
        int same = PyObject_RichCompareBool(own, ke->key, Py_EQ);
        if (same > 0)
            Py_XSETREF(ke->key, Py_NewRef(own));
        else if (same < 0)
            PyErr_Clear();
    }
    PyObject *hold = NULL, *result = NULL, *skipped = NULL, *peer = NULL, *me = NULL, *shorts = NULL;
    long long ackoff = 0, right = 0;
    const Py_ssize_t dlen = cm.end - cm.pstart;                         /* the payload */
    int to_server = -1;
    /* (a decided flow is dropped or passed: Engine._mark sets one with `decided`) */
    if (fslot_true(FSLOT(self, flow, F_DROPPED)) != 0 || fslot_true(FSLOT(self, flow, F_ACTION_PASS)) != 0 ||
        FSLOT(self, flow, F_CLI) == NULL || FSLOT(self, flow, F_CLI_PORT) == NULL)
        goto flow_out;
    to_server = PyObject_RichCompareBool(FSLOT(self, flow, F_CLI), sa, Py_EQ);
    if (to_server > 0)
        to_server = PyObject_RichCompareBool(FSLOT(self, flow, F_CLI_PORT), sp, Py_EQ);
    if (to_server < 0)
        goto flow_out;
    det = fa_get(eng, ls_detector);
    if (det == NULL)
        goto flow_out;
    if (cm.proto == 17) {
        t = udp_check(self, app, flow, to_server, f + cm.pstart, dlen, &result, &skipped, &hold);
    } else {
        t = tcp_check(self, app, det, flow, to_server, cm.flags, cm.ack, cm.seq, dlen, sa, sp, &peer, &me, &ackoff, &right,
                      &skipped, &shorts);
        result = self->forward;
    }
    if (t <= 0)
        goto flow_out;
    /* the lane takes it: as Engine.inspect, the lane and FlowTable.established_seen would */
    PyObject *tsobj = meta_attr(meta, M_TS, str_ts);
    PyObject *length = PyLong_FromSsize_t(view.len);
    PyObject *last = FSLOT(self, flow, F_LAST_TS);
    int later = (tsobj && length && last) ? PyObject_RichCompareBool(tsobj, last, Py_GT) : -1;
    if (later < 0) {
        Py_XDECREF(tsobj);
        Py_XDECREF(length);
        goto flow_out;
    }
    /* (the changes: none can fail but on memory) */
    PyObject *n = PyDict_GetItemWithError(self->counters, ls_packets);
    PyObject *n1 = n ? PyNumber_Add(n, ls_one) : NULL;
    int err = n1 == NULL || PyDict_SetItem(self->counters, ls_packets, n1) < 0;
    Py_XDECREF(n1);
    if (!err && src != NULL)
        err = attr_add(src, ls_frames, ls_one) < 0;
    if (!err) {
        PyObject *v = PyObject_CallOneArg(self->move_to_end, key);
        err = v == NULL;
        Py_XDECREF(v);
    }
    if (!err && later)
        Py_SETREF(FSLOT(self, flow, F_LAST_TS), Py_NewRef(tsobj));
    Py_DECREF(tsobj);
    if (!err)
        err = fslot_add(&FSLOT(self, flow, to_server ? F_PKTS_TOSERVER : F_PKTS_TOCLIENT), ls_one) < 0 ||
              fslot_add(&FSLOT(self, flow, to_server ? F_BYTES_TOSERVER : F_BYTES_TOCLIENT), length) < 0;
    Py_DECREF(length);
    if (!err && peer != NULL) {
        /* the stream stage of a pure ACK: the peer's highest acknowledgment and its window */
        long long last_ack = slotted_ll(&stream_slots, peer, TS_LAST_ACK, ls_last_ack);
        long long scale = slotted_ll(&stream_slots, me, TS_SCALE, ls_scale);
        err = PyErr_Occurred() != NULL || scale < 0 || scale > 30;
        if (!err && ackoff > last_ack) {
            PyObject *a = PyLong_FromLongLong(ackoff);
            err = a == NULL || slotted_set(&stream_slots, peer, TS_LAST_ACK, ls_last_ack, a) < 0;
            Py_XDECREF(a);
        }
        if (!err) {
            PyObject *w = PyLong_FromLongLong((long long)cm.win << scale);
            err = w == NULL || slotted_set(&stream_slots, peer, TS_WINDOW, ls_window, w) < 0;
            Py_XDECREF(w);
        }
    }
    if (!err && peer != NULL && dlen) {
        /* the stream stage of a data segment: next_seq, the bytes taken in and prefiltered
         * (StreamEngine.take_in_order); then with an app layer Engine._lane_app (the window,
         * the parser, the transaction rules), else the inline window (inline_window) */
        long long next_seq = slotted_ll(&stream_slots, me, TS_NEXT_SEQ, ls_next_seq);
        err = PyErr_Occurred() != NULL;
        if (!err && next_seq < right + 1 && right + 1 < next_seq + (1LL << 30)) {
            PyObject *v = PyLong_FromLongLong(right + 1);
            err = v == NULL || slotted_set(&stream_slots, me, TS_NEXT_SEQ, ls_next_seq, v) < 0;
            Py_XDECREF(v);
        }
        int body = 0;
        if (!err && shorts != NULL) {
            /* an HTTP body segment: the body lane takes it whole, or leaves it unchanged */
            PyObject *answer = NULL;
            body = body_lane(self, frame, meta, validate, det, flow, me, to_server, f + cm.pstart, dlen, right,
                             shorts, skipped, &answer);
            if (body < 0 || answer != NULL) {
                res = answer;
                err = 1;                            /* (answered, or an error: no count below) */
            }
        }
        if (body == 0) {
            PyObject *pl = err ? NULL : PyBytes_FromStringAndSize((const char *)f + cm.pstart, dlen);
            PyObject *nobj = pl ? PyLong_FromSsize_t(dlen) : NULL;
            PyObject *v = nobj ? PyObject_CallMethodObjArgs(self->streams, ls_take_in_order, me, pl, nobj, NULL) : NULL;
            PyObject *win = NULL;
            if (v != NULL && shorts != NULL) {
                /* app-layer data: Engine._lane_app answers (and counts what detection skips) */
                PyObject *pkt = lane_packet(self, frame, meta, validate, flow, to_server);
                if (pkt != NULL)
                    res = PyObject_CallMethodObjArgs(eng, ls_lane_app, pkt, flow, me, nobj, to_server ? Py_True : Py_False,
                                                     skipped, shorts, NULL);
                Py_XDECREF(pkt);
                err = 1;                                /* (answered, or an error: no count below) */
            } else {
                win = v ? PyObject_CallMethodObjArgs(self->streams, ls_inline_window, me, nobj,
                                                     to_server ? Py_True : Py_False, Py_False, NULL) : NULL;
                err = win == NULL || !PyTuple_CheckExact(win) || PyTuple_GET_SIZE(win) != 2;
                PyObject *seen = err ? NULL : PyTuple_GET_ITEM(win, 1);
                int some = seen ? PyObject_IsTrue(seen) : -1;
                PyObject *pkt = NULL;
                if (some > 0) {
                    /* a fast pattern in the window: one the direction's rules want
                     * (Detector.window_candidates) makes detection run on the packet */
                    pkt = lane_packet(self, frame, meta, validate, flow, to_server);
                    PyObject *w = pkt ? PyObject_CallMethodObjArgs(det, ls_window_candidates, pkt, flow,
                                                                   to_server ? Py_True : Py_False, seen, NULL) : NULL;
                    some = w ? PyObject_IsTrue(w) : -1;
                    Py_XDECREF(w);
                }
                if (some > 0) {
                    /* (Engine._lane_detect) */
                    res = PyObject_CallMethodObjArgs(eng, ls_lane_detect, pkt, flow, PyTuple_GET_ITEM(win, 0), seen,
                                                     NULL);
                    err = 1;                            /* (answered, or an error: no count below) */
                } else if (some < 0) {
                    err = 1;
                }
                Py_XDECREF(pkt);
            }
            Py_XDECREF(win);
            Py_XDECREF(v);
            Py_XDECREF(nobj);
            Py_XDECREF(pl);
        }
    }
    if (!err)
        err = attr_add(det, ls_evaluated, skipped) < 0;
    if (!err)
        res = Py_NewRef(result);
flow_out:
    Py_XDECREF(sa);
    Py_XDECREF(sp);
    Py_XDECREF(hold);
    Py_XDECREF(shorts);
    Py_XDECREF(peer);
    Py_XDECREF(me);
    if (cm.proto == 6)
        Py_XDECREF(skipped);                         /* (the ACK lane's own count; the UDP one is the offer's) */
    Py_DECREF(flow);
out:
    Py_XDECREF(key);
    Py_XDECREF(app);
    Py_XDECREF(det);
    PyBuffer_Release(&view);
    return res;
}

/* The call: the lane's answer, else inspect's (vectorcall, as the ring walk calls it). */
static PyObject *
lane_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Lanes *self = (Lanes *)callable;
    if (kwnames == NULL && PyVectorcall_NARGS(nargsf) == 2) {
        PyObject *r = lane_answer(self, args[0], args[1]);
        if (r != NULL)
            return r;
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return NULL;                        /* KeyboardInterrupt and the like */
            PyErr_Clear();                          /* inspect meets it again, and answers it */
        }
    }
    return PyObject_Vectorcall(self->inspect, args, nargsf, kwnames);
}

static int
lane_new_args(Lanes *self, PyObject *args)
{
    PyObject *engine, *inspect, *counters, *flows, *streams, *sources, *vxlan, *any_pattern, *flow_type, *forward;
    PyObject *body = Py_None;
    int validate;
    if (!PyArg_ParseTuple(args, "OOO!O!OO!pOOO!Olll|O:Lanes", &engine, &inspect, &PyDict_Type, &counters,
                          &PyDict_Type, &flows, &streams, &PyDict_Type, &sources, &validate, &vxlan, &any_pattern,
                          &PyType_Type, &flow_type, &forward, &self->csum_auto, &self->csum_skip,
                          &self->sample_count, &body))
        return -1;
    if (body != Py_None) {
        PyObject *cls, *txq = NULL;
        if (!PyArg_ParseTuple(body, "O!LLLLL|O!:Lanes body", &PyType_Type, &cls, &self->closed, &self->prune_step,
                              &self->body_length, &self->body_close, &self->body_data, &PyTuple_Type, &txq))
            return -1;
        if (txq != NULL) {
            PyObject *det_cls, *run, *cands, *fn, *keys, *grown = NULL;
            if (!PyArg_ParseTuple(txq, "O!OOOO!L|O!:Lanes quiet run", &PyType_Type, &det_cls, &run, &cands, &fn,
                                  &PyTuple_Type, &keys, &self->done_level, &PyTuple_Type, &grown))
                return -1;
            if (PyTuple_GET_SIZE(keys) != 2) {
                PyErr_SetString(PyExc_TypeError, "Lanes quiet run: _QUIET must hold two keys");
                return -1;
            }
            if (grown != NULL) {
                PyObject *g0, *g1;
                if (!PyArg_ParseTuple(grown, "OOnnnnnn:Lanes quiet run's grown", &g0, &g1, &self->pk_side,
                                      &self->pk_progress, &self->pk_get, &self->pk_grows, &self->pk_db,
                                      &self->pk_overlap))
                    return -1;
                Py_ssize_t at[6] = {self->pk_side, self->pk_progress, self->pk_get, self->pk_grows, self->pk_db,
                                    self->pk_overlap};
                for (int i = 0; i < 6; i++)
                    if (at[i] < 0) {
                        PyErr_SetString(PyExc_ValueError, "Lanes quiet run: a _Slot.packed place below 0");
                        return -1;
                    }
                self->grown = Py_NewRef(grown);
            }
            self->txq = Py_NewRef(txq);
        }
        self->body_parser = (PyTypeObject *)Py_NewRef(cls);
    }
    if (!PyType_Check(any_pattern)) {
        PyErr_SetString(PyExc_TypeError, "Lanes: any_pattern must be a class");
        return -1;
    }
    if (slot_offsets((PyTypeObject *)flow_type, flow_slot_names, N_FLOW_SLOTS, self->flow_off, "Lanes") < 0)
        return -1;
    self->flow_type = (PyTypeObject *)Py_NewRef(flow_type);
    self->engine = Py_NewRef(engine);
    self->inspect = Py_NewRef(inspect);
    self->counters = Py_NewRef(counters);
    self->flows = Py_NewRef(flows);
    self->streams = Py_NewRef(streams);
    self->sources = Py_NewRef(sources);
    self->vxlan = Py_NewRef(vxlan);
    self->any_pattern = Py_NewRef(any_pattern);
    self->forward = Py_NewRef(forward);
    self->validate = validate;
    self->move_to_end = PyObject_GetAttr(flows, ls_move_to_end);
    return self->move_to_end == NULL ? -1 : 0;
}

static PyObject *
lane_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Lanes takes positional arguments only");
        return NULL;
    }
    if (packet_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Lanes: set_packet_type(Packet) first");
        return NULL;
    }
    Lanes *self = (Lanes *)tp->tp_alloc(tp, 0);
    if (self != NULL && lane_new_args(self, args) < 0)
        Py_CLEAR(self);
    if (self != NULL)
        self->vectorcall = lane_vectorcall;
    return (PyObject *)self;
}

static int
lane_traverse(Lanes *self, visitproc visit, void *arg)
{
    Py_VISIT(self->engine);
    Py_VISIT(self->inspect);
    Py_VISIT(self->counters);
    Py_VISIT(self->flows);
    Py_VISIT(self->streams);
    Py_VISIT(self->sources);
    Py_VISIT(self->vxlan);
    Py_VISIT(self->any_pattern);
    Py_VISIT(self->flow_type);
    Py_VISIT(self->body_parser);
    Py_VISIT(self->txq);
    Py_VISIT(self->grown);
    Py_VISIT(self->forward);
    Py_VISIT(self->move_to_end);
    for (int i = 0; i < KEY_CACHE; i++) {
        Py_VISIT(self->keys[i].vlan);
        Py_VISIT(self->keys[i].key);
        Py_VISIT(self->keys[i].sa);
        Py_VISIT(self->keys[i].sp);
    }
    return 0;
}

static int
lane_clear(Lanes *self)
{
    Py_CLEAR(self->engine);
    Py_CLEAR(self->inspect);
    Py_CLEAR(self->counters);
    Py_CLEAR(self->flows);
    Py_CLEAR(self->streams);
    Py_CLEAR(self->sources);
    Py_CLEAR(self->vxlan);
    Py_CLEAR(self->any_pattern);
    Py_CLEAR(self->flow_type);
    Py_CLEAR(self->forward);
    Py_CLEAR(self->body_parser);
    Py_CLEAR(self->txq);
    Py_CLEAR(self->grown);
    Py_CLEAR(self->move_to_end);
    for (int i = 0; i < KEY_CACHE; i++) {
        self->keys[i].rawlen = 0;
        Py_CLEAR(self->keys[i].vlan);
        Py_CLEAR(self->keys[i].key);
        Py_CLEAR(self->keys[i].sa);
        Py_CLEAR(self->keys[i].sp);
    }
    return 0;
}

static void
lane_dealloc(Lanes *self)
{
    PyObject_GC_UnTrack(self);
    lane_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
lane_reduce(Lanes *self, PyObject *unused)
{
    PyErr_SetString(PyExc_TypeError, "a Lanes belongs to one engine in one process: call Engine.front() there");
    return NULL;
}

static PyMethodDef lane_methods[] = {
    {"__reduce__", (PyCFunction)lane_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef lane_members[] = {
    {"quiet_answers", T_PYSSIZET, offsetof(Lanes, quiet_answers), READONLY,
     "body segments whose transaction run the lane answered itself (tx_quiet)"},
    {"quiet_scans", T_PYSSIZET, offsetof(Lanes, quiet_scans), READONLY,
     "quiet transaction runs whose candidates the lane worked out itself, scanning only the body's "
     "new bytes (quiet_cands)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LanesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rules._hotpath.Lanes",
    .tp_basicsize = sizeof(Lanes),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Lanes, vectorcall),
    .tp_doc = "Lanes(engine, inspect, counters, flows, streams, sources, validate, vxlan_ports, any_pattern, flow_type, forward, "
              "csum_auto, csum_skip, sample_count, body=None): the engine's lanes compiled, in front of inspect; "
              "call it as inspect(frame, meta).",
    .tp_new = lane_new,
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)lane_traverse,
    .tp_clear = (inquiry)lane_clear,
    .tp_dealloc = (destructor)lane_dealloc,
    .tp_methods = lane_methods,
    .tp_members = lane_members,
};

/* ---- libhs, loaded at run time (dlopen): the prefilter's databases without the binding ----
 *
 * rules/prefilter.py's PatternDB compiles its patterns here when Debian's libhs
 * (libhyperscan5, which the install provides) can be opened: HsDatabase.scan and .any call
 * hs_scan directly, collect the ids in C, and lend the compiled scans (rules/_scan.h) a
 * handle.  Through the hyperscan binding a short scan costs about 190 ns (argument parsing,
 * a lock, the GIL released and taken, a Python callback per match); here about 30.  Without
 * the library PatternDB keeps the binding.  Only the few symbols below are used; no header
 * is needed at build time. */
#include <dlfcn.h>
#include <stdlib.h>

typedef struct {
    char *message;
    int expression;
} hs_compile_error_c;

static struct {
    int tried;
    void *lib;
    char why[256];
    const char *(*version)(void);
    int (*valid_platform)(void);
    int (*compile_multi)(const char *const *expressions, const unsigned int *flags, const unsigned int *ids,
                         unsigned int elements, unsigned int mode, const void *platform, void **db,
                         hs_compile_error_c **error);
    int (*free_compile_error)(hs_compile_error_c *error);
    int (*alloc_scratch)(const void *db, void **scratch);
    int (*free_scratch)(void *scratch);
    int (*free_database)(void *db);
    int (*serialize)(const void *db, char **bytes, size_t *length);
    int (*deserialize)(const char *bytes, size_t length, void **db);
    scan_hs_scan_fn scan;
} hs;

#define HS_LIBRARY "libhs.so.5"
#define HS_MODE_BLOCK_C 1

/* 0 loaded, -1 not (hs.why says why) */
static int
hs_load_library(void)
{
    if (hs.tried)
        return hs.lib ? 0 : -1;
    hs.tried = 1;
    void *lib = dlopen(HS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *e = dlerror();
        snprintf(hs.why, sizeof hs.why, "%s", e ? e : HS_LIBRARY ": cannot be opened");
        return -1;
    }
#define HS_SYM(field, name)                                                             \
    do {                                                                                \
        *(void **)&hs.field = dlsym(lib, name);                                         \
        if (hs.field == NULL) {                                                         \
            snprintf(hs.why, sizeof hs.why, "%s has no %s", HS_LIBRARY, name);          \
            dlclose(lib);                                                               \
            return -1;                                                                  \
        }                                                                               \
    } while (0)
    HS_SYM(version, "hs_version");
    HS_SYM(valid_platform, "hs_valid_platform");
    HS_SYM(compile_multi, "hs_compile_multi");
    HS_SYM(free_compile_error, "hs_free_compile_error");
    HS_SYM(alloc_scratch, "hs_alloc_scratch");
    HS_SYM(free_scratch, "hs_free_scratch");
    HS_SYM(free_database, "hs_free_database");
    HS_SYM(serialize, "hs_serialize_database");
    HS_SYM(deserialize, "hs_deserialize_database");
    HS_SYM(scan, "hs_scan");
#undef HS_SYM
    if (hs.valid_platform() != SCAN_HS_SUCCESS) {
        snprintf(hs.why, sizeof hs.why, "%s: this CPU lacks what libhs needs (SSSE3)", HS_LIBRARY);
        dlclose(lib);
        return -1;
    }
    hs.lib = lib;
    return 0;
}

typedef struct {
    PyObject_HEAD
    struct scan_hs h;
    PyObject *empty;        /* what scan() returns when nothing is found */
} HsDatabase;

static PyTypeObject HsDatabaseType;

/* a new HsDatabase owning db (freed here on failure) */
static PyObject *
hsdb_wrap(void *db, PyObject *empty)
{
    void *scratch = NULL;
    if (hs.alloc_scratch(db, &scratch) != SCAN_HS_SUCCESS) {
        hs.free_database(db);
        return PyErr_Format(PyExc_MemoryError, "libhs: no scratch space for the database");
    }
    HsDatabase *self = PyObject_New(HsDatabase, &HsDatabaseType);
    if (self == NULL) {
        hs.free_scratch(scratch);
        hs.free_database(db);
        return NULL;
    }
    self->h.db = db;
    self->h.scratch = scratch;
    self->h.scan = hs.scan;
    self->empty = Py_NewRef(empty);
    return (PyObject *)self;
}

static void
hsdb_dealloc(HsDatabase *self)
{
    Py_XDECREF(self->empty);
    if (self->h.scratch)
        hs.free_scratch(self->h.scratch);
    if (self->h.db)
        hs.free_database(self->h.db);
    PyObject_Free(self);
}

struct hsdb_found {
    PyObject *set;
    int failed;
};

static int
hsdb_collect(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags, void *ctx)
{
    struct hsdb_found *f = (struct hsdb_found *)ctx;
    if (f->set == NULL && (f->set = PySet_New(NULL)) == NULL) {
        f->failed = 1;
        return 1;
    }
    PyObject *v = PyLong_FromUnsignedLong(id);
    if (v == NULL || PySet_Add(f->set, v) < 0) {
        Py_XDECREF(v);
        f->failed = 1;
        return 1;
    }
    Py_DECREF(v);
    return 0;
}

/* the bytes of `data` (bytes fast; any buffer otherwise), 0 or -1 with an exception */
static int
hsdb_data(PyObject *data, Py_buffer *view, const char **p, Py_ssize_t *n)
{
    view->obj = NULL;
    if (PyBytes_CheckExact(data)) {
        *p = PyBytes_AS_STRING(data);
        *n = PyBytes_GET_SIZE(data);
    } else {
        if (PyObject_GetBuffer(data, view, PyBUF_SIMPLE) < 0)
            return -1;
        *p = (const char *)view->buf;
        *n = view->len;
    }
    if (*n > (Py_ssize_t)0xFFFFFFFFu) {
        if (view->obj)
            PyBuffer_Release(view);
        PyErr_SetString(PyExc_OverflowError, "libhs scans at most 4 GiB at once");
        return -1;
    }
    return 0;
}

/* hs_scan of data's bytes with on_match(ctx): libhs's return code in *rc; -1 with an
 * exception when data is not a buffer (or too long) */
static int
hsdb_run(HsDatabase *self, PyObject *data, scan_hs_match on_match, void *ctx, int *rc)
{
    Py_buffer view;
    const char *p;
    Py_ssize_t n;
    if (hsdb_data(data, &view, &p, &n) < 0)
        return -1;
    *rc = self->h.scan(self->h.db, p, (unsigned int)n, 0, self->h.scratch, on_match, ctx);
    if (view.obj)
        PyBuffer_Release(&view);
    return 0;
}

static PyObject *
hsdb_scan(HsDatabase *self, PyObject *data)
{
    struct hsdb_found f = {NULL, 0};
    int rc;
    if (hsdb_run(self, data, hsdb_collect, &f, &rc) < 0)
        return NULL;
    if (f.failed || rc != SCAN_HS_SUCCESS) {
        Py_XDECREF(f.set);
        return f.failed ? NULL : PyErr_Format(PyExc_RuntimeError, "libhs: hs_scan failed (%d)", rc);
    }
    return f.set ? f.set : Py_NewRef(self->empty);
}

static PyObject *
hsdb_any(HsDatabase *self, PyObject *data)
{
    int rc;
    if (hsdb_run(self, data, scan_hs_stop, NULL, &rc) < 0)
        return NULL;
    int got = scan_hs_found(rc);
    return got < 0 ? PyErr_Format(PyExc_RuntimeError, "libhs: hs_scan failed (%d)", rc) : PyBool_FromLong(got);
}

static PyObject *
hsdb_serialize(HsDatabase *self, PyObject *unused)
{
    char *bytes = NULL;
    size_t length = 0;
    if (hs.serialize(self->h.db, &bytes, &length) != SCAN_HS_SUCCESS)
        return PyErr_Format(PyExc_MemoryError, "libhs: hs_serialize_database failed");
    PyObject *out = PyBytes_FromStringAndSize(bytes, (Py_ssize_t)length);
    free(bytes);                    /* libhs's default allocator is malloc */
    return out;
}

static void
hsdb_handle_gone(PyObject *cap)
{
    Py_XDECREF((PyObject *)PyCapsule_GetContext(cap));
}

/* a new capsule of `h` that keeps the database alive (its context) for as long as it lives */
static PyObject *
hsdb_get_handle(HsDatabase *self, void *closure)
{
    PyObject *cap = PyCapsule_New(&self->h, SCAN_HS_CAPSULE, hsdb_handle_gone);
    if (cap == NULL)
        return NULL;
    if (PyCapsule_SetContext(cap, Py_NewRef(self)) < 0) {
        Py_DECREF(self);
        Py_DECREF(cap);
        return NULL;
    }
    return cap;
}

/* pickled as hs_load(serialize(), empty): a reload's copy is this database, in the worker */
static PyObject *
hsdb_reduce(HsDatabase *self, PyObject *unused)
{
    PyObject *mod = PyImport_ImportModule("rules._hotpath");
    if (mod == NULL)
        return NULL;
    PyObject *load = PyObject_GetAttrString(mod, "hs_load");
    Py_DECREF(mod);
    PyObject *data = load ? hsdb_serialize(self, NULL) : NULL;
    PyObject *out = data ? Py_BuildValue("(O(OO))", load, data, self->empty) : NULL;
    Py_XDECREF(load);
    Py_XDECREF(data);
    return out;
}

static PyMethodDef hsdb_methods[] = {
    {"__reduce__", (PyCFunction)hsdb_reduce, METH_NOARGS, NULL},
    {"scan", (PyCFunction)hsdb_scan, METH_O,
     "scan(data) -> set | empty: the ids of the patterns found in data (a new set), or the "
     "`empty` object given at compile time when there are none."},
    {"any", (PyCFunction)hsdb_any, METH_O, "any(data) -> bool: does data hold a pattern (stops at the first)."},
    {"serialize", (PyCFunction)hsdb_serialize, METH_NOARGS,
     "serialize() -> bytes: hs_serialize_database, for hs_load in another process."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef hsdb_getset[] = {
    {"handle", (getter)hsdb_get_handle, NULL,
     "a new capsule of the database for rules/_scan.h's compiled scans (it keeps the database alive)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject HsDatabaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rules._hotpath.HsDatabase",
    .tp_basicsize = sizeof(HsDatabase),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A libhs block-mode database and its scratch (made by hs_compile or hs_load); pickled as its "
              "serialized bytes, loaded with a scratch of its own.",
    .tp_dealloc = (destructor)hsdb_dealloc,
    .tp_methods = hsdb_methods,
    .tp_getset = hsdb_getset,
};

/* hs_library() -> str: libhs's version, loading it on first use; OSError saying why it cannot. */
static PyObject *
hs_library(PyObject *self, PyObject *unused)
{
    if (hs_load_library() < 0)
        return PyErr_Format(PyExc_OSError, "%s", hs.why);
    return PyUnicode_FromString(hs.version());
}

/* hs_compile(expressions, flags, empty) -> HsDatabase: block mode, pattern i has id i. */
static PyObject *
hs_compile(PyObject *self, PyObject *args)
{
    PyObject *exprs, *flags, *empty;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyList_Type, &exprs, &PyList_Type, &flags, &empty))
        return NULL;
    if (hs_load_library() < 0)
        return PyErr_Format(PyExc_OSError, "%s", hs.why);
    Py_ssize_t n = PyList_GET_SIZE(exprs);
    if (n == 0 || n != PyList_GET_SIZE(flags) || n > 0xFFFFFFF)
        return PyErr_Format(PyExc_ValueError, "hs_compile: %zd expressions, %zd flags", n, PyList_GET_SIZE(flags));
    const char **ex = PyMem_Calloc((size_t)n, sizeof *ex);
    unsigned int *fl = PyMem_Calloc((size_t)n, sizeof *fl), *ids = PyMem_Calloc((size_t)n, sizeof *ids);
    PyObject *out = NULL;
    if (ex == NULL || fl == NULL || ids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(exprs, i);
        if (!PyBytes_Check(e) || (Py_ssize_t)strlen(PyBytes_AS_STRING(e)) != PyBytes_GET_SIZE(e)) {
            PyErr_Format(PyExc_ValueError, "hs_compile: expression %zd is not bytes without NUL", i);
            goto done;
        }
        ex[i] = PyBytes_AS_STRING(e);
        unsigned long f = PyLong_AsUnsignedLong(PyList_GET_ITEM(flags, i));
        if (PyErr_Occurred())
            goto done;
        fl[i] = (unsigned int)f;
        ids[i] = (unsigned int)i;
    }
    void *db = NULL;
    hs_compile_error_c *err = NULL;
    if (hs.compile_multi(ex, fl, ids, (unsigned int)n, HS_MODE_BLOCK_C, NULL, &db, &err) != SCAN_HS_SUCCESS) {
        PyErr_Format(PyExc_ValueError, "libhs: expression %d: %s", err ? err->expression : -1,
                     err && err->message ? err->message : "compile failed");
        if (err)
            hs.free_compile_error(err);
        goto done;
    }
    out = hsdb_wrap(db, empty);
done:
    PyMem_Free(ex);
    PyMem_Free(fl);
    PyMem_Free(ids);
    return out;
}

/* hs_load(data, empty) -> HsDatabase: what serialize() gave, in this process. */
static PyObject *
hs_load(PyObject *self, PyObject *args)
{
    Py_buffer data;
    PyObject *empty;
    if (!PyArg_ParseTuple(args, "y*O", &data, &empty))
        return NULL;
    if (hs_load_library() < 0) {
        PyBuffer_Release(&data);
        return PyErr_Format(PyExc_OSError, "%s", hs.why);
    }
    void *db = NULL;
    int rc = hs.deserialize((const char *)data.buf, (size_t)data.len, &db);
    PyBuffer_Release(&data);
    if (rc != SCAN_HS_SUCCESS)
        return PyErr_Format(PyExc_ValueError, "libhs: hs_deserialize_database failed (%d)", rc);
    return hsdb_wrap(db, empty);
}

/* ------------------------------------------------------------------ the body lane */

/* An HTTP body segment, compiled (Engine._app_segment for the commonest app-layer data:
 * the next in-order bytes of a body whose parser takes them through Parser.take).  What
 * Python would do with it, in its order: StreamEngine.take_in_order (the bytes appended,
 * the new ones prefiltered), inline_window (the window's prefilter ids, its 1-2 byte
 * patterns looked for by the detector, raw_progress, _prune), app_next, AppLayer.take_tcp
 * (Parser.take, Body.take_content), and the transaction rules unless TxDetector.idle
 * (asked as Python would ask it) says their run would be skipped -- then Engine._lane_tx
 * runs them.  Taken only when every step is known to go the plain way before anything
 * changes: the parser is the HTTP one (Lanes' `body` argument), not failed, not turning
 * to bypass, with no events pending and AppState.marks exactly what AppLayer._events
 * would make of its transactions now (it would find nothing to do, and would keep no
 * entry of one collect removed); the direction is in a body, nothing buffered, the body
 * plain (no decoding) with more to come than this segment; the stream inline without
 * segment tracking, its app data ending where the segment starts; the prefilter a libhs
 * database or none; no prefilter id in the window, neither new (the scan of the appended
 * bytes) nor remembered (TcpStream.seen), and none of the 1-2 byte patterns in it.  The
 * appended bytes are cut off again when the scan or the short patterns find something:
 * then the general path takes the segment from the start.
 *
 * 1 taken (*res: NULL, the caller counts `skipped` and answers FORWARD; or the answer of
 * Engine._lane_tx, `skipped` counted here), 0 not (nothing changed), -1 an exception. */
/* obj.name = v (a C long long): 0, -1 with an exception */
static int
attr_set_ll_at(struct fa_site *s, PyObject *obj, PyObject *name, long long v)
{
    PyObject *o = PyLong_FromLongLong(v);
    int r = o == NULL ? -1 : fa_set_at(s, obj, name, o);
    Py_XDECREF(o);
    return r;
}
#define attr_set_ll(obj, name, v) attr_set_ll_at(FA_SITE, (obj), (name), (v))

/* obj.name as an int, but only if it is one (else -1 with *ok = 0, and no exception) */
static long long
attr_int_at(struct fa_site *s, PyObject *obj, PyObject *name, int *ok)
{
    PyObject *v = fa_get_at(s, obj, name);
    long long x = -1;
    if (v != NULL && PyLong_CheckExact(v)) {
        int overflow = 0;
        x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred()))
            *ok = 0;
    } else {
        *ok = 0;
    }
    Py_XDECREF(v);
    PyErr_Clear();
    return x;
}
#define attr_int(obj, name, ok) attr_int_at(FA_SITE, (obj), (name), (ok))

/* Is obj.name an empty object of exactly the type `tp` (a list, a bytearray)?  1, 0 (also
 * on an error, which is cleared) */
static int
attr_empty_at(struct fa_site *s, PyObject *obj, PyObject *name, PyTypeObject *tp)
{
    PyObject *v = fa_get_at(s, obj, name);
    int empty = v != NULL && Py_TYPE(v) == tp && Py_SIZE(v) == 0;
    Py_XDECREF(v);
    PyErr_Clear();
    return empty;
}
#define attr_empty(obj, name, tp) attr_empty_at(FA_SITE, (obj), (name), (tp))

/* Is the 1-2 byte pattern pat[0:plen] in p[0:n] (ASCII case folded when nocase, as
 * `pat in data.lower()` with a lowercase pattern, and libhs's caseless literals)? */
static int
short_in(const unsigned char *p, Py_ssize_t n, const unsigned char *pat, Py_ssize_t plen, int nocase)
{
    if (plen < 1 || plen > 2 || n < plen)
        return plen < 1;
    unsigned char first[2] = {pat[0], pat[0]};
    if (nocase && pat[0] >= 'a' && pat[0] <= 'z')
        first[1] = pat[0] - 'a' + 'A';
    for (int k = 0; k < (first[0] == first[1] ? 1 : 2); k++) {
        const unsigned char *at = p, *end = p + n - plen + 1;
        while (at < end && (at = memchr(at, first[k], end - at)) != NULL) {
            if (plen == 1)
                return 1;
            unsigned char c = nocase ? scan_lower(at[1]) : at[1];
            if (c == pat[1])
                return 1;
            at++;
        }
    }
    return 0;
}

/* Is the anchored pattern (fp_short's start and end) within [start, end) of p[0:n]? */
static int
short_at(const unsigned char *p, Py_ssize_t n, const unsigned char *pat, Py_ssize_t plen, int nocase,
         long long start, long long end)
{
    if (start < 0 || start >= n)
        return 0;
    Py_ssize_t stop = end < n ? (Py_ssize_t)end : n;
    return stop > start ? short_in(p + start, stop - (Py_ssize_t)start, pat, plen, nocase) : 0;
}

/* Does any of the direction's 1-2 byte pattern rules (`shorts`, Detector._plain's fifth
 * element) find its pattern in the window p[0:n] -- where its content could match it, for
 * a pattern a content anchors: at its place in the window or in the segment's payload
 * head[0:hn] (Detector.short_candidates, the reference)?  1, 0, -1 not known (an odd
 * entry; no exception). */
static int
shorts_in(PyObject *shorts, const unsigned char *p, Py_ssize_t n, const unsigned char *head, Py_ssize_t hn)
{
    if (!PyTuple_CheckExact(shorts))
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(shorts); i++) {
        PyObject *fp = fa_get(PyTuple_GET_ITEM(shorts, i), bs_fp_short);
        int got = -1;
        if (fp != NULL && PyTuple_CheckExact(fp) && PyTuple_GET_SIZE(fp) == 5 &&
            PyBytes_CheckExact(PyTuple_GET_ITEM(fp, 0)) && PyLong_CheckExact(PyTuple_GET_ITEM(fp, 3)) &&
            PyLong_CheckExact(PyTuple_GET_ITEM(fp, 4))) {
            PyObject *pat = PyTuple_GET_ITEM(fp, 0);
            const unsigned char *pp = (const unsigned char *)PyBytes_AS_STRING(pat);
            Py_ssize_t plen = PyBytes_GET_SIZE(pat);
            int nocase = PyObject_IsTrue(PyTuple_GET_ITEM(fp, 1));
            long long start = PyLong_AsLongLong(PyTuple_GET_ITEM(fp, 3));
            long long end = PyLong_AsLongLong(PyTuple_GET_ITEM(fp, 4));
            if (nocase < 0 || PyErr_Occurred())
                got = -1;
            else if (end < 0)
                got = short_in(p, n, pp, plen, nocase);
            else
                got = short_at(p, n, pp, plen, nocase, start, end) ||
                      short_at(head, hn, pp, plen, nocase, start, end);
        }
        Py_XDECREF(fp);
        PyErr_Clear();
        if (got != 0)
            return got;
    }
    return 0;
}


/* TxDetector.idle(parser, d, flow) (rules/detect_tx.py, the reference): the direction's
 * last run left every rule it tried waiting on what has not changed since -- its mark
 * (gen, flowbits or None) is the parser's generation, and the flow's flowbits if it
 * waited on them.  1, 0, -1 with an exception. */
static int
tx_idle(PyObject *parser, int d, PyObject *flow)
{
    PyObject *marks = fa_get(parser, bs_tx_idle);
    PyObject *mark = marks ? PySequence_GetItem(marks, d) : NULL;
    Py_XDECREF(marks);
    if (mark == NULL)
        return -1;
    int t = 0;
    if (mark != Py_None) {
        if (!PyTuple_Check(mark) || PyTuple_GET_SIZE(mark) != 2) {
            Py_DECREF(mark);
            PyErr_SetString(PyExc_TypeError, "Parser.tx_idle: (gen, flowbits) or None expected");
            return -1;
        }
        PyObject *gen = fa_get(parser, bs_gen);
        t = gen ? PyObject_RichCompareBool(PyTuple_GET_ITEM(mark, 0), gen, Py_EQ) : -1;
        Py_XDECREF(gen);
        if (t > 0 && PyTuple_GET_ITEM(mark, 1) != Py_None) {
            PyObject *bits = fa_get(flow, bs_flowbits);
            t = bits ? PyObject_RichCompareBool(PyTuple_GET_ITEM(mark, 1), bits, Py_EQ) : -1;
            Py_XDECREF(bits);
        }
    }
    Py_DECREF(mark);
    return t;
}

/* The prefilter ids a scan of the body lane finds (hyperscan's callback lane_ids_add):
 * up to LANE_IDS_MAX distinct ones; one more stops the scan (the segment then goes the
 * general way). */
#define LANE_IDS_MAX 32
struct lane_ids {
    unsigned int n;
    unsigned int ids[LANE_IDS_MAX];
};

static int
lane_ids_add(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags, void *ctx)
{
    struct lane_ids *l = ctx;
    for (unsigned int i = 0; i < l->n; i++)
        if (l->ids[i] == id)
            return 0;
    if (l->n == LANE_IDS_MAX)
        return 1;
    l->ids[l->n++] = id;
    return 0;
}

/* TxDetector._candidates on transaction `tx` (direction d, its tx.found `found`, header memo
 * `memo`, progress pr) for a quiet run, without the call, when it can only give what its
 * last call on tx gave: the part it keeps in found[("cands", d)] was made with this memo,
 * and each slot still open and there is a growing body of this direction -- the lane's
 * own `body` (its bytes `bdata`) of transaction `btx`, holding its minimal inspect size --
 * whose new bytes (from `overlap` before the end its last scan reached) hold no pattern
 * that scan did not find: its set is the same, so are the rules it brings.  (Anchored
 * patterns are only ever taken out of a scan's set: a subset stays one.)  The slot's
 * record (id(slot), 0) then moves to the new end, as _grown moves it.  1: the same
 * candidates; 0: not known, _candidates is called (a record moved is what it would have
 * made); -1 an exception. */
static int
quiet_cands(Lanes *self, PyObject *tx, PyObject *found, int d, PyObject *memo, const long long *pr, PyObject *btx,
            PyObject *body, PyObject *bdata)
{
    if (self->grown == NULL || tx != btx || body == NULL || bdata == NULL)
        return 0;
    PyObject *fixed = PyDict_GetItemWithError(found, tq_cands[d]);              /* borrowed */
    if (fixed == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyList_CheckExact(fixed) || PyList_GET_SIZE(fixed) != 3 || PyList_GET_ITEM(fixed, 0) != memo ||
        !PyList_CheckExact(PyList_GET_ITEM(fixed, 1)))
        return 0;
    const char *bytes;
    Py_ssize_t n;
    if (PyByteArray_CheckExact(bdata)) {
        bytes = PyByteArray_AS_STRING(bdata);
        n = PyByteArray_GET_SIZE(bdata);
    } else if (PyBytes_CheckExact(bdata)) {
        bytes = PyBytes_AS_STRING(bdata);
        n = PyBytes_GET_SIZE(bdata);
    } else {
        return 0;
    }
    PyObject *open = Py_NewRef(PyList_GET_ITEM(fixed, 1)), *getter = PyTuple_GET_ITEM(self->grown, d);
    PyObject *slot = NULL, *pk = NULL, *sid = NULL, *key = NULL, *o = NULL, *nobj = NULL, *pair = NULL;
    int r = -1;
    /* the getter's body is this one (the transaction's body of side d), and there: not
     * empty, at least the minimal inspect size (the lane's body is never done) */
    o = fa_get(tx, tq_bodies[d]);
    if (o == NULL)
        goto out;
    if (o != body || n == 0) {
        r = 0;
        goto out;
    }
    Py_CLEAR(o);
    o = fa_get(tx, bs_min_inspect);
    PyObject *mi = o ? PySequence_GetItem(o, d) : NULL;
    long long least = mi ? PyLong_AsLongLong(mi) : -1;
    Py_XDECREF(mi);
    Py_CLEAR(o);
    if (PyErr_Occurred())
        goto out;
    if (n < least) {
        r = 0;
        goto out;
    }
    Py_ssize_t most = self->pk_side;
    Py_ssize_t at[5] = {self->pk_progress, self->pk_get, self->pk_grows, self->pk_db, self->pk_overlap};
    for (int i = 0; i < 5; i++)
        most = at[i] > most ? at[i] : most;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(open); i++) {
        Py_XSETREF(slot, Py_NewRef(PyList_GET_ITEM(open, i)));
        Py_XSETREF(pk, fa_get(slot, tq_packed));
        if (pk == NULL)
            goto out;
        if (!PyTuple_CheckExact(pk) || PyTuple_GET_SIZE(pk) <= most) {
            r = 0;
            goto out;
        }
        int side = PyObject_IsTrue(PyTuple_GET_ITEM(pk, self->pk_side));
        long long need = side < 0 ? -1 : PyLong_AsLongLong(PyTuple_GET_ITEM(pk, self->pk_progress));
        if (side < 0 || (need == -1 && PyErr_Occurred()))
            goto out;
        if (pr[side] < need)
            continue;                                               /* not there yet */
        if (side != d || PyTuple_GET_ITEM(pk, self->pk_get) != getter ||
            PyTuple_GET_ITEM(pk, self->pk_grows) != Py_True) {
            r = 0;                                                  /* (another buffer: _candidates') */
            goto out;
        }
        Py_XSETREF(sid, PyLong_FromVoidPtr(slot));                  /* id(slot) */
        int in = sid ? PyDict_Contains(found, sid) : -1;
        if (in != 0) {
            r = in < 0 ? -1 : 0;                                    /* (final: _candidates moves it) */
            goto out;
        }
        Py_XSETREF(key, PyTuple_Pack(2, sid, tq_zero));
        PyObject *prev = key ? PyDict_GetItemWithError(found, key) : NULL;    /* borrowed */
        if (prev == NULL) {
            r = PyErr_Occurred() ? -1 : 0;
            goto out;
        }
        if (!PyTuple_CheckExact(prev) || PyTuple_GET_SIZE(prev) != 2 || !PyAnySet_Check(PyTuple_GET_ITEM(prev, 1))) {
            r = 0;
            goto out;
        }
        long long done = PyLong_AsLongLong(PyTuple_GET_ITEM(prev, 0));
        if (done == -1 && PyErr_Occurred())
            goto out;
        if (done > n) {
            r = 0;
            goto out;
        }
        if (done == n)
            continue;
        PyObject *got = Py_NewRef(PyTuple_GET_ITEM(prev, 1));
        Py_XSETREF(o, fa_get(PyTuple_GET_ITEM(pk, self->pk_db), bs_scan));
        long long overlap = PyLong_AsLongLong(PyTuple_GET_ITEM(pk, self->pk_overlap));
        if (o == NULL || (overlap == -1 && PyErr_Occurred())) {
            Py_DECREF(got);
            goto out;
        }
        if (!PyCFunction_Check(o) || PyCFunction_GET_SELF(o) == NULL ||
            Py_TYPE(PyCFunction_GET_SELF(o)) != &HsDatabaseType || overlap < 0 || n - done > 0x7FFFFFFF) {
            Py_DECREF(got);
            r = 0;                                                  /* (not libhs: _candidates') */
            goto out;
        }
        HsDatabase *hsdb = (HsDatabase *)PyCFunction_GET_SELF(o);
        long long from = done - overlap > 0 ? done - overlap : 0;
        struct lane_ids ids = {0, {0}};
        int rc = hsdb->h.scan(hsdb->h.db, bytes + from, (unsigned int)(n - from), 0, hsdb->h.scratch,
                              lane_ids_add, &ids);
        int sub = rc == SCAN_HS_SUCCESS;                            /* (too many ids, or libhs failed: not known) */
        for (unsigned int k = 0; sub > 0 && k < ids.n; k++) {
            PyObject *pid = PyLong_FromUnsignedLong(ids.ids[k]);
            sub = pid ? PySet_Contains(got, pid) : -1;
            Py_XDECREF(pid);
        }
        if (sub > 0) {
            Py_XSETREF(nobj, PyLong_FromSsize_t(n));
            Py_XSETREF(pair, nobj ? PyTuple_Pack(2, nobj, got) : NULL);
            sub = pair == NULL || PyDict_SetItem(found, key, pair) < 0 ? -1 : 1;
        }
        Py_DECREF(got);
        if (sub <= 0) {
            r = sub;
            goto out;
        }
    }
    r = 1;
out:
    Py_DECREF(open);
    Py_XDECREF(slot);
    Py_XDECREF(pk);
    Py_XDECREF(sid);
    Py_XDECREF(key);
    Py_XDECREF(o);
    Py_XDECREF(nobj);
    Py_XDECREF(pair);
    return r;
}

/* TxDetector.run and the rest of Engine._app_tx on a body segment, when every transaction
 * of the direction had a last run that matched nothing and is quiet again (its record in
 * Tx.found under _QUIET[d]: the same candidates, progress and flowbits; run then only
 * counts what that run evaluated), and none is complete (AppLayer.collect then frees none
 * and only sets st.fed false).  Every record is checked before anything is changed: the
 * transactions' `final` marks, TxDetector.evaluated, the parser's idle mark for the
 * direction (run's), st.fed (collect's).  The detector must be a TxDetector whose run and
 * _candidates are the class's own (tests replace them on an instance).  A transaction's
 * candidates are quiet_cands' when it knows them (the lane's own body growing, its new
 * bytes bringing no pattern), otherwise _candidates' on the segment's Packet (`*pktp`,
 * built then if it is not yet).  1 answered: the answer is FORWARD; 0 not, with nothing
 * changed but what _candidates keeps (the header memo, the candidates and the growing
 * body's scan, which run keeps the same way when it runs next; an error on the way is
 * cleared, run meets it again); -1 an exception once something changed (memory). */
static int
tx_quiet(Lanes *self, PyObject *txd, PyObject *parser, PyObject *st, PyObject *flow, PyObject *txs, int d,
         PyObject *frame, PyObject *meta, int validate, PyObject **pktp, PyObject *btx, PyObject *body,
         PyObject *bdata)
{
    PyObject *q = self->txq;
    if (q == NULL || Py_TYPE(txd) != (PyTypeObject *)PyTuple_GET_ITEM(q, 0) || !PyList_CheckExact(txs))
        return 0;
    PyTypeObject *tp = Py_TYPE(txd);
    if (_PyType_Lookup(tp, tq_run) != PyTuple_GET_ITEM(q, 1) ||
        _PyType_Lookup(tp, tq_candidates) != PyTuple_GET_ITEM(q, 2))
        return 0;
    PyObject **dp = _PyObject_GetDictPtr(txd);
    if (dp != NULL && *dp != NULL && (PyDict_GetItemWithError(*dp, tq_run) != NULL ||
                                      PyDict_GetItemWithError(*dp, tq_candidates) != NULL || PyErr_Occurred()))
        goto not_now;
#define TQ_MAX 8
    PyObject *finals[TQ_MAX];                       /* the transactions run marks final */
    int nf = 0, on_bits = 0, r = 0, nscans = 0;
    long long add = 0;
    PyObject *dobj = d ? Py_True : Py_False, *qkey = PyTuple_GET_ITEM(PyTuple_GET_ITEM(q, 4), d);
    PyObject *proto = NULL, *protos = NULL, *hdr = NULL, *memo = NULL, *key = NULL, *src = NULL, *sport = NULL;
    PyObject *reads = NULL, *rk = NULL, *gen = NULL, *bits = NULL, *tx = NULL, *o = NULL, *cands = NULL;
    PyObject *at = NULL, *found = NULL;
    Py_ssize_t n = PyList_GET_SIZE(txs);
    if (n > TQ_MAX || attr_true(txd, tq_quiet_runs) != 1)
        goto out;
    proto = slotted_get(&app_slots, st, AS_PROTO, ls_proto);
    protos = fa_get(txd, tq_protos);
    if (proto == NULL || protos == NULL || PySequence_Contains(protos, proto) != 1)
        goto out;
    /* TxDetector._ok_memo: the flow direction's header memo (made when missing, as run makes it) */
    hdr = fa_get(txd, tq_hdr);
    PyObject *fid = FSLOT(self, flow, F_FLOW_ID);
    if (hdr == NULL || !PyDict_CheckExact(hdr) || fid == NULL)
        goto out;
    PyObject *per = PyDict_GetItemWithError(hdr, fid);                  /* borrowed */
    if (per == NULL) {
        if (PyErr_Occurred() || (o = PyDict_New()) == NULL || PyDict_SetItem(hdr, fid, o) < 0)
            goto out;
        per = o;
        Py_CLEAR(o);
    }
    /* (the packet's source: the flow's client to the server, its server the other way) */
    src = d ? Py_XNewRef(FSLOT(self, flow, F_CLI)) : fa_get(flow, tq_srv);
    sport = src == NULL ? NULL : d ? Py_XNewRef(FSLOT(self, flow, F_CLI_PORT)) : fa_get(flow, tq_srv_port);
    key = sport ? PyTuple_Pack(3, dobj, src, sport) : NULL;
    if (key == NULL || !PyDict_CheckExact(per))
        goto out;
    memo = Py_XNewRef(PyDict_GetItemWithError(per, key));
    if (memo == NULL && (PyErr_Occurred() || (memo = PyDict_New()) == NULL || PyDict_SetItem(per, key, memo) < 0))
        goto out;
    /* the rules' reading sides for the direction (run's read0, read1) */
    reads = fa_get(txd, tq_reads);
    rk = reads ? PyTuple_Pack(2, proto, dobj) : NULL;
    if (rk == NULL || !PyDict_CheckExact(reads))
        goto out;
    PyObject *rv = PyDict_GetItemWithError(reads, rk);                  /* borrowed */
    int read0 = 0, read1 = 0;
    if (rv != NULL) {
        if (!PyTuple_CheckExact(rv) || PyTuple_GET_SIZE(rv) != 2 || (read0 = PyObject_IsTrue(PyTuple_GET_ITEM(rv, 0))) < 0 ||
            (read1 = PyObject_IsTrue(PyTuple_GET_ITEM(rv, 1))) < 0)
            goto out;
    } else if (PyErr_Occurred()) {
        goto out;
    }
    gen = fa_get(parser, bs_gen);
    bits = fa_get(flow, bs_flowbits);
    if (gen == NULL || bits == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XSETREF(tx, Py_NewRef(PyList_GET_ITEM(txs, i)));
        Py_CLEAR(o);
        o = fa_get(tx, tq_only);
        if (o == NULL)
            goto out;
        if (o != Py_None) {
            int ne = PyObject_RichCompareBool(o, dobj, Py_NE);
            if (ne < 0)
                goto out;
            if (ne)
                continue;
        }
        Py_CLEAR(o);
        o = fa_get(tx, bs_progress);
        if (o == NULL || !PyList_CheckExact(o) || PyList_GET_SIZE(o) != 2)
            goto out;
        long long p0 = PyLong_AsLongLong(PyList_GET_ITEM(o, 0)), p1 = PyLong_AsLongLong(PyList_GET_ITEM(o, 1));
        if (PyErr_Occurred() || (p0 >= self->done_level && p1 >= self->done_level))
            goto out;                               /* (complete: collect's to free, run's to say) */
        Py_XSETREF(at, PyTuple_Pack(2, PyList_GET_ITEM(o, 0), PyList_GET_ITEM(o, 1)));
        Py_XSETREF(found, fa_get(tx, tq_found));
        if (at == NULL || found == NULL || !PyDict_CheckExact(found))
            goto out;
        const long long pr[2] = {p0, p1};
        int known = quiet_cands(self, tx, found, d, memo, pr, btx, body, bdata);
        if (known < 0)
            goto out;
        if (known) {
            nscans++;
        } else {
            if (*pktp == NULL && (*pktp = lane_packet(self, frame, meta, validate, flow, d)) == NULL)
                goto out;
            PyObject *args[6] = {txd, tx, dobj, memo, *pktp, proto};
            Py_XSETREF(cands, PyObject_Vectorcall(PyTuple_GET_ITEM(q, 3), args, 6, NULL));
            if (cands == NULL)
                goto out;
        }
        PyObject *rec = PyDict_GetItemWithError(found, qkey);              /* borrowed */
        if (rec == NULL || !PyTuple_CheckExact(rec) || PyTuple_GET_SIZE(rec) != 5)
            goto out;
        Py_INCREF(rec);
        int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(rec, 1), at, Py_EQ);
        if (same > 0)
            same = PyObject_RichCompareBool(PyTuple_GET_ITEM(rec, 2), bits, Py_EQ);
        if (same > 0 && !known)
            same = PyObject_RichCompareBool(PyTuple_GET_ITEM(rec, 0), cands, Py_EQ);
        long long tried = same > 0 ? PyLong_AsLongLong(PyTuple_GET_ITEM(rec, 3)) : 0;
        int waited = same > 0 && !PyErr_Occurred() ? PyObject_IsTrue(PyTuple_GET_ITEM(rec, 4)) : -1;
        Py_DECREF(rec);
        if (same <= 0 || waited < 0 || PyErr_Occurred())
            goto out;
        add += tried;
        on_bits |= waited;
        if ((p0 >= self->done_level || !read0) && (p1 >= self->done_level || !read1))
            finals[nf++] = Py_NewRef(tx);
    }
    /* every record held: run's and collect's changes (only memory can fail from here) */
    r = -1;
    for (int i = 0; i < nf; i++) {
        Py_CLEAR(o);
        o = fa_get(finals[i], tq_final);
        if (o == NULL || PySequence_SetItem(o, d, Py_True) < 0)
            goto out;
    }
    Py_CLEAR(o);
    o = PyLong_FromLongLong(add);
    if (o == NULL || attr_add(txd, ls_evaluated, o) < 0)
        goto out;
    if (gen != Py_None) {
        PyObject *marks = fa_get(parser, bs_tx_idle);
        PyObject *fb = on_bits ? PyFrozenSet_New(bits) : Py_NewRef(Py_None);
        PyObject *mark = fb ? PyTuple_Pack(2, gen, fb) : NULL;
        int bad = marks == NULL || mark == NULL || PySequence_SetItem(marks, d, mark) < 0;
        Py_XDECREF(marks);
        Py_XDECREF(fb);
        Py_XDECREF(mark);
        if (bad)
            goto out;
    }
    if (slotted_set(&app_slots, st, AS_FED, ls_fed, Py_False) < 0)
        goto out;
    self->quiet_answers++;
    self->quiet_scans += nscans;
    r = 1;
out:
    for (int i = 0; i < nf; i++)
        Py_DECREF(finals[i]);
    Py_XDECREF(proto);
    Py_XDECREF(protos);
    Py_XDECREF(hdr);
    Py_XDECREF(memo);
    Py_XDECREF(key);
    Py_XDECREF(src);
    Py_XDECREF(sport);
    Py_XDECREF(reads);
    Py_XDECREF(rk);
    Py_XDECREF(gen);
    Py_XDECREF(bits);
    Py_XDECREF(tx);
    Py_XDECREF(o);
    Py_XDECREF(cands);
    Py_XDECREF(at);
    Py_XDECREF(found);
    if (r == 0 && PyErr_Occurred())
        goto not_now;
    return r;
not_now:
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;                              /* (KeyboardInterrupt and the like go up) */
        PyErr_Clear();
    }
    return 0;
#undef TQ_MAX
}

/* StreamEngine._prune's `keep` for stream `me` as the body lane calls it: raw_progress and
 * end at `right`, app_off still at `mend`, chunk `c` -- min(last_ack, right - c when
 * inline, right), and app_off when the app layer is on and before that.  _prune cuts only
 * when keep - data_off > PRUNE_STEP.  0 (*keep set), -1 with an exception. */
static int
prune_keep(PyObject *streams, PyObject *me, long long right, long long c, long long mend, long long *keep)
{
    long long last = slotted_ll(&stream_slots, me, TS_LAST_ACK, ls_last_ack);
    if (last == -1 && PyErr_Occurred())
        return -1;
    int inl = attr_true(streams, ls_inline), app_on = attr_true(streams, bs_app_on);
    if (inl < 0 || app_on < 0)
        return -1;
    long long k = right - (inl ? c : 0);
    if (last < k)
        k = last;
    if (right < k)
        k = right;
    if (app_on && mend < k)
        k = mend;
    *keep = k;
    return 0;
}

/* Is AppState.marks what AppLayer._events would make of the transactions now: an entry
 * for each, holding its progress, and no other (collect may have removed a transaction
 * since)?  1, 0 (also when anything is unexpected; no exception). */
static int
marks_current(PyObject *txs, PyObject *marks)
{
    if (!PyList_CheckExact(txs) || !PyDict_CheckExact(marks) || PyDict_GET_SIZE(marks) != PyList_GET_SIZE(txs))
        return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(txs); i++) {
        PyObject *tx = PyList_GET_ITEM(txs, i);
        PyObject *id = fa_get(tx, bs_id), *prog = fa_get(tx, bs_progress);
        PyObject *m = id ? PyDict_GetItemWithError(marks, id) : NULL;             /* borrowed */
        int same = 0;
        if (m != NULL && prog != NULL && PyTuple_CheckExact(m) && PyTuple_GET_SIZE(m) == 2 &&
            PyList_CheckExact(prog) && PyList_GET_SIZE(prog) == 2) {
            same = PyObject_RichCompareBool(PyTuple_GET_ITEM(m, 0), PyList_GET_ITEM(prog, 0), Py_EQ);
            if (same > 0)
                same = PyObject_RichCompareBool(PyTuple_GET_ITEM(m, 1), PyList_GET_ITEM(prog, 1), Py_EQ);
        }
        Py_XDECREF(id);
        Py_XDECREF(prog);
        PyErr_Clear();
        if (same <= 0)
            return 0;
    }
    return 1;
}

/* PyByteArray_Resize(b, n) for a bytearray growing by appends: when its bytes must move, it
 * is given room for half as many again (at most `cap` bytes in all, 0 no cap).  CPython grows
 * a bytearray by an eighth, so a 100 KiB body taken 1,448 bytes a segment was moved about 36
 * times, about eight bytes copied for each byte kept; by a half, about 10 times.  (The room
 * stays: a bytearray shrinks its block only below half of it.)  0, -1 with an exception. */
static int
bytearray_grow(PyObject *b, Py_ssize_t n, Py_ssize_t cap)
{
    PyByteArrayObject *o = (PyByteArrayObject *)b;
    if (n + (o->ob_start - o->ob_bytes) + 1 > o->ob_alloc) {
        Py_ssize_t want = n + n / 2;
        if (cap > 0 && want > cap)
            want = cap > n ? cap : n;
        if (want > n && PyByteArray_Resize(b, want) < 0)
            return -1;
    }
    return PyByteArray_Resize(b, n);
}

static int
body_lane(Lanes *self, PyObject *frame, PyObject *meta, int validate, PyObject *det, PyObject *flow, PyObject *me,
          int to_server, const unsigned char *pl, Py_ssize_t n, long long right, PyObject *shorts, PyObject *skipped,
          PyObject **res)
{
    *res = NULL;
    if (self->body_parser == NULL || n <= 0)
        return 0;
    PyObject *st = FSLOT(self, flow, F_APP), *ssn = FSLOT(self, flow, F_TCP);
    if (st == NULL || st == Py_None || ssn == NULL || ssn == Py_None)
        return 0;
    PyObject *parser = NULL, *side = NULL, *body = NULL, *tx = NULL, *txd = NULL, *data = NULL, *scanner = NULL;
    PyObject *seen = NULL, *lengths = NULL, *txs = NULL, *o = NULL, *window = NULL, *bdata = NULL;
    HsDatabase *hsdb = NULL;
    int taken = 0, ok = 1, t;
    PyObject *ids = NULL, *pkt = NULL;              /* prefilter ids in the window; the Packet, once made */
    PyObject *fresh = NULL;                         /* those the new bytes hold, a set as PatternDB.scan makes it */
    struct lane_ids got = {0, {0}};
    const long long mend = right - n;
    /* the parser: HTTP's, not failed or turning to bypass, no events pending, marks current */
    parser = slotted_get(&app_slots, st, AS_PARSER, ls_parser);
    if (parser == NULL || Py_TYPE(parser) != self->body_parser)
        goto out;
    if (attr_true(parser, ls_failed) != 0 || attr_true(parser, ls_bypass_ready) != 0)
        goto out;
    if (!attr_empty(parser, bs_events, &PyList_Type))
        goto out;
    txs = fa_get(parser, bs_txs);
    o = fa_get(st, bs_marks);
    if (txs == NULL || o == NULL || !marks_current(txs, o))
        goto out;
    Py_CLEAR(o);
    /* the direction: in a body, nothing buffered, not given up */
    o = fa_get(parser, bs_sides);
    side = (o != NULL && PyTuple_CheckExact(o) && PyTuple_GET_SIZE(o) == 2) ? Py_NewRef(PyTuple_GET_ITEM(o, to_server)) : NULL;
    Py_CLEAR(o);
    if (side == NULL || attr_int(side, bs_state, &ok) != 2 || !ok || attr_true(side, bs_gone) != 0)
        goto out;
    if (!attr_empty(side, bs_buf, &PyByteArray_Type))
        goto out;
    body = fa_get(side, bs_body);
    tx = fa_get(side, bs_tx);
    if (body == NULL || body == Py_None || tx == NULL || tx == Py_None)
        goto out;
    /* the body: plain, not complete, failed or done, more of it to come than n */
    if (attr_true(body, bs_decoding) != 0 || attr_true(body, ls_done) != 0 || attr_true(body, ls_failed) != 0)
        goto out;
    long long bst = attr_int(body, bs_bstate, &ok), left = attr_int(body, bs_left, &ok);
    if (!ok || !(bst == self->body_close || ((bst == self->body_length || bst == self->body_data) && left > n)))
        goto out;
    /* its bytes: a bytearray, or once full the bytes Body.as_bytes left (nothing is added) */
    bdata = fa_get(body, bs_data);
    long long limit = attr_int(body, bs_limit, &ok);
    int plain_data = bdata != NULL && ok &&
                     (PyByteArray_CheckExact(bdata) || (PyBytes_CheckExact(bdata) && limit > 0 &&
                                                        PyBytes_GET_SIZE(bdata) >= limit));
    Py_CLEAR(bdata);
    if (!plain_data)
        goto out;
    /* transactions are detected (the detector has a TxDetector) */
    txd = fa_get(det, bs_tx);
    if (txd == NULL || txd == Py_None)
        goto out;
    /* the stream: inline without segment tracking, the session open, its app data ending
     * where the segment starts (StreamEngine.app_next), the bytes a bytearray */
    if (attr_true(self->streams, bs_track_segs) != 0)
        goto out;
    if (attr_int(ssn, bs_state, &ok) == self->closed || !ok)
        goto out;
    long long data_off = attr_int(me, bs_data_off, &ok), app_off = attr_int(me, bs_app_off, &ok);
    if (!ok || app_off != mend || mend < data_off)
        goto out;
    data = fa_get(me, bs_data);
    if (data == NULL || !PyByteArray_CheckExact(data) || PyByteArray_GET_SIZE(data) != mend - data_off)
        goto out;
    o = fa_get(self->streams, bs_chunk);
    long long c = -1;
    if (o != NULL && PyTuple_CheckExact(o) && PyTuple_GET_SIZE(o) == 2 && PyLong_CheckExact(PyTuple_GET_ITEM(o, !to_server)))
        c = PyLong_AsLongLong(PyTuple_GET_ITEM(o, !to_server));
    Py_CLEAR(o);
    if (c <= 0)
        goto out;
    /* inline_window's left edge */
    long long lo = right - (n <= (c / 3) * 2 ? c : n + c / 3);
    if (lo < data_off)
        lo = data_off;
    /* the prefilter: a libhs database or none; remembered ids none in the window */
    scanner = fa_get(self->streams, bs_scanner);
    if (scanner == NULL)
        goto out;
    long long overlap = 0;
    if (scanner != Py_None) {
        o = fa_get(scanner, bs_scan);
        if (o == NULL || !PyCFunction_Check(o) || PyCFunction_GET_SELF(o) == NULL ||
            Py_TYPE(PyCFunction_GET_SELF(o)) != &HsDatabaseType)
            goto out;
        hsdb = (HsDatabase *)Py_NewRef(PyCFunction_GET_SELF(o));
        Py_CLEAR(o);
        overlap = attr_int(scanner, bs_overlap, &ok);
        seen = fa_get(me, bs_seen);
        lengths = fa_get(scanner, bs_lengths);
        if (!ok || overlap < 0 || seen == NULL || !PyDict_CheckExact(seen) || lengths == NULL || !PyDict_CheckExact(lengths))
            goto out;
        Py_ssize_t pos = 0;
        PyObject *pid, *edge;
        while (PyDict_Next(seen, &pos, &pid, &edge)) {             /* (_seen_in's set, read only) */
            PyObject *len = PyDict_GetItemWithError(lengths, pid);
            if (len == NULL || !PyLong_CheckExact(edge) || !PyLong_CheckExact(len))
                goto out;
            if (PyLong_AsLongLong(edge) - PyLong_AsLongLong(len) >= lo &&
                ((ids == NULL && (ids = PySet_New(NULL)) == NULL) || PySet_Add(ids, pid) < 0))
                goto out;                                          /* (a fast pattern in the window) */
        }
        if (PyErr_Occurred())
            goto out;
    }
    /* take_in_order's append, then its scan (the new bytes and `overlap` before them) and
     * the short patterns in the window; undone if either finds something */
    if (bytearray_grow(data, (mend - data_off) + n, 0) < 0)
        goto out;
    char *bytes = PyByteArray_AS_STRING(data);
    memcpy(bytes + (mend - data_off), pl, n);
    long long scan_lo = mend - overlap > data_off ? mend - overlap : data_off;
    int hit = 0;
    if (hsdb != NULL) {
        /* every pattern the new bytes hold (take_in_order's _scan_new): one the direction's
         * rules want sends the segment to detection, the others are only remembered */
        Py_ssize_t len = right - scan_lo;
        int rc = len > (Py_ssize_t)0xFFFFFFFFu ? -1 :
            hsdb->h.scan(hsdb->h.db, bytes + (scan_lo - data_off), (unsigned int)len, 0, hsdb->h.scratch,
                         lane_ids_add, &got);
        hit = rc == SCAN_HS_SUCCESS ? 0 : 1;                        /* (too many ids, or libhs failed) */
        for (unsigned int i = 0; hit == 0 && i < got.n; i++) {
            /* (in the order found, as PatternDB.scan adds them: the set iterates as its) */
            PyObject *pid = PyLong_FromUnsignedLong(got.ids[i]);
            if (pid == NULL || (ids == NULL && (ids = PySet_New(NULL)) == NULL) || PySet_Add(ids, pid) < 0 ||
                (fresh == NULL && (fresh = PySet_New(NULL)) == NULL) || PySet_Add(fresh, pid) < 0)
                hit = 1;
            Py_XDECREF(pid);
        }
    }
    if (hit == 0 && ids != NULL) {
        /* fast patterns in the window: detection runs if the direction's rules want one
         * (Detector.window_candidates, on the segment's Packet) */
        pkt = lane_packet(self, frame, meta, validate, flow, to_server);
        PyObject *w = pkt ? PyObject_CallMethodObjArgs(det, ls_window_candidates, pkt, flow,
                                                       to_server ? Py_True : Py_False, ids, NULL) : NULL;
        hit = w == NULL ? 1 : PyObject_IsTrue(w) != 0;
        Py_XDECREF(w);
    }
    if (hit == 0 && shorts != Py_None)
        hit = shorts_in(shorts, (const unsigned char *)bytes + (lo - data_off), right - lo, pl, n);
    if (hit != 0) {
        if (PyByteArray_Resize(data, mend - data_off) < 0)
            taken = -1;                                            /* (cannot happen: shrinking) */
        goto out;
    }
    /* taken: from here on only memory can fail (-1, the exception kept) */
    taken = -1;
    long long mem = attr_ll(self->streams, ls_mem);
    if ((mem == -1 && PyErr_Occurred()) || attr_set_ll(self->streams, ls_mem, mem + n) < 0 ||
        attr_set_ll(me, ls_end, right) < 0)
        goto out;
    if (fresh != NULL) {
        /* _scan_new's sightings, at the right edge, newest last, in the found set's order */
        PyObject *edge = PyLong_FromLongLong(right), *it = edge ? PyObject_GetIter(fresh) : NULL, *pid;
        int r = it == NULL ? -1 : 0;
        while (r >= 0 && it != NULL && (pid = PyIter_Next(it)) != NULL) {
            r = PyDict_Contains(seen, pid);
            if (r > 0)
                r = PyDict_DelItem(seen, pid);
            if (r >= 0)
                r = PyDict_SetItem(seen, pid, edge);
            Py_DECREF(pid);
        }
        Py_XDECREF(it);
        Py_XDECREF(edge);
        if (r < 0 || PyErr_Occurred())
            goto out;
    }
    if (seen != NULL && PyDict_GET_SIZE(seen)) {
        /* _seen_in: sightings that end before the window are dropped for good, oldest first */
        o = PyList_New(0);
        Py_ssize_t pos = 0;
        PyObject *pid, *edge;
        while (o != NULL && PyDict_Next(seen, &pos, &pid, &edge) && PyLong_AsLongLong(edge) < lo)
            if (PyList_Append(o, pid) < 0)
                goto out;
        for (Py_ssize_t i = 0; o != NULL && i < PyList_GET_SIZE(o); i++)
            if (PyDict_DelItem(seen, PyList_GET_ITEM(o, i)) < 0)
                goto out;
        if (o == NULL || PyErr_Occurred())
            goto out;
        Py_CLEAR(o);
    }
    if (attr_set_ll(me, bs_raw_progress, right) < 0)
        goto out;
    long long keep = data_off;                     /* (no cut unless the data is long enough for one) */
    if (right - data_off > c + self->prune_step && prune_keep(self->streams, me, right, c, mend, &keep) < 0)
        goto out;
    if (keep - data_off > self->prune_step) {
        /* _prune, as inline_window calls it (before app_next moves app_off), when it cuts
         * (its own test, in prune_keep: most segments of a body cut nothing, and the call
         * is not made).  It keeps every byte from raw_progress - c = right - c on, so only a
         * window starting before that (a segment over two thirds of a chunk) may lose bytes
         * the transaction rules could need: that one is copied first */
        if (lo < right - c &&
            (window = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(data) + (lo - data_off), right - lo)) == NULL)
            goto out;
        PyObject *cobj = PyLong_FromLongLong(c);
        PyObject *r = cobj ? PyObject_CallMethodObjArgs(self->streams, bs_prune, me, cobj, NULL) : NULL;
        Py_XDECREF(cobj);
        if (r == NULL)
            goto out;
        Py_DECREF(r);
    }
    if (attr_set_ll(me, bs_app_off, right) < 0)
        goto out;
    /* Parser.take: Body.take_content's _piece, then the transaction's growth */
    bdata = fa_get(body, bs_data);
    Py_ssize_t kept = bdata == NULL ? -1 : PyObject_Length(bdata);
    long long msg = attr_ll(body, bs_msg), entity = attr_ll(body, bs_entity);
    long long raw_len = attr_ll(body, bs_raw_len);
    if (PyErr_Occurred() || attr_set_ll(body, bs_msg, msg + n) < 0 || attr_set_ll(body, bs_entity, entity + n) < 0)
        goto out;
    long long room = limit ? limit - kept : n;
    if (room > 0) {
        Py_ssize_t more = n < room ? n : (Py_ssize_t)room;
        if (!PyByteArray_CheckExact(bdata)) {           /* (not full: always a bytearray) */
            PyErr_SetString(PyExc_TypeError, "Body.data: a bytearray expected");
            goto out;
        }
        if (bytearray_grow(bdata, kept + more, limit) < 0)
            goto out;
        memcpy(PyByteArray_AS_STRING(bdata) + kept, pl, more);
    }
    if (bst != self->body_close && attr_set_ll(body, bs_left, left - n) < 0)
        goto out;
    if (attr_set_ll(body, bs_raw_len, raw_len + n) < 0)
        goto out;
    o = fa_get(tx, bs_body_grew);
    if (o == NULL || PySequence_SetItem(o, to_server, Py_True) < 0)
        goto out;
    Py_CLEAR(o);
    Py_ssize_t now = PyObject_Length(bdata);
    if (now != kept) {                              /* http._seen_growth: detection sees it grow */
        o = fa_get(tx, bs_min_inspect);
        PyObject *mi = o ? PySequence_GetItem(o, to_server) : NULL;
        long long least = mi ? PyLong_AsLongLong(mi) : -1;
        Py_XDECREF(mi);
        Py_CLEAR(o);
        if (PyErr_Occurred())
            goto out;
        if (now >= least) {
            long long gen = attr_ll(parser, bs_gen);
            if (PyErr_Occurred() || attr_set_ll(parser, bs_gen, gen + 1) < 0)
                goto out;
        }
    }
    if (slotted_set(&app_slots, st, AS_FED, ls_fed, Py_True) < 0)
        goto out;
    /* Engine._app_segment's end: TxDetector.run skips an idle direction (and with no
     * transaction finds nothing); otherwise Engine._lane_tx runs it */
    if (PyList_GET_SIZE(txs) == 0) {
        t = 1;
    } else {
        /* TxDetector.idle, inline; an idle set on the detector itself (tests make a
         * detector that never skips that way) is called instead */
        o = fa_get(txd, bs_idle);
        PyObject *cls_idle = o ? PyObject_GetAttr((PyObject *)Py_TYPE(txd), bs_idle) : NULL;
        if (cls_idle == NULL) {
            t = -1;
        } else if (o == cls_idle) {
            t = tx_idle(parser, to_server, flow);
        } else {
            PyObject *r = PyObject_CallFunctionObjArgs(o, parser, to_server ? Py_True : Py_False, flow, NULL);
            t = r == NULL ? -1 : PyObject_IsTrue(r);
            Py_XDECREF(r);
        }
        Py_XDECREF(cls_idle);
        Py_CLEAR(o);
        if (t < 0)
            goto out;
    }
    if (t > 0) {
        if (slotted_set(&app_slots, st, AS_FED, ls_fed, Py_False) < 0)
            goto out;
        taken = 1;                                  /* the caller counts `skipped`, answers FORWARD */
        goto out;
    }
    if (attr_add(det, ls_evaluated, skipped) < 0)
        goto out;
    /* a quiet run (every transaction's last run matched nothing, and nothing it depends
     * on moved) is answered here; otherwise Engine._lane_tx runs the rules */
    t = tx_quiet(self, txd, parser, st, flow, txs, to_server, frame, meta, validate, &pkt, tx, body, bdata);
    if (t != 0) {
        if (t > 0) {
            *res = Py_NewRef(self->forward);
            taken = 1;
        }
        goto out;
    }
    if (window == NULL) {
        data_off = attr_ll(me, bs_data_off);
        if (PyErr_Occurred())
            goto out;
        window = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(data) + (lo - data_off), right - lo);
    }
    if (window != NULL && pkt == NULL)
        pkt = lane_packet(self, frame, meta, validate, flow, to_server);
    PyObject *plb = window && pkt ? PyBytes_FromStringAndSize((const char *)pl, n) : NULL;
    /* the view's prefilter ids: none, or those no rule here wants (inline_window's _seen_in) */
    PyObject *found = plb ? (hsdb != NULL ? PySet_New(NULL) : Py_NewRef(Py_None)) : NULL;
    if (found != NULL && hsdb != NULL && ids != NULL) {
        Py_ssize_t pos = 0;
        PyObject *pid, *edge;
        while (found != NULL && PyDict_Next(seen, &pos, &pid, &edge)) {
            PyObject *len = PyDict_GetItemWithError(lengths, pid);
            if (len == NULL || !PyLong_CheckExact(edge) || !PyLong_CheckExact(len)) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_KeyError, "a sighting without a pattern length");
                Py_CLEAR(found);
            } else if (PyLong_AsLongLong(edge) - PyLong_AsLongLong(len) >= lo && PySet_Add(found, pid) < 0) {
                Py_CLEAR(found);
            }
        }
    }
    if (found != NULL)
        *res = PyObject_CallMethodObjArgs(self->engine, bs_lane_tx, pkt, flow, st, window, plb, found, NULL);
    Py_XDECREF(found);
    Py_XDECREF(plb);
    taken = *res != NULL ? 1 : -1;
out:
    if (taken == 0)
        PyErr_Clear();                              /* not taken: the general path meets it, if anything */
    Py_XDECREF(window);
    Py_XDECREF(ids);
    Py_XDECREF(fresh);
    Py_XDECREF(pkt);
    Py_XDECREF(bdata);
    Py_XDECREF(parser);
    Py_XDECREF(side);
    Py_XDECREF(body);
    Py_XDECREF(tx);
    Py_XDECREF(txd);
    Py_XDECREF(data);
    Py_XDECREF(scanner);
    Py_XDECREF(seen);
    Py_XDECREF(lengths);
    Py_XDECREF(txs);
    Py_XDECREF(o);
    Py_XDECREF((PyObject *)hsdb);
    return taken;
}

/* scan(spec, data) -> int: compiled_scan, for tests to hold against AnyPattern's own answer. */
static PyObject *
scan_for_tests(PyObject *self, PyObject *args)
{
    PyObject *spec;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "Oy*", &spec, &data))
        return NULL;
    int found = compiled_scan(spec, (const unsigned char *)data.buf, data.len);
    PyBuffer_Release(&data);
    return PyLong_FromLong(found);
}

/* attr(obj, name[, value]): obj.name, or obj.name = value (None returned), as the lanes read
 * and write fields (fa_get / fa_set), for tests to hold against getattr / setattr. */
static PyObject *
attr_for_tests(PyObject *self, PyObject *args)
{
    PyObject *obj, *name, *value = NULL;
    if (!PyArg_ParseTuple(args, "OU|O", &obj, &name, &value))
        return NULL;
    Py_INCREF(name);
    PyUnicode_InternInPlace(&name);                /* (the lanes' names are interned) */
    PyObject *r = value == NULL ? fa_get(obj, name) : fa_set(obj, name, value) < 0 ? NULL : Py_NewRef(Py_None);
    Py_DECREF(name);
    return r;
}

static PyMethodDef hotpath_methods[] = {
    {"attr", attr_for_tests, METH_VARARGS,
     "attr(obj, name[, value]): obj.name, or sets it to value, the way the compiled lanes read and "
     "write engine fields (a plain slot by its cached offset, anything else as getattr/setattr do)."},
    {"hs_library", hs_library, METH_NOARGS,
     "hs_library() -> str: the version of libhs (libhs.so.5, opened on first use); OSError saying why "
     "it cannot be used."},
    {"hs_compile", hs_compile, METH_VARARGS,
     "hs_compile(expressions, flags, empty) -> HsDatabase: a libhs block-mode database of the "
     "expressions (lists of bytes and of hs flags), pattern i with id i; scan() returns `empty` "
     "when nothing is found."},
    {"hs_load", hs_load, METH_VARARGS,
     "hs_load(data, empty) -> HsDatabase: a database HsDatabase.serialize() gave."},
    {"scan", scan_for_tests, METH_VARARGS,
     "scan(spec, data) -> int: what the compiled lanes' scan of an AnyPattern.spec answers for "
     "data: 1 found, 0 nothing, -1 not in its form (the caller then scans in Python)."},
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
    if (scan_init() < 0 || lane_init_strings() < 0 || PyType_Ready(&LanesType) < 0 ||
        PyModule_AddObjectRef(m, "Lanes", (PyObject *)&LanesType) < 0 || PyType_Ready(&HsDatabaseType) < 0 ||
        PyModule_AddObjectRef(m, "HsDatabase", (PyObject *)&HsDatabaseType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
