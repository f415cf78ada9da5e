"""unix-command (Suricata's key): the control socket's switch and path."""
from __future__ import annotations

import pytest

import conf


def test_default_is_auto_at_the_standard_path():
    c = conf.load_text("vars: {}\n")
    assert (c.unix_command, c.unix_command_path) == ("auto", "/run/ipsbridge/ipsbridge.socket")


@pytest.mark.parametrize("text,enabled,path", [
    ("unix-command:\n  enabled: yes\n", "yes", "/run/ipsbridge/ipsbridge.socket"),
    ("unix-command:\n  enabled: no\n", "no", "/run/ipsbridge/ipsbridge.socket"),
    ("unix-command:\n  enabled: auto\n  filename: /tmp/x.sock\n", "auto", "/tmp/x.sock"),
    ("unix-command:\n  filename: custom.socket\n", "auto", "/run/ipsbridge/custom.socket"),
], ids=["yes", "no", "absolute", "relative-to-run-dir"])
def test_enabled_and_filename(text, enabled, path):
    c = conf.load_text(text)
    assert (c.unix_command, c.unix_command_path) == (enabled, path)


@pytest.mark.parametrize("text,needle", [
    ("unix-command:\n  enabled: maybe\n", "<string>:2: unix-command: enabled: unknown value 'maybe'"),
    ("unix-command:\n  filname: x\n", "<string>:2: unix-command: filname: unknown key (did you mean 'filename'?)"),
    ("unix-command: yes\n", "<string>:1: unix-command: must be a mapping"),
], ids=["bad-value", "misspelled-key", "not-a-mapping"])
def test_refusals_name_the_line(text, needle):
    with pytest.raises(conf.ConfigError) as e:
        conf.load_text(text)
    assert any(str(p).startswith(needle) for p in e.value.problems), [str(p) for p in e.value.problems]
