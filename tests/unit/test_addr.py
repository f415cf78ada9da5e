"""Address and port sets: grammar, variables, negation, errors with columns."""
import ipaddress

import pytest

from rules.addr import parse_addr, parse_ports
from rules.errors import RuleError

VARS = {
    "address-groups": {
        "HOME_NET": "[198.51.100.0/24, 2001:db8::/32]",
        "EXTERNAL_NET": "!$HOME_NET",
        "SERVERS": "[$HOME_NET, !198.51.100.7]",
        "LOOP_A": "$LOOP_B",
        "LOOP_B": "[1.2.3.4, $LOOP_A]",
        "BAD": "[1.2.3.4, 300.1.1.1]",
    },
    "port-groups": {"HTTP_PORTS": "[80, 8080]", "HIGH": "1024:"},
}


def has(s, ip):
    a = ipaddress.ip_address(ip)
    return s.contains(a.version, int(a))


@pytest.mark.parametrize("text,inside,outside", [
    ("any", ["0.0.0.0", "255.255.255.255", "::", "2001:db8::1"], []),
    ("198.51.100.1", ["198.51.100.1"], ["198.51.100.2", "::1"]),
    ("198.51.100.0/24", ["198.51.100.0", "198.51.100.255"], ["198.51.101.0"]),
    ("198.51.100.5/24", ["198.51.100.0"], ["198.51.99.255"]),          # host bits ignored like Suricata
    ("198.51.100.0/255.255.255.0", ["198.51.100.9"], ["198.51.101.9"]),
    ("198.51.100.10-198.51.100.20", ["198.51.100.10", "198.51.100.20"], ["198.51.100.21"]),
    ("2001:db8::/32", ["2001:db8::1", "2001:db8:ffff::"], ["2001:db9::", "198.51.100.1"]),
    ("[198.51.100.1,203.0.113.0/24]", ["198.51.100.1", "203.0.113.77"], ["198.51.100.2"]),
    ("[198.51.100.0/24, !198.51.100.7]", ["198.51.100.6"], ["198.51.100.7"]),
    ("[198.51.100.0/24,![198.51.100.7,198.51.100.8]]", ["198.51.100.9"], ["198.51.100.7", "198.51.100.8"]),
    # negation is per IP family, as Suricata (suricata -r): !v4 matches no IPv6 address
    ("!198.51.100.1", ["198.51.100.2"], ["198.51.100.1", "2001:db8::1"]),
    ("!2001:db8::/32", ["2001:db9::1"], ["2001:db8::1", "198.51.100.1"]),
    ("[2001:db8:1::/48,!198.51.100.0/30]", ["198.51.100.17", "203.0.113.1", "2001:db8:1::9"],
     ["198.51.100.1", "2001:db8:2::53"]),
    ("![198.51.100.0/24,203.0.113.9]", ["203.0.113.200"], ["198.51.100.1", "203.0.113.9", "2001:db8::1"]),
    ("[!198.51.100.0/24,203.0.113.9]", ["203.0.113.9"], ["203.0.113.200", "2001:db8::1"]),
    # nested lists are flattened into the enclosing one; a negated list is evaluated, then subtracted
    ("[198.51.100.5,[2001:db8::/32,!203.0.113.9]]", ["198.51.100.5", "2001:db8::1"], ["198.51.100.6"]),
    ("![$EXTERNAL_NET,198.51.100.16/28]", ["2001:db8::1"], ["198.51.100.200", "198.51.100.17", "2001:db9::1"]),
    # a variable whose value is `!...` is a negated member of the list it is used in
    ("[$EXTERNAL_NET,203.0.113.9]", ["203.0.113.9", "2001:db9::1"], ["203.0.113.200", "198.51.100.1", "2001:db8::1"]),
    ("![198.51.100.0/24,2001:db8::/32]", ["203.0.113.1", "::1"], ["198.51.100.3", "2001:db8::5"]),
    ("[!198.51.100.1]", ["198.51.100.2"], ["198.51.100.1"]),
    ("[[198.51.100.1, [203.0.113.1]], 2001:db8::1]", ["203.0.113.1", "2001:db8::1"], ["2001:db8::2"]),
    ("$HOME_NET", ["198.51.100.200", "2001:db8::9"], ["203.0.113.1"]),
    ("$EXTERNAL_NET", ["203.0.113.1", "::1"], ["198.51.100.1", "2001:db8::1"]),
    ("!$EXTERNAL_NET", ["198.51.100.1"], ["203.0.113.1"]),
    ("$SERVERS", ["198.51.100.6"], ["198.51.100.7"]),
    ("[$HOME_NET,!$SERVERS]", ["198.51.100.7"], ["198.51.100.6", "203.0.113.1"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_address_sets(text, inside, outside):
    s = parse_addr(text, vars=VARS)
    for ip in inside:
        assert has(s, ip), ip
    for ip in outside:
        assert not has(s, ip), ip


def test_any_is_flagged_and_non_ip_never_matches_a_specific_set():
    assert parse_addr("any").is_any
    assert parse_addr("[0.0.0.0/0, ::/0]").is_any
    s = parse_addr("198.51.100.1")
    assert not s.is_any and not s.contains(0, 0)


@pytest.mark.parametrize("text,msg,col", [
    ("![any]", "is empty", 1),
    ("!any", "is empty", 1),
    ("[198.51.100.1, !198.51.100.1]", "is empty", 1),
    ("198.51.100.1/33", "bad CIDR '198.51.100.1/33'", 1),
    ("[198.51.100.1, 999.1.1.1]", "bad address '999.1.1.1'", 16),
    ("[198.51.100.1, 198.51.100.2", "missing ']'", 1),
    ("[]", "empty list", 1),
    ("[198.51.100.1,]", "list ends with ','", 15),
    ("198.51.100.9-198.51.100.1", "reversed", 1),
    ("$NOPE", "unknown address variable '$NOPE'", 1),
    ("[198.51.100.1,$NOPE]", "unknown address variable '$NOPE'", 15),
    ("$HTTP_PORTS", "it is a port variable", 1),
    ("$LOOP_A", "variable cycle: $LOOP_A -> $LOOP_B -> $LOOP_A", 1),
    ("$BAD", "in $BAD: bad address '300.1.1.1'", 1),
], ids=lambda v: v if isinstance(v, str) else None)
def test_address_errors(text, msg, col):
    with pytest.raises(RuleError) as ei:
        parse_addr(text, vars=VARS, column=1)
    assert msg in ei.value.message
    assert ei.value.column == col


def test_address_error_column_is_offset_by_where_the_field_starts():
    with pytest.raises(RuleError) as ei:
        parse_addr("[1.2.3.4,$NOPE]", vars=VARS, column=11)
    assert ei.value.column == 11 + len("[1.2.3.4,")


@pytest.mark.parametrize("text,inside,outside", [
    ("any", [0, 1, 65535], []),
    ("80", [80], [81, 0]),
    ("1024:", [1024, 65535], [1023]),
    (":1023", [0, 1023], [1024]),
    ("1000:2000", [1000, 2000], [999, 2001]),
    ("[80,443,8000:8010]", [80, 443, 8005], [81, 8011]),
    ("!80", [79, 81, 0], [80]),
    ("[1:100,!50]", [1, 49, 51, 100], [50, 0, 101]),
    ("![1:100]", [0, 101], [1, 100]),
    ("[!22]", [21, 23], [22]),
    ("$HTTP_PORTS", [80, 8080], [443]),
    ("[$HTTP_PORTS, $HIGH, !8080]", [80, 1024, 9000], [8080, 443]),
    ("[[80, 81], ![81]]", [80], [81]),
    # nested lists are flattened, as Suricata (suricata -r): [!81] subtracts 81 from the outer list
    ("[[80, 81], [!81]]", [80], [81, 9]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_port_sets(text, inside, outside):
    s = parse_ports(text, vars=VARS)
    for p in inside:
        assert s.contains(p), p
    for p in outside:
        assert not s.contains(p), p


@pytest.mark.parametrize("text,msg,col", [
    ("65536", "port 65536 out of range", 1),
    ("[80,70000]", "port 70000 out of range", 5),
    ("100:10", "reversed", 1),
    (":", "bad port range", 1),
    ("http", "bad port 'http'", 1),
    ("!any", "is empty", 1),
    ("[80,!80]", "is empty", 1),
    ("$HOME_NET", "it is an address variable", 1),
    ("$NOPE", "unknown port variable '$NOPE'", 1),
], ids=lambda v: v if isinstance(v, str) else None)
def test_port_errors(text, msg, col):
    with pytest.raises(RuleError) as ei:
        parse_ports(text, vars=VARS, column=1)
    assert msg in ei.value.message
    assert ei.value.column == col


def test_large_port_sets_use_intervals():
    s = parse_ports("[1:60000,!443]")
    assert s.contains(1) and s.contains(60000) and not s.contains(443) and not s.contains(60001)


def test_cache_shares_compiled_sets_and_never_caches_errors():
    cache = {}
    a = parse_addr("$HOME_NET", vars=VARS, cache=cache)
    assert parse_addr("$HOME_NET", vars=VARS, cache=cache) is a
    assert parse_ports("$HTTP_PORTS", vars=VARS, cache=cache) is parse_ports("$HTTP_PORTS", vars=VARS, cache=cache)
    for _ in range(2):
        with pytest.raises(RuleError):
            parse_addr("$NOPE", vars=VARS, cache=cache, column=5)


@pytest.mark.parametrize("tok", ["010.1.1.1", "1.2.3.256", "1.2.3", "1.2.3.4/", "1.2.3.4/033", "1.2.3.4/x"])
def test_fast_ipv4_path_defers_odd_spellings_to_ipaddress(tok):
    with pytest.raises(RuleError):
        parse_addr(tok)


def test_fast_ipv4_path_matches_ipaddress():
    for tok in ["0.0.0.0/0", "10.0.0.0/8", "192.168.1.77/24", "255.255.255.255", "1.2.3.4/32", "1.2.3.4/31"]:
        net = ipaddress.ip_network(tok, strict=False)
        assert parse_addr(tok).v4 == ((int(net.network_address), int(net.broadcast_address)),)
