"""Property tests: whatever the text, the parser either returns a Rule or
raises RuleError (never another exception), and a compiled payload chain
never raises on any buffer."""
import glob
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.errors import RuleError
from rules.parser import parse_rule
from rules.rule import Rule

# IPSBRIDGE_FUZZ_SCALE=20 runs 20x the examples (a longer hunt than CI's)
SCALE = int(os.environ.get("IPSBRIDGE_FUZZ_SCALE", "1"))
CORPUS = Path("/work/shared/corpus/rules")
CLS = {"trojan-activity": ("t", 1), "bad-unknown": ("b", 2), "misc-activity": ("m", 3),
       "attempted-admin": ("a", 1), "policy-violation": ("p", 1)}


def _sample_rules(n=400):
    lines = []
    for f in sorted(glob.glob(str(CORPUS / "et-open" / "*.rules"))):
        for line in Path(f).read_text(errors="replace").splitlines():
            s = line.strip()
            if s and not s.startswith("#"):
                lines.append(s)
    step = max(1, len(lines) // n)
    picked = lines[::step][:n]
    # make sure packet-level rules (the ones that get far into option parsing) are well represented
    picked += [s for s in lines if s.split(" ", 2)[1] in ("tcp", "udp", "ip", "icmp", "dns")][::20][:n]
    return picked


REAL = _sample_rules()
SPECIALS = list(';:"\\|()[]!$,-<> \t#') + ["content:", "pcre:", "|", "\\;", "sid:1;", "$HOME_NET", "any",
                                   "nocase;", "depth:", "offset:", "distance:", "within:", "flags:", "dsize:",
                                   "byte_test:", "byte_jump:", "flowbits:", "threshold:", "isdataat:", "flow:",
                                   "fast_pattern", "ttl:", "ip_proto:", "startswith;", "endswith;", "msg:",
                                   "dns.query;", "dotprefix;", "bsize:", "pkt_data;", "decode-event:"]


def check(text):
    try:
        r = parse_rule(text, classification=CLS)
    except RuleError as e:
        assert isinstance(e.column, int) and e.column >= 0
        str(e)
        return None
    assert isinstance(r, Rule)
    return r


@settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_only_raises_rule_error(text):
    check(text)


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.lists(st.sampled_from(SPECIALS + list("abcsid0123456789")), max_size=60).map("".join))
def test_random_option_soup(body):
    check(f"alert tcp any any -> any any ({body})")
    check(f"alert tcp any any -> any any ({body} sid:1;)")


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "truncate"]))
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(SPECIALS)) + text[i:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i]
    return text


@settings(max_examples=600 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_rules_only_raise_rule_error(text):
    check(text)


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.sampled_from([s for s in REAL if s.split(" ", 2)[1] in ("tcp", "udp", "dns")]), st.binary(max_size=400))
def test_payload_chains_never_raise(text, buf):
    r = check(text)
    if r is not None and r.payload is not None:
        assert r.payload.match(buf) in (True, False)
        if r.fast_pattern:
            assert r.payload.match(b"x" * 8 + r.fast_pattern + b"y" * 8) in (True, False)
