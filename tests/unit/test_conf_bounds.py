"""conf: every number the configuration takes is bounded, and so is the YAML itself.

Each numeric key is tested at both ends of its bound (one below the minimum and one above
the maximum are refused in ONE line naming file:line, the key and the fix; the minimum and
the maximum themselves load as written), and a table test makes sure no numeric key is
missing from the table.  Refusals that apply to both interfaces of a pair are tested on
each side.  The machine is made a 2-CPU one (threads: at most 4 per CPU, so 8) and, for the
ring memory bound, a machine of a chosen size.
"""
from __future__ import annotations

import argparse
import importlib
import os

import pytest
import yaml
from conf_testing import load, one_refusal

import conf
from conf import Config, ConfigError, Interface
from conf.load import (
    DEFRAG_KEYS,
    FLOW_KEYS,
    INTERFACE_KEYS,
    IPSBRIDGE_KEYS,
    PCAP_FILE_KEYS,
    REASSEMBLY_KEYS,
    STREAM_KEYS,
    TIMEOUT_KEYS,
    TIMEOUT_PROTOS,
    UNIMPLEMENTED,
    _expanded_values,
)
from conf.validate import MAX_RING_FRAMES, RING_FRAME_BYTES
from rules.settings import DefragSettings, StreamSettings

load_mod = importlib.import_module("conf.load")
validate_mod = importlib.import_module("conf.validate")   # (conf.validate is also the function's name)

U32, U64 = 2 ** 32 - 1, 2 ** 64 - 1
MiB = 1 << 20
CPUS = 2                                     # made so for every test here


@pytest.fixture(autouse=True)
def two_cpus(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: CPUS)


def at(path: str, value) -> tuple[str, int]:
    """YAML setting the dotted key `path` to `value`, and the line of the key."""
    parts = path.split(".")
    if parts[0] == "af-packet":
        return f"af-packet:\n  - interface: eth0\n    {parts[1]}: {value}\n", 3
    lines = [f"{'  ' * i}{p}:" for i, p in enumerate(parts[:-1])]
    lines.append(f"{'  ' * (len(parts) - 1)}{parts[-1]}: {value}")
    if path.startswith("stream.reassembly.") and "chunk-size" in path:
        lines.append("    randomize-chunk-size: no")        # the chunk size lands as written
    return "\n".join(lines) + "\n", len(parts)


def value_of(config: Config, path: str):
    parts = path.split(".")
    head, key = parts[0], parts[-1].replace("-", "_")
    if head == "af-packet":
        return getattr(config.af_packet[0], key)
    if head == "ipsbridge":
        return getattr(config, key)
    if head == "flow-timeouts":
        return getattr(config.flow.timeouts[parts[1]], key)
    if path == "stream.reassembly.memcap":
        return config.stream.reassembly_memcap
    if head == "stream":
        return getattr(config.stream, key)
    return getattr(getattr(config, head), key)


# ------------------------------------------------------------------ every numeric key, both ends
# (dotted key, minimum, maximum); with 2 CPUs threads go up to 4 per CPU
BOUNDS = [
    ("af-packet.threads", 1, 4 * CPUS),
    ("af-packet.cluster-id", 0, 65535),
    ("af-packet.ring-size", 1, MAX_RING_FRAMES),
    ("af-packet.block-size", 1, 1 << 30),
    ("af-packet.block-timeout", 1, 60_000),
    ("af-packet.buffer-size", 0, 2 ** 31 - 1),
    ("ipsbridge.stats-interval", 0, 86_400),
    ("ipsbridge.inspect-time-limit", 0, 60),
    ("flow.memcap", 1, U64),
    ("flow.emergency-recovery", 1, 100),
    ("stream.memcap", 1, U64),
    ("stream.reassembly.memcap", 1, U64),
    ("stream.reassembly.depth", 0, U32),
    ("stream.reassembly.toserver-chunk-size", 1, 65535),
    ("stream.reassembly.toclient-chunk-size", 1, 65535),
    ("stream.reassembly.randomize-chunk-range", 0, 99),
    ("defrag.timeout", 1, 86_400),
    ("defrag.trackers", 0, U32),
    ("defrag.max-frags", 0, U32),
] + [(f"flow-timeouts.{proto}.{key}", 0, U32) for proto in TIMEOUT_PROTOS for key in TIMEOUT_KEYS
     if f"flow-timeouts.{proto}.{key}" not in UNIMPLEMENTED]
# what the minimum loads as, where it is not the number written (0 trackers: the default, as Suricata)
LOADS_AS = {("defrag.trackers", 0): DefragSettings().trackers, ("defrag.max-frags", 0): DefragSettings().max_frags}
ROW_IDS = [b[0] for b in BOUNDS]


@pytest.mark.parametrize("path,lo,hi", BOUNDS, ids=ROW_IDS)
@pytest.mark.parametrize("end", ["below-min", "above-max"])
def test_a_number_outside_its_bounds_is_refused_in_one_line(path, lo, hi, end):
    value = lo - 1 if end == "below-min" else hi + 1
    text, line = at(path, value)
    p = one_refusal(text)
    assert (p.key, p.line, p.file) == (path.split(".")[-1], line, "test.yaml"), str(p)
    assert p.fix


@pytest.mark.parametrize("path,lo,hi", BOUNDS, ids=ROW_IDS)
@pytest.mark.parametrize("end", ["min", "max"])
def test_a_number_at_its_bound_loads_as_written(path, lo, hi, end):
    value = lo if end == "min" else hi
    c = load(at(path, value)[0])
    if path.endswith("randomize-chunk-range"):       # not kept: it moves the chunk sizes at load
        default = StreamSettings().toserver_chunk_size
        assert abs(c.stream.toserver_chunk_size - default) <= default * value / 200
        assert (c.stream.toserver_chunk_size == default) is (value == 0) or value > 0
        return
    assert value_of(c, path) == LOADS_AS.get((path, value), value)


def _candidate_keys() -> list[str]:
    out = [f"af-packet.{k}" for k in INTERFACE_KEYS if k != "interface"]
    out += [f"stream.{k}" for k in STREAM_KEYS if k != "reassembly"]
    out += [f"stream.reassembly.{k}" for k in REASSEMBLY_KEYS]
    out += [f"flow.{k}" for k in FLOW_KEYS] + [f"defrag.{k}" for k in DEFRAG_KEYS]
    out += [f"flow-timeouts.{p}.{k}" for p in TIMEOUT_PROTOS for k in TIMEOUT_KEYS
            if f"flow-timeouts.{p}.{k}" not in UNIMPLEMENTED]
    out += [f"ipsbridge.{k}" for k in IPSBRIDGE_KEYS] + [f"pcap-file.{k}" for k in PCAP_FILE_KEYS]
    return out


def test_every_numeric_key_is_in_the_bounds_table():
    numeric = set()
    for path in _candidate_keys():
        try:
            load(at(path, "abc")[0])
        except ConfigError as e:
            if any(w in str(e) for w in ("not an integer", "not a number", "not a size", "not a thread count")):
                numeric.add(path)
    assert len(numeric) > 20 and numeric == set(ROW_IDS)


PAIR_YAML = ("af-packet:\n"
             "  - interface: eth0\n    copy-mode: ips\n    copy-iface: eth1\n    {eth0}\n"
             "  - interface: eth1\n    copy-mode: ips\n    copy-iface: eth0\n    {eth1}\n")


@pytest.mark.parametrize("side,line", [("eth0", 5), ("eth1", 9)])
@pytest.mark.parametrize("key,bad", [("threads", 4 * CPUS + 1), ("ring-size", MAX_RING_FRAMES + 1),
                                     ("buffer-size", -1), ("block-timeout", 0), ("cluster-id", 65536)])
def test_a_bad_number_is_refused_on_either_interface_of_a_pair(side, line, key, bad):
    good = {"threads": 1, "ring-size": 2048, "buffer-size": 0, "block-timeout": 10, "cluster-id": 7}[key]
    values = {"eth0": f"{key}: {good if side == 'eth1' else bad}",
              "eth1": f"{key}: {good if side == 'eth0' else bad}"}
    if key == "cluster-id":                  # each interface its own group
        values["eth0" if side == "eth1" else "eth1"] = "cluster-id: 8"
    p = one_refusal(PAIR_YAML.format(**values))
    assert (p.where, p.key, p.line) == (side, key, line)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "-0.5", "86400.5", "1e400"])
def test_stats_interval_is_finite_and_in_range(value):
    p = one_refusal(f"ipsbridge:\n  stats-interval: {value}\n")
    assert (p.where, p.key, p.line) == ("ipsbridge", "stats-interval", 2)


def test_threads_auto_is_one_per_cpu_and_the_fix_says_the_bound():
    assert load(at("af-packet.threads", "auto")[0]).af_packet[0].threads == CPUS
    p = one_refusal(at("af-packet.threads", 1_000_000_000)[0])
    assert "above the maximum 8" in p.message and "4 per CPU, this machine has 2" in p.fix


def test_the_thread_bound_follows_the_cpu_count(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert load(at("af-packet.threads", 64)[0]).af_packet[0].threads == 64
    assert "above the maximum 64" in one_refusal(at("af-packet.threads", 65)[0]).message
    monkeypatch.setattr(os, "cpu_count", lambda: 4096)      # never more than MAX_THREADS
    assert "above the maximum 1024" in one_refusal(at("af-packet.threads", 1025)[0]).message


@pytest.mark.parametrize("threads,ok", [("0", False), ("1", True), ("8", True), ("9", False), ("auto", True),
                                        ("-1", False), ("x", False)])
def test_quick_threads_take_the_same_bound(threads, ok):
    a = argparse.Namespace(config=None, bridge=["eth0:eth1"], ids=[], mode=None, threads=threads,
                           cluster_type=None, rules=[], eve=None, stats_interval=None, verdict_hook=None)
    if ok:
        c = conf.from_args(a)
        assert {i.threads for i in c.af_packet} == {CPUS if threads == "auto" else int(threads)}
        return
    with pytest.raises(ConfigError) as info:
        conf.from_args(a)
    (p,) = info.value.problems
    assert p.where == "--threads" and "1..8" in p.fix


# ------------------------------------------------------------------ Config built in code: validate
def pair(**sides) -> Config:
    """eth0 <-> eth1 in ips mode; `sides` = {"eth0": {field: value}, ...}."""
    ifaces = [Interface(n, copy_mode="ips", copy_iface=p, defrag=False, cluster_id=i + 1, line=3 + 5 * i)
              for i, (n, p) in enumerate((("eth0", "eth1"), ("eth1", "eth0")))]
    for it in ifaces:
        for k, v in sides.get(it.interface, {}).items():
            setattr(it, k, v)
    return Config(af_packet=ifaces, source="test.yaml")


def keyed(problems, key):
    return [(p.where, p.line) for p in problems if p.key == key and p.severity == "error"]


@pytest.mark.parametrize("side,line", [("eth0", 3), ("eth1", 8)])
@pytest.mark.parametrize("key,field,bad", [
    ("threads", "threads", 0), ("threads", "threads", 4 * CPUS + 1), ("threads", "threads", True),
    ("ring-size", "ring_size", 0), ("ring-size", "ring_size", MAX_RING_FRAMES + 1),
    ("block-size", "block_size", 0), ("block-size", "block_size", (1 << 30) + 1),
    ("block-timeout", "block_timeout", 0), ("block-timeout", "block_timeout", 60_001),
    ("buffer-size", "buffer_size", -1), ("buffer-size", "buffer_size", 2 ** 31),
    ("cluster-id", "cluster_id", 65536),
], ids=lambda v: str(v))
def test_validate_refuses_a_bad_number_on_either_side_of_a_pair(side, line, key, field, bad):
    both = {field: bad}
    problems = conf.validate(pair(**{side: both}))
    assert (side, line) in keyed(problems, key)
    other = "eth1" if side == "eth0" else "eth0"
    assert other not in {w for w, _ in keyed(problems, key) if key != "threads"}   # threads: also unequal


@pytest.mark.parametrize("field,good", [("threads", 1), ("threads", 4 * CPUS), ("ring_size", 1),
                                        ("ring_size", MAX_RING_FRAMES), ("buffer_size", 0),
                                        ("buffer_size", 2 ** 31 - 1), ("block_timeout", 60_000),
                                        ("cluster_id", 65535)], ids=str)
def test_validate_takes_numbers_at_their_bounds_on_both_sides(monkeypatch, field, good):
    monkeypatch.setattr(validate_mod, "physical_memory", lambda: 1 << 40)
    c = pair(eth0={field: good}, eth1={field: good if field != "cluster_id" else 0})
    assert [str(p) for p in conf.validate(c) if p.severity == "error"] == []


@pytest.mark.parametrize("value,ok", [(0, True), (86_400, True), (0.5, True), (-0.001, False),
                                      (86_400.001, False), (float("nan"), False), (float("inf"), False),
                                      (float("-inf"), False)], ids=repr)
def test_validate_stats_interval(value, ok):
    c = pair()
    c.stats_interval = value
    problems = keyed(conf.validate(c), "stats-interval")
    assert (problems == []) is ok


# ------------------------------------------------------------------ all the rings against the memory
def test_rings_may_take_half_the_memory_and_no_more(monkeypatch):
    ram = 1 << 30
    monkeypatch.setattr(validate_mod, "physical_memory", lambda: ram)
    # 2 interfaces x 2 threads x ring-size frames of 2 KiB: exactly half of 1 GiB ...
    frames = ram // 2 // (2 * 2 * RING_FRAME_BYTES)
    at_limit = pair(eth0={"threads": 2, "ring_size": frames}, eth1={"threads": 2, "ring_size": frames})
    assert keyed(conf.validate(at_limit), "ring-size") == []
    # ... and one frame more on one side is refused, on the interface with the larger share
    for side, line in (("eth0", 3), ("eth1", 8)):
        sides = {"eth0": {"threads": 2, "ring_size": frames}, "eth1": {"threads": 2, "ring_size": frames}}
        sides[side]["ring_size"] = frames + 1
        problems = [p for p in conf.validate(pair(**sides)) if p.key == "ring-size"]
        assert [(p.where, p.line) for p in problems] == [(side, line)]
        assert "more than 1/2 of this machine's 1024 MiB" in problems[0].message
        assert "lower 'ring-size'" in problems[0].fix and "\n" not in str(problems[0])


def test_a_v3_ring_is_whole_blocks(monkeypatch):
    monkeypatch.setattr(validate_mod, "physical_memory", lambda: 1 << 30)
    ids = Config(af_packet=[Interface("eth0", tpacket_v3=True, ring_size=1, block_size=256 * MiB,
                                      cluster_id=1, line=3)], source="test.yaml")
    assert validate_mod.ring_bytes(ids.af_packet[0]) == 512 * MiB        # two blocks at least
    assert keyed(conf.validate(ids), "ring-size") == []                  # 512 MiB: half of 1 GiB
    ids.af_packet[0].block_size += 4096
    assert keyed(conf.validate(ids), "ring-size") == [("eth0", 3)]


def test_the_shipped_example_fits_a_small_machine(monkeypatch):
    monkeypatch.setattr(validate_mod, "physical_memory", lambda: 512 * MiB)
    c = conf.load_file(os.path.join(os.path.dirname(conf.__file__), "ipsbridge.yaml"))
    assert keyed(conf.validate(c), "ring-size") == []


# ------------------------------------------------------------------ the YAML itself
@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(load_mod, "MAX_YAML_BYTES", 1000)
    return 1000


def padded(size: int, head: str = "stream:\n  midstream: yes\n") -> str:
    """`head`, then a comment filling the text up to `size` characters."""
    rest = size - len(head) - 3
    return head + "#" + "x" * rest + "\n\n"


def test_a_file_at_the_cap_loads_and_one_byte_more_is_refused_before_parsing(tmp_path, small_cap):
    ok = tmp_path / "ok.yaml"
    ok.write_text(padded(small_cap))
    assert ok.stat().st_size == small_cap and conf.load_file(str(ok)).stream.midstream is True
    big = tmp_path / "big.yaml"
    big.write_text(padded(small_cap + 1).replace("midstream: yes", "midstream: [unclosed"))
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(big))
    (p,) = info.value.problems          # the size, not the syntax error further in
    assert str(p) == (f"{big}: config: {big} is larger than 1000 bytes, the most a configuration file may be "
                      f"-- fix: {load_mod.YAML_SIZE_FIX}")


def test_the_real_cap_is_2_mib_and_checked_without_reading(tmp_path):
    big = tmp_path / "capture.pcap"
    with open(big, "wb") as f:
        f.truncate(2 * MiB + 1)          # sparse: refused from its size alone
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(big))
    assert "is larger than 2 MiB, the most a configuration file may be" in str(info.value)


def test_text_above_the_cap_is_refused(small_cap):
    assert load(padded(small_cap)).stream.midstream is True
    with pytest.raises(ConfigError) as info:
        load(padded(small_cap + 1))
    assert "1001 characters, more than the 1000 bytes" in str(info.value)


def test_include_files_count_toward_the_cap(tmp_path, small_cap):
    inc = tmp_path / "stream.yaml"
    main = tmp_path / "main.yaml"
    head = "vars:\n  port-groups:\n    HTTP_PORTS: '80'\nstream: !include stream.yaml\n"
    main.write_text(padded(600, head))
    inc.write_text(padded(400, "midstream: yes\n"))
    assert conf.load_file(str(main)).stream.midstream is True           # 600 + 400: at the cap
    inc.write_text(padded(401, "midstream: yes\n"))
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(main))
    (p,) = info.value.problems
    assert (p.file, p.line) == (str(main), 4)
    assert "!include stream.yaml: the configuration and the files it includes are larger than 1000 bytes" \
        in p.message


def test_every_include_counts_toward_one_cap(tmp_path, small_cap):
    main = tmp_path / "main.yaml"
    main.write_text(padded(300, "stream: !include stream.yaml\nflow: !include flow.yaml\n"))
    (tmp_path / "stream.yaml").write_text(padded(350, "midstream: yes\n"))
    (tmp_path / "flow.yaml").write_text(padded(350, "emergency-recovery: 40\n"))
    c = conf.load_file(str(main))                                         # 300 + 350 + 350: at the cap
    assert (c.stream.midstream, c.flow.emergency_recovery) == (True, 40)
    (tmp_path / "flow.yaml").write_text(padded(351, "emergency-recovery: 40\n"))
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(main))
    (p,) = info.value.problems
    assert p.line == 2 and "!include flow.yaml: the configuration and the files it includes" in p.message


def test_an_include_that_is_not_text_is_one_line(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    main = tmp_path / "main.yaml"
    main.write_text("stream: !include bin.yaml\n")
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(main))
    (p,) = info.value.problems
    assert p.line == 1 and "!include bin.yaml: not UTF-8 text" in p.message


def nested(levels: int) -> str:
    """A document `levels` deep: the top mapping and levels-1 lists."""
    return "x: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"


def test_nesting_at_the_depth_bound_loads_and_one_more_is_refused():
    load(nested(load_mod.MAX_YAML_DEPTH))
    p = one_refusal(nested(load_mod.MAX_YAML_DEPTH + 1))
    assert (p.where, p.line) == ("yaml", 1) and f"nested more than {load_mod.MAX_YAML_DEPTH} levels" in p.message
    assert "syntax error" not in p.message


def test_very_deep_nesting_is_one_line_not_a_recursion_error():
    p = one_refusal("vars: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested more than" in p.message


def test_includes_nested_inside_nesting_are_one_line(tmp_path):
    deep = load_mod.MAX_YAML_DEPTH - 2
    for i in range(12):
        inner = f"!include f{i + 1}.yaml" if i < 11 else "1"
        (tmp_path / f"f{i}.yaml").write_text("x: " + "[" * deep + inner + "]" * deep + "\n")
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(tmp_path / "f0.yaml"))
    (p,) = info.value.problems
    assert p.where == "yaml" and "nested" in p.message


LAUGHS = "".join(f"{n}: &{n} [{', '.join([f'*{p}' if p else 'x'] * 10)}]\n"
                 for n, p in zip("abcdefg", ["", "a", "b", "c", "d", "e", "f"])) + \
    "vars:\n  address-groups:\n    HOME_NET: *g\n"


def test_aliases_cannot_expand_a_small_file_beyond_the_cap():
    assert len(LAUGHS) < 400
    p = one_refusal(LAUGHS)                  # 10^7 values from 7 lines
    assert p.where == "yaml" and f"more than {load_mod.MAX_YAML_VALUES} values" in p.message


@pytest.mark.parametrize("text,values", [
    ("a: 1\n", 3),                                          # the mapping, a key, a value
    ("a: &x [1, 2]\nb: *x\nc: *x\n", 1 + 6 + 3 * 2),        # the list counts wherever it is used
    ("a: &x [1, *x]\n", 1 + 1 + 2),                         # a node inside itself: not again
], ids=["plain", "aliases", "recursive"])
def test_expanded_values_are_counted_as_written_out(text, values):
    assert _expanded_values(yaml.compose(text, Loader=yaml.SafeLoader)) == values


def test_aliases_at_the_bound_load(monkeypatch):
    monkeypatch.setattr(load_mod, "MAX_YAML_VALUES", 13)
    text = "stream:\n  memcap: &m 64mb\n  reassembly:\n    memcap: *m\n"   # 1 + 2 + 1 + 1+2+... = 9
    assert load(text).stream.reassembly_memcap == 64 * MiB
    big = "a: &x [1, 2]\nb: *x\nc: *x\n"                                   # 13: at the bound
    load(big)
    monkeypatch.setattr(load_mod, "MAX_YAML_VALUES", 12)
    assert "more than 12 values" in one_refusal(big).message


def test_a_value_made_huge_by_aliases_is_shown_short():
    text = "".join(LAUGHS.splitlines(keepends=True)[:4]) + "af-packet:\n  - interface: eth0\n    threads: *d\n"
    p = one_refusal(text)                    # 10^4 values: below the bound, shown in a few characters
    assert p.key == "threads" and len(str(p)) < 400
