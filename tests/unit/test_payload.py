"""Payload chain semantics: windows, relative matching, backtracking, nocase,
negation, pcre, isdataat, byte_test/byte_jump, and the fast pattern choice."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.parser import parse_rule
from rules.payload import Content, PayloadChain, choose_fast_pattern, pattern_strength


def rule(opts):
    return parse_rule(f"alert tcp any any -> any any ({opts} sid:1;)", classification={})


def chain(opts):
    return rule(opts).payload


CASES = [
    # (id, options, buffer, expected)
    ("plain-hit", 'content:"abc";', b"xxabcxx", True),
    ("plain-miss", 'content:"abc";', b"xxabxcx", False),
    ("case-sensitive", 'content:"abc";', b"ABC", False),
    ("nocase", 'content:"abc"; nocase;', b"xxABCxx", True),
    ("nocase-hex", 'content:"|41 42|c"; nocase;', b"abC", True),
    ("hex-mixed", 'content:"a|00 ff|b";', b"_a\x00\xffb_", True),
    ("hex-no-spaces", 'content:"|0d0a0d0a|";', b"GET\r\n\r\n", True),
    ("escaped-quote", 'content:"say \\"hi\\"";', b'say "hi"', True),
    ("escaped-semicolon", 'content:"a\\;b";', b"a;b", True),
    ("escaped-backslash", 'content:"a\\\\b";', b"a\\b", True),
    ("depth-in", 'content:"abc"; depth:5;', b"xxabc", True),
    ("depth-out", 'content:"abc"; depth:4;', b"xxabc", False),
    ("offset-in", 'content:"abc"; offset:2;', b"xxabc", True),
    ("offset-out", 'content:"abc"; offset:3;', b"xxabc", False),
    ("offset-depth-window", 'content:"abc"; offset:2; depth:3;', b"xxabcx", True),
    ("offset-depth-window-miss", 'content:"abc"; offset:1; depth:3;', b"xxabcx", False),
    ("startswith-hit", 'content:"GET"; startswith;', b"GET /", True),
    ("startswith-miss", 'content:"GET"; startswith;', b" GET /", False),
    ("endswith-hit", 'content:"|0d 0a|"; endswith;', b"a\r\n", True),
    ("endswith-miss", 'content:"|0d 0a|"; endswith;', b"a\r\nb", False),
    ("distance-0", 'content:"ab"; content:"cd"; distance:0;', b"abcd", True),
    ("distance-order", 'content:"ab"; content:"cd"; distance:0;', b"cdab", False),
    ("distance-2", 'content:"ab"; content:"cd"; distance:2;', b"abxxcd", True),
    ("distance-2-too-close", 'content:"ab"; content:"cd"; distance:2;', b"abxcd", False),
    ("distance-negative", 'content:"abcd"; content:"bc"; distance:-3; within:2;', b"abcd", True),
    ("within-hit", 'content:"ab"; content:"cd"; within:4;', b"abxxcd", True),
    ("within-miss", 'content:"ab"; content:"cd"; within:3;', b"abxxcd", False),
    ("distance-within-window", 'content:"ab"; content:"cd"; distance:1; within:3;', b"abxcd", True),
    ("distance-within-window-edge", 'content:"ab"; content:"cd"; distance:1; within:3;', b"abxxcd", True),
    ("distance-within-window-miss", 'content:"ab"; content:"cd"; distance:1; within:3;', b"abxxxcd", False),
    # backtracking: the first "ab" has no "cd" right after, the second one does
    ("backtrack", 'content:"ab"; content:"cd"; within:2;', b"abxx abcd", True),
    ("backtrack-3-levels", 'content:"a"; content:"b"; within:1; content:"c"; within:1;',
     b"ab ab abd abc", True),
    ("no-backtrack-needed-abs", 'content:"ab"; content:"zz";', b"zzab", True),
    ("negated-absent", 'content:"ab"; content:!"cd";', b"abxx", True),
    ("negated-present", 'content:"ab"; content:!"cd";', b"abcd", False),
    ("negated-relative-window", 'content:"ab"; content:!"cd"; within:2;', b"abxxcd", True),
    ("negated-relative-backtracks", 'content:"ab"; content:!"cd"; within:2;', b"abcd abxx", True),
    ("negated-only", 'content:!"evil";', b"good", True),
    ("negated-only-present", 'content:!"evil";', b"so evil", False),
    ("empty-buffer-never-matches", 'content:!"evil";', b"", False),
    ("pcre", 'pcre:"/fo+bar/";', b"xxfooooobar", True),
    ("pcre-i", 'pcre:"/FOO/i";', b"foo", True),
    ("pcre-s", 'pcre:"/a.b/s";', b"a\nb", True),
    ("pcre-no-s", 'pcre:"/a.b/";', b"a\nb", False),
    ("pcre-m", 'pcre:"/^b$/m";', b"a\nb\nc", True),
    ("pcre-x", 'pcre:"/a b c/x";', b"abc", True),
    ("pcre-negated", 'pcre:!"/evil/";', b"good", True),
    ("pcre-R-after", 'content:"key="; pcre:"/^\\d+/R";', b"key=123", True),
    ("pcre-R-anchor-at-prev-end", 'content:"key="; pcre:"/^\\d+/R";', b"key=x123", False),
    ("pcre-R-backtracks-content", 'content:"k="; pcre:"/^\\d/R";', b"k=x k=1", True),
    ("content-after-pcre", 'pcre:"/a+/"; content:"b"; distance:0; within:1;', b"xaaab", True),
    ("pcre-A", 'pcre:"/abc/A";', b"xabc", False),
    ("pcre-named-group", 'pcre:"/(?<x>ab)c/";', b"abc", True),
    ("pcre-\\z", 'pcre:"/abc\\z/";', b"abc", True),
    ("isdataat-abs", 'isdataat:3;', b"abcd", True),
    ("isdataat-abs-miss", 'isdataat:4;', b"abcd", False),
    ("isdataat-negated", 'isdataat:!4;', b"abcd", True),
    ("isdataat-relative", 'content:"ab"; isdataat:1,relative;', b"abcd", True),
    ("isdataat-relative-edge", 'content:"ab"; isdataat:2,relative;', b"abcd", True),   # <= len, as Suricata
    ("isdataat-relative-miss", 'content:"ab"; isdataat:3,relative;', b"abcd", False),
    ("isdataat-relative-negated", 'content:"cd"; isdataat:!1,relative;', b"abcd", True),
    ("byte_test-eq", 'byte_test:2,=,258,0;', b"\x01\x02", True),
    ("byte_test-little", 'byte_test:2,=,513,0,little;', b"\x01\x02", True),
    ("byte_test-gt", 'byte_test:1,>,10,1;', b"\x00\x0b", True),
    ("byte_test-not-gt", 'byte_test:1,!>,10,1;', b"\x00\x0b", False),
    ("byte_test-and", 'byte_test:1,&,0x80,0;', b"\x81", True),
    ("byte_test-short-buffer", 'byte_test:4,>,0,0;', b"\x01\x02", False),
    ("byte_test-string-dec", 'byte_test:3,>=,100,0,string,dec;', b"123x", True),
    ("byte_test-string-hex", 'byte_test:2,=,255,0,string,hex;', b"ff", True),
    ("byte_test-string-not-digits", 'byte_test:2,=,1,0,string,dec;', b"xx", False),
    ("byte_test-relative", 'content:"LEN"; byte_test:1,=,5,0,relative;', b"LEN\x05", True),
    ("byte_test-bitmask", 'byte_test:1,=,3,0,bitmask 0xf0;', b"\x3a", True),
    ("byte_jump", 'byte_jump:1,0; content:"X"; within:1;', b"\x02abX", True),
    ("byte_jump-miss", 'byte_jump:1,0; content:"X"; within:1;', b"\x01abX", False),
    ("byte_jump-relative", 'content:"L"; byte_jump:1,0,relative; content:"Z"; within:1;', b"L\x01.Z", True),
    ("byte_jump-out-of-range", 'byte_jump:1,0; content:"X";', b"\xffabX", False),
    ("byte_jump-from_beginning", 'byte_jump:1,0,from_beginning; content:"X"; within:1;', b"\x03abX", True),
    # trickier combinations, all held to Suricata by test_cases_agree_with_suricata
    ("negated-then-relative", 'content:"a"; content:!"b"; within:1; content:"c"; distance:0;', b"axc", True),
    ("negated-then-relative-2", 'content:"a"; content:!"b"; within:1; content:"c"; within:1;', b"axc", False),
    ("nocase-relative-backtrack", 'content:"ab"; nocase; content:"CD"; nocase; within:2;', b"AB.. aBcd", True),
    ("endswith-relative", 'content:"a"; content:"z"; distance:0; endswith;', b"a..z", True),
    ("endswith-relative-miss", 'content:"a"; content:"z"; distance:0; endswith;', b"a..z.", False),
    ("endswith-whole", 'content:"abc"; startswith; endswith;', b"abc", True),
    ("endswith-whole-miss", 'content:"abc"; startswith; endswith;', b"abcd", False),
    ("absolute-after-relative", 'content:"x"; content:"y"; distance:0; content:"a"; depth:1;', b"axy", True),
    ("offset-past-end", 'content:"a"; offset:10;', b"aaaa", False),
    ("distance-past-end", 'content:"a"; content:"b"; distance:10;', b"ab", False),
    ("within-only-first", 'content:"b"; within:3;', b"xxb", True),
    ("within-only-first-miss", 'content:"b"; within:3;', b"xxxb", False),
    ("distance-only-first", 'content:"b"; distance:2;', b"xbxb", True),
    ("pcre-relative-distance", 'content:"a"; pcre:"/^b/R"; content:"c"; distance:0; within:1;', b"abc", True),
    ("pcre-relative-then-miss", 'content:"a"; pcre:"/^b/R"; content:"c"; distance:0; within:1;', b"abxc", False),
    ("isdataat-after-negated", 'content:"ab"; content:!"zz"; isdataat:1,relative;', b"abc", True),
    # isdataat:!1,relative right after a content is that content's endswith
    ("isdataat-end-after-negated", 'content:"ab "; content:!"bbb"; isdataat:!1,relative;', b"xxab bbbz", True),
    ("isdataat-end-after-negated-miss", 'content:"ab "; content:!"bbb"; isdataat:!1,relative;', b"xxab bbb", False),
    ("isdataat-end-is-endswith", 'content:"ab"; isdataat:!1,relative;', b"ab ab", True),
    ("byte_test-relative-negative-offset", 'content:"LEN"; byte_test:1,=,0x4e,-1,relative;', b"LEN\x05", True),
    ("byte_jump-then-pcre", 'content:"|02|"; byte_jump:1,-1,relative; pcre:"/^X/R";', b"\x02abX", True),
    ("byte_jump-post_offset", 'byte_jump:1,0,post_offset -1; content:"b"; within:1;', b"\x02abX", True),
    ("byte_jump-multiplier", 'byte_jump:1,0,multiplier 2; content:"X"; within:1;', b"\x01abX", True),
    ("byte_jump-string", 'byte_jump:1,0,string,dec; content:"X"; within:1;', b"2abX", True),
    # string conversion as strtoull: byte_jump moves past the converted characters only
    ("byte_jump-string-partial", 'content:"n="; byte_jump:2,0,relative,string,dec; content:"c"; within:1;',
     b"n=3 abcX", True),
    ("byte_jump-string-partial-miss", 'content:"n="; byte_jump:2,0,relative,string,dec; content:"X"; within:1;',
     b"n=3 abcX", False),
    ("byte_jump-string-leading-space", 'content:"n="; byte_jump:2,0,relative,string,dec; content:"X"; within:1;',
     b"n= 3abcX", True),
    ("byte_jump-string-plus", 'content:"n="; byte_jump:2,0,relative,string,dec; content:"X"; within:1;',
     b"n=+3abcX", True),
    ("byte_test-string-minus-wraps", 'content:"n="; byte_test:2,>,5,0,relative,string,dec;', b"n=-3abc", True),
    ("byte_test-string-hex-0x", 'content:"n="; byte_test:4,=,42,0,relative,string,hex;', b"n=0x2ab", True),
    ("byte_test-string-hex-0x-alone", 'content:"n="; byte_test:2,=,0,0,relative,string,hex;', b"n=0xzz", True),
    ("byte_test-string-non-ascii-after", 'byte_test:2,=,3,0,string,dec;', b"3\xff", True),
    ("byte_test-string-20-bytes", 'byte_test:20,=,42,0,string,dec;', b"00000000000000000042", True),
    ("byte_test-string-overflow", 'byte_test:20,>,0,0,string,dec;', b"99999999999999999999", False),
    ("byte_jump-string-12-bytes", 'byte_jump:12,0,string,hex; content:"X"; within:1;', b"000000000002abX", True),
    ("byte_test-string-spaces-only", 'byte_test:2,=,0,0,string,dec;', b"  0", False),
    # PCRE syntax Python's re spells differently
    ("pcre-posix-class", 'pcre:"/^[[:digit:]]{3}/";', b"123-x", True),
    ("pcre-posix-class-miss", 'pcre:"/^[[:digit:]]{3}/";', b"12a", False),
    ("pcre-posix-negated", 'pcre:"/^[[:^alpha:]]+$/";', b"12-34", True),
    ("pcre-posix-in-negated-class", 'pcre:"/^[^[:space:][:punct:]]+$/";', b"ab c", False),
    ("pcre-brace-without-min-literal", 'pcre:"/ab{,2}c/";', b"ab{,2}c", True),
    ("pcre-brace-without-min-not-quantifier", 'pcre:"/ab{,2}c/";', b"abbc", False),
    ("pcre-bracket-in-class", 'pcre:"/x[a[]y/";', b"x[y", True),
    ("pcre-h-in-class", 'pcre:"/a[\\hz]b/";', b"a\tb", True),
    ("pcre-m-caret-not-after-final-newline", 'pcre:"/^$/m";', b"a \n", False),
    ("pcre-m-caret-after-inner-newline", 'pcre:"/^b/m";', b"a\nb\n", True),
    ("pcre-m-caret-empty-line", 'pcre:"/^$/m";', b"a\n\nb", True),
    ("negated-endswith-first-not-at-end", 'content:"b1"; content:!"b"; endswith;', b"11b1 bbb", True),
    ("negated-endswith-only-at-end", 'content:"a"; content:!"bb"; endswith;', b"a..bb", False),
    ("negated-endswith-absent", 'content:"a"; content:!"bb"; endswith;', b"a..b", True),
    ("negated-endswith-earlier-only", 'content:"a"; content:!"bb"; endswith;', b"abb..", True),
    # a negated content that is the fast pattern: Suricata's pattern search ignores its endswith
    ("negated-fp-endswith-ignored", 'content:!"a1"; endswith;', b"a1a", False),
    ("negated-fp-endswith-absent", 'content:!"a1"; endswith;', b"xx", True),
    ("negated-fp-isdataat-end", 'content:!"a1"; isdataat:!1,relative;', b"a1a", False),
    ("negated-fp-endswith-with-pcre", 'pcre:"/x/"; content:!"a1"; endswith;', b"a1x", False),
    ("negated-relative-endswith-kept", 'pcre:"/ba/"; content:!"ba"; distance:-2; within:6; endswith;', b"ba1", True),
    ("retry-across-absolute-isdataat", 'content:"b"; isdataat:3; content:!"1a"; distance:-2; within:6;',
     b"\n 1bba1a bb", True),
    ("no-retry-past-absolute-content", 'content:"1"; content:!"b1"; startswith; isdataat:!3,relative;',
     b"1aa1", False),
    ("content-hex-nocase-mixed", 'content:"|48|ello"; nocase;', b"hELLO", True),
    ("repeated-pattern-overlap", 'content:"aa"; content:"aa"; distance:0; within:2;', b"aaaa", True),
    ("repeated-pattern-overlap-miss", 'content:"aa"; content:"aa"; distance:0; within:2;', b"aaa", False),
]


@pytest.mark.parametrize("opts,buf,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_payload_match(opts, buf, expected):
    assert chain(opts).match(buf) is expected


def test_memoryview_input():
    assert chain('content:"abc";').match(memoryview(b"xxabc"))


def test_backtracking_is_bounded():
    # a pathological chain on a long run of 'a' ends (no match) instead of exploding
    c = chain('content:"a"; content:"a"; distance:0; content:"a"; distance:0; content:"b"; distance:0;')
    assert c.match(b"a" * 3000) is False


FP = [
    ("longest", 'content:"ab"; content:"abcdef"; content:"xyz";', b"abcdef", False),
    ("explicit", 'content:"ab"; fast_pattern; content:"abcdef";', b"ab", False),
    ("nocase-flag", 'content:"abcdef"; nocase;', b"abcdef", True),
    ("chop", 'content:"abcdef"; fast_pattern:2,3;', b"cde", False),
    ("only", 'content:"abcdef"; fast_pattern:only;', b"abcdef", False),
    ("positive-over-negated", 'content:!"longer-negated"; content:"pos";', b"pos", False),
    ("negated-only-none", 'content:!"neg";', None, False),
    ("tie-strength", 'content:"aaaa"; content:"abcd";', b"abcd", False),
    ("tie-first", 'content:"abcd"; content:"efgh";', b"abcd", False),
    ("no-content", 'pcre:"/x/";', None, False),
]


@pytest.mark.parametrize("opts,fp,nocase", [c[1:] for c in FP], ids=[c[0] for c in FP])
def test_fast_pattern(opts, fp, nocase):
    r = rule(opts)
    assert r.fast_pattern == fp
    assert r.fast_pattern_nocase is nocase


def test_pattern_strength_prefers_diverse_bytes():
    assert pattern_strength(b"abcd") > pattern_strength(b"aaaa")
    assert pattern_strength(b"\x90\x91") > pattern_strength(b"ab")


def test_choose_fast_pattern_direct():
    a, b = Content(b"xx"), Content(b"yyy")
    assert choose_fast_pattern([a, b]) is b
    assert PayloadChain([a]).match(b"axx")


def test_cases_agree_with_suricata(tmp_path):
    """Differential check: every CASES row as a UDP rule + packet, run through
    the real Suricata 7.0.10 (`suricata -r`); its alerts must equal our
    expectations, which test_payload_match holds our matcher to."""
    import json
    import shutil
    import subprocess

    from scapy.all import IP, UDP, Ether, Raw, wrpcap

    exe = shutil.which("suricata")
    assert exe, "suricata (7.0.10) must be installed for the differential payload test"
    rules, pkts = [], []
    for i, (cid, opts, buf, _) in enumerate(CASES):
        rules.append(f'alert udp any any -> any {20000 + i} (msg:"{cid}"; {opts} sid:{i + 1};)')
        p = Ether() / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=1234, dport=20000 + i)
        pkts.append(p / Raw(buf) if buf else p)
    (tmp_path / "r.rules").write_text("\n".join(rules) + "\n")
    wrpcap(str(tmp_path / "p.pcap"), pkts)
    out = subprocess.run([exe, "-c", "/etc/suricata/suricata.yaml", "-S", str(tmp_path / "r.rules"),
                          "-r", str(tmp_path / "p.pcap"), "-l", str(tmp_path), "-k", "none", "--runmode", "single"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "error parsing signature" not in out.stderr + out.stdout, out.stderr[-3000:]
    hits = set()
    for line in (tmp_path / "eve.json").read_text().splitlines():
        ev = json.loads(line)
        if ev.get("event_type") == "alert":
            hits.add(ev["alert"]["signature_id"])
    diffs = [(cid, (i + 1) in hits, exp) for i, (cid, _, _, exp) in enumerate(CASES) if ((i + 1) in hits) != exp]
    assert diffs == [], "case, suricata, ours"


# ---------------------------------------------------------------------- match_buffer's last value
_LAST_RULE = ('alert http any any -> any any (http.host; content:"1"; pcre:"/^1\\d{0,2}\\.[0-9]+/"; '
              'content:"a"; distance:0; sid:1;)')


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"10.2a", b"1.1a", b"10.2", b"b1.1a", b"", b"1" * 300 + b".1a", b"1" * 300]),
                min_size=1, max_size=12))
def test_a_chain_with_a_pcre_answers_a_repeated_value_as_a_fresh_chain_would(values):
    """The last short value's answer is kept (a pcre chain is a function of the value): any
    sequence of values, repeats and long ones included, gets what a fresh chain says."""
    chain = parse_rule(_LAST_RULE).app.bufs[0].chain
    assert chain._last is not None
    for v in values:
        fresh = parse_rule(_LAST_RULE).app.bufs[0].chain
        fresh._last = None
        assert chain.match_buffer(v) is fresh.match_buffer(v), v


def test_the_last_value_is_kept_short_and_only_beside_more_than_contents(monkeypatch):
    from rules.payload import LAST_VALUE_MAX

    chain = parse_rule(_LAST_RULE).app.bufs[0].chain
    assert chain.match_buffer(b"10.2a") and chain._last == (b"10.2a", True)
    calls = []
    run = PayloadChain._run
    monkeypatch.setattr(PayloadChain, "_run", lambda self, b: calls.append(b) or run(self, b))
    assert chain.match_buffer(b"10.2a") and calls == []        # answered from the last value
    long_value = b"10.2a" + b"z" * LAST_VALUE_MAX
    assert chain.match_buffer(long_value) and calls == [long_value]
    assert chain._last == (b"10.2a", True)                    # a long value is not kept
    assert not chain.match_buffer(b"x") and chain._last == (b"x", False)
    contents = parse_rule('alert http any any -> any any (http.host; content:"ab"; sid:2;)').app.bufs[0].chain
    assert contents._last is None and contents.match_buffer(b"xab") and contents._last is None
