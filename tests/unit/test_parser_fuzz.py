"""Property tests: whatever the text, the parser either returns a Rule or
raises RuleError (never another exception), and a compiled payload chain
never raises on any buffer."""
import atexit
import glob
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import classification, loader
from rules.errors import RuleError
from rules.parser import parse_rule, split_options
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


@settings(max_examples=400 * SCALE, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_only_raises_rule_error(text):
    check(text)


@settings(max_examples=300 * SCALE, deadline=None, derandomize=True, database=None)
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


@settings(max_examples=600 * SCALE, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_rules_only_raise_rule_error(text):
    check(text)


@settings(max_examples=300 * SCALE, deadline=None, derandomize=True, database=None)
@given(st.sampled_from([s for s in REAL if s.split(" ", 2)[1] in ("tcp", "udp", "dns")]), st.binary(max_size=400))
def test_payload_chains_never_raise(text, buf):
    r = check(text)
    if r is not None and r.payload is not None:
        assert r.payload.match(buf) in (True, False)
        if r.fast_pattern:
            assert r.payload.match(b"x" * 8 + r.fast_pattern + b"y" * 8) in (True, False)


# ---------------------------------------------------------------- rule files through the loader
RULE_DIR = Path(tempfile.mkdtemp(prefix="ipsbridge-rules-fuzz-"))
atexit.register(shutil.rmtree, RULE_DIR, ignore_errors=True)
CLASS_FILE = Path(__file__).resolve().parents[2] / "conf" / "classification.config"


@st.composite
def rule_file(draw):
    """A rule file: real and mutated rules, comments, blank lines, rules continued over
    lines with a trailing backslash, CRLF endings, the same sid again with other revs."""
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["real", "mutated", "comment", "blank", "continued", "again", "noise"]))
        if kind == "real":
            lines.append(draw(st.sampled_from(REAL)))
        elif kind == "mutated":
            lines.append(draw(mutated()))
        elif kind == "comment":
            lines.append("# " + draw(st.sampled_from(REAL + ["", "alert"])))
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["", "   ", "\t", "\\", "\\\\"])))
        elif kind == "continued":
            text = draw(st.sampled_from(REAL))
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=3)))
            parts = [text[i:j] for i, j in zip([0] + cuts, cuts + [len(text)])]
            lines.append("\\\n".join(parts))
        elif kind == "again":
            rev = draw(st.integers(0, 3))
            lines.append(f'alert udp any any -> any 53 (msg:"again"; content:"x"; sid:7; rev:{rev};)')
        else:
            lines.append(draw(st.text(max_size=80)))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return eol.join(lines) + draw(st.sampled_from(["", eol, "\\"]))


@settings(max_examples=200 * SCALE, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rule_file())
def test_rule_files_load_with_rule_errors_only(text):
    """Not strict: every rule that does not parse is a RuleError naming the file, a line of
    it and a column, and none is the loader's "internal error" (its safety net for a parser
    exception); strict: the first of them is raised, as a RuleError."""
    path = RULE_DIR / "fuzz.rules"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    nlines = max(1, len(text.splitlines()))
    res = loader.load([path], classification_file=CLASS_FILE)
    c = res.counts
    assert c["loaded"] == len(res.rules) and c["failed"] == len(res.errors)
    assert c["loaded"] + c["failed"] + c["replaced"] == c["total"]
    assert all(isinstance(r, Rule) for r in res.rules)
    for e in res.errors + res.warnings:
        assert isinstance(e, RuleError) and "internal error" not in e.message, str(e)
        assert e.file == str(path) and 1 <= e.line <= nlines and e.column >= 0, str(e)
    try:
        strict = loader.load([path], classification_file=CLASS_FILE, strict=True)
    except RuleError as e:
        assert res.errors and str(e) == str(res.errors[0])
    else:
        assert not res.errors and len(strict.rules) == len(res.rules)
    assert loader.format_report(res, verbose=True)


@settings(max_examples=200 * SCALE, deadline=None, derandomize=True, database=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.builds(
    "config classification: {},{},{}".format, st.text(max_size=10), st.text(max_size=10),
    st.one_of(st.integers(), st.text(max_size=6)))), max_size=6).map("\n".join))
def test_classification_files_only_raise_rule_error(text):
    path = RULE_DIR / "classification.config"
    path.write_text(text, errors="surrogatepass")
    try:
        classes = classification.load(path)
    except RuleError as e:
        assert e.file == str(path) and e.line >= 1 and e.column >= 0
    else:
        assert all(isinstance(d, str) and isinstance(p, int) for d, p in classes.values())


def _outcome(text):
    try:
        r = parse_rule(text, classification=CLS)
    except RuleError as e:
        return ("error", e.unsupported, e.column)
    return ("rule", r.sid, repr(r.payload))


@settings(max_examples=80 * SCALE, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(REAL), st.randoms(use_true_random=False))
def test_keyword_case_does_not_matter(text, rnd):
    """Suricata looks keywords up case-insensitively: a rule with its option names in any
    case parses as written in lower case (or fails the same way, at the same column)."""
    head, paren, body = text.partition("(")
    opts = split_options(body.rsplit(")", 1)[0], len(head) + 2) if paren else []
    out = list(text)
    for name, _raw, col, _vcol in opts:
        for i in range(col - 1, col - 1 + len(name)):
            out[i] = out[i].upper() if rnd.random() < 0.5 else out[i].lower()
    mixed = "".join(out)
    assert _outcome(mixed)[:2] == _outcome(text)[:2], mixed
