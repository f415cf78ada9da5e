"""Inputs the fuzz tests (test_engine_fuzz, test_conf_fuzz, test_pcap_fuzz, test_parser_fuzz,
test_decode_fuzz) once crashed on, shrunk, kept as plain tests: each must give the
target's own error (or a result), never another exception."""
from __future__ import annotations

import pytest

import conf
from bridge.pcap import linktypes, read_file
from conf.validate import ConfigError


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
