"""conf: every suricata.yaml key ipsbridge reads lands in the engine's settings, or is refused
(file:line, what to use instead), or -- Suricata's allocation tuning -- warns once.

Facts checked against Suricata 7.0's suricata.yaml.in, stream-tcp.c, flow.c, defrag*.c,
util-misc.c (ParseSizeString) and util-exception-policy.c.
"""
from __future__ import annotations

import argparse
import random
from fractions import Fraction

import pytest
from conf_testing import LINE_SHAPE, check_decision, load, one_refusal, refusals

import conf
from conf import Config, ConfigError, Interface
from conf.build import engine_settings
from conf.load import UNIMPLEMENTED, parse_size, randomize_chunk
from conf.model import POLICY_UNSET
from conf.validate import max_threads
from rules.settings import DEFAULT_TIMEOUTS, FLOW_BYTES, FlowTimeouts

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
NO_RANDOM = "stream:\n  reassembly:\n    randomize-chunk-size: no\n"


# ------------------------------------------------------------------ sizes
@pytest.mark.parametrize("text,expected", [
    ("1048576", 1048576), (1048576, 1048576), ("0", 0), (" 10 ", 10),
    ("64mb", 64 * MiB), ("64MB", 64 * MiB), ("64Mb", 64 * MiB), ("64mB", 64 * MiB),
    ("1 kb", KiB), ("1kb", KiB), ("32 MB", 32 * MiB), ("1gb", GiB), ("1GB", GiB),
    ("1.5mb", Fraction(3, 2) * MiB), ("2.5", Fraction(5, 2)), (1.5, Fraction(3, 2)),
    ("2KiB", 2 * KiB), ("3MiB", 3 * MiB), ("1GiB", GiB),
], ids=repr)
def test_size_strings_as_suricata_parses_them(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("value", [
    "1x5mb", "-1", "64 xb", "1tb", "mb", "", "1,5mb", "64m", "64b", "1e6", "1kib", "1MIB",
    "0x10", "ten", float("nan"), float("inf"), True, None, [1], {"a": 1},
], ids=repr)
def test_bad_sizes_are_refused(value):
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize("value,fragment", [
    ("64xb", "'64xb' has an unknown unit 'xb'"),
    ("lots", "'lots' is not a size"),
    (".nan", "'nan' is not a size"),
    (".inf", "'inf' is not a size"),
    ("-5mb", "'-5mb' is not a size"),
    ("yes", "True is not a size"),
    ("0", "0 is below the minimum 1"),
    ("20000000000gb", "'20000000000gb' is above the maximum 18446744073709551615"),
], ids=repr)
def test_bad_size_in_a_file_names_file_line_and_fix(value, fragment):
    p = one_refusal(f"af-packet: []\nstream:\n  memcap: {value}\n")
    assert (p.file, p.line, p.where, p.key) == ("test.yaml", 3, "stream", "memcap")
    assert fragment in p.message and p.fix
    assert str(p).startswith(f"test.yaml:3: stream: memcap: {fragment}")


# ------------------------------------------------------------------ every key lands in EngineSettings
def es(text: str, mode: str = "ips"):
    return engine_settings(load(text), mode)


LANDS = [
    # (id, yaml, getter on EngineSettings, expected)
    ("stream.memcap", "stream:\n  memcap: 32mb\n", lambda e: e.stream.memcap, 32 * MiB),
    ("stream.memcap-bytes", "stream:\n  memcap: 1000000\n", lambda e: e.stream.memcap, 1000000),
    ("stream.checksum-validation", "stream:\n  checksum-validation: no\n",
     lambda e: e.decoder.checksum_validation, False),
    ("stream.inline-yes", "stream:\n  inline: yes\n", lambda e: (e.stream.inline, e.inline_stream), ("yes", True)),
    ("stream.inline-no", "stream:\n  inline: no\n", lambda e: (e.stream.inline, e.inline_stream), ("no", False)),
    ("stream.inline-auto", "stream:\n  inline: auto\n", lambda e: (e.stream.inline, e.inline_stream),
     ("auto", True)),
    ("stream.midstream", "stream:\n  midstream: yes\n", lambda e: e.stream.midstream, True),
    ("stream.async-oneside", "stream:\n  async-oneside: true\n", lambda e: e.stream.async_oneside, True),
    ("stream.drop-invalid", "stream:\n  drop-invalid: no\n", lambda e: e.stream.drop_invalid, False),
    ("stream.bypass-no", "stream:\n  bypass: no\n", lambda e: e.stream.bypass, False),
    ("stream.bypass", "stream:\n  bypass: yes\n", lambda e: e.stream.bypass, True),
    ("flow-timeouts.tcp.bypassed", "flow-timeouts:\n  tcp:\n    bypassed: 40\n    emergency-bypassed: 7\n",
     lambda e: (e.flow.timeouts["tcp"].bypassed, e.flow.timeouts["tcp"].emergency_bypassed), (40, 7)),
    ("stream.reassembly.memcap", "stream:\n  reassembly:\n    memcap: 1gb\n",
     lambda e: e.stream.reassembly_memcap, GiB),
    ("stream.reassembly.depth", "stream:\n  reassembly:\n    depth: 2mb\n", lambda e: e.stream.depth, 2 * MiB),
    ("stream.reassembly.depth-unlimited", "stream:\n  reassembly:\n    depth: 0\n", lambda e: e.stream.depth, 0),
    ("stream.reassembly.toserver-chunk-size",
     NO_RANDOM + "    toserver-chunk-size: 4096\n", lambda e: e.stream.toserver_chunk_size, 4096),
    ("stream.reassembly.toclient-chunk-size",
     NO_RANDOM + "    toclient-chunk-size: 1kb\n", lambda e: e.stream.toclient_chunk_size, KiB),
    ("stream.reassembly.raw", "stream:\n  reassembly:\n    raw: no\n", lambda e: e.stream.raw, False),
    ("stream.reassembly.check-overlap-different-data",
     "stream:\n  reassembly:\n    check-overlap-different-data: yes\n",
     lambda e: e.stream.check_overlap_different_data, True),
    ("flow.memcap", "flow:\n  memcap: 1mb\n", lambda e: (e.flow.memcap, e.flow.max_flows), (MiB, MiB // FLOW_BYTES)),
    ("flow.emergency-recovery", "flow:\n  emergency-recovery: 50\n", lambda e: e.flow.emergency_recovery, 50),
    ("defrag.timeout", "defrag:\n  timeout: 30\n", lambda e: e.defrag.timeout, 30),
    ("defrag.trackers", "defrag:\n  trackers: 100\n", lambda e: e.defrag.trackers, 100),
    ("defrag.max-frags", "defrag:\n  max-frags: 1000\n", lambda e: e.defrag.max_frags, 1000),
    ("defrag.trackers-0-default", "defrag:\n  trackers: 0\n  max-frags: 0\n",
     lambda e: (e.defrag.trackers, e.defrag.max_frags), (65535, 65535)),
    ("decoder.vxlan", "decoder:\n  vxlan:\n    enabled: no\n    ports: '[4789, 8472]'\n",
     lambda e: (e.decoder.vxlan_enabled, e.decoder.vxlan_ports), (False, (4789, 8472))),
    ("decoder.gre", "decoder:\n  gre:\n    enabled: no\n", lambda e: e.decoder.gre_enabled, False),
]


@pytest.mark.parametrize("text,get,expected", [r[1:] for r in LANDS], ids=[r[0] for r in LANDS])
def test_key_lands_in_engine_settings(text, get, expected):
    value = get(es(text))
    assert value == expected and type(value) is type(expected)


def test_defaults_are_suricatas():
    e = es(NO_RANDOM)
    s = e.stream
    assert (s.memcap, s.reassembly_memcap, s.depth) == (64 * MiB, 256 * MiB, MiB)
    assert (s.toserver_chunk_size, s.toclient_chunk_size, s.raw, s.check_overlap_different_data) == \
        (2560, 2560, True, False)
    assert (s.midstream, s.async_oneside, s.inline) == (False, False, "auto")
    assert (e.flow.memcap, e.flow.emergency_recovery, e.flow.timeouts) == (128 * MiB, 30, DEFAULT_TIMEOUTS)
    assert (e.defrag.timeout, e.defrag.trackers, e.defrag.max_frags) == (60, 65535, 65535)
    assert e.decoder.checksum_validation is True


def test_shipped_example_shows_the_defaults():
    import os

    path = os.path.join(os.path.dirname(conf.__file__), "ipsbridge.yaml")
    example = conf.load_file(path, rng=random.Random(3))
    empty = load("", seed=3)
    for section in ("stream", "decoder", "flow", "defrag", "exception_policy"):
        assert getattr(example, section) == getattr(empty, section), section


TIMEOUT_FIELDS = [f.replace("_", "-") for f in FlowTimeouts.__dataclass_fields__]
TIMEOUT_CASES = [(proto, key) for proto in DEFAULT_TIMEOUTS for key in TIMEOUT_FIELDS
                 if not (proto in ("udp", "icmp") and key.endswith("closed"))]


@pytest.mark.parametrize("proto,key", TIMEOUT_CASES, ids=[f"{p}.{k}" for p, k in TIMEOUT_CASES])
def test_flow_timeout_lands_alone(proto, key):
    e = es(f"flow-timeouts:\n  {proto}:\n    {key}: 4321\n")
    field = key.replace("-", "_")
    for p, t in e.flow.timeouts.items():
        for f in FlowTimeouts.__dataclass_fields__:
            expected = 4321 if (p, f) == (proto, field) else getattr(DEFAULT_TIMEOUTS[p], f)
            assert getattr(t, f) == expected, (p, f)


@pytest.mark.parametrize("value,fragment", [
    ("-1", "-1 is below the minimum 0"), ("4294967296", "above the maximum 4294967295"),
    ("1.5", "is not an integer"), (".nan", "is not an integer"), ("soon", "is not an integer"),
], ids=repr)
def test_bad_flow_timeout(value, fragment):
    p = one_refusal(f"flow-timeouts:\n  tcp:\n    new: {value}\n")
    assert (p.where, p.key, p.line) == ("flow-timeouts.tcp", "new", 3) and fragment in p.message


# ------------------------------------------------------------------ chunk-size randomization
class _Fixed:
    def __init__(self, r):
        self.r = r

    def random(self):
        return self.r


@pytest.mark.parametrize("r,chunk_range,expected", [
    (0.5, 10, 2560), (0.0, 10, 2560 - 128), (1.0, 10, 2560 + 128), (0.0, 99, 2560 - 1267),
    (0.75, 10, 2560 + 64), (0.0, 0, 2560), (1.0, 99, 65535),
], ids=repr)
def test_randomize_chunk_is_plus_minus_half_the_range(r, chunk_range, expected):
    size = 65535 if expected == 65535 else 2560
    assert randomize_chunk(size, chunk_range, _Fixed(r)) == expected


def test_chunk_sizes_are_randomized_at_load_by_default_and_reproducible_with_a_seed():
    sizes = set()
    for seed in range(20):
        s = load("", seed).stream
        assert 2560 * 0.95 <= s.toserver_chunk_size <= 2560 * 1.05
        assert 2560 * 0.95 <= s.toclient_chunk_size <= 2560 * 1.05
        sizes.add(s.toserver_chunk_size)
        assert load("", seed).stream == s, "same seed, same sizes"
    assert len(sizes) > 5


def test_chunk_randomization_range_and_off():
    s = load("stream:\n  reassembly:\n    toserver-chunk-size: 10000\n    randomize-chunk-range: 50\n").stream
    assert 7500 <= s.toserver_chunk_size <= 12500
    s = load("stream:\n  reassembly:\n    toserver-chunk-size: 10000\n    randomize-chunk-range: 0\n").stream
    assert s.toserver_chunk_size == 10000
    s = load(NO_RANDOM + "    toserver-chunk-size: 65535\n").stream
    assert (s.toserver_chunk_size, s.toclient_chunk_size) == (65535, 2560)
    assert Config().stream.toserver_chunk_size == 2560, "a Config built in code is not randomized"


# ------------------------------------------------------------------ exception policies
def policies(text: str, mode: str) -> tuple:
    e = es(text, mode)
    return e.stream.memcap_policy, e.stream.reassembly_memcap_policy, e.stream.midstream_policy, e.exception_policy


MEMCAP_KEYS = {"stream.memcap-policy": "stream:\n  memcap-policy: {v}\n",
               "stream.reassembly.memcap-policy": "stream:\n  reassembly:\n    memcap-policy: {v}\n"}
# written value -> resolved in (ips, tap, ids): Suricata's ExceptionPolicyParse with support_flow
MEMCAP_MATRIX = [
    (None, ("drop-flow", "ignore", "ignore")),           # not set, master not set (= auto)
    ("auto", ("drop-flow", "ignore", "ignore")),
    ("drop-flow", ("drop-flow",) * 3), ("drop-packet", ("drop-packet",) * 3), ("reject", ("reject",) * 3),
    ("pass-flow", ("pass-flow",) * 3), ("pass-packet", ("pass-packet",) * 3), ("bypass", ("bypass",) * 3),
    ("ignore", ("ignore",) * 3),
]


@pytest.mark.parametrize("key", MEMCAP_KEYS)
@pytest.mark.parametrize("written,expected", MEMCAP_MATRIX, ids=lambda v: str(v))
def test_memcap_policy_resolution(key, written, expected):
    text = MEMCAP_KEYS[key].format(v=written) if written else ""
    c = load(text)
    field = "memcap_policy" if key == "stream.memcap-policy" else "reassembly_memcap_policy"
    assert getattr(c.stream, field) == (written or POLICY_UNSET), "stored as written"
    for mode, want in zip(("ips", "tap", "ids"), expected):
        got = getattr(engine_settings(c, mode).stream, field)
        assert got == want, (mode, got)


# the master exception-policy (midstream-policy set so that packet-only masters are allowed)
# -> (memcap policies, engine errors) in (ips, tap, ids)
MASTER_MATRIX = [
    ("auto", ("drop-flow", "ignore", "ignore"), ("ignore",) * 3),
    ("drop-flow", ("drop-flow", "ignore", "ignore"), ("drop-flow", "ignore", "ignore")),
    ("drop-packet", ("drop-packet", "ignore", "ignore"), ("drop-packet", "ignore", "ignore")),
    ("pass-flow", ("pass-flow",) * 3, ("pass-flow",) * 3),
    ("pass-packet", ("pass-packet",) * 3, ("pass-packet",) * 3),
    ("reject", ("reject",) * 3, ("ignore",) * 3),
    ("bypass", ("bypass",) * 3, ("ignore",) * 3),
    ("ignore", ("ignore",) * 3, ("ignore",) * 3),
]


@pytest.mark.parametrize("master,memcap,errors", MASTER_MATRIX, ids=[m[0] for m in MASTER_MATRIX])
def test_master_switch_is_the_default_of_every_unset_policy(master, memcap, errors):
    text = f"exception-policy: {master}\nstream:\n  midstream-policy: ignore\n"
    for mode, want, err in zip(("ips", "tap", "ids"), memcap, errors):
        assert policies(text, mode) == (want, want, "ignore", err), mode


def test_a_set_policy_wins_over_the_master():
    text = "exception-policy: pass-flow\nstream:\n  memcap-policy: drop-packet\n"
    assert policies(text, "ips") == ("drop-packet", "pass-flow", "pass-flow", "pass-flow")
    text = "exception-policy: pass-flow\nstream:\n  memcap-policy: auto\n"
    assert policies(text, "ips")[0] == "drop-flow" and policies(text, "tap")[0] == "ignore"


# stream.midstream, midstream-policy as written, master -> resolved in (ips, tap, ids);
# "refused" = engine_settings raises for that mode (Suricata's ExceptionPolicyMidstreamParse)
MIDSTREAM_MATRIX = [
    (False, None, "auto", ("drop-flow", "ignore", "ignore")),
    (True, None, "auto", ("ignore", "ignore", "ignore")),
    (False, "auto", "auto", ("drop-flow", "ignore", "ignore")),
    (True, "auto", "auto", ("ignore", "ignore", "ignore")),
    (False, "drop-flow", "auto", ("drop-flow", "refused", "refused")),
    (False, "reject", "auto", ("reject",) * 3),
    (False, "bypass", "auto", ("bypass",) * 3),
    (False, "pass-flow", "auto", ("pass-flow",) * 3),
    (True, "pass-flow", "auto", ("pass-flow",) * 3),
    (False, "ignore", "drop-flow", ("ignore",) * 3),
    (True, "ignore", "auto", ("ignore",) * 3),
    (False, None, "drop-flow", ("drop-flow", "ignore", "ignore")),
    (True, None, "drop-flow", ("drop-flow", "ignore", "ignore")),
    (False, None, "pass-flow", ("pass-flow",) * 3),
    (False, None, "reject", ("reject",) * 3),
    (False, None, "ignore", ("ignore",) * 3),
    (False, None, "drop-packet", ("refused", "ignore", "ignore")),
]


@pytest.mark.parametrize("midstream,written,master,expected", MIDSTREAM_MATRIX,
                         ids=[f"midstream={m[0]}-{m[1]}-master={m[2]}" for m in MIDSTREAM_MATRIX])
def test_midstream_policy_resolution(midstream, written, master, expected):
    text = f"exception-policy: {master}\nstream:\n  midstream: {'yes' if midstream else 'no'}\n"
    if written:
        text += f"  midstream-policy: {written}\n"
    c = load(text)
    for mode, want in zip(("ips", "tap", "ids"), expected):
        if want == "refused":
            with pytest.raises(ConfigError) as info:
                engine_settings(c, mode)
            (p,) = info.value.problems
            assert LINE_SHAPE.match(str(p)), str(p)
            assert p.line == (4 if written else 1)
        else:
            assert engine_settings(c, mode).stream.midstream_policy == want, mode


@pytest.mark.parametrize("text,line,where,key,fragment", [
    ("stream:\n  midstream-policy: drop-packet\n", 2, "stream", "midstream-policy", "whole flow"),
    ("stream:\n  midstream-policy: pass-packet\n", 2, "stream", "midstream-policy", "whole flow"),
    ("stream:\n  midstream: yes\n  midstream-policy: drop-flow\n", 3, "stream", "midstream-policy",
     "only pass-flow or ignore apply"),
    ("stream:\n  midstream: yes\n  midstream-policy: reject\n", 3, "stream", "midstream-policy",
     "only pass-flow or ignore apply"),
    ("stream:\n  midstream: yes\n  midstream-policy: bypass\n", 3, "stream", "midstream-policy",
     "only pass-flow or ignore apply"),
    ("exception-policy: pass-packet\n", 1, "exception-policy", "", "cannot act on a single packet"),
    ("exception-policy: rejectboth\n", 1, "exception-policy", "", "'rejectboth'"),
    ("exception-policy: dropflow\n", 1, "exception-policy", "", "did you mean 'drop-flow'?"),
    ("stream:\n  memcap-policy: drop\n", 2, "stream", "memcap-policy", "unknown value 'drop'"),
    ("stream:\n  reassembly:\n    memcap-policy: yes\n", 3, "stream.reassembly", "memcap-policy", "boolean"),
], ids=["midstream-drop-packet", "midstream-pass-packet", "midstream-on-drop-flow", "midstream-on-reject",
        "midstream-on-bypass", "master-pass-packet", "rejectboth", "typo", "unknown", "bool"])
def test_policies_suricata_refuses_are_refused_at_load(text, line, where, key, fragment):
    p = one_refusal(text)
    assert (p.line, p.where, p.key) == (line, where, key) and fragment in p.message


def test_mode_dependent_refusals_show_in_validate():
    text = ("af-packet:\n  - {interface: eth0, copy-mode: tap, copy-iface: eth1}\n"
            "  - {interface: eth1, copy-mode: tap, copy-iface: eth0}\n"
            "stream:\n  midstream-policy: drop-flow\n")
    c = load(text)
    (p,) = conf.validate(c)
    assert (p.where, p.key, p.line) == ("stream", "midstream-policy", 5) and "tap mode" in p.message
    c = load("af-packet:\n  - interface: eth0\nexception-policy: drop-packet\n")
    assert conf.validate(c) == [] and engine_settings(c).stream.midstream_policy == "ignore"


# ------------------------------------------------------------------ keys ipsbridge does not implement
# (key[~variant], yaml, "warn" | "stock" | "ok" | "error", fragment of the warning/refusal)
def afp(key_value: str) -> str:
    return f"af-packet:\n  - interface: eth0\n    {key_value}\n"


DECISIONS = [
    # af-packet
    ("af-packet.mmap-locked", afp("mmap-locked: yes"), "warn", "not locked in memory"),
    ("af-packet.use-emergency-flush", afp("use-emergency-flush: yes"), "warn", "never flushes a ring"),
    ("af-packet.v2-block-size", afp("v2-block-size: 131072"), "warn", "from the MTU"),
    ("af-packet.disable-hwtimestamp", afp("disable-hwtimestamp: true"), "warn", "software receive timestamps"),
    *[(f"af-packet.{k}", afp(f"{k}: x"), "error", "eBPF/XDP capture is not supported")
      for k in ("xdp-mode", "xdp-filter-file", "ebpf-lb-file", "ebpf-filter-file", "pinned-maps",
                "pinned-maps-name", "xdp-cpu-redirect", "use-percpu-hash")],
    ("af-packet.hash-mode", afp("hash-mode: x"), "error", "unknown key"),
    ("af-packet.vlan-hdr", afp("vlan-hdr: x"), "error", "unknown key"),
    ("af-packet.copy-flags", afp("copy-flags: x"), "error", "unknown key"),
    # stream
    ("stream.prealloc-sessions", "stream:\n  prealloc-sessions: 2048\n", "warn", "allocated as flows appear"),
    ("stream.max-sessions", "stream:\n  max-sessions: 262144\n", "warn", "obsolete"),
    ("stream.max-syn-queued", "stream:\n  max-syn-queued: 10\n", "error", "alternative SYN packets"),
    ("stream.max-synack-queued", "stream:\n  max-synack-queued: 5\n", "error", "alternative SYN/ACK"),
    ("stream.liberal-timestamps", "stream:\n  liberal-timestamps: true\n", "error", "TCP timestamps"),
    ("stream.wrong-thread", "stream:\n  wrong-thread: x\n", "error", "unknown key"),
    ("stream.reassembly-policy", "stream:\n  reassembly-policy: x\n", "error", "unknown key"),
    ("stream.reassembly.segment-prealloc", "stream:\n  reassembly:\n    segment-prealloc: 2048\n", "warn",
     "allocated as they arrive"),
    ("stream.reassembly.max-regions", "stream:\n  reassembly:\n    max-regions: 8\n", "warn", "allocation tuning"),
    ("stream.reassembly.urgent.policy~inline", "stream:\n  reassembly:\n    urgent:\n      policy: inline\n",
     "ok", ""),
    ("stream.reassembly.urgent.policy", "stream:\n  reassembly:\n    urgent:\n      policy: oob\n", "error",
     "only 'inline' is implemented"),
    ("stream.reassembly.urgent.oob-limit-policy",
     "stream:\n  reassembly:\n    urgent:\n      oob-limit-policy: drop\n", "warn", "urgent.policy: oob"),
    # flow / flow-timeouts
    ("flow.memcap-policy~ignore", "flow:\n  memcap-policy: ignore\n", "ok", ""),
    ("flow.memcap-policy", "flow:\n  memcap-policy: drop-packet\n", "error", "evicts the oldest flow"),
    ("flow.hash-size", "flow:\n  hash-size: 65536\n", "warn", "grows as needed"),
    ("flow.prealloc", "flow:\n  prealloc: 10000\n", "warn", "allocated as they appear"),
    ("flow.managers", "flow:\n  managers: 2\n", "warn", "no flow manager threads"),
    ("flow.recyclers", "flow:\n  recyclers: 2\n", "warn", "no flow recycler threads"),
    *[(f"flow-timeouts.{p}.{k}", f"flow-timeouts:\n  {p}:\n    {k}: 5\n", "warn", "no closed state")
      for p in ("udp", "icmp") for k in ("closed", "emergency-closed")],
    ("flow-timeouts.sctp", "flow-timeouts:\n  sctp:\n    new: 5\n", "error", "unknown key"),
    # defrag
    ("defrag.memcap~stock", "defrag:\n  memcap: 32mb\n", "stock", "not by bytes"),
    ("defrag.memcap~stock-bytes", "defrag:\n  memcap: 33554432\n", "stock", "not by bytes"),
    ("defrag.memcap", "defrag:\n  memcap: 64mb\n", "error", "byte limit on IP reassembly is not implemented"),
    ("defrag.memcap-policy~ignore", "defrag:\n  memcap-policy: ignore\n", "ok", ""),
    ("defrag.memcap-policy", "defrag:\n  memcap-policy: drop-packet\n", "error", "no defrag memcap"),
    ("defrag.hash-size", "defrag:\n  hash-size: 65536\n", "warn", "grows as needed"),
    ("defrag.prealloc", "defrag:\n  prealloc: yes\n", "warn", "allocated as fragments arrive"),
    ("defrag.host-config", "defrag:\n  host-config:\n    - dmz:\n        timeout: 30\n", "error",
     "per-host defrag settings"),
    # decoder
    ("decoder.teredo~stock", "decoder:\n  teredo:\n    enabled: true\n    ports: $TEREDO_PORTS\n", "stock",
     "does not decode Teredo"),
    ("decoder.teredo~off", "decoder:\n  teredo:\n    enabled: false\n    ports: '[3544, 1234]'\n", "ok", ""),
    ("decoder.teredo.ports", "decoder:\n  teredo:\n    enabled: true\n    ports: '[3544, 1234]'\n", "error",
     "Teredo decoding is not implemented, so its ports cannot be chosen"),
    ("decoder.teredo.enabled~typo", "decoder:\n  teredo:\n    enabled: maybe\n", "error", "not a boolean"),
    ("decoder.geneve~stock", "decoder:\n  geneve:\n    enabled: true\n    ports: $GENEVE_PORTS\n", "stock",
     "does not decode Geneve"),
    ("decoder.geneve~off", "decoder:\n  geneve:\n    enabled: no\n", "ok", ""),
    ("decoder.geneve.ports", "decoder:\n  geneve:\n    ports: 6082\n", "error", "Geneve decoding is not"),
    ("decoder.vntag~off", "decoder:\n  vntag:\n    enabled: false\n", "ok", ""),
    ("decoder.vntag", "decoder:\n  vntag:\n    enabled: true\n", "error", "VN-Tag decoding is not implemented"),
    ("decoder.erspan~off", "decoder:\n  erspan:\n    typeI:\n      enabled: false\n", "ok", ""),
    ("decoder.erspan", "decoder:\n  erspan:\n    typeI:\n      enabled: true\n", "error", "ERSPAN type I"),
    ("decoder.max-layers", "decoder:\n  max-layers: 16\n", "error", "at most 3 nested tunnels"),
    ("decoder.recursion-level~off", "decoder:\n  recursion-level:\n    use-for-tracking: false\n", "ok", ""),
    ("decoder.recursion-level", "decoder:\n  recursion-level:\n    use-for-tracking: true\n", "error",
     "does not include the tunnel depth"),
    ("decoder.ipv4.ipip~on", "decoder:\n  ipv4:\n    ipip:\n      enabled: true\n", "ok", ""),
    ("decoder.ipv4.ipip", "decoder:\n  ipv4:\n    ipip:\n      enabled: false\n", "error",
     "always decodes IPv4-in-IPv4"),
    ("decoder.ipv4.ipip.track-parent-flow", "decoder:\n  ipv4:\n    ipip:\n      track-parent-flow: true\n",
     "error", "never flow-tracked"),
    ("decoder.ipv6.ipip-ipv4", "decoder:\n  ipv6:\n    ipip-ipv4:\n      track-parent-flow: true\n", "error",
     "never flow-tracked"),
    ("decoder.ipv6.ipip-ipv6", "decoder:\n  ipv6:\n    ipip-ipv6:\n      track-parent-flow: true\n", "error",
     "never flow-tracked"),
    ("decoder.ipv6.ipip-ipv6~off", "decoder:\n  ipv6:\n    ipip-ipv6:\n      track-parent-flow: false\n", "ok",
     ""),
    ("decoder.ipv6~typo", "decoder:\n  ipv6:\n    ipip-ipv5:\n      track-parent-flow: false\n", "error",
     "did you mean 'ipip-ipv"),
    # pcap-file
    ("pcap-file.buffer-size", "pcap-file:\n  buffer-size: 128kb\n", "warn", "buffered file I/O"),
    ("pcap-file.delay", "pcap-file:\n  delay: 30\n", "warn", "pcap-file.continuous"),
    ("pcap-file.poll-interval", "pcap-file:\n  poll-interval: 5\n", "warn", "pcap-file.continuous"),
    ("pcap-file.tenant-id", "pcap-file:\n  tenant-id: 1\n", "error", "multi-tenancy"),
    ("pcap-file.delete-when-done~off", "pcap-file:\n  delete-when-done: false\n", "ok", ""),
    ("pcap-file.delete-when-done", "pcap-file:\n  delete-when-done: true\n", "error", "never deletes"),
    ("pcap-file.recursive~off", "pcap-file:\n  recursive: no\n", "ok", ""),
    ("pcap-file.recursive", "pcap-file:\n  recursive: yes\n", "error", "directly inside a directory"),
    ("pcap-file.continuous~off", "pcap-file:\n  continuous: no\n", "ok", ""),
    ("pcap-file.continuous", "pcap-file:\n  continuous: yes\n", "error", "watching a directory"),
    ("pcap-file.bpf-filter", "pcap-file:\n  bpf-filter: tcp\n", "error", "no BPF filter"),
    # shapes are still checked
    ("flow.hash-size~bad", "flow:\n  hash-size: big\n", "error", "not an integer"),
    ("defrag.prealloc~bad", "defrag:\n  prealloc: maybe\n", "error", "not a boolean"),
]


@pytest.mark.parametrize("text,kind,fragment", [d[1:] for d in DECISIONS], ids=[d[0] for d in DECISIONS])
def test_unimplemented_key_decision(text, kind, fragment):
    check_decision(text, kind, fragment, other_events=("config_section_ignored",))


def test_every_unimplemented_key_has_a_decision_test():
    tested = {d[0].split("~")[0] for d in DECISIONS}      # "key~variant": another value of the same key
    for path in UNIMPLEMENTED:
        if path.startswith("app-layer."):                 # tests/unit/test_conf_app_layer.py has their rows
            continue
        parents = {".".join(path.split(".")[:i]) for i in range(2, path.count(".") + 2)}
        assert tested & parents, f"{path}: add a DECISIONS row"


def test_refusals_from_one_file_are_all_reported_with_their_lines():
    problems = refusals("stream:\n  liberal-timestamps: yes\n  memcap: x\ndefrag:\n  memcap: 1gb\n"
                        "decoder:\n  vntag:\n    enabled: yes\n")
    assert sorted((p.line, p.where, p.key) for p in problems) == [
        (2, "stream", "liberal-timestamps"), (3, "stream", "memcap"), (5, "defrag", "memcap"),
        (8, "decoder.vntag", "enabled")]
    assert all(LINE_SHAPE.match(str(p)) for p in problems)


def test_refusal_line_is_exactly_file_line_where_key_message_fix():
    p = one_refusal("stream:\n  max-syn-queued: 10\n")
    assert str(p) == ("test.yaml:2: stream: max-syn-queued: ipsbridge tracks the first handshake of a flow and "
                      "does not queue alternative SYN packets -- fix: remove the key")


# ------------------------------------------------------------------ bounds
@pytest.mark.parametrize("text,where,key,fragment", [
    ("ipsbridge:\n  stats-interval: .nan\n", "ipsbridge", "stats-interval", "not a number"),
    ("ipsbridge:\n  stats-interval: .inf\n", "ipsbridge", "stats-interval", "not a number"),
    ("ipsbridge:\n  stats-interval: -1\n", "ipsbridge", "stats-interval", "outside 0..86400"),
    ("ipsbridge:\n  stats-interval: 100000\n", "ipsbridge", "stats-interval", "outside 0..86400"),
    (afp("threads: 1000000000"), "eth0", "threads", "above the maximum "),   # 4 per CPU: test_conf_bounds
    (afp("ring-size: 99999999999"), "eth0", "ring-size", "above the maximum 524288"),
    (afp("block-size: 4294967296"), "eth0", "block-size", "above the maximum"),
    (afp("block-timeout: 3600000"), "eth0", "block-timeout", "above the maximum 60000"),
    (afp("buffer-size: 4294967296"), "eth0", "buffer-size", "above the maximum"),
    ("flow:\n  emergency-recovery: 0\n", "flow", "emergency-recovery", "below the minimum 1"),
    ("flow:\n  emergency-recovery: 101\n", "flow", "emergency-recovery", "above the maximum 100"),
    ("flow:\n  memcap: 0\n", "flow", "memcap", "below the minimum 1"),
    ("stream:\n  reassembly:\n    memcap: 0\n", "stream.reassembly", "memcap", "below the minimum 1"),
    ("defrag:\n  timeout: 0\n", "defrag", "timeout", "below the minimum 1"),
    ("defrag:\n  timeout: 86401\n", "defrag", "timeout", "above the maximum 86400"),
    ("defrag:\n  trackers: -1\n", "defrag", "trackers", "below the minimum 0"),
    ("defrag:\n  max-frags: .inf\n", "defrag", "max-frags", "not an integer"),
    ("stream:\n  reassembly:\n    toserver-chunk-size: 0\n", "stream.reassembly", "toserver-chunk-size",
     "below the minimum 1"),
    ("stream:\n  reassembly:\n    toclient-chunk-size: 64kb\n", "stream.reassembly", "toclient-chunk-size",
     "above the maximum 65535"),
    ("stream:\n  reassembly:\n    depth: 4gb\n", "stream.reassembly", "depth", "above the maximum 4294967295"),
    ("stream:\n  reassembly:\n    randomize-chunk-range: 100\n", "stream.reassembly", "randomize-chunk-range",
     "above the maximum 99"),
], ids=lambda v: v if isinstance(v, str) and "\n" not in v and ":" not in v else None)
def test_numbers_are_bounded(text, where, key, fragment):
    p = one_refusal(text)
    assert (p.where, p.key) == (where, key) and fragment in p.message, str(p)


def test_large_bounds_are_fine():
    c = load("stream:\n  memcap: 1000gb\n  reassembly:\n    depth: 4294967295\nflow:\n  memcap: 16gb\n"
             "defrag:\n  max-frags: 4294967295\n")
    assert (c.stream.memcap, c.stream.depth, c.flow.memcap, c.defrag.max_frags) == (
        1000 * GiB, 2 ** 32 - 1, 16 * GiB, 2 ** 32 - 1)


def test_validate_bounds_configs_built_in_code():
    c = Config(af_packet=[Interface("eth0", threads=5000, ring_size=10 ** 9, cluster_id=1)],
               stats_interval=float("nan"))
    assert {(p.where, p.key) for p in conf.validate(c)} == {
        ("eth0", "threads"), ("eth0", "ring-size"), ("ipsbridge", "stats-interval")}


@pytest.mark.parametrize("threads", ["5000", "0", "-1"])
def test_quick_threads_are_bounded(threads):
    a = argparse.Namespace(config=None, bridge=["eth0:eth1"], ids=[], mode=None, threads=threads,
                           cluster_type=None, rules=[], eve=None, stats_interval=None, verdict_hook=None)
    with pytest.raises(ConfigError) as info:
        conf.from_args(a)
    assert info.value.problems[0].where == "--threads" and f"1..{max_threads()}" in info.value.problems[0].fix
