"""Inputs the fuzz tests (test_engine_fuzz, test_conf_fuzz, test_pcap_fuzz, test_parser_fuzz,
test_decode_fuzz) once crashed on, shrunk, kept as plain tests: each must give the
target's own error (or a result), never another exception."""
from __future__ import annotations

import pytest

import conf
from bridge.pcap import linktypes, read_file
from conf.validate import ConfigError
from rules.errors import RuleError
from rules.parser import parse_rule


@pytest.mark.parametrize("text,line,column", [
    ("\x1f", 1, 1),
    ("stream:\n  memcap: 6\x07mb\n", 2, 12),
    ("a: \ud800", 1, 4),
], ids=["control-char", "bell-in-a-value", "lone-surrogate"])
def test_conf_character_yaml_refuses_is_a_config_error_at_its_line(text, line, column):
    # yaml's reader refused these before parsing began, outside load_text's handler:
    # a yaml.reader.ReaderError traceback instead of one line naming file:line
    with pytest.raises(ConfigError) as ei:
        conf.load_text(text, "x.yaml")
    (p,) = ei.value.problems
    assert (p.file, p.line) == ("x.yaml", line)
    assert f"column {column}" in p.message and "not allowed in YAML" in p.message


def test_pcapng_if_tsresol_option_cut_short_by_the_block_end(tmp_path):
    # an Interface Description whose last option, if_tsresol (9), declares 1 byte but the
    # block ends after the option header: IndexError from val[0] before the fix
    data = (b"\n\r\r\n\x1c\x00\x00\x00M<+\x1a\x01\x00\x00\x00" + b"\xff" * 8 + b"\x1c\x00\x00\x00"
            b"\x01\x00\x00\x00\x18\x00\x00\x00" + b"\x01\x00\x00\x00\xff\xff\x00\x00" + b"\t\x00\x01\x00"
            b"\x18\x00\x00\x00"
            b"\x06\x00\x00\x00\x24\x00\x00\x00" + b"\x00" * 4 + b"\x00\x00\x00\x00\x40\x42\x0f\x00"
            + b"\x04\x00\x00\x00\x04\x00\x00\x00" + b"abcd" + b"\x24\x00\x00\x00")
    p = tmp_path / "x.pcapng"
    p.write_bytes(data)
    recs = list(read_file(p, lambda m: None))
    assert [(r.data, r.ts) for r in recs] == [(b"abcd", 1.0)]     # the default microseconds
    assert linktypes(p) == {1}


@pytest.mark.parametrize("text,line,what", [
    ("!!timestamp 2:01-12-14", 1, "'2:01-12-14' is not a valid timestamp"),     # the fuzzer's: AttributeError
    ("defrag:\n  timeout: 2001-13-45\n", 2, "'2001-13-45' is not a valid timestamp"),   # resolved: ValueError
    ("stream:\n  memcap: !!int abc\n", 2, "'abc' is not a valid int"),
    ("flow:\n  memcap: !!bool x\n", 2, "'x' is not a valid bool"),                  # KeyError
    ("flow:\n  memcap: !!float x\n", 2, "'x' is not a valid float"),
    ("flow:\n  memcap: " + "9" * 5000 + "\n", 2, "is not a valid int"),          # past int()'s 4300 digits
    ("!!int", 1, "'' is not a valid int"),                                          # the long fuzz run's: IndexError
], ids=["timestamp-tag", "timestamp-resolved", "int-tag", "bool-tag", "float-tag", "int-5000-digits", "int-tag-empty"])
def test_conf_yaml_value_its_tag_cannot_hold_is_a_config_error(text, line, what):
    # PyYAML's scalar constructors raise ValueError/KeyError/AttributeError there, not a YAMLError
    with pytest.raises(ConfigError) as ei:
        conf.load_text(text, "x.yaml")
    (p,) = ei.value.problems
    assert p.line == line and what in p.message


@pytest.mark.parametrize("options,within,distance", [
    ('content:"|FF|SMB%"; content:"&|00|"; Within:2; distance:56;', 2, 56),     # the fuzzer's, from an ET rule
    ('content:"a"; content:"b"; DISTANCE:1; WITHIN:3;', 3, 1),
], ids=["Within", "upper-case"])
def test_rule_content_modifier_in_any_case(options, within, distance):
    # content's "given twice" check read the attribute named as the keyword was written:
    # AttributeError: 'Content' object has no attribute 'Within' (the loader's "internal error")
    r = parse_rule(f"alert tcp any any -> any any ({options} sid:1;)")
    last = r.payload.items[-1]
    assert (last.within, last.distance) == (within, distance)


def test_rule_content_modifier_twice_in_other_case_is_a_rule_error():
    with pytest.raises(RuleError) as ei:
        parse_rule('alert tcp any any -> any any (content:"abcd"; depth:4; DEPTH:4; sid:1;)')
    assert ei.value.keyword == "DEPTH" and "given twice" in ei.value.message
