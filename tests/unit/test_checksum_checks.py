"""checksum-checks: the per-frame hint (FrameMeta.checksum), auto's sample, the af-packet
status word -> hint mapping, and the configuration that sets them (no kernel).

The verdict difference a hint makes: a TCP segment with a bad checksum is left out of
the stream when it is validated (rules.stream `_acceptable`), so content split over it
and the next segment does not match; when it is not validated, the stream takes it and
the content matches on the next segment.  Suricata 7.0.10 agrees (tests/replay/
test_replay_checksum_checks.py records what it did on such traffic from files).
"""
from __future__ import annotations

import textwrap

import pytest
from scapy.all import IP, TCP, UDP, Ether

import conf
from bridge import afpacket as afp
from bridge.worker import CHECKSUM_CHECKS, checksum_hint
from conf import ConfigError
from rules.api import CSUM_AUTO, CSUM_SKIP, CSUM_VALIDATE, FrameMeta, Verdict
from rules.decode import CHECKSUM_INVALID_RATIO, CHECKSUM_SAMPLE_COUNT, ChecksumChecks, DecodeOptions, decode
from rules.engine import Engine
from rules.parser import parse_rule
from rules.settings import EngineSettings

C, S = "198.51.100.1", "198.51.100.2"
HINTS = {"validate": CSUM_VALIDATE, "skip": CSUM_SKIP, "auto": CSUM_AUTO}


def fr(l4, src=C, dst=S) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) / l4)


BAD_TCP = fr(TCP(sport=1234, dport=80, flags="PA", seq=1, ack=1, chksum=0xDEAD) / b"data")
GOOD_TCP = fr(TCP(sport=1234, dport=80, flags="PA", seq=1, ack=1) / b"data")
GOOD_UDP = fr(UDP(sport=1, dport=2) / b"x")


def meta(hint: int, iface: str = "eth0", pcap_cnt: int = 0) -> FrameMeta:
    return FrameMeta(1.0, iface, (), pcap_cnt, (), 1, hint)


# ------------------------------------------------------------------ the decoder
@pytest.mark.parametrize("hint,validation,want", [
    ("validate", True, False),
    ("skip", True, None),
    ("auto", True, False),          # auto validates until the sample says otherwise
    ("validate", False, None),      # stream.checksum-validation off: the master switch
    ("skip", False, None),
    ("auto", False, None),
], ids=lambda v: v if isinstance(v, str) else None)
def test_hint_decides_whether_a_bad_tcp_checksum_is_seen(hint, validation, want):
    opts = DecodeOptions(checksum_validation=validation)
    for checks in (None, ChecksumChecks()):
        (p,) = decode(BAD_TCP, meta(HINTS[hint]), opts, checks)
        assert p.csum_ok is want


def test_skip_leaves_the_ipv4_header_checksum_unchecked_too():
    raw = bytearray(GOOD_UDP)
    raw[14 + 10] ^= 0xFF                      # IPv4 header checksum
    assert decode(bytes(raw), meta(CSUM_VALIDATE))[0].csum_ok is False
    assert decode(bytes(raw), meta(CSUM_SKIP))[0].csum_ok is None


def test_skip_reuses_one_options_object():
    checks = ChecksumChecks()
    opts = DecodeOptions()
    a = checks.without(opts)
    assert a.checksum_validation is False and checks.without(opts) is a
    assert DecodeOptions().checksum_validation is True     # the engine's own options are untouched


# ------------------------------------------------------------------ auto's sample
def run_sample(checks: ChecksumChecks, invalid: int, *, iface="eth0", replay=False) -> list:
    """Feed CHECKSUM_SAMPLE_COUNT - 1 frames, `invalid` of them with a bad TCP checksum, then
    the sample's last frame (bad too); returns that frame's csum_ok."""
    for i in range(CHECKSUM_SAMPLE_COUNT - 1):
        frame = BAD_TCP if i < invalid else GOOD_UDP
        decode(frame, meta(CSUM_AUTO, iface, i + 1 if replay else 0), DecodeOptions(), checks)
    (p,) = decode(BAD_TCP, meta(CSUM_AUTO, iface, CHECKSUM_SAMPLE_COUNT if replay else 0), DecodeOptions(), checks)
    return p.csum_ok


def test_suricata_sample_constants():
    # Suricata 7.0.10 src/util-checksum.h
    assert (CHECKSUM_SAMPLE_COUNT, CHECKSUM_INVALID_RATIO) == (1000, 10)


@pytest.mark.parametrize("invalid,off", [(0, False), (100, False), (101, True), (999, True)],
                         ids=["none", "100-stays-on", "101-turns-off", "all"])
def test_auto_turns_validation_off_when_more_than_a_tenth_is_invalid(invalid, off):
    # at the 1000th frame: off when 1000 // invalid < 10 (Suricata's integer test; checked
    # with suricata -r on 100 and 101 bad SYNs in the first 999 packets)
    checks = ChecksumChecks()
    assert run_sample(checks, invalid) is (None if off else False)
    st = checks.stats()
    assert st["checksum.auto_invalid"] == invalid and st["checksum.auto_disabled"] == int(off)
    # the decision holds for good: later frames are (not) validated, never re-sampled
    for _ in range(3):
        (p,) = decode(BAD_TCP, meta(CSUM_AUTO), DecodeOptions(), checks)
        assert p.csum_ok is (None if off else False)
    assert checks.stats()["checksum.auto_invalid"] == invalid


def test_auto_samples_each_interface_live_and_the_whole_input_in_replay():
    checks = ChecksumChecks()
    assert run_sample(checks, 500, iface="eth0") is None
    assert decode(BAD_TCP, meta(CSUM_AUTO, "eth1"), DecodeOptions(), checks)[0].csum_ok is False
    replay = ChecksumChecks()
    for i in range(CHECKSUM_SAMPLE_COUNT - 1):       # pcapng interfaces share one sample
        decode(BAD_TCP, meta(CSUM_AUTO, f"if{i % 2}", i + 1), DecodeOptions(), replay)
    assert decode(BAD_TCP, meta(CSUM_AUTO, "if0", 1000), DecodeOptions(), replay)[0].csum_ok is None
    assert replay.stats()["checksum.auto_disabled"] == 1


def test_auto_counts_only_tcp_and_only_with_validation_on():
    checks = ChecksumChecks()
    udp_bad = fr(UDP(sport=1, dport=2, chksum=0xDEAD) / b"x")
    decode(udp_bad, meta(CSUM_AUTO), DecodeOptions(), checks)
    decode(GOOD_TCP, meta(CSUM_AUTO), DecodeOptions(), checks)
    decode(BAD_TCP, meta(CSUM_AUTO), DecodeOptions(checksum_validation=False), checks)
    assert checks.stats()["checksum.auto_invalid"] == 0
    decode(BAD_TCP, meta(CSUM_AUTO), DecodeOptions(), checks)
    assert checks.stats()["checksum.auto_invalid"] == 1


# ------------------------------------------------------------------ the verdict it makes
SPLIT_RULE = 'drop tcp any any -> any 80 (msg:"evil"; content:"evil"; sid:1;)'


def split_content(hint: int, *, validation: bool = True) -> list[Verdict]:
    """Handshake, then "GET ev" with a bad TCP checksum and "il" after it (ips mode)."""
    e = Engine([parse_rule(SPLIT_RULE)], EngineSettings.for_mode(
        "ips", decoder=DecodeOptions(checksum_validation=validation)))
    frames = [
        fr(TCP(sport=1234, dport=80, flags="S", seq=100)),
        fr(TCP(sport=80, dport=1234, flags="SA", seq=500, ack=101), S, C),
        fr(TCP(sport=1234, dport=80, flags="A", seq=101, ack=501)),
        fr(TCP(sport=1234, dport=80, flags="PA", seq=101, ack=501, chksum=0x1234) / b"GET ev"),
        fr(TCP(sport=1234, dport=80, flags="PA", seq=107, ack=501) / b"il"),
    ]
    return [e.inspect(f, FrameMeta(1.0 + i, "eth0", (), 0, (), 1, hint)).verdict for i, f in enumerate(frames)]


@pytest.mark.parametrize("hint,validation,dropped", [
    ("validate", True, False),      # the bad segment stays out of the stream: "evil" never whole
    ("auto", True, False),          # auto validates until its sample is taken
    ("skip", True, True),           # not validated: the stream holds "GET evil", dropped on "il"
    ("validate", False, True),      # stream.checksum-validation off: nothing is validated
], ids=lambda v: v if isinstance(v, str) else None)
def test_content_verdict_depends_on_the_hint(hint, validation, dropped):
    verdicts = split_content(HINTS[hint], validation=validation)
    assert verdicts[:4] == [Verdict.FORWARD] * 4
    assert verdicts[4] == (Verdict.DROP if dropped else Verdict.FORWARD)


def test_a_bad_checksum_does_not_trigger_the_midstream_policy():
    # ips mode, midstream off: a SYN with a bad checksum is ignored by the stream engine,
    # not taken as a session picked up midstream (Suricata never hands it to its stream
    # engine, so its midstream policy does not see it either)
    e = Engine([parse_rule(SPLIT_RULE)], EngineSettings.for_mode("ips"))
    r = e.inspect(fr(TCP(sport=1, dport=80, flags="S", chksum=0xDEAD)), meta(CSUM_VALIDATE))
    assert r.verdict == Verdict.FORWARD
    r = e.inspect(fr(TCP(sport=1, dport=80, flags="A", seq=1, ack=1)), meta(CSUM_VALIDATE))
    assert r.verdict == Verdict.DROP and r.reason == "policy:midstream"


# ------------------------------------------------------------------ af-packet: status word -> hint
NOTREADY, VALID = afp.TP_STATUS_CSUMNOTREADY, afp.TP_STATUS_CSUM_VALID
USER = afp.TP_STATUS_USER


@pytest.mark.parametrize("checks,status,want", [
    ("kernel", USER, CSUM_VALIDATE),
    ("kernel", USER | NOTREADY, CSUM_SKIP),            # offloaded: the checksum is the bridge's to fill
    ("kernel", USER | VALID, CSUM_SKIP),               # the kernel or the NIC checked it
    ("kernel", USER | NOTREADY | afp.TP_STATUS_VLAN_VALID, CSUM_SKIP),
    ("kernel", USER | afp.TP_STATUS_VLAN_VALID | afp.TP_STATUS_LOSING, CSUM_VALIDATE),
    ("yes", USER, CSUM_VALIDATE),
    ("yes", USER | NOTREADY, CSUM_VALIDATE),
    ("yes", USER | VALID, CSUM_VALIDATE),
    ("no", USER, CSUM_SKIP),
    ("no", USER | VALID, CSUM_SKIP),
    ("auto", USER, CSUM_AUTO),
    ("auto", USER | NOTREADY, CSUM_AUTO),
], ids=lambda v: v if isinstance(v, str) else None)
def test_status_word_to_hint(checks, status, want):
    assert checksum_hint(checks, status) == want


def test_every_configurable_value_has_a_mapping():
    from conf.load import CHECKSUM_CHECKS as VALUES
    from conf.model import Interface

    assert set(CHECKSUM_CHECKS) == set(VALUES)
    assert Interface("eth0").checksum_checks == "kernel"


# ------------------------------------------------------------------ configuration
def load(text: str):
    return conf.load_text(textwrap.dedent(text), "test.yaml", "/tmp")


@pytest.mark.parametrize("value,want", [("auto", "auto"), ("yes", "yes"), ("no", "no"), ("true", "yes"),
                                        ("off", "no")])
def test_pcap_file_checksum_checks_values(value, want):
    assert load(f"pcap-file:\n  checksum-checks: {value}\n").pcap_file_checksum_checks == want


def test_pcap_file_checksum_checks_default_is_auto():
    assert load("").pcap_file_checksum_checks == "auto"


def test_pcap_file_kernel_is_refused_with_file_and_line():
    # Suricata 7.0.10 would take it as 'no' without a word (source-pcap-file.c)
    with pytest.raises(ConfigError) as info:
        load("stream:\n  checksum-validation: yes\npcap-file:\n  checksum-checks: kernel\n")
    (p,) = info.value.problems
    assert (p.where, p.key, p.line) == ("pcap-file", "checksum-checks", 4)
    assert "test.yaml:4" in str(p) and "auto" in str(p) and "af-packet" in str(p)


@pytest.mark.parametrize("value", ["kernel", "yes", "no", "auto"])
def test_af_packet_checksum_checks_values(value):
    c = load(f"af-packet:\n  - interface: eth0\n    checksum-checks: {value}\n")
    assert c.af_packet[0].checksum_checks == value
