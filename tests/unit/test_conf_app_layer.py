"""conf: Suricata's `app-layer:` section -- each key ipsbridge reads lands in
EngineSettings.app and changes what an engine built from the configuration detects; the
keys it does not implement are refused (file:line, the fix), warned about once or accepted
at the value that means what ipsbridge does; Suricata's other protocols load with one
warning.

Names, values and lookup order as Suricata 7.0 (main-7.0.x: suricata.yaml.in,
app-layer-detect-proto.c AppLayerProtoDetectConfProtoDetectionEnabledDefault and
AppLayerProtoDetectPPParseConfPorts, app-layer-parser.c AppLayerParserConfParserEnabled,
app-layer-htp.c HTPConfigParseParameters, app-layer-ssl.c RegisterSSLParsers and
CheckJA3Enabled).
"""
from __future__ import annotations

import re

import pytest
from app_session import http_session  # noqa: E402  (tests/unit: a TCP session through an engine)
from conf_testing import app, check_decision, load, one_refusal, protocols, warnings_of

import conf
from conf import ConfigError
from conf.build import engine_settings, load_rules
from conf.load import APP_LAYER_UNIMPLEMENTED, APP_OTHER
from conf.model import default_app
from rules.applayer import ENABLED
from rules.applayer import dns as app_dns
from rules.applayer import ftp as app_ftp
from rules.applayer import http as app_http
from rules.applayer import smtp as app_smtp
from rules.applayer import tls as app_tls

KiB, MiB = 1024, 1024 * 1024


# ------------------------------------------------------------------ defaults
def test_without_the_section_every_protocol_runs_with_suricatas_defaults():
    expected = {"http": app_http.Settings(), "tls": app_tls.Settings(), "dns": app_dns.Settings(),
                "smtp": app_smtp.Settings(), "ftp": app_ftp.Settings(), ENABLED: {}}
    assert app("") == default_app() == expected
    assert app("app-layer:\n") == expected
    assert app("app-layer:\n  protocols:\n") == expected
    s = expected["http"]
    assert (s.request_body_limit, s.response_body_limit, s.header_limit, s.max_tx) == (100 * KiB, 100 * KiB,
                                                                                        18000, 512)
    assert expected["dns"].udp_ports == expected["dns"].tcp_ports == frozenset({53})
    assert expected["tls"].detection_ports == (443,) and expected["tls"].encryption_handling == "default"


def test_engine_settings_get_a_copy_of_the_enabled_modes():
    c = load(protocols("http:\n  enabled: no\n"))
    e = engine_settings(c, "ips")
    e.app[ENABLED].clear()
    assert c.app[ENABLED] == {("http", 6): "no"}


# ------------------------------------------------------------------ enabled
@pytest.mark.parametrize("written,mode", [
    ("yes", "yes"), ("no", "no"), ("detection-only", "detection-only"), ("Detection-Only", "detection-only"),
    ("true", "yes"), ("false", "no"), ("on", "yes"), ("off", "no"), ("1", "yes"), ("0", "no"),
    ("'YES'", "yes"), ("'Off'", "no"),
], ids=repr)
def test_enabled_takes_suricatas_spellings(written, mode):
    for proto, ipproto in (("http", 6), ("tls", 6)):
        modes = app(protocols(f"{proto}:\n  enabled: {written}\n"))[ENABLED]
        assert modes == ({} if mode == "yes" else {(proto, ipproto): mode})


@pytest.mark.parametrize("body,modes,dns", [
    ("dns:\n  enabled: no\n", {("dns", 6): "no", ("dns", 17): "no"}, ("no", "no")),
    ("dns:\n  tcp:\n    enabled: no\n", {("dns", 6): "no"}, ("no", "yes")),
    ("dns:\n  udp:\n    enabled: detection-only\n", {("dns", 17): "detection-only"}, ("yes", "detection-only")),
    ("dns:\n  tcp:\n    enabled: yes\n  udp:\n    enabled: yes\n", {}, ("yes", "yes")),
    ("http:\n  tcp:\n    enabled: detection-only\n", {("http", 6): "detection-only"}, ("yes", "yes")),
    ("tls:\n  tcp:\n    enabled: no\n", {("tls", 6): "no"}, ("yes", "yes")),
], ids=["dns", "dns.tcp", "dns.udp", "dns-both-yes", "http.tcp", "tls.tcp"])
def test_enabled_per_ip_protocol(body, modes, dns):
    a = app(protocols(body))
    assert a[ENABLED] == modes
    assert (a["dns"].tcp_enabled, a["dns"].udp_enabled) == dns


# ------------------------------------------------------------------ keys that land in EngineSettings.app
def htp(key_value: str) -> str:
    return protocols(f"http:\n  libhtp:\n    default-config:\n      {key_value}\n")


LANDS = [
    ("request-body-limit", htp("request-body-limit: 1mb"), lambda a: a["http"].request_body_limit, MiB),
    ("request_body_limit", htp("request_body_limit: 2kb"), lambda a: a["http"].request_body_limit, 2 * KiB),
    ("request-body-limit-0", htp("request-body-limit: 0"), lambda a: a["http"].request_body_limit, 0),
    ("response-body-limit", htp("response-body-limit: 1.5mb"), lambda a: a["http"].response_body_limit,
     MiB + MiB // 2),
    ("meta-field-limit", htp("meta-field-limit: 9000"), lambda a: a["http"].header_limit, 9000),
    ("max-tx", htp("max-tx: 64"), lambda a: a["http"].max_tx, 64),
    ("req-min-inspect", htp("request-body-minimal-inspect-size: 8kb"),
     lambda a: a["http"].request_body_minimal_inspect_size, 8192),
    ("resp-min-inspect", htp("response-body-minimal-inspect-size: 0"),
     lambda a: a["http"].response_body_minimal_inspect_size, 0),
    ("max-tx-size-string", htp("max-tx: 1kb"), lambda a: a["http"].max_tx, 1024),   # ParseSizeStringU32
    ("ja3-no", protocols("tls:\n  ja3-fingerprints: no\n"), lambda a: a["tls"].ja3_fingerprints, "no"),
    ("ja3-off", protocols("tls:\n  ja3-fingerprints: 'off'\n"), lambda a: a["tls"].ja3_fingerprints, "no"),
    ("ja3-yes", protocols("tls:\n  ja3-fingerprints: yes\n"), lambda a: a["tls"].ja3_fingerprints, "yes"),
    ("ja3-auto", protocols("tls:\n  ja3-fingerprints: auto\n"), lambda a: a["tls"].ja3_fingerprints, "auto"),
    *[(f"encryption-{v}", protocols(f"tls:\n  encryption-handling: {v}\n"),
       lambda a: a["tls"].encryption_handling, v) for v in ("default", "bypass", "full")],
    ("no-reassemble-yes", protocols("tls:\n  no-reassemble: yes\n"), lambda a: a["tls"].encryption_handling,
     "bypass"),
    ("no-reassemble-no", protocols("tls:\n  no-reassemble: no\n"), lambda a: a["tls"].encryption_handling,
     "default"),
    ("tls-ports", protocols("tls:\n  detection-ports:\n    dp: 443, 8443\n"),
     lambda a: a["tls"].detection_ports, (443, 8443)),
    ("tls.tcp-ports", protocols("tls:\n  tcp:\n    detection-ports:\n      dp: 4443\n"),
     lambda a: a["tls"].detection_ports, (4443,)),
    ("dns-ports-both", protocols("dns:\n  detection-ports:\n    dp: 5353\n"),
     lambda a: (a["dns"].tcp_ports, a["dns"].udp_ports), (frozenset({5353}), frozenset({5353}))),
    ("dns.udp-ports", protocols("dns:\n  udp:\n    detection-ports:\n      dp: 53, 5353\n"),
     lambda a: (a["dns"].tcp_ports, a["dns"].udp_ports), (frozenset({53}), frozenset({53, 5353}))),
    ("dns.tcp-brackets", protocols("dns:\n  tcp:\n    detection-ports:\n      dp: '[53, 853]'\n"),
     lambda a: a["dns"].tcp_ports, frozenset({53, 853})),
    ("dns-range", protocols("dns:\n  udp:\n    detection-ports:\n      dp: 5350:5353\n"),
     lambda a: a["dns"].udp_ports, frozenset({5350, 5351, 5352, 5353})),
    ("dns-negated", protocols("dns:\n  udp:\n    detection-ports:\n      dp: '!53'\n"),
     lambda a: (53 in a["dns"].udp_ports, 54 in a["dns"].udp_ports, len(a["dns"].udp_ports)), (False, True, 65535)),
    ("dns-variable", "vars:\n  port-groups:\n    DNS_PORTS: '[53,5353]'\n"
     + protocols("dns:\n  udp:\n    detection-ports:\n      dp: $DNS_PORTS\n"),
     lambda a: a["dns"].udp_ports, frozenset({53, 5353})),
    ("dns-toserver", protocols("dns:\n  udp:\n    detection-ports:\n      toserver: 5353\n"),
     lambda a: a["dns"].udp_ports, frozenset({5353})),
    ("dns-no-dp", protocols("dns:\n  udp:\n    detection-ports:\n"),       # Suricata: nothing is probed
     lambda a: a["dns"].udp_ports, frozenset()),
]


@pytest.mark.parametrize("text,get,expected", [r[1:] for r in LANDS], ids=[r[0] for r in LANDS])
def test_key_lands_in_engine_settings_app(text, get, expected):
    assert get(app(text)) == expected


def test_the_shipped_example_shows_the_defaults():
    import os

    example = conf.load_file(os.path.join(os.path.dirname(conf.__file__), "ipsbridge.yaml"))
    assert example.app == default_app()


# ------------------------------------------------------------------ refused values
REFUSED = [
    ("enabled-maybe", protocols("http:\n  enabled: maybe\n"), 4, "is not yes, no or detection-only"),
    ("enabled-null", protocols("tls:\n  enabled:\n"), 4, "None is not yes, no or detection-only"),
    ("enabled-other-protocol", protocols("ssh:\n  enabled: sometimes\n"), 4, "is not yes, no or detection-only"),
    ("enabled-twice", protocols("dns:\n  enabled: no\n  udp:\n    enabled: yes\n"), 6,
     "already decides for TCP and UDP"),
    ("ports-twice", protocols("dns:\n  detection-ports:\n    dp: 53\n  tcp:\n    detection-ports:\n"
                              "      dp: 53\n"), 7, "already decides for TCP and UDP"),
    ("body-limit-too-big", htp("request-body-limit: 4gb"), 6, "above the maximum 4294967295"),
    ("body-limit-not-a-size", htp("response-body-limit: lots"), 6, "is not a size"),
    ("meta-field-limit-0", htp("meta-field-limit: 0"), 6, "below the minimum 1"),
    ("max-tx-0", htp("max-tx: 0"), 6, "below the minimum 1"),
    ("both-spellings", htp("request-body-limit: 1kb\n      request_body_limit: 2kb"), 7, "same key"),
    ("encryption-unknown", protocols("tls:\n  encryption-handling: drop\n"), 4, "unknown value 'drop'"),
    ("ja3-unknown", protocols("tls:\n  ja3-fingerprints: sometimes\n"), 4, "unknown value 'sometimes'"),
    ("no-reassemble-and-encryption", protocols("tls:\n  encryption-handling: full\n  no-reassemble: yes\n"), 5,
     "ignores it when encryption-handling is set"),
    ("dp-out-of-range", protocols("dns:\n  udp:\n    detection-ports:\n      dp: 70000\n"), 6, "out of range"),
    ("dp-not-a-port", protocols("dns:\n  udp:\n    detection-ports:\n      dp: domain\n"), 6, "'domain'"),
    ("dp-unknown-variable", protocols("dns:\n  udp:\n    detection-ports:\n      dp: $NOPE\n"), 6, "NOPE"),
    ("dp-and-toserver", protocols("tls:\n  detection-ports:\n    dp: 443\n    toserver: 443\n"), 6,
     "ignores toserver"),
    ("dp-yaml-list", protocols("dns:\n  udp:\n    detection-ports:\n      dp: [53, 5353]\n"), 6,
     "Suricata reads only a string"),
    ("ports-not-a-mapping", protocols("dns:\n  udp:\n    detection-ports: 53\n"), 5, "must be a mapping"),
    ("unknown-protocol", protocols("smbb:\n  enabled: yes\n"), 3, "did you mean 'smb'"),
    ("ikev2-is-6.0", protocols("ikev2:\n  enabled: yes\n"), 3, "did you mean 'ike'"),
    ("unknown-http-key", protocols("http:\n  libhpt:\n    default-config:\n"), 4, "did you mean 'libhtp'"),
    ("unknown-htp-key", htp("request-body-limt: 1kb"), 6, "did you mean 'request-body-limit'"),
    ("http-has-no-udp", protocols("http:\n  udp:\n    enabled: yes\n"), 4, "unknown key"),
    ("http-has-no-ports", protocols("http:\n  detection-ports:\n    dp: 80\n"), 4, "unknown key"),
    ("unknown-app-layer-key", "app-layer:\n  protocol:\n    http:\n      enabled: no\n", 2,
     "did you mean 'protocols'"),
    ("server-config", protocols("http:\n  libhtp:\n    server-config:\n      - apache:\n          address: "
                                "[10.0.0.0/8]\n          personality: Apache_2\n"), 5, "per-server"),
    ("top-level-libhtp", "libhtp:\n  default-config:\n    request-body-limit: 1kb\n", 1, "old place"),
    ("top-level-tls", "tls:\n  no-reassemble: yes\n", 2, "old form"),
    ("protocol-not-a-mapping", protocols("http: yes\n"), 3, "must be a mapping"),
]


@pytest.mark.parametrize("text,line,fragment", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_bad_values_are_refused_with_file_line_and_fix(text, line, fragment):
    p = one_refusal(text)
    assert p.line == line and fragment in p.message, str(p)


def test_all_refusals_of_one_section_come_together():
    text = protocols("http:\n  enabled: maybe\n  libhtp:\n    default-config:\n      max-tx: 0\n"
                     "tls:\n  encryption-handling: x\n")
    with pytest.raises(ConfigError) as info:
        load(text)
    assert [(p.line, p.key) for p in info.value.problems] == [(4, "enabled"), (7, "max-tx"),
                                                              (9, "encryption-handling")]


# ------------------------------------------------------------------ keys ipsbridge does not implement
# (key[~variant], yaml, "warn" | "stock" | "ok" | "error", fragment of the warning/refusal)
DECISIONS = [
    ("app-layer.error-policy~ignore", "app-layer:\n  error-policy: ignore\n", "ok", ""),
    ("app-layer.error-policy", "app-layer:\n  error-policy: drop-flow\n", "ok", ""),
    ("app-layer.error-policy~auto", "app-layer:\n  error-policy: auto\n", "ok", ""),
    ("app-layer.error-policy~bad", "app-layer:\n  error-policy: drop\n", "error", "unknown value 'drop'"),
    ("app-layer.protocols.http.memcap~0", protocols("http:\n  memcap: 0\n"), "ok", ""),
    ("app-layer.protocols.http.memcap", protocols("http:\n  memcap: 64mb\n"), "error", "memory cap on HTTP"),
    ("app-layer.protocols.http.byterange", protocols("http:\n  byterange:\n    memcap: 100mb\n"), "warn",
     "range requests"),
    ("app-layer.protocols.http.byterange.timeout", protocols("http:\n  byterange:\n    timeout: 60\n"), "warn",
     "range requests"),
    ("htp.personality~IDS", htp("personality: IDS"), "ok", ""),
    ("htp.personality~ids", htp("personality: ids"), "ok", ""),
    ("htp.personality", htp("personality: Apache_2"), "error", "other personalities"),
    *[(f"htp.{k}~no", htp(f"{k}: no"), "ok", "") for k in (
        "double-decode-path", "double-decode-query", "uri-include-all", "query-plusspace-decode",
        "path-convert-lowercase", "path-nul-encoded-terminates", "path-nul-raw-terminates")],
    *[(f"htp.{k}", htp(f"{k}: yes"), "error", f"other values of {k}") for k in (
        "double-decode-path", "double-decode-query", "uri-include-all", "query-plusspace-decode",
        "path-convert-lowercase", "path-nul-encoded-terminates", "path-nul-raw-terminates")],
    ("htp.path-url-encoding-invalid-handling~preserve",
     htp("path-url-encoding-invalid-handling: preserve_percent"), "ok", ""),
    ("htp.path-url-encoding-invalid-handling", htp("path-url-encoding-invalid-handling: remove_percent"),
     "error", "not implemented"),
    *[(f"htp.{k}", htp(f"{k}: {v}"), "error", "stock default-config") for k, v in (
        ("path-convert-backslash-separators", "yes"), ("path-bestfit-replacement-char", "'?'"),
        ("path-separators-compress", "no"), ("path-separators-decode", "yes"), ("path-u-encoding-decode", "yes"),
        ("path-utf8-convert-bestfit", "no"))],
    *[(f"htp.{k}~stock", htp(f"{k}: {v}"), "stock", "whole body") for k, v in (
        ("request-body-inspect-window", "4kb"), ("response-body-inspect-window", "16kb"))],
    *[(f"htp.{k}", htp(f"{k}: {v}"), "error", "inspection windows are not implemented") for k, v in (
        ("request-body-inspect-window", "8kb"), ("response-body-inspect-window", "4kb"))],
    ("htp.randomize-inspection-sizes", htp("randomize-inspection-sizes: yes"), "warn", "to randomize"),
    ("htp.randomize-inspection-range", htp("randomize-inspection-range: 10"), "warn", "to randomize"),
    ("htp.http-body-inline~yes", htp("http-body-inline: yes"), "ok", ""),
    ("htp.http-body-inline~auto", htp("http-body-inline: auto"), "stock", "in every mode"),
    ("htp.http-body-inline", htp("http-body-inline: no"), "error", "only inline body inspection"),
    ("htp.response-body-decompress-layer-limit~2", htp("response-body-decompress-layer-limit: 2"), "ok", ""),
    ("htp.response-body-decompress-layer-limit", htp("response-body-decompress-layer-limit: 0"), "error",
     "at most 2 content codings"),
    ("htp.swf-decompression~off", htp("swf-decompression:\n        enabled: no\n        type: both\n"
                                      "        compress-depth: 100kb\n        decompress-depth: 100kb"), "ok", ""),
    ("htp.swf-decompression", htp("swf-decompression:\n        enabled: yes"), "error", "SWF decompression"),
    ("htp.swf-decompression.type", htp("swf-decompression:\n        type: deflate"), "warn", "swf-decompression"),
    ("htp.swf-decompression.compress-depth", htp("swf-decompression:\n        compress-depth: 1mb"), "warn",
     "swf-decompression"),
    ("htp.swf-decompression.decompress-depth", htp("swf-decompression:\n        decompress-depth: 1mb"), "warn",
     "swf-decompression"),
    ("htp.lzma-enabled~no", htp("lzma-enabled: false"), "ok", ""),
    ("htp.lzma-enabled", htp("lzma-enabled: true"), "error", "LZMA-encoded bodies are not decoded"),
    ("htp.lzma-memlimit", htp("lzma-memlimit: 1mb"), "warn", "lzma-enabled"),
    ("htp.compression-bomb-limit~1mb", htp("compression-bomb-limit: 1mb"), "ok", ""),
    ("htp.compression-bomb-limit", htp("compression-bomb-limit: 10mb"), "error", "stops decompressing"),
    ("htp.decompression-time-limit", htp("decompression-time-limit: 100000"), "warn", "reads no clock"),
    ("htp.headers-limit~stock", htp("headers-limit: 1024"), "stock", "every header field"),
    ("htp.headers-limit", htp("headers-limit: 100"), "error", "number of header fields"),
    ("app-layer.protocols.tls.ja4-fingerprints~no", protocols("tls:\n  ja4-fingerprints: no\n"), "ok", ""),
    ("app-layer.protocols.tls.ja4-fingerprints~auto", protocols("tls:\n  ja4-fingerprints: auto\n"), "ok", ""),
    ("app-layer.protocols.tls.ja4-fingerprints", protocols("tls:\n  ja4-fingerprints: yes\n"), "error", "JA4"),
    *[(f"app-layer.protocols.dns.{k}", protocols(f"dns:\n  {k}: {v}\n"), "warn", "obsolete")
      for k, v in (("request-flood", 500), ("global-memcap", "16mb"), ("state-memcap", "512kb"))],
    *[(f"app-layer.protocols.{base}.detection-ports.{k}",
       protocols(base.replace(".", ":\n  ") + ":\n" + "  " * (base.count(".") + 1) + "detection-ports:\n"
                 + "  " * (base.count(".") + 2) + f"{k}: 53\n"), "error", "source port")
      for base in ("tls", "tls.tcp", "dns", "dns.tcp", "dns.udp") for k in ("sp", "toclient")],
    ("app-layer.protocols.smtp.raw-extraction~no", protocols("smtp:\n  raw-extraction: no\n"), "ok", ""),
    ("app-layer.protocols.smtp.raw-extraction", protocols("smtp:\n  raw-extraction: yes\n"), "error",
     "raw extraction"),
    *[(f"app-layer.protocols.smtp.mime.{k}", protocols(f"smtp:\n  mime:\n    {k}: {v}\n"), "warn",
       "smtp EVE records") for k, v in (("extract-urls", "yes"), ("extract-urls-schemes", "[http, https]"),
                                        ("log-url-scheme", "yes"), ("body-md5", "no"))],
    ("app-layer.protocols.smtp.inspected-tracker.content-inspect-window~stock",
     protocols("smtp:\n  inspected-tracker:\n    content-inspect-window: 4096\n"), "stock", "bytes added since"),
    ("app-layer.protocols.smtp.inspected-tracker.content-inspect-window",
     protocols("smtp:\n  inspected-tracker:\n    content-inspect-window: 8kb\n"), "error", "pruning"),
    ("app-layer.protocols.ftp.memcap~0", protocols("ftp:\n  memcap: 0\n"), "ok", ""),
    ("app-layer.protocols.ftp.memcap", protocols("ftp:\n  memcap: 64mb\n"), "error", "memory cap on FTP"),
    # shapes are still checked
    ("app-layer.protocols.dns.request-flood~bad", protocols("dns:\n  request-flood: many\n"), "error",
     "not an integer"),
]
_PATH = {"htp": "app-layer.protocols.http.libhtp.default-config"}


def _key(row_id: str) -> str:
    key = row_id.split("~")[0]
    head, _, rest = key.partition(".")
    return f"{_PATH[head]}.{rest}" if head in _PATH else key


@pytest.mark.parametrize("text,kind,fragment", [d[1:] for d in DECISIONS], ids=[d[0] for d in DECISIONS])
def test_unimplemented_key_decision(text, kind, fragment):
    check_decision(text, kind, fragment)


def test_every_app_layer_key_judged_has_a_decision_row():
    tested = {_key(d[0]) for d in DECISIONS}
    for path in APP_LAYER_UNIMPLEMENTED:
        parents = {".".join(path.split(".")[:i]) for i in range(2, path.count(".") + 2)}
        assert tested & parents, f"{path}: add a DECISIONS row"


# ------------------------------------------------------------------ protocols ipsbridge does not parse
def test_other_protocols_load_with_one_warning_whatever_their_keys():
    body = "".join(f"{name}:\n  enabled: {'no' if i % 3 == 0 else 'yes'}\n" for i, name in enumerate(APP_OTHER))
    body += "smb:\n  enabled: yes\n  detection-ports:\n    dp: 139, 445\n  stream-depth: 0\n"
    body = body.replace("smb:\n  enabled: no\n", "", 1)          # smb once, with its own keys
    body += "rdp:\n"                                              # a protocol with no keys (stock sip, rdp)
    body = body.replace("rdp:\n  enabled: yes\n", "", 1).replace("rdp:\n  enabled: no\n", "", 1)
    logs = warnings_of(protocols(body))
    (w,) = logs
    assert w["event"] == "config_app_protocols_not_parsed" and w["where"] == "app-layer.protocols"
    assert sorted(w["protocols"]) == sorted(APP_OTHER) and "http, tls, dns, smtp and ftp only" in w["reason"]
    assert w["line"] == 3
    assert app(protocols(body)) == default_app()            # nothing of theirs reaches the engine


def test_suricatas_stock_app_layer_section_loads_with_its_warnings():
    from test_conf_stock import SURICATA_7_0_YAML_IN

    text = SURICATA_7_0_YAML_IN
    section = text[text.index("\napp-layer:\n") + 1:]
    section = section[:re.search(r"\n[a-z]", section[1:]).start() + 2]
    assert section.startswith("app-layer:\n  protocols:\n    telnet:") and section.count("\n    http:\n") == 1
    logs = warnings_of(section)
    assert sorted((w["event"], w["key"]) for w in logs) == sorted([
        ("config_app_protocols_not_parsed", ""),
        *[("config_key_stock_value", k) for k in (
            "request-body-inspect-window", "response-body-inspect-window", "http-body-inline",
            "content-inspect-window")],
        *[("config_key_ignored", k) for k in ("extract-urls", "body-md5")]])
    a = app(section)
    assert a == {**default_app(), "http": app_http.Settings(request_body_limit=100 * KiB,
                                                            response_body_limit=100 * KiB)}


# ------------------------------------------------------------------ an engine built from the configuration
URI_RULE = 'alert http any any -> any any (msg:"uri"; http.uri; content:"/x"; sid:1;)'
PLAIN_RULE = 'alert http any any -> any any (msg:"plain"; content:"GET /x"; sid:2;)'


def engine(text: str, *rules: str):
    from rules.engine import Engine
    from rules.parser import parse_rule

    return Engine([parse_rule(r) for r in rules], engine_settings(load(text), "ips"))




GET = [b"GET /x HTTP/1.1\r\nHost: h.example\r\n\r\n"]


@pytest.mark.parametrize("enabled,sids,flows,failed", [
    ("yes", [1, 2], 1, 0),
    ("detection-only", [2], 1, 0),      # detected (the plain rule applies), not parsed (no http.uri)
    ("no", [], 0, 1),                   # never detected: neither rule matches
], ids=["yes", "detection-only", "no"])
def test_http_enabled_decides_detection_and_parsing(enabled, sids, flows, failed):
    e = engine(protocols(f"http:\n  enabled: {enabled}\n"), URI_RULE, PLAIN_RULE)
    assert http_session(e, GET) == sids
    stats = e.stats()
    assert stats.get("app.http.flows", 0) == flows and stats.get("app.detect_failed", 0) == failed
    (flow,) = list(e.flows.all())
    assert flow.app.proto == ("failed" if enabled == "no" else "http")
    assert (flow.app.parser is None) is (enabled != "yes")


def test_the_same_rules_match_without_an_app_layer_section():
    assert http_session(engine("", URI_RULE, PLAIN_RULE), GET) == [1, 2]


def test_request_body_limit_bounds_what_http_request_body_sees():
    body = b"A" * 40 + b"needle"
    post = [b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body]
    rule = 'alert http any any -> any any (msg:"b"; http.request_body; content:"needle"; sid:3;)'
    assert http_session(engine("", rule), post) == [3]
    assert http_session(engine(htp("request-body-limit: 100"), rule), post) == [3]
    assert http_session(engine(htp("request-body-limit: 32"), rule), post) == []


def test_meta_field_limit_bounds_the_header_block():
    req = [b"GET /x HTTP/1.1\r\nHost: h.example\r\nX-Pad: " + b"p" * 300 + b"\r\n\r\n"]
    rule = 'alert http any any -> any any (msg:"host"; http.host; content:"h.example"; sid:4;)'
    assert http_session(engine("", rule), req) == [4]
    assert http_session(engine(htp("meta-field-limit: 1kb"), rule), req) == [4]
    assert http_session(engine(htp("meta-field-limit: 100"), rule), req) == []


DNS_RULE = 'alert dns any any -> any any (msg:"q"; dns.query; content:"example.com"; sid:5;)'
DNS_PLAIN = 'alert dns any any -> any any (msg:"plain"; content:"example"; sid:6;)'


def dns_query(e, dport: int) -> list[int]:
    import struct

    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from rules.api import FrameMeta

    msg = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x01\x00\x01"
    p = Ether() / IP(src="198.51.100.1", dst="203.0.113.1") / UDP(sport=40000, dport=dport) / msg
    r = e.inspect(bytes(p), FrameMeta(1.0, "eth0"))
    return sorted(ev.sid for ev in r.events if type(ev).__name__ == "Alert")


@pytest.mark.parametrize("body,port,sids", [
    ("", 53, [5, 6]),
    ("", 5353, []),                                                          # not a detection port
    ("dns:\n  udp:\n    detection-ports:\n      dp: 53, 5353\n", 5353, [5, 6]),
    ("dns:\n  detection-ports:\n    dp: 5353\n", 53, []),                    # 53 no longer one
    ("dns:\n  udp:\n    enabled: no\n", 53, []),
    ("dns:\n  enabled: no\n", 53, []),
    ("dns:\n  tcp:\n    enabled: no\n", 53, [5, 6]),                         # UDP is still parsed
    ("dns:\n  udp:\n    enabled: detection-only\n", 53, [6]),
], ids=["default", "default-5353", "dp-5353", "dp-only-5353", "udp-off", "off", "tcp-off", "udp-detection-only"])
def test_dns_settings_decide_where_dns_is_detected_and_parsed(body, port, sids):
    assert dns_query(engine(protocols(body) if body else "", DNS_RULE, DNS_PLAIN), port) == sids


def test_tls_settings_reach_the_tls_module():
    # an SSLv2 client hello offering SSLv3: TLS only on a detection port
    hello = bytes([0x80, 0x2E, 0x01, 0x03, 0x00]) + b"\x00" * 40
    default = app("")["tls"]
    moved = app(protocols("tls:\n  detection-ports:\n    dp: 8443\n"))["tls"]
    assert app_tls.probe(hello, True, 40000, 443, 6, default) is True
    assert app_tls.probe(hello, True, 40000, 8443, 6, default) is False
    assert app_tls.probe(hello, True, 40000, 8443, 6, moved) is True
    assert app_tls.probe(hello, True, 40000, 443, 6, moved) is False
    assert app_tls.Parser(default).ja3_on is True
    assert app_tls.Parser(app(protocols("tls:\n  ja3-fingerprints: no\n"))["tls"]).ja3_on is False


# ------------------------------------------------------------------ rules the settings keep from matching
def notes(tmp_path, yaml_body: str, rules: str) -> list[str]:
    (tmp_path / "a.rules").write_text(rules)
    (tmp_path / "c.yaml").write_text(yaml_body + "rule-files: [a.rules]\n")
    result = load_rules(conf.load_file(str(tmp_path / "c.yaml")))
    assert result.counts["loaded"] == rules.count("\n")              # they stay loaded
    return result.notes


def test_rules_of_a_disabled_protocol_are_noted_once(tmp_path):
    (n,) = notes(tmp_path, protocols("http:\n  enabled: no\n"), f"{URI_RULE}\n{PLAIN_RULE}\n")
    assert n.startswith("2 rules (the first at ") and "a.rules:1)" in n
    assert "need http, which is off" in n and "c.yaml:4" in n and "they never match" in n


def test_buffer_rules_of_a_detection_only_protocol_are_noted(tmp_path):
    (n,) = notes(tmp_path, protocols("http:\n  enabled: detection-only\n"), f"{URI_RULE}\n{PLAIN_RULE}\n")
    assert n.startswith("1 rule (") and "a.rules:1)" in n and "inspects http buffers" in n
    (n,) = notes(tmp_path, protocols("dns:\n  tcp:\n    enabled: no\n  udp:\n    enabled: detection-only\n"),
                 f"{DNS_RULE}\n{DNS_PLAIN}\n")
    assert "inspects dns buffers" in n and "detection-only/no" in n and "c.yaml:5" in n


@pytest.mark.parametrize("body", ["", protocols("http:\n  enabled: yes\n"),
                                  protocols("dns:\n  tcp:\n    enabled: no\n"),        # UDP still parses
                                  protocols("tls:\n  enabled: no\n")], ids=["none", "yes", "dns-tcp-off", "tls"])
def test_no_note_when_the_rules_can_match(tmp_path, body):
    assert notes(tmp_path, body, f"{URI_RULE}\n{PLAIN_RULE}\n{DNS_RULE}\n") == []


@pytest.mark.parametrize("text, mode, expected", [
    ("", "ips", "drop-flow"),                                    # unset: the master switch, auto
    ("", "ids", "ignore"),
    ("exception-policy: pass-flow\n", "ips", "pass-flow"),
    ("app-layer:\n  error-policy: drop-packet\n", "ips", "drop-packet"),
    ("app-layer:\n  error-policy: drop-flow\n", "ids", "drop-flow"),   # as written, as the stream policies
    ("exception-policy: drop-flow\napp-layer:\n  error-policy: ignore\n", "ips", "ignore"),
])
def test_app_layer_error_policy_resolves_as_suricata(text, mode, expected):
    assert engine_settings(load(text), mode).app_error_policy == expected
