"""Whatever the YAML, the configuration loader answers with a Config or a ConfigError
(each Problem one line, naming where), never another exception: random text, the
shipped and the stock suricata.yaml mutated as text (lines cut, duplicated, YAML's
special tokens put in), and as a tree (any value at any key, keys removed, added,
misspelt).  A Config that loads then goes through `validate` (a list of Problems)
and `engine_settings` for each mode (EngineSettings, or ConfigError) without raising.
IPSBRIDGE_FUZZ_SCALE=N runs N times the examples."""
from __future__ import annotations

import atexit
import math
import os
import random
import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from test_conf_stock import SURICATA_7_0_YAML_IN, render

import conf
from conf.build import engine_settings
from conf.load import TOP_LEVEL
from conf.model import Config
from conf.validate import ConfigError, Problem, validate
from rules.settings import EngineSettings

SCALE = int(os.environ.get("IPSBRIDGE_FUZZ_SCALE", "1"))
FUZZ = {"deadline": None, "derandomize": True, "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "conf" / "ipsbridge.yaml").read_text()
STOCK = render(SURICATA_7_0_YAML_IN)
# a directory of its own for !include and relative paths: one small file to include
BASE = tempfile.mkdtemp(prefix="ipsbridge-conf-fuzz-")
atexit.register(shutil.rmtree, BASE, ignore_errors=True)
Path(BASE, "inc.yaml").write_text("memcap: 32mb\nmidstream: yes\n")
Path(BASE, "loop.yaml").write_text("a: !include loop.yaml\n")
# the stock file is five times the shipped one and costs as much more per example: its
# sections ipsbridge reads are what a tree mutation needs of it
STOCK_READ = yaml.safe_dump({k: v for k, v in yaml.safe_load(STOCK).items() if k in TOP_LEVEL}, sort_keys=False)
SEEDS = [SHIPPED, SHIPPED, STOCK_READ, STOCK, "stream:\n  memcap: !include inc.yaml\n",
         "af-packet:\n  - interface: eth0\n"]
SEED_TREES = [yaml.safe_load(SHIPPED), yaml.safe_load(STOCK_READ)]

TOKENS = [": ", "- ", "\n", "  ", "#", "&a ", "*a", "<<: *a", "!include inc.yaml", "!include loop.yaml",
          "!include .", "!include /nonexistent", "!!binary aGk=", "!!python/object:os.system", "!!set {a}",
          "!!timestamp 2001-12-14", "!!timestamp 1:2", "2001-13-45", "!!int x", "!!bool maybe", "!!float -",
          "---", "...", "? ", "{", "}", "[", "]", '"', "'", "\\", "\t", "|", ">",
          ".nan", ".inf", "-.inf", "~", "null", "0x1F", "0o7", "1e999", "-1", "99999999999999999999",
          "yes", "auto", "ips", "tap", "eth0", "1.5gb", "64mb", "0kb", "%YAML 1.1", "\x00", "\ufeff", "é"]

# what a value may become in a tree mutation
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-5, 70_000),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["auto", "yes", "no", "ips", "tap", "ids", "eth0", "eth1", "64mb", "1.5gb", "0", "-1",
                     "drop-flow", "pass-flow", "bypass", "reject", "ignore", "cluster_flow", "kernel", "$HOME_NET",
                     "[1,2]", "!$EXTERNAL_NET", "4789", "$VXLAN_PORTS", "99999999999", ".nan", "nan", "inf"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), scalars), inner, max_size=4)),
    max_leaves=10)


def check(text: str) -> Config | None:
    """load_text gives a Config or a ConfigError of one-line Problems; a Config then
    validates and builds engine settings in every mode without raising."""
    with capture_logs():
        try:
            config = conf.load_text(text, "fuzz.yaml", BASE, rng=random.Random(1))
        except ConfigError as e:
            assert e.problems and all(isinstance(p, Problem) for p in e.problems)
            for p in e.problems:
                line = str(p)
                assert line and "Traceback" not in line
                assert p.file == "fuzz.yaml" and p.line >= 0
            return None
        assert isinstance(config, Config)
        problems = validate(config)
        assert all(isinstance(p, Problem) and str(p) for p in problems)
        for mode in (None, "ips", "tap", "ids"):
            try:
                s = engine_settings(config, mode)
            except ConfigError as e:
                assert e.problems
                continue
            assert isinstance(s, EngineSettings)
            assert s.flow.max_flows >= 1 and s.defrag.trackers >= 0
            for t in s.flow.timeouts.values():
                assert all(math.isfinite(v) and v >= 0 for v in (t.new, t.established, t.closed))
        return config


@settings(max_examples=300 * SCALE, **FUZZ)
@given(st.text(max_size=300))
def test_random_text(text):
    check(text)


@settings(max_examples=300 * SCALE, **FUZZ)
@given(st.lists(st.sampled_from(TOKENS + ["stream", "flow", "af-packet", "memcap", "vars", "interface",
                                          "threads", "defrag", "decoder", "x"]), max_size=40).map("".join))
def test_token_soup(text):
    check(text)


@st.composite
def mutated_text(draw) -> str:
    lines = draw(st.sampled_from(SEEDS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 5))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "replace", "indent", "dedent"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "insert":
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + draw(st.sampled_from(TOKENS)) + lines[i][j:]
        elif op == "replace":
            head = lines[i].split(":", 1)[0]
            lines[i] = f"{head}: {draw(st.sampled_from(TOKENS))}\n"
        elif op == "indent":
            lines[i] = "  " + lines[i]
        else:
            lines[i] = lines[i].lstrip()
    return "".join(lines)


@settings(max_examples=400 * SCALE, **FUZZ)
@given(mutated_text())
def test_mutated_config_text(text):
    check(text)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_tree(draw) -> str:
    import copy
    tree = copy.deepcopy(draw(st.sampled_from(SEED_TREES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(tree) if p]
        path = draw(st.sampled_from(paths))
        parent = tree
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = draw(st.sampled_from(["set", "set", "delete", "rename", "add"]))
        if op == "set":
            parent[key] = draw(values)
        elif op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[str(key)[:-1] or "x"] = parent.pop(key)
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(values)
        else:
            parent.append(draw(values))
    return yaml.safe_dump(tree, sort_keys=False)


@settings(max_examples=150 * SCALE, **FUZZ)
@given(mutated_tree())
def test_mutated_config_tree(text):
    check(text)


def test_seeds_load():
    assert all(check(s) is not None for s in (SHIPPED, STOCK, STOCK_READ))
