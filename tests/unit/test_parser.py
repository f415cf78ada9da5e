"""Rule grammar: header, option splitting, escapes, comments, multi-line
rules, and every parser error with its exact file:line:column; plus the
loader (duplicates, strict mode, paths, report)."""
import textwrap

import pytest

from conf.build import load_rules
from conf.model import Config
from rules.errors import RuleError
from rules.loader import format_report, load, logical_lines
from rules.parser import parse_rule, split_options
from rules.settings import DEFAULT_VARS

CLS = {"trojan-activity": ("A Network Trojan was detected", 1)}


def parse(text, **kw):
    kw.setdefault("classification", CLS)
    return parse_rule(text, **kw)


def perr(text):
    with pytest.raises(RuleError) as ei:
        parse(text, file="x.rules", line=12)
    return ei.value


# ---------------------------------------------------------------- header
def test_full_rule():
    r = parse('drop tcp $HOME_NET [1024:,!2000] -> $EXTERNAL_NET $HTTP_PORTS (msg:"m"; sid:9; rev:2;)',
              file="a.rules", line=3)
    assert (r.action, r.proto, r.direction, r.sid, r.rev, r.gid) == ("drop", "tcp", "->", 9, 2, 1)
    assert r.src.contains(4, 0xC0A80001) and not r.dst.contains(4, 0xC0A80001)
    assert r.sport.contains(1024) and not r.sport.contains(2000) and r.dport.contains(80)
    assert (r.file, r.line) == ("a.rules", 3)
    assert r.text.startswith("drop tcp")
    assert r.rank == 2


@pytest.mark.parametrize("action", ["alert", "pass", "drop", "reject", "rejectsrc", "rejectdst", "rejectboth"])
def test_actions(action):
    assert parse(f"{action} ip any any -> any any (sid:1;)").action == action


def test_bidirectional_and_spaces_in_lists():
    r = parse("alert udp [198.51.100.1, 198.51.100.2]  any <> any [53, 5353]   (sid:1;)")
    assert r.direction == "<>"
    assert r.src.contains(4, int.from_bytes(bytes([198, 51, 100, 2]), "big"))
    assert r.dport.contains(5353)


def test_leading_whitespace_and_tabs():
    r = parse("\t  alert\ttcp any any -> any any\t(sid:1;)  ")
    assert r.sid == 1


def test_default_vars_are_suricatas():
    assert DEFAULT_VARS["address-groups"]["EXTERNAL_NET"] == "!$HOME_NET"
    r = parse("alert tcp $EXTERNAL_NET any -> $HOME_NET any (sid:1;)")
    assert r.dst.contains(4, 0x0A000001) and not r.src.contains(4, 0x0A000001)


def test_custom_vars():
    v = {"address-groups": {"LAB": "198.51.100.0/24"}, "port-groups": {"P": "8080"}}
    r = parse("alert tcp $LAB any -> any $P (sid:1;)", vars=v)
    assert r.dport.contains(8080) and not r.dport.contains(80)
    with pytest.raises(RuleError, match=r"unknown address variable '\$HOME_NET'"):
        parse("alert tcp $HOME_NET any -> any any (sid:1;)", vars=v)


H = "alert tcp any any -> any any"
HEADER_ERRORS = [
    ("bad-action", "alrt tcp any any -> any any (sid:1;)", "unknown action 'alrt'", "alrt", None),
    ("config-action", "config tcp any any -> any any (sid:1;)", "unsupported action 'config'", "config",
     "action:config"),
    ("app-proto", "alert smb any any -> any any (sid:1;)", "unsupported protocol 'smb' (app-layer)", "smb",
     "proto:smb"),
    ("pkt-proto", "alert udp-pkt any any -> any any (sid:1;)", "unsupported protocol 'udp-pkt'", "udp-pkt",
     "proto:udp-pkt"),
    ("unknown-proto", "alert tpc any any -> any any (sid:1;)", "unknown protocol 'tpc'", "tpc", None),
    ("bad-direction", "alert tcp any any <- any any (sid:1;)", "invalid direction '<-'", "<-", None),
    ("bad-direction-2", "alert tcp any any => any any (sid:1;)", "invalid direction '=>'", "=>", None),
    ("short-header", "alert tcp any any -> any (sid:1;)", "missing destination port", "(", None),
    ("long-header", "alert tcp any any -> any any any (sid:1;)", "unexpected 'any' after the destination port",
     "any (", None),
    ("bad-src", "alert tcp 1.2.3/8 any -> any any (sid:1;)", "bad CIDR '1.2.3/8'", "1.2.3/8", None),
    ("bad-dport", "alert tcp any any -> any 70000 (sid:1;)", "port 70000 out of range", "70000", None),
    ("dst-var", "alert tcp any any -> $NOPE any (sid:1;)", "unknown address variable '$NOPE'", "$NOPE", None),
    ("negated-any", "alert tcp !any any -> any any (sid:1;)", "is empty", "!any", None),
    ("no-paren", "alert tcp any any -> any any sid:1;", "missing '(' before the rule options", None, None),
    ("no-close", "alert tcp any any -> any any (sid:1;", "missing ')' at the end of the rule", None, None),
    ("empty", "   ", "empty rule", None, None),
    ("comment", "# alert tcp any any -> any any (sid:1;)", "not a rule: the line is a comment", "#", None),
]


@pytest.mark.parametrize("text,msg,needle,unsupported", [h[1:] for h in HEADER_ERRORS],
                         ids=[h[0] for h in HEADER_ERRORS])
def test_header_errors(text, msg, needle, unsupported):
    e = perr(text)
    assert msg in e.message
    assert e.unsupported == unsupported
    assert (e.file, e.line) == ("x.rules", 12)
    if needle is None:
        expected = len(text.rstrip()) + 1
    elif needle == "any (":
        expected = text.rindex("any (") + 1
    else:
        expected = text.index(needle) + 1
    if text.strip() == "":
        expected = 1
    assert e.column == expected


# ---------------------------------------------------------------- options
def test_split_options_escapes_and_columns():
    body = 'msg:"a\\;b"; content:"x\\\\"; nocase ;sid : 1;'
    opts = split_options(body, 10)
    assert [(n, v) for n, v, _, _ in opts] == [("msg", '"a\\;b"'), ("content", '"x\\\\"'), ("nocase", None),
                                                ("sid", " 1")]
    assert opts[1][2] == 10 + body.index("content")
    assert opts[1][3] == 10 + body.index('"x')


def test_escapes_in_values():
    r = parse(f'{H} (msg:"semi\\; quote\\" back\\\\slash"; content:"a\\;b\\"c\\\\d\\:e"; sid:1;)')
    assert r.msg == 'semi; quote" back\\slash'
    assert r.payload.items[0].pattern == b'a;b"c\\d:e'


def test_parenthesis_inside_values():
    r = parse(f'{H} (msg:"(x) ) ("; content:")("; sid:1;)')
    assert r.msg == "(x) ) (" and r.payload.items[0].pattern == b")("


def test_whitespace_around_options_and_values():
    r = parse(f'{H} (  msg : "spaced" ;content:  "a" ;  nocase ;   sid:  5 ;  )')
    assert r.msg == "spaced" and r.sid == 5 and r.payload.items[0].nocase


def test_keyword_names_are_case_insensitive():
    r = parse(f'{H} (MSG:"x"; Content:"a"; NOCASE; SID:3;)')
    assert r.sid == 3 and r.payload.items[0].nocase


def test_options_recorded_in_order():
    r = parse(f'{H} (msg:"x"; content:"a"; nocase; sid:3;)')
    assert [k for k, _ in r.options] == ["msg", "content", "nocase", "sid"]


OPTION_ERRORS = [
    ("missing-final-semicolon", f'{H} (msg:"x"; sid:1)', "option 'sid' is not terminated by ';'", ")"),
    ("missing-semicolon-bare", f'{H} (msg:"x"; nocase)', "option 'nocase' is not terminated by ';'", ")"),
    ("escaped-final-semicolon", f'{H} (msg:"x\\;)', "option 'msg' is not terminated by ';'", ")"),
    ("junk-after-keyword", f'{H} (msg "x"; sid:1;)', "expected ':' or ';' after keyword 'msg', found '\"'",
     '"x"'),
    ("stray-colon", f'{H} (:x; sid:1;)', "expected a keyword, found ':'", ":x"),
    ("no-sid", f'{H} (msg:"x";)', "rule has no sid", "("),
    ("unsupported", f'{H} (msg:"x"; ssh.proto; sid:1;)', "unsupported keyword 'ssh.proto'", "ssh.proto"),
    ("unknown-keyword", f'{H} (msg:"x"; bogus_kw:1; sid:1;)', "unknown keyword 'bogus_kw'", "bogus_kw"),
    ("misspelled-keyword", f'{H} (msg:"x"; itpye:8; sid:1;)', "unknown keyword 'itpye' (did you mean 'itype'?)", "itpye"),
    ("unquoted-content", f'{H} (content:abc; sid:1;)', "the value of 'content' must be in double quotes", "abc"),
    ("half-quoted", f'{H} (content:"abc; sid:1;)', "the value of 'content' must be in double quotes", '"abc'),
    ("negated-not-allowed", f'{H} (sid:!1;)', "sid '!1' is not a number", "!1"),
]


@pytest.mark.parametrize("text,msg,needle", [o[1:] for o in OPTION_ERRORS], ids=[o[0] for o in OPTION_ERRORS])
def test_option_errors(text, msg, needle):
    e = perr(text)
    assert msg in e.message
    assert e.column == text.rindex(needle) + 1 if needle == ")" else e.column == text.index(needle) + 1
    assert str(e).startswith(f"x.rules:12:{e.column}: ")


def test_unicode_content_is_utf8():
    r = parse(f'{H} (content:"é"; sid:1;)')
    assert r.payload.items[0].pattern == "é".encode()


def test_classification_comes_from_the_caller_never_from_a_file_of_its_own(tmp_path):
    from rules import classification
    f = tmp_path / "classification.config"
    f.write_text("# c\nconfig classification: my-class,My Class,2\n")
    r = parse_rule(f"{H} (classtype:my-class; sid:1;)", classification=classification.load(f))
    assert (r.category, r.priority) == ("My Class", 2)
    with pytest.raises(RuleError, match="unknown classtype 'my-class' \\(no classification file loaded\\)"):
        parse_rule(f"{H} (classtype:my-class; sid:1;)")
    write(tmp_path, "k.rules", f"{H} (classtype:my-class; sid:1;)\n")
    r = load(["k.rules"], base_dir=tmp_path, classification_file=f)
    assert r.ok and (r.rules[0].category, r.rules[0].priority) == ("My Class", 2)


def test_classification_file_errors(tmp_path):
    from rules import classification
    with pytest.raises(RuleError) as ei:
        classification.parse("config classification: a,b,x\n", file="c.config")
    assert "priority 'x' is not a number" in str(ei.value) and ei.value.line == 1
    with pytest.raises(RuleError, match="expected 'config classification"):
        classification.parse("\n\nbogus\n")
    with pytest.raises(RuleError, match="cannot read classification file"):
        classification.load(tmp_path / "missing.config")


# ---------------------------------------------------------------- loader
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def cfg(tmp_path, **kw):
    c = tmp_path / "classification.config"
    c.write_text("config classification: trojan-activity,A Network Trojan was detected,1\n")
    return Config(vars=DEFAULT_VARS, default_rule_path=str(tmp_path), classification_file=str(c), **kw)


def test_loader_comments_blank_lines_and_commented_rules(tmp_path):
    write(tmp_path, "a.rules", """
        # a comment
        #alert tcp any any -> any any (sid:100;)

        alert tcp any any -> any any (msg:"one"; sid:1;)
          # indented comment
        alert udp any any -> any any (msg:"two"; sid:2;)
    """)
    r = load_rules(cfg(tmp_path), ["a.rules"])
    assert [x.sid for x in r.rules] == [1, 2]
    assert [x.line for x in r.rules] == [4, 6]
    assert r.counts["commented"] == 1 and r.counts["total"] == 2 and r.ok


def test_loader_multiline_rules_map_columns_to_physical_lines(tmp_path):
    write(tmp_path, "m.rules", """
        alert tcp any any -> any any ( \\
            msg:"multi"; \\
            content:"abc"; \\
            sid:7;)
        alert tcp any any -> any any ( \\
            msg:"bad"; \\
            content:"x"; bogus:1; \\
            sid:8;)
    """)
    r = load_rules(cfg(tmp_path), ["m.rules"])
    assert [x.sid for x in r.rules] == [7]
    assert r.rules[0].line == 1 and r.rules[0].payload.items[0].pattern == b"abc"
    (e,) = r.errors
    assert (e.line, e.column) == (7, len('    content:"x"; ') + 1)
    assert e.message.startswith("unknown keyword 'bogus'")


def test_logical_lines_segments():
    out = list(logical_lines("a \\\nb\nc\n"))
    assert [(t, n) for t, n, _ in out] == [("a b", 1), ("c", 3)]


def test_loader_reports_errors_and_continues(tmp_path):
    write(tmp_path, "e.rules", """
        alert tcp any any -> any any (msg:"ok"; sid:1;)
        alert tcp any any -> any 99999 (msg:"bad port"; sid:2;)
        alert smb any any -> any any (msg:"app"; sid:3;)
        alert tcp any any -> any any (msg:"unsup"; ssh.proto; content:"x"; sid:4;)
        alert tcp any any -> any any (msg:"ok2"; sid:5;)
    """)
    r = load_rules(cfg(tmp_path), "e.rules")
    assert [x.sid for x in r.rules] == [1, 5]
    assert [(e.line, e.column) for e in r.errors] == [(2, 26), (3, 7), (4, 44)]
    assert r.counts == {"total": 5, "loaded": 2, "failed": 3, "unsupported": 2, "invalid": 1, "commented": 0,
                        "replaced": 0}
    assert r.unsupported == {"proto:smb": 1, "ssh.proto": 1}
    rep = format_report(r)
    assert f"{tmp_path}/e.rules:2:26: port 99999 out of range (0-65535)" in rep
    assert "ssh.proto" in rep and "unsupported keyword" not in rep     # unsupported details only with verbose
    assert "loaded 2 of 5 rules (40.0%) from 1 file(s); 3 failed: 1 invalid, 2 unsupported" in rep
    assert "top unsupported: proto:smb (1), ssh.proto (1)" in rep
    vrep = format_report(r, verbose=True)
    assert f"{tmp_path}/e.rules:4:44: unsupported keyword 'ssh.proto' (keyword 'ssh.proto')" in vrep


def test_loader_strict_raises_first_error(tmp_path):
    write(tmp_path, "s.rules", """
        alert tcp any any -> any any (sid:1;)
        alert tcp any any -> any any (sid:1)
        alert tcp any any -> any 99999 (sid:3;)
    """)
    with pytest.raises(RuleError) as ei:
        load_rules(cfg(tmp_path), ["s.rules"], strict=True)
    assert ei.value.line == 2 and "not terminated" in ei.value.message


def test_loader_duplicate_sid(tmp_path):
    write(tmp_path, "d.rules", """
        alert tcp any any -> any any (msg:"first"; sid:10; rev:2;)
        alert tcp any any -> any any (msg:"other gid"; gid:2; sid:10;)
        alert tcp any any -> any any (msg:"dup"; sid:10; rev:2;)
        alert tcp any any -> any any (msg:"newer"; sid:10; rev:3;)
        alert tcp any any -> any any (msg:"older"; sid:10; rev:1;)
    """)
    r = load_rules(cfg(tmp_path), ["d.rules"])
    assert [(x.gid, x.sid, x.msg) for x in r.rules] == [(1, 10, "newer"), (2, 10, "other gid")]
    e1, e2 = r.errors
    assert e1.line == 3 and e1.column == len('alert tcp any any -> any any (msg:"dup"; ') + 1
    assert f"duplicate sid 10 (gid 1): already defined at {tmp_path}/d.rules:1 with rev 2" in e1.message
    assert e2.line == 5 and "with rev 3 (rev 1 here is not higher)" in e2.message
    (w,) = r.warnings
    assert w.line == 4 and f"rev 2 at {tmp_path}/d.rules:1 is replaced by this rev 3" in w.message
    assert "[warning]" in format_report(r)
    assert (r.counts["loaded"], r.counts["failed"], r.counts["replaced"], r.counts["total"]) == (2, 2, 1, 5)


def test_loader_missing_file_and_rule_files_from_config(tmp_path):
    write(tmp_path, "one.rules", 'alert tcp any any -> any any (sid:1;)\n')
    c = cfg(tmp_path, rule_files=["one.rules", "missing.rules"])
    r = load_rules(c)
    assert [x.sid for x in r.rules] == [1]
    (e,) = r.errors
    assert "cannot read rule file" in e.message and e.file.endswith("missing.rules")


def test_loader_missing_classification_file_is_reported(tmp_path):
    write(tmp_path, "c.rules", 'alert tcp any any -> any any (classtype:trojan-activity; sid:1;)\n')
    c = Config(default_rule_path=str(tmp_path), classification_file=str(tmp_path / "nope.config"))
    r = load_rules(c, ["c.rules"])
    assert "cannot read classification file" in r.errors[0].message
    assert "unknown classtype 'trojan-activity'" in r.errors[1].message


def test_loader_internal_errors_do_not_abort(tmp_path, monkeypatch):
    import rules.loader as loader
    write(tmp_path, "i.rules", 'alert tcp any any -> any any (sid:1;)\n')

    def boom(*a, **k):
        raise ZeroDivisionError("bug")
    monkeypatch.setattr(loader, "parse_rule", boom)
    r = load_rules(cfg(tmp_path), ["i.rules"])
    assert "internal error while parsing: ZeroDivisionError: bug" in r.errors[0].message


def test_loader_config_without_vars_uses_suricata_defaults_and_says_so(tmp_path):
    write(tmp_path, "v.rules", 'alert tcp $EXTERNAL_NET any -> $HOME_NET $HTTP_PORTS (sid:1;)\n')
    r = load(["v.rules"], base_dir=tmp_path)
    assert [x.sid for x in r.rules] == [1]
    assert "no vars configured" in format_report(r)
    c = Config(default_rule_path=str(tmp_path), vars={"address-groups": {"HOME_NET": "198.51.100.0/24"},
                                                      "port-groups": {}})
    r = load_rules(c, ["v.rules"])
    assert "unknown address variable '$EXTERNAL_NET' (define it under vars: address-groups: in the config)" \
        in r.errors[0].message
    assert not r.notes


@pytest.mark.parametrize("opt,ok", [
    ('msg:"abc\\"";', True),          # escaped quote inside, real closing quote
    ('msg:"abc\\\\";', True),         # escaped backslash, then the closing quote
    ('content:"abc\\";', False),      # the only closing quote is escaped
    ('content:"\\";', False),
], ids=["escaped-inner-quote", "escaped-backslash-before-quote", "escaped-closing-quote", "lone-escaped-quote"])
def test_closing_quote_must_not_be_escaped(opt, ok):
    text = f"{H} ({opt} sid:1;)"
    if ok:
        parse(text)
    else:
        e = perr(text)
        assert "must be in double quotes" in e.message and e.column == text.index('"') + 1


# Rules Suricata refuses must be refused here and the other way round.  The
# only exceptions are deliberate: self-contradictory or misspelt values that
# Suricata lets through, and unknown classtypes (refused by design here).
STRICTER = {
    "flags:0S;", "byte_test:1,=,1,0,big,little;", "pcre:\"/a/iZ\";", "classtype:nope;", "fragbits:MX;",
}
VALIDATION = [
    'content:"a"; depth:5; distance:1;', 'content:"a"; within:5; offset:1;', 'content:"abcd"; depth:3;',
    'content:"abcd"; within:3;', 'content:"a"; nocase; nocase;', 'nocase;', 'content:"a|4|";', 'content:"a\\x41";',
    'content:"";', 'content:abc;', 'content:"a"; fast_pattern; content:"b"; fast_pattern;',
    'content:"abc"; fast_pattern:2,5;', 'content:"a"; offset:1; startswith;', 'flow:to_server,to_client;',
    'flow:established,not_established;', 'flow:established,stateless;', 'flow:sideways;', 'flags:SX;', 'flags:SS;',
    'flags:+*S;', 'flags:0S;', 'flags:S,CE;', 'flags:A+,U;', 'dsize:5<>5;', 'dsize:70000;', 'dsize:2<>5;',
    'dsize:!3;', 'ttl:256;', 'ttl:1-3;', 'itype:300;', 'icmp_id:-1;', 'threshold:type limit, track by_src, count 1;',
    'threshold:type limit, track by_src, count 0, seconds 1;', 'detection_filter:track by_rule, count 1, seconds 1;',
    'threshold:type limit, track by_src, count 1, seconds 60; detection_filter:track by_src, count 1, seconds 1;',
    'flowbits:sett,a;', 'flowbits:set;', 'flowbits:set,a|b;', 'flowbits:isset,a|b;', 'flowbits:isset,a&b;',
    'flowbits:noalert,x;', 'flowbits:noalert;', 'ip_proto:bogus;', 'ip_proto:300;', 'ip_proto:!6;', 'ip_proto:gre;',
    'byte_test:1,=,1;', 'byte_test:9,=,1,0;', 'byte_test:1,=,1,0,dec;', 'byte_test:1,=,1,0,big,little;',
    'byte_test:1,!=,5,0;', 'byte_test:1,!,5,0;', 'byte_jump:1;', 'byte_jump:1,0,from_beginning,from_end;',
    'isdataat:x;', 'isdataat:!1,relative;', 'pcre:"/a/iZ";', 'pcre:"a";', 'byte_jump:1,0; pcre:"/^X/R";',
    'classtype:nope;', 'sid:0;', 'priority:0;', 'target:both;', 'reference:cve;', 'msg:"a"; msg:"b";',
    'id:70000;', 'fragbits:MX;', 'fragbits:MM;', 'ipopts:bogus;', 'window:!5;', 'dsize:1; dsize:2;',
    'ttl:1; ttl:2;', 'flow:to_server; flow:established;', 'sameip; sameip;', 'content:"a"; depth:5; depth:6;',
    'content:"a"; endswith; endswith;', 'content:"a"; distance:-5;', 'content:"a"; within:0;',
    'decode-event:ipv4.trunc_pkt;', 'msg:plain words;', 'content:"a"; rawbytes;', 'flowbits:set,a b;',
    'http.uri; content:"a";', 'pcre:"/a/U";', 'flow:only_stream;',
]


def test_validation_agrees_with_suricata(tmp_path):
    import re
    import shutil
    import subprocess

    exe = shutil.which("suricata")
    assert exe, "suricata (7.0.10) must be installed for the differential validation test"
    texts = [f"{H} ({o} sid:{i + 1}; rev:1;)" for i, o in enumerate(VALIDATION)]
    (tmp_path / "r.rules").write_text("\n".join(texts) + "\n")
    out = subprocess.run([exe, "-T", "-c", "/etc/suricata/suricata.yaml", "-S", str(tmp_path / "r.rules"),
                          "-l", str(tmp_path)], capture_output=True, text=True, timeout=120)
    refused = {int(m.group(1)) for m in re.finditer(r"from file \S+ at line (\d+)", out.stderr + out.stdout)}
    assert refused, out.stderr[-2000:]
    diffs = []
    for i, text in enumerate(texts):
        try:
            parse(text)
            ours = True
        except RuleError as e:
            # an unsupported feature is not a verdict on validity: it counts as "Suricata would accept"
            ours = e.unsupported is not None
        theirs = (i + 1) not in refused
        if ours != theirs and not (VALIDATION[i] in STRICTER and theirs and not ours):
            diffs.append((VALIDATION[i], theirs, ours))
    assert diffs == [], "option, suricata accepts, we accept"


def test_a_keyword_suricata_knows_is_unsupported_one_nobody_knows_is_invalid():
    """The typo check must not turn valid Suricata into "invalid": aliases count as known."""
    for kw in ("ssh_proto", "krb5_cname", "quic.sni", "ssh.proto", "geoip"):
        e = perr(f'{H} (msg:"x"; {kw}; sid:1;)')
        assert e.unsupported == kw and "unsupported keyword" in e.message, kw
    e = perr(f'{H} (msg:"x"; contnet:"a"; sid:1;)')
    assert e.unsupported is None and "did you mean 'content'" in e.message


# Suricata 7.0.10 (suricata -T) refuses each of these beside app-layer transaction matching:
# "Signature combines packet specific matches (like dsize, flags, ttl) with stream / state
# matching by matching on app layer proto"
PACKET_KEYWORDS = ["dsize:<3", "ttl:<3", "flags:S", "id:1", "ipopts:rr", "fragbits:M", "fragoffset:0", "seq:1",
                   "ack:1", "window:1", "sameip", "itype:8", "icmp_id:1", 'tcp.hdr; content:"x"']


@pytest.mark.parametrize("kw", PACKET_KEYWORDS)
@pytest.mark.parametrize("app", ['http.uri; content:"/x";', "urilen:3;",
                                 "app-layer-event:http.request_field_missing_colon;"])
def test_a_packet_keyword_beside_transaction_matching_is_refused_as_suricata_refuses_it(kw, app):
    text = f'alert http any any -> any any (msg:"k"; flow:to_server; {app} {kw}; sid:1;)'
    with pytest.raises(RuleError) as e:
        parse_rule(text)
    name = kw.split(":")[0].split(";")[0]
    assert e.value.column == text.index(name) + 1 and "Suricata refuses the combination too" in str(e.value)


@pytest.mark.parametrize("text", [
    'alert http any any -> any any (msg:"k"; flow:to_server; dsize:<3; sid:1;)',          # no transaction part
    'alert http any any -> any any (msg:"k"; http.uri; content:"/x"; pkt_data; content:"y"; sid:1;)',
    'alert http any any -> any any (msg:"k"; http.uri; content:"/x"; stream_size:server,>,1; sid:1;)',
    'alert http any any -> any any (msg:"k"; http.uri; content:"/x"; isdataat:1; byte_test:1,>,1,0; sid:1;)',
])
def test_what_suricata_takes_beside_transaction_matching_is_taken(text):
    assert parse_rule(text).sid == 1
