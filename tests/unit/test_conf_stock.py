"""conf: Suricata 7's own stock suricata.yaml loads (with warnings), and what it sets lands in the
engine's settings.

The file is SURICATA_7_0_YAML_IN below (embedded, so the test runs on every machine; no
skip when Suricata is not installed): the YAML of suricata.yaml.in from Suricata's main-7.0.x branch (commit 872704f7, 7.0.18-dev) with its
comments and blank lines left out (the data is unchanged: both parse to the same tree) and its
@...@ build placeholders kept; the test substitutes them as `configure` would.
"""
from __future__ import annotations

import random
import re

from structlog.testing import capture_logs

import conf
from conf.build import engine_settings
from rules.applayer.dns import Settings as DnsSettings
from rules.applayer.ftp import Settings as FtpSettings
from rules.applayer.http import Settings as HttpSettings
from rules.applayer.smtp import Settings as SmtpSettings
from rules.applayer.tls import Settings as TlsSettings

MiB = 1024 * 1024
PLACEHOLDERS = {"e_logdir": "/var/log/suricata/", "e_enable_evelog": "yes", "e_rundir": "/var/run/",
                "e_sysconfdir": "/etc/suricata/", "e_magic_file_comment": "#",
                "e_magic_file": "/usr/share/file/magic", "e_defaultruledir": "/var/lib/suricata/rules",
                "MAJOR_MINOR": "7.0"}

# Every warning the stock file gives, apart from one per unused top-level section.
STOCK_KEY_WARNINGS = {
    ("config_key_stock_value", "decoder.teredo", "enabled"),
    ("config_key_stock_value", "decoder.geneve", "enabled"),
    ("config_key_stock_value", "defrag", "memcap"),
    ("config_key_ignored", "defrag", "hash-size"),
    ("config_key_ignored", "defrag", "prealloc"),
    ("config_key_ignored", "flow", "hash-size"),
    ("config_key_ignored", "flow", "prealloc"),
    # app-layer: one warning for the protocols ipsbridge does not parse, the HTTP body
    # inspection settings ipsbridge replaces by inspecting the whole body as it grows, SMTP's
    # attachment pruning window, and SMTP's settings of what its EVE records carry
    ("config_app_protocols_not_parsed", "app-layer.protocols", ""),
    *[("config_key_stock_value", "app-layer.protocols.http.libhtp.default-config", k)
      for k in ("request-body-inspect-window", "response-body-inspect-window", "http-body-inline")],
    ("config_key_stock_value", "app-layer.protocols.smtp.inspected-tracker", "content-inspect-window"),
    ("config_key_ignored", "app-layer.protocols.smtp.mime", "extract-urls"),
    ("config_key_ignored", "app-layer.protocols.smtp.mime", "body-md5"),
}


def render(text: str) -> str:
    return re.sub(r"@(\w+)@", lambda m: PLACEHOLDERS[m.group(1)], text)


def load_stock(text: str, source: str):
    with capture_logs() as logs:
        config = conf.load_text(text, source, "/", rng=random.Random(7))
    return config, logs


def check_stock(config, logs):
    keys = {(e["event"], e["where"], e["key"]) for e in logs if e["event"] != "config_section_ignored"}
    assert keys == STOCK_KEY_WARNINGS
    assert all(e["log_level"] == "warning" and e["line"] > 0 for e in logs)
    assert [i.interface for i in config.af_packet] == ["eth0"]
    assert config.exception_policy == "auto"
    for mode in ("ips", "tap", "ids"):
        e = engine_settings(config, mode)
        s = e.stream
        assert (s.memcap, s.reassembly_memcap, s.depth, s.inline, s.midstream) == (
            64 * MiB, 256 * MiB, MiB, "auto", False)
        assert 2432 <= s.toserver_chunk_size <= 2688 and 2432 <= s.toclient_chunk_size <= 2688
        assert (e.flow.memcap, e.flow.emergency_recovery) == (128 * MiB, 30)
        assert (e.flow.timeouts["tcp"].new, e.flow.timeouts["tcp"].emergency_closed) == (60, 10)
        assert (e.defrag.timeout, e.defrag.trackers, e.defrag.max_frags) == (60, 65535, 65535)
        assert e.decoder.vxlan_enabled and e.decoder.vxlan_ports == (4789,) and e.decoder.checksum_validation
        policy = "drop-flow" if mode == "ips" else "ignore"
        assert (s.memcap_policy, s.reassembly_memcap_policy, s.midstream_policy) == (policy,) * 3
        assert e.app == {"http": HttpSettings(request_body_limit=100 * 1024, response_body_limit=100 * 1024),
                         "tls": TlsSettings(detection_ports=(443,)), "dns": DnsSettings(),
                         "smtp": SmtpSettings(), "ftp": FtpSettings(), "enabled": {}}


def test_suricata_7_0_stock_yaml_in_loads_with_warnings():
    config, logs = load_stock(render(SURICATA_7_0_YAML_IN), "suricata.yaml")
    check_stock(config, logs)


SURICATA_7_0_YAML_IN = """\
%YAML 1.1
---
suricata-version: "@MAJOR_MINOR@"
vars:
  address-groups:
    HOME_NET: "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"
    EXTERNAL_NET: "!$HOME_NET"
    HTTP_SERVERS: "$HOME_NET"
    SMTP_SERVERS: "$HOME_NET"
    SQL_SERVERS: "$HOME_NET"
    DNS_SERVERS: "$HOME_NET"
    TELNET_SERVERS: "$HOME_NET"
    AIM_SERVERS: "$EXTERNAL_NET"
    DC_SERVERS: "$HOME_NET"
    DNP3_SERVER: "$HOME_NET"
    DNP3_CLIENT: "$HOME_NET"
    MODBUS_CLIENT: "$HOME_NET"
    MODBUS_SERVER: "$HOME_NET"
    ENIP_CLIENT: "$HOME_NET"
    ENIP_SERVER: "$HOME_NET"
  port-groups:
    HTTP_PORTS: "80"
    SHELLCODE_PORTS: "!80"
    ORACLE_PORTS: 1521
    SSH_PORTS: 22
    DNP3_PORTS: 20000
    MODBUS_PORTS: 502
    FILE_DATA_PORTS: "[$HTTP_PORTS,110,143]"
    FTP_PORTS: 21
    GENEVE_PORTS: 6081
    VXLAN_PORTS: 4789
    TEREDO_PORTS: 3544
default-log-dir: @e_logdir@
stats:
  enabled: yes
  interval: 8
  exception-policy:
plugins:
outputs:
  - fast:
      enabled: yes
      filename: fast.log
      append: yes
  - eve-log:
      enabled: @e_enable_evelog@
      filetype: regular
      filename: eve.json
      pcap-file: false
      community-id: false
      community-id-seed: 0
      xff:
        enabled: no
        mode: extra-data
        deployment: reverse
        header: X-Forwarded-For
      types:
        - alert:
            tagged-packets: yes
        - frame:
            enabled: no
        - anomaly:
            enabled: yes
            types:
        - http:
            extended: yes
        - dns:
        - tls:
            extended: yes
        - files:
            force-magic: no
        - smtp:
        - ftp
        - rdp
        - nfs
        - smb
        - tftp
        - ike
        - dcerpc
        - krb5
        - bittorrent-dht
        - snmp
        - rfb
        - sip
        - quic:
        - dhcp:
            enabled: yes
            extended: no
        - ssh
        - mqtt:
        - http2
        - pgsql:
            enabled: no
        - stats:
            totals: yes
            threads: no
            deltas: no
        - flow:
  - http-log:
      enabled: no
      filename: http.log
      append: yes
  - tls-log:
      enabled: no
      filename: tls.log
      append: yes
  - tls-store:
      enabled: no
  - pcap-log:
      enabled: no
      filename: log.pcap
      limit: 1000mb
      max-files: 2000
      compression: none
      mode: normal
      use-stream-depth: no
      honor-pass-rules: no
  - alert-debug:
      enabled: no
      filename: alert-debug.log
      append: yes
  - stats:
      enabled: yes
      filename: stats.log
      append: yes
      totals: yes
      threads: no
  - syslog:
      enabled: no
      facility: local5
  - file-store:
      version: 2
      enabled: no
      xff:
        enabled: no
        mode: extra-data
        deployment: reverse
        header: X-Forwarded-For
  - tcp-data:
      enabled: no
      type: file
      filename: tcp-data.log
  - http-body-data:
      enabled: no
      type: file
      filename: http-data.log
  - lua:
      enabled: no
      scripts:
logging:
  default-log-level: notice
  default-output-filter:
  outputs:
  - console:
      enabled: yes
  - file:
      enabled: yes
      level: info
      filename: suricata.log
  - syslog:
      enabled: no
      facility: local5
      format: "[%i] <%d> -- "
af-packet:
  - interface: eth0
    cluster-id: 99
    cluster-type: cluster_flow
    defrag: yes
  - interface: default
af-xdp:
  - interface: default
dpdk:
  eal-params:
    proc-type: primary
  interfaces:
    - interface: 0000:3b:00.0
      threads: auto
      promisc: true
      multicast: true
      checksum-checks: true
      checksum-checks-offload: true
      mtu: 1500
      mempool-size: 65535
      mempool-cache-size: 257
      rx-descriptors: 1024
      tx-descriptors: 1024
      copy-mode: none
      copy-iface: none
    - interface: default
      threads: auto
      promisc: true
      multicast: true
      checksum-checks: true
      checksum-checks-offload: true
      mtu: 1500
      rss-hash-functions: auto
      mempool-size: 65535
      mempool-cache-size: 257
      rx-descriptors: 1024
      tx-descriptors: 1024
      copy-mode: none
      copy-iface: none
pcap:
  - interface: eth0
  - interface: default
pcap-file:
  checksum-checks: auto
app-layer:
  protocols:
    telnet:
      enabled: yes
    rfb:
      enabled: yes
      detection-ports:
        dp: 5900, 5901, 5902, 5903, 5904, 5905, 5906, 5907, 5908, 5909
    mqtt:
      enabled: yes
    krb5:
      enabled: yes
    bittorrent-dht:
      enabled: yes
    snmp:
      enabled: yes
    ike:
      enabled: yes
    tls:
      enabled: yes
      detection-ports:
        dp: 443
    pgsql:
      enabled: no
      stream-depth: 0
    dcerpc:
      enabled: yes
    ftp:
      enabled: yes
    rdp:
    ssh:
      enabled: yes
    http2:
      enabled: yes
    smtp:
      enabled: yes
      raw-extraction: no
      mime:
        decode-mime: yes
        decode-base64: yes
        decode-quoted-printable: yes
        header-value-depth: 2000
        extract-urls: yes
        body-md5: no
      inspected-tracker:
        content-limit: 100000
        content-inspect-min-size: 32768
        content-inspect-window: 4096
    imap:
      enabled: detection-only
    smb:
      enabled: yes
      detection-ports:
        dp: 139, 445
    nfs:
      enabled: yes
    tftp:
      enabled: yes
    dns:
      tcp:
        enabled: yes
        detection-ports:
          dp: 53
      udp:
        enabled: yes
        detection-ports:
          dp: 53
    http:
      enabled: yes
      libhtp:
         default-config:
           personality: IDS
           request-body-limit: 100kb
           response-body-limit: 100kb
           request-body-minimal-inspect-size: 32kb
           request-body-inspect-window: 4kb
           response-body-minimal-inspect-size: 40kb
           response-body-inspect-window: 16kb
           response-body-decompress-layer-limit: 2
           http-body-inline: auto
           swf-decompression:
             enabled: no
             type: both
             compress-depth: 100kb
             decompress-depth: 100kb
           double-decode-path: no
           double-decode-query: no
         server-config:
    modbus:
      enabled: no
      detection-ports:
        dp: 502
      stream-depth: 0
    dnp3:
      enabled: no
      detection-ports:
        dp: 20000
    enip:
      enabled: no
      detection-ports:
        dp: 44818
        sp: 44818
    ntp:
      enabled: yes
    quic:
      enabled: yes
    dhcp:
      enabled: yes
    sip:
asn1-max-frames: 256
datasets:
  defaults:
  limits:
  rules:
security:
  limit-noproc: true
  landlock:
    enabled: no
    directories:
      read:
        - /usr/
        - /etc/
        - @e_sysconfdir@
  lua:
coredump:
  max-dump: unlimited
host-mode: auto
unix-command:
  enabled: auto
@e_magic_file_comment@magic-file: @e_magic_file@
legacy:
  uricontent: enabled
exception-policy: auto
engine-analysis:
  rules-fast-pattern: yes
  rules: yes
pcre:
  match-limit: 3500
  match-limit-recursion: 1500
host-os-policy:
  windows: [0.0.0.0/0]
  bsd: []
  bsd-right: []
  old-linux: []
  linux: []
  old-solaris: []
  solaris: []
  hpux10: []
  hpux11: []
  irix: []
  macos: []
  vista: []
  windows2k3: []
defrag:
  memcap: 32mb
  hash-size: 65536
  trackers: 65535
  max-frags: 65535
  prealloc: yes
  timeout: 60
flow:
  memcap: 128mb
  hash-size: 65536
  prealloc: 10000
  emergency-recovery: 30
vlan:
  use-for-tracking: true
livedev:
  use-for-tracking: true
flow-timeouts:
  default:
    new: 30
    established: 300
    closed: 0
    bypassed: 100
    emergency-new: 10
    emergency-established: 100
    emergency-closed: 0
    emergency-bypassed: 50
  tcp:
    new: 60
    established: 600
    closed: 60
    bypassed: 100
    emergency-new: 5
    emergency-established: 100
    emergency-closed: 10
    emergency-bypassed: 50
  udp:
    new: 30
    established: 300
    bypassed: 100
    emergency-new: 10
    emergency-established: 100
    emergency-bypassed: 50
  icmp:
    new: 30
    established: 300
    bypassed: 100
    emergency-new: 10
    emergency-established: 100
    emergency-bypassed: 50
stream:
  memcap: 64mb
  checksum-validation: yes
  inline: auto
  reassembly:
    memcap: 256mb
    depth: 1mb
    toserver-chunk-size: 2560
    toclient-chunk-size: 2560
    randomize-chunk-size: yes
host:
  hash-size: 4096
  prealloc: 1000
  memcap: 32mb
decoder:
  teredo:
    enabled: true
    ports: $TEREDO_PORTS
  vxlan:
    enabled: true
    ports: $VXLAN_PORTS
  geneve:
    enabled: true
    ports: $GENEVE_PORTS
detect:
  profile: medium
  custom-values:
    toclient-groups: 3
    toserver-groups: 25
  sgh-mpm-context: auto
  prefilter:
    default: mpm
  grouping:
  profiling:
    grouping:
      dump-to-disk: false
      include-rules: false
      include-mpm-stats: false
mpm-algo: auto
spm-algo: auto
threading:
  set-cpu-affinity: no
  cpu-affinity:
    - management-cpu-set:
        cpu: [ 0 ]
    - receive-cpu-set:
        cpu: [ 0 ]
    - worker-cpu-set:
        cpu: [ "all" ]
        mode: "exclusive"
        prio:
          low: [ 0 ]
          medium: [ "1-2" ]
          high: [ 3 ]
          default: "medium"
  detect-thread-ratio: 1.0
luajit:
  states: 128
profiling:
  rules:
    enabled: yes
    filename: rule_perf.log
    append: yes
    limit: 10
    json: @e_enable_evelog@
  keywords:
    enabled: yes
    filename: keyword_perf.log
    append: yes
  prefilter:
    enabled: yes
    filename: prefilter_perf.log
    append: yes
  rulegroups:
    enabled: yes
    filename: rule_group_perf.log
    append: yes
  packets:
    enabled: yes
    filename: packet_stats.log
    append: yes
    csv:
      enabled: no
      filename: packet_stats.csv
  locks:
    enabled: no
    filename: lock_stats.log
    append: yes
  pcap-log:
    enabled: no
    filename: pcaplog_stats.log
    append: yes
nfq:
nflog:
  - group: 2
    buffer-size: 18432
  - group: default
    qthreshold: 1
    qtimeout: 100
    max-size: 20000
capture:
netmap:
 - interface: eth2
 - interface: default
pfring:
  - interface: eth0
    threads: auto
    cluster-id: 99
    cluster-type: cluster_flow
  - interface: default
ipfw:
napatech:
    streams: ["0-3"]
    enable-stream-stats: no
    auto-config: yes
    hardware-bypass: yes
    inline: no
    ports: [0-1,2-3]
    hashmode: hash5tuplesorted
default-rule-path: @e_defaultruledir@
rule-files:
  - suricata.rules
classification-file: @e_sysconfdir@classification.config
reference-config-file: @e_sysconfdir@reference.config
"""
