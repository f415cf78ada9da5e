"""conf: loading suricata.yaml-shaped files, quick flags, static refusals (no kernel)."""
from __future__ import annotations

import argparse
import os
import textwrap

import pytest
from structlog.testing import capture_logs

import conf
from conf import Config, ConfigError, Interface, Problem

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(text: str, tmp_path=None) -> Config:
    return conf.load_text(textwrap.dedent(text), "test.yaml", str(tmp_path or REPO))


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value.problems


def pair(**extra) -> str:
    """An eth0<->eth1 ips pair; extra = {"eth0": "key: value\n", ...} appended to an entry."""
    return textwrap.dedent("""\
        af-packet:
          - interface: eth0
            copy-mode: ips
            copy-iface: eth1
        {eth0}
          - interface: eth1
            copy-mode: ips
            copy-iface: eth0
        {eth1}
        """).format(eth0=extra.get("eth0", ""), eth1=extra.get("eth1", ""))


# ------------------------------------------------------------------ defaults
def test_empty_file_gives_documented_defaults():
    c = load("")
    assert c.af_packet == []
    assert c.vars["address-groups"]["HOME_NET"] == "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"
    assert c.vars["address-groups"]["EXTERNAL_NET"] == "!$HOME_NET"
    assert c.vars["port-groups"]["HTTP_PORTS"] == "80"
    assert c.vars["port-groups"]["FILE_DATA_PORTS"] == "[$HTTP_PORTS,110,143]"
    assert c.decoder.checksum_validation is True and c.stream.inline == "auto"
    assert c.decoder.vxlan_ports == (4789,)
    assert c.exception_policy == "auto" and c.stats_interval == 8.0 and c.eve_log is None


def test_interface_defaults_and_auto_cluster_ids():
    c = load(pair())
    eth0, eth1 = c.af_packet
    assert (eth0.threads, eth0.cluster_type, eth0.use_mmap, eth0.tpacket_v3, eth0.defrag) == \
        (1, "cluster_flow", True, False, False)
    assert (eth0.cluster_id, eth1.cluster_id) == (99, 98)
    assert eth0.line == 2 and eth1.line == 6  # pair() leaves an empty line after each entry
    assert conf.validate(c) == []


@pytest.mark.parametrize("value,mode", [("", "kernel"), ("kernel", "kernel"), ("user", "user"), ("off", "off"),
                                        ("yes", "kernel"), ("no", "user")])
def test_bypass_modes_and_suricatas_booleans(value, mode):
    c = load(pair(eth0=f"    bypass: {value}\n" if value else ""))
    assert c.af_packet[0].bypass == mode


def test_defrag_defaults_on_for_ids_and_off_inline():
    with capture_logs() as logs:
        c = load(pair().replace("af-packet:\n", "af-packet:\n  - interface: eth2\n"))
    assert [(i.interface, i.defrag) for i in c.af_packet] == [("eth2", True), ("eth0", False), ("eth1", False)]
    assert logs == [], "left at its default, defrag needs no warning"
    with capture_logs() as logs:
        c = load(pair(eth0="    defrag: yes\n"))
    assert c.af_packet[0].defrag is False
    assert [(e["event"], e["where"]) for e in logs] == [("config_defrag_forced_off", "eth0")]


def test_auto_cluster_ids_skip_explicit_ones():
    c = load(pair(eth1="    cluster-id: 99\n"))
    assert [i.cluster_id for i in c.af_packet] == [98, 99]


def test_vars_user_values_override_per_key():
    c = load("""
        vars:
          address-groups:
            HOME_NET: "[198.51.100.0/24]"
          port-groups:
            HTTP_PORTS: "[80,8080]"
            ORACLE_PORTS: 1522
            SSH_PORTS: [22, 2222]
        """)
    assert c.vars["address-groups"]["HOME_NET"] == "[198.51.100.0/24]"
    assert c.vars["address-groups"]["HTTP_SERVERS"] == "$HOME_NET"
    assert c.vars["port-groups"]["HTTP_PORTS"] == "[80,8080]"
    assert c.vars["port-groups"]["ORACLE_PORTS"] == "1522"
    assert c.vars["port-groups"]["SSH_PORTS"] == "[22,2222]", "an unquoted YAML list means the group"
    assert c.vars["port-groups"]["FTP_PORTS"] == "21"


def test_default_entry_is_inherited_and_overridden():
    c = load("""
        af-packet:
          - interface: eth0
            threads: 3
          - interface: eth1
          - interface: default
            threads: 2
            ring-size: 4096
            checksum-checks: no
        """)
    eth0, eth1 = c.af_packet
    assert [i.interface for i in c.af_packet] == ["eth0", "eth1"]
    assert (eth0.threads, eth1.threads) == (3, 2)
    assert eth0.ring_size == eth1.ring_size == 4096
    assert eth0.checksum_checks == "no"


@pytest.mark.parametrize("text,expected", [
    ("yes", True), ("no", False), ("true", True), ("false", False), ("on", True),
    ("off", False), ("'yes'", True), ("'No'", False), ("1", True), ("0", False),
], ids=lambda v: str(v))
def test_booleans_like_suricata(text, expected):
    c = load(f"af-packet:\n  - interface: eth0\n    disable-promisc: {text}\n")
    assert c.af_packet[0].disable_promisc is expected


def test_threads_auto_is_cpu_count():
    c = load("af-packet:\n  - interface: eth0\n    threads: auto\n")
    assert c.af_packet[0].threads == os.cpu_count()


def test_decoder_ports_resolve_port_groups():
    c = load("""
        vars:
          port-groups:
            VXLAN_PORTS: "[4789, 8472]"
        decoder:
          vxlan:
            enabled: no
            ports: $VXLAN_PORTS
        """)
    assert c.decoder.vxlan_enabled is False and c.decoder.vxlan_ports == (4789, 8472)


def test_relative_paths_are_relative_to_the_yaml_file(tmp_path):
    (tmp_path / "r").mkdir()
    path = tmp_path / "x.yaml"
    path.write_text("default-rule-path: r\nrule-files: [a.rules]\nclassification-file: c.config\n")
    c = conf.load_file(str(path))
    assert c.default_rule_path == str(tmp_path / "r")
    assert c.classification_file == str(tmp_path / "c.config")
    assert conf.rule_path(c, "a.rules") == str(tmp_path / "r" / "a.rules")


def test_ipsbridge_section_and_outputs_eve_log():
    c = load("""
        default-log-dir: /var/log/x
        outputs:
          - fast: {enabled: no}
          - eve-log:
              enabled: yes
              filename: eve.json
        ipsbridge:
          stats-interval: 2
          verdict-hook: "m:f"
        """)
    assert c.eve_log == "/var/log/x/eve.json" and c.stats_interval == 2.0 and c.verdict_hook == "m:f"
    c = load("outputs:\n  - eve-log: {filename: a.json}\nipsbridge:\n  eve-log: b.json\n")
    assert c.eve_log == "b.json", "ipsbridge's own key wins over Suricata's outputs"


# ------------------------------------------------------------------ Suricata-style file
SURICATA_STYLE = """\
%YAML 1.1
---

# A representative suricata.yaml: sections ipsbridge does not use must load.
vars:
  address-groups:
    HOME_NET: "[198.51.100.0/24]"
    EXTERNAL_NET: "!$HOME_NET"
  port-groups:
    HTTP_PORTS: "80"

default-log-dir: /var/log/suricata/

outputs:
  - fast:
      enabled: yes
      filename: fast.log
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - alert
        - drop

logging:
  default-log-level: notice

af-packet:
  - interface: eth0
    threads: 2
    cluster-id: 97
    cluster-type: cluster_flow
    defrag: yes
    copy-mode: ips
    copy-iface: eth1
    mmap-locked: yes
  - interface: eth1
    threads: 2
    cluster-id: 96
    copy-mode: ips
    copy-iface: eth0
  - interface: default
    use-mmap: yes
    tpacket-v3: yes

app-layer:
  protocols:
    http:
      enabled: yes

stream:
  memcap: 64mb
  checksum-validation: yes
  inline: auto
  reassembly:
    depth: 1mb

decoder:
  teredo:
    enabled: true
    ports: $TEREDO_PORTS
  vxlan:
    enabled: true
    ports: $VXLAN_PORTS

detect:
  profile: medium

threading:
  set-cpu-affinity: no

exception-policy: auto

pcap-file:
  checksum-checks: auto

default-rule-path: /var/lib/suricata/rules
rule-files:
  - suricata.rules
classification-file: /etc/suricata/classification.config
reference-config-file: /etc/suricata/reference.config
"""


def test_suricata_style_file_loads_with_one_warning_per_unused_section():
    with capture_logs() as logs:
        c = load(SURICATA_STYLE)
    sections = [e["where"] for e in logs if e["event"] == "config_section_ignored"]
    assert sorted(sections) == sorted(["outputs", "logging", "detect", "threading", "reference-config-file"])
    assert all(e["log_level"] == "warning" for e in logs)
    ignored_keys = {(e["where"], e["key"]) for e in logs if e["event"] == "config_key_ignored"}
    assert ignored_keys == {("eth0", "mmap-locked")}
    stock = {(e["where"], e["key"]) for e in logs if e["event"] == "config_key_stock_value"}
    assert stock == {("decoder.teredo", "enabled")}
    forced = [e for e in logs if e["event"] == "config_tpacket_v3_forced_off"]
    assert [e["where"] for e in forced] == ["eth0", "eth1"]
    forced = [e for e in logs if e["event"] == "config_defrag_forced_off"]
    assert [e["where"] for e in forced] == ["eth0"]
    eth0, eth1 = c.af_packet
    assert (eth0.threads, eth0.cluster_id, eth1.cluster_id) == (2, 97, 96)
    assert eth0.tpacket_v3 is False and eth1.tpacket_v3 is False
    assert c.rule_files == ["suricata.rules"] and c.default_rule_path == "/var/lib/suricata/rules"
    assert c.eve_log == "/var/log/suricata/eve.json"
    assert c.vars["address-groups"]["HOME_NET"] == "[198.51.100.0/24]"
    assert c.stream.memcap == 64 * 1024 * 1024 and c.stream.depth == 1024 * 1024


def test_section_include_is_read_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "afp.yaml").write_text("- interface: eth3\n  threads: 3\n")
    main = tmp_path / "main.yaml"
    main.write_text("%YAML 1.1\n---\naf-packet: !include sub/afp.yaml\n")
    c = conf.load_file(str(main))
    assert [(i.interface, i.threads) for i in c.af_packet] == [("eth3", 3)]
    main.write_text("af-packet: !include nope.yaml\n")
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(main))
    (p,) = info.value.problems
    assert p.line == 1 and "!include nope.yaml" in p.message


def test_shipped_example_config_loads_and_validates():
    with capture_logs() as logs:
        c = conf.load_file(os.path.join(REPO, "conf", "ipsbridge.yaml"))
    assert logs == []
    assert [(i.interface, i.copy_iface, i.threads) for i in c.af_packet] == [("eth0", "eth1", 2), ("eth1", "eth0", 2)]
    assert conf.validate(c) == []


def test_shipped_example_rules_and_classification_load_without_errors():
    from conf.build import load_rules

    c = conf.load_file(os.path.join(REPO, "conf", "ipsbridge.yaml"))
    result = load_rules(c)
    assert result.errors == [] and len(result.rules) == 5
    assert all(r.sid >= 1000000 for r in result.rules)
    assert {r.action for r in result.rules} == {"drop", "alert"}


def test_classification_file_has_the_et_open_names_and_priorities():
    entries = {}
    with open(os.path.join(REPO, "conf", "classification.config")) as fh:
        for line in fh:
            if line.startswith("config classification:"):
                name, desc, prio = line.split(":", 1)[1].strip().split(",")
                entries[name] = (desc, int(prio))
    assert entries["trojan-activity"] == ("A Network Trojan was detected", 1)
    assert entries["bad-unknown"] == ("Potentially Bad Traffic", 2)
    assert entries["tcp-connection"][1] == 4 and len(entries) == 43


# ------------------------------------------------------------------ parse errors
@pytest.mark.parametrize("text,where,key,fragment", [
    ("af-packet:\n  - interface: eth0\n    thread: 2\n", "eth0", "thread", "did you mean 'threads'?"),
    ("af-packet:\n  - interface: eth0\n    copy_mode: ips\n", "eth0", "copy_mode", "did you mean 'copy-mode'?"),
    ("stream:\n  midstrem: yes\n", "stream", "midstrem", "did you mean 'midstream'?"),
    ("vars:\n  adress-groups: {}\n", "vars", "adress-groups", "did you mean 'address-groups'?"),
    ("decoder:\n  vxlam: {enabled: yes}\n", "decoder", "vxlam", "did you mean 'vxlan'?"),
    ("ipsbridge:\n  eve_log: x.json\n", "ipsbridge", "eve_log", "did you mean 'eve-log'?"),
], ids=["af-packet", "af-packet-underscore", "stream", "vars", "decoder", "ipsbridge"])
def test_unknown_key_in_used_section_is_error_with_did_you_mean(text, where, key, fragment):
    (p,) = problems_of(text)
    assert (p.where, p.key) == (where, key) and fragment in p.message
    assert p.file == "test.yaml" and p.line >= 2
    assert str(p).startswith(f"test.yaml:{p.line}: {where}: {key}: unknown key")


@pytest.mark.parametrize("entry,key,fragment", [
    ("threads: many", "threads", "not a thread count"),
    ("threads: 0", "threads", "below the minimum 1"),
    ("cluster-id: x", "cluster-id", "not an integer"),
    ("ring-size: big", "ring-size", "not an integer"),
    ("defrag: maybe", "defrag", "not a boolean"),
    ("cluster-type: cluster-flow", "cluster-type", "did you mean 'cluster_flow'?"),
    ("copy-mode: ipss", "copy-mode", "did you mean 'ips'?"),
    ("checksum-checks: kernal", "checksum-checks", "did you mean 'kernel'?"),
    ("bypass: kernal", "bypass", "did you mean 'kernel'?"),
], ids=lambda v: v if isinstance(v, str) and ":" in v else None)
def test_wrong_types_and_values_name_the_key(entry, key, fragment):
    (p,) = problems_of(f"af-packet:\n  - interface: eth0\n    {entry}\n")
    assert (p.where, p.key, p.line) == ("eth0", key, 3)
    assert fragment in p.message and " -- fix: " in str(p)


def test_all_problems_are_reported_at_once():
    problems = problems_of("af-packet:\n  - interface: eth0\n    threads: x\n    defrg: no\n"
                           "stream:\n  inline: sometimes\n")
    assert [(p.where, p.key) for p in problems] == [("eth0", "defrg"), ("eth0", "threads"),
                                                    ("stream", "inline")]


def test_yaml_syntax_error_has_line():
    (p,) = problems_of("af-packet:\n  - interface: eth0\n   threads: 2\n  - [\n")
    assert p.where == "yaml" and p.line > 0 and "syntax error" in p.message


def test_duplicate_key_is_an_error():
    (p,) = problems_of("af-packet:\n  - interface: eth0\n    threads: 2\n    threads: 4\n")
    assert (p.key, p.line) == ("threads", 4) and "twice" in p.message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        conf.load_file(str(tmp_path / "nope.yaml"))
    assert "cannot read" in str(info.value.problems[0])


# ------------------------------------------------------------------ static refusals
def refusals(text: str) -> list[Problem]:
    return conf.validate(load(text))


REFUSALS = [
    ("unequal-threads", pair(eth0="    threads: 2\n", eth1="    threads: 4\n"),
     "eth0", "threads", "2 here but 4 on its peer eth1", "set the same 'threads' on both interfaces"),
    ("shared-cluster-id", pair(eth0="    cluster-id: 5\n", eth1="    cluster-id: 5\n"),
     "eth1", "cluster-id", "5 is also used by eth0", "give every interface its own 'cluster-id'"),
    ("copy-iface-missing",
     "af-packet:\n  - interface: eth0\n    copy-mode: ips\n    copy-iface: eth9\n",
     "eth0", "copy-iface", "peer 'eth9' has no af-packet entry", "add an af-packet entry for eth9"),
    ("copy-iface-self",
     "af-packet:\n  - interface: eth0\n    copy-mode: ips\n    copy-iface: eth0\n",
     "eth0", "copy-iface", "points at the interface itself", "name the other port"),
    ("copy-iface-not-back",
     "af-packet:\n  - {interface: eth0, copy-mode: ips, copy-iface: eth1}\n"
     "  - {interface: eth1, copy-mode: ips, copy-iface: eth2}\n  - {interface: eth2, copy-mode: ips, copy-iface: eth1}\n",
     "eth0", "copy-iface", "peer eth1 points back at 'eth2', not eth0", "set 'copy-iface: eth0' on eth1"),
    ("copy-mode-without-iface",
     "af-packet:\n  - interface: eth0\n    copy-mode: ips\n",
     "eth0", "copy-mode", "'ips' set but no copy-iface", "add 'copy-iface: PEER'"),
    ("copy-iface-without-mode",
     "af-packet:\n  - {interface: eth0, copy-iface: eth1}\n  - {interface: eth1}\n",
     "eth0", "copy-iface", "'eth1' set but no copy-mode", "add 'copy-mode: ips'"),
    ("ips-without-mmap", pair(eth0="    use-mmap: no\n"),
     "eth0", "use-mmap", "off, but copy-mode 'ips'", "set 'use-mmap: yes'"),
    ("no-promisc-inline", pair(eth1="    disable-promisc: yes\n"),
     "eth1", "disable-promisc", "silently lost", "set 'disable-promisc: no'"),
    ("bpf-on-inline", pair(eth1="    bpf-filter: tcp\n"),
     "eth1", "bpf-filter", "silent blackhole", "remove 'bpf-filter' from ips/tap interfaces"),
    ("mixed-copy-mode", pair(eth1="    copy-mode: tap\n").replace("copy-mode: ips\n    copy-iface: eth0\n    copy-mode: tap",
                                                              "copy-iface: eth0\n    copy-mode: tap"),
     "eth0", "copy-mode", "'ips' here but 'tap' on its peer eth1", "set the same 'copy-mode'"),
    ("no-interfaces", "", "af-packet", "", "no interface configured", "--bridge"),
    ("missing-rule-file", "af-packet:\n  - interface: eth0\nrule-files: [nope-404.rules]\n",
     "rule-files", "nope-404.rules", "file not found", "default-rule-path"),
]


@pytest.mark.parametrize("text,where,key,message,fix", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_static_refusal(text, where, key, message, fix):
    problems = refusals(text)
    match = [p for p in problems if (p.where, p.key) == (where, key)]
    assert match, f"no {where}/{key} problem in {[str(p) for p in problems]}"
    p = match[0]
    assert message in p.message and fix in p.fix
    line = str(p)
    assert "\n" not in line and f"{where}: " in line and " -- fix: " in line
    assert len(problems) == 1, [str(p) for p in problems]


def test_refusal_line_format_matches_the_documented_example():
    (p,) = refusals(pair(eth0="    threads: 2\n", eth1="    threads: 4\n"))
    assert str(p).startswith("test.yaml:2: eth0: threads: 2 here but 4 on its peer eth1 (copy-iface)")
    assert str(p).endswith("-- fix: set the same 'threads' on both interfaces")


def test_tpacket_v3_inline_built_in_code_is_refused():
    c = Config(af_packet=[Interface("eth0", copy_mode="ips", copy_iface="eth1", tpacket_v3=True, cluster_id=1,
                                    defrag=False),
                          Interface("eth1", copy_mode="ips", copy_iface="eth0", cluster_id=2, defrag=False)])
    assert [(p.where, p.key) for p in conf.validate(c)] == [("eth0", "tpacket-v3")]


def test_defrag_inline_built_in_code_is_refused():
    c = Config(af_packet=[Interface("eth0", copy_mode="ips", copy_iface="eth1", cluster_id=1),
                          Interface("eth1", copy_mode="ips", copy_iface="eth0", cluster_id=2, defrag=False)])
    assert [(p.where, p.key, p.severity) for p in conf.validate(c)] == [("eth0", "defrag", "error")]


@pytest.mark.parametrize("extra,key", [
    ("    rollover: yes\n", "rollover"),
    ("    cluster-type: cluster_round_robin\n", "cluster-type"),
], ids=["rollover", "round-robin"])
def test_flow_splitting_on_inline_is_a_warning(extra, key):
    problems = refusals(pair(eth0=extra, eth1=extra))
    assert {(p.where, p.key, p.severity) for p in problems} == {("eth0", key, "warning"), ("eth1", key, "warning")}


def test_tpacket_v3_on_ids_interface_is_kept():
    c = load("af-packet:\n  - interface: eth0\n    tpacket-v3: yes\n")
    assert c.af_packet[0].tpacket_v3 is True and conf.validate(c) == []


# ------------------------------------------------------------------ quick form
def args(**kw) -> argparse.Namespace:
    base = dict(config=None, bridge=[], ids=[], mode=None, threads=None, cluster_type=None, rules=[],
                eve=None, stats_interval=None, verdict_hook=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_quick_bridge_builds_a_peered_pair():
    c = conf.from_args(args(bridge=["eth0:eth1"], threads="2"))
    assert [(i.interface, i.copy_mode, i.copy_iface, i.threads, i.cluster_id) for i in c.af_packet] == [
        ("eth0", "ips", "eth1", 2, 99), ("eth1", "ips", "eth0", 2, 98)]
    assert conf.validate(c) == []
    assert c.source == "<command line>"


def test_quick_bridges_ids_and_mode():
    c = conf.from_args(args(bridge=["a0:a1", "b0:b1"], ids=["m0"], mode="tap", rules=["x.rules"],
                            eve="e.json", stats_interval=0.5))
    assert [(i.interface, i.copy_mode) for i in c.af_packet] == [
        ("a0", "tap"), ("a1", "tap"), ("b0", "tap"), ("b1", "tap"), ("m0", None)]
    assert len({i.cluster_id for i in c.af_packet}) == 5
    assert c.rule_files == [os.path.abspath("x.rules")]
    assert (c.eve_log, c.stats_interval) == ("e.json", 0.5)


@pytest.mark.parametrize("kw,flag,fragment", [
    (dict(bridge=["eth0"]), "--bridge", "is not IFACE:IFACE"),
    (dict(bridge=["eth0:eth0"]), "--bridge", "to itself"),
    (dict(bridge=["eth0:eth1", "eth1:eth2"]), "--bridge", "given twice"),
    (dict(ids=["eth0"], mode="ips"), "--mode", "without --bridge"),
    (dict(bridge=["eth0:eth1"], threads="zero"), "--threads", "not a thread count"),
], ids=["no-colon", "self", "twice", "mode-without-bridge", "threads"])
def test_quick_form_errors(kw, flag, fragment):
    with pytest.raises(ConfigError) as info:
        conf.from_args(args(**kw))
    assert any(p.where == flag and fragment in p.message for p in info.value.problems), info.value.problems


def test_quick_flags_on_top_of_a_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(pair(eth0="    threads: 4\n", eth1="    threads: 4\n") + "rule-files: [a.rules]\n"
                    "ipsbridge:\n  eve-log: file.json\n")
    c = conf.from_args(args(config=str(path), ids=["eth2"], threads="2", rules=["b.rules"], eve="cli.json"))
    assert [(i.interface, i.threads) for i in c.af_packet] == [("eth0", 2), ("eth1", 2), ("eth2", 2)]
    assert c.rule_files == [os.path.abspath("b.rules")] and c.eve_log == "cli.json"
    assert [i.cluster_id for i in c.af_packet] == [99, 98, 97]
    with pytest.raises(ConfigError) as info:
        conf.from_args(args(config=str(path), bridge=["eth1:eth5"]))
    assert "also in" in info.value.problems[0].message
