"""Inputs the fuzz tests (test_engine_fuzz, test_conf_fuzz, test_pcap_fuzz, test_parser_fuzz,
test_decode_fuzz) once crashed on, shrunk, kept as plain tests: each must give the
target's own error (or a result), never another exception."""
from __future__ import annotations

import pytest

import conf
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
