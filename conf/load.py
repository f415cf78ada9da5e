"""Build a `Config` from a suricata.yaml-shaped file or from `run`/`check` quick flags.

Parsing collects every problem before raising `ConfigError`, so one run shows
them all.  Rules of the road:

* A whole suricata.yaml loads: top-level sections ipsbridge does not use
  (outputs, logging, detect, threading, ...) give ONE warning each.
* Every key inside a section ipsbridge reads (af-packet entries, vars,
  stream, flow, flow-timeouts, defrag, decoder, exception-policy, pcap-file,
  app-layer, ipsbridge) is either honoured -- it lands in the typed settings
  and has an effect -- or judged by the `UNIMPLEMENTED` table below:
    - `NoEffect`: Suricata's allocation/performance tuning with no
      behavioural meaning here (hash-size, prealloc, mmap-locked, ...):
      accepted with ONE warning, "no effect in ipsbridge: <why>";
    - `Refused`: a key whose Suricata meaning changes what is forwarded,
      dropped, detected or logged, which ipsbridge does not do: an error
      naming file:line and what to use instead.  Values that mean what
      ipsbridge does anyway (`urgent.policy: inline`) are accepted silently, and
      the value Suricata's stock suricata.yaml carries (`decoder.teredo`,
      `defrag.memcap: 32mb`) is accepted with a warning saying what
      ipsbridge does instead, so that stock file still loads.
  A key Suricata does not know is an error with a did-you-mean.
* Booleans take yes/no/true/false/on/off/1/0 like Suricata; `threads: auto` is
  one thread per CPU.  Sizes (memcaps, depth, chunk sizes) are Suricata's size
  strings (`parse_size`).  Every number is bounded to what can work, and NaN
  or infinity is refused wherever a number is read: `threads` up to 4 per CPU
  (`conf.validate.max_threads`), rings within 1 GiB per socket and, all
  together, half the memory (`conf.validate.ring_memory_problems`).
* The YAML itself is bounded before it is parsed: MAX_YAML_BYTES (2 MiB) for a
  file and the files it includes together, MAX_YAML_DEPTH levels of nesting,
  and aliases may not expand it beyond what 2 MiB could hold -- each refused
  in one line naming the file and the bound.
* `stream.reassembly.randomize-chunk-size` (default yes) is applied here, once
  per load, as Suricata does at start-up: each chunk size moves by up to
  +/- randomize-chunk-range/2 percent.  The engine only sees the result;
  `load_text(..., rng=random.Random(seed))` makes it reproducible.
* app-layer: the protocols ipsbridge parses (http, tls, dns, smtp, ftp) are read into
  `Config.app` (= EngineSettings.app: each module's Settings, and the
  protocols whose `enabled` is no / detection-only, which the app-layer stage
  honours); `enabled` and `detection-ports` are looked up as Suricata does
  (`<proto>.enabled`, else `<proto>.<tcp|udp>.enabled`).  Suricata's other
  protocols (smb, ssh, ...) give ONE warning together: their `enabled` must
  still be a value Suricata takes, their other keys are not read.  A top-level
  `libhtp:` or `tls: no-reassemble` (older places Suricata 7 still reads) is
  refused with where to move it.  Where ipsbridge is stricter: unknown values
  of encryption-handling / ja3-fingerprints (Suricata falls back to its
  default silently) and a `dp:` written as a YAML list (Suricata ignores it,
  so nothing would be probed) are refused.  SMTP and FTP have no detection-ports
  (Suricata detects them by patterns only); SMTP's content-limit 0 means no limit and
  header-value-depth 0 its default (2000), as in Suricata.
* Exception policies are kept as written (`auto` allowed; a specific policy
  left out is `conf.model.POLICY_UNSET`: the master `exception-policy`
  decides); `conf.build.engine_settings` resolves them for a mode.  The
  combinations Suricata refuses are refused (`conf.validate.policy_problems`).
* Relative `default-rule-path`, `classification-file` and `threshold-file`
  are taken relative to the directory of the YAML file (Suricata takes them
  relative to its working directory; ipsbridge's way lets a config directory
  be moved as a whole).
  Without `default-rule-path` the rules are looked up next to the YAML file.
* `cluster-id` left out: 99, 98, ... in entry order (as Suricata does),
  skipping ids that some entry sets explicitly.
* `tpacket-v3: yes` on an ips/tap interface is turned off (V2) with a warning:
  a V3 block is handed over when full or after block-timeout ms, which on a
  quiet link delays every forwarded frame by up to that long.
* `defrag` defaults to yes on IDS interfaces and is always off on ips/tap
  interfaces (a warning when set to yes): with the fanout defrag flag the
  kernel hands the socket the reassembled datagram, which is larger than the
  MTU and cannot be sent on -- fragmented traffic would be lost (measured in
  the lab: a 4000-byte ping through the bridge fails with defrag on, passes
  with it off).

Checked against Suricata 7.0 (main-7.0.x: suricata.yaml.in, stream-tcp.c,
flow.c, defrag*.c, decode*.c, runmode-af-packet.c, source-pcap-file.c,
util-misc.c, util-exception-policy.c, app-layer-detect-proto.c,
app-layer-parser.c, app-layer-htp.c, app-layer-ssl.c, app-layer-smtp.c,
util-decode-mime.c, detect-file-data.c, app-layer-ftp.c, libhtp 0.5's
htp_config.c).  Where ipsbridge is deliberately stricter: a size like "1x5mb"
(Suricata's pattern lets any character stand for the decimal point) is refused; values Suricata warns about and replaces
by its default (flow.emergency-recovery 0, a negative timeout) are refused;
a randomized chunk size is kept within 1..65535 instead of wrapping around.
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import re
from dataclasses import dataclass
from fractions import Fraction

import structlog
import yaml

from conf.model import (
    APP_IPPROTOS,
    APP_SETTINGS,
    DEFAULT_ADDRESS_GROUPS,
    DEFAULT_PORT_GROUPS,
    IPPROTO_NUMBERS,
    Config,
    Interface,
    default_app,
    stream_as_written,
)
from conf.validate import (
    MAX_BLOCK_TIMEOUT,
    MAX_RING_BYTES,
    MAX_RING_FRAMES,
    MAX_STATS_INTERVAL,
    ConfigError,
    Problem,
    cpu_count,
    did_you_mean,
    max_threads,
    policy_problems,
    shown,
    thread_count_refusal,
    threads_fix,
)
from rules.addr import parse_ports
from rules.applayer import ENABLED
from rules.errors import RuleError
from rules.settings import (
    DEFAULT_TIMEOUTS,
    POLICY_VALUES,
    DecodeOptions,
    DefragSettings,
    FlowSettings,
    FlowTimeouts,
    StreamSettings,
)

log = structlog.get_logger("conf")

# Top-level keys ipsbridge reads.  Everything else is a section of Suricata's
# that ipsbridge does not use: accepted with one warning.
TOP_LEVEL = ("af-packet", "vars", "default-rule-path", "rule-files", "classification-file", "threshold-file",
             "stream", "flow", "flow-timeouts", "defrag", "decoder", "exception-policy", "pcap-file",
             "ipsbridge", "outputs", "default-log-dir", "unix-command", "app-layer")

INTERFACE_KEYS = tuple(f.name.replace("_", "-") for f in dataclasses.fields(Interface)
                       if f.name != "line")
STREAM_KEYS = ("memcap", "memcap-policy", "checksum-validation", "inline", "midstream",
               "midstream-policy", "async-oneside", "drop-invalid", "bypass", "reassembly")
REASSEMBLY_KEYS = ("memcap", "memcap-policy", "depth", "toserver-chunk-size", "toclient-chunk-size",
                   "randomize-chunk-size", "randomize-chunk-range", "raw", "check-overlap-different-data")
FLOW_KEYS = ("memcap", "emergency-recovery")
TIMEOUT_PROTOS = tuple(DEFAULT_TIMEOUTS)                     # default, tcp, udp, icmp
TIMEOUT_KEYS = tuple(f.name.replace("_", "-") for f in dataclasses.fields(FlowTimeouts))
DEFRAG_KEYS = ("timeout", "trackers", "max-frags")
DECODER_KEYS = ("vxlan", "gre")
PCAP_FILE_KEYS = ("checksum-checks",)
IPSBRIDGE_KEYS = ("eve-log", "stats-interval", "verdict-hook", "fail-open", "inspect-time-limit")
UNIX_COMMAND_KEYS = ("enabled", "filename")
UNIX_COMMAND_DIR = "/run/ipsbridge"          # a relative unix-command.filename is taken in here (Suricata: its state dir)
VARS_KEYS = ("address-groups", "port-groups")

# app-layer (the judged keys are in UNIMPLEMENTED)
APP_LAYER_KEYS = ("protocols", "error-policy")
APP_PARSED = tuple(APP_SETTINGS)                           # http, tls, dns, smtp, ftp
# Suricata 7.0's other app-layer protocols (app-layer-protos.c, the names suricata.yaml uses)
APP_OTHER = ("bittorrent-dht", "dcerpc", "dhcp", "dnp3", "enip", "http2", "ike", "imap", "krb5",
             "modbus", "mqtt", "nfs", "ntp", "pgsql", "quic", "rdp", "rfb", "sip", "smb", "snmp",
             "ssh", "telnet", "tftp")
# SMTP and FTP have no detection-ports: Suricata detects them by patterns only and reads none
APP_KEYS = {"http": ("enabled", "tcp", "libhtp"),
            "tls": ("enabled", "tcp", "detection-ports", "ja3-fingerprints", "encryption-handling",
                    "no-reassemble"),
            "dns": ("enabled", "tcp", "udp", "detection-ports"),
            "smtp": ("enabled", "tcp", "max-tx", "mime", "inspected-tracker"),
            "ftp": ("enabled", "tcp", "max-tx", "max-line-length")}
# smtp.mime / smtp.inspected-tracker keys ipsbridge reads: key -> smtp.Settings field
SMTP_MIME_BOOLS = {"decode-mime": "decode_mime", "decode-base64": "decode_base64",
                   "decode-quoted-printable": "decode_quoted_printable"}
SMTP_MIME_KEYS = (*SMTP_MIME_BOOLS, "header-value-depth")
SMTP_TRACKER_KEYS = {"content-limit": "content_limit", "content-inspect-min-size": "content_inspect_min_size"}
# Suricata's MimeDecSetConfig: a header-value-depth of 0 is its default, MAX_HEADER_VALUE
SMTP_HEADER_VALUE_DEPTH = APP_SETTINGS["smtp"]().header_value_depth
# content-limit 0 is "no limit" (detect-file-data.c): a bound no attachment's size reaches
SMTP_NO_CONTENT_LIMIT = 1 << 64
LIBHTP_KEYS = ("default-config", "server-config")
# libhtp.default-config keys ipsbridge reads: key -> (http.Settings field, minimum), sizes up to
# 4 GiB - 1 as Suricata's ParseSizeStringU32; request_body_limit is Suricata's other spelling
HTP_LIMITS = {"request-body-limit": ("request_body_limit", 0), "request_body_limit": ("request_body_limit", 0),
              "response-body-limit": ("response_body_limit", 0), "meta-field-limit": ("header_limit", 1),
              "max-tx": ("max_tx", 1),
              "request-body-minimal-inspect-size": ("request_body_minimal_inspect_size", 0),
              "response-body-minimal-inspect-size": ("response_body_minimal_inspect_size", 0)}
DETECTION_PORTS_KEYS = ("dp", "toserver")                  # toserver: Suricata's other name of dp
TLS_ENCRYPTION = ("default", "bypass", "full")
# Suricata's ConfValIsTrue / ConfValIsFalse spellings (any case), and `enabled`'s third value
_SURI_TRUE = ("1", "yes", "true", "on")
_SURI_FALSE = ("0", "no", "false", "off")
ENABLED_HELP = "write yes, no or detection-only"
PORTS_HELP = "write ports as 53, '139, 445', a range 1024:65535, any, or a port-groups variable ($DNS_PORTS)"

CHECKSUM_CHECKS = ("auto", "yes", "no", "kernel")          # af-packet (bridge.worker reads them per frame)
PCAP_CHECKSUM_CHECKS = ("auto", "yes", "no")               # pcap-file: no kernel says anything about a file
STREAM_INLINE = ("auto", "yes", "no")
BYPASS_MODES = ("kernel", "user", "off")                   # af-packet bypass (bridge.fastpath, bridge.ebpf)
EXCEPTION_POLICIES = POLICY_VALUES
_TRUE = ("yes", "true", "on", "1", "y")
_FALSE = ("no", "false", "off", "0", "n")
_AUTO_CLUSTER_ID_START = 99

# Bounds (Suricata's own where it has one).
U16_MAX, U32_MAX, U64_MAX = 0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
DEFRAG_TIMEOUT_RANGE = (1, 24 * 3600)        # Suricata refuses a defrag.timeout outside this
MAX_CHUNK_RANGE = 99                         # randomize-chunk-range "must be lower than 100"
DEFAULT_CHUNK_RANGE = 10
STOCK_DEFRAG_MEMCAP = 32 * 1024 * 1024       # defrag.memcap in Suricata 7's stock suricata.yaml

# Bounds on the YAML itself.  Parsing costs about 2 s and 60 MB of memory per MB of YAML (a 2 MB
# file of address groups: 4 s, 130 MB; a 50 MB one took 157 s and 2.5 GB), so a file that cannot
# be a configuration is refused before it is parsed.  Suricata's stock suricata.yaml is 87 KB.
MAX_YAML_BYTES = 2 * 1024 * 1024             # one file, and all its !include files together
MAX_YAML_DEPTH = 64                          # nested mappings/lists (suricata.yaml nests 7 deep)
MAX_YAML_VALUES = MAX_YAML_BYTES // 2        # values once aliases are expanded: what a file of the
                                             # size cap could hold ("a,"), so aliases cannot go further


def _yaml_cap() -> str:
    n = MAX_YAML_BYTES
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


YAML_SIZE_FIX = ("give the configuration file (Suricata's stock suricata.yaml is under 100 KB); "
                 "check that -c does not name a capture or log file")


# --------------------------------------------------------------------------- sizes
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]{2,3})?\s*")
_SIZE_UNITS = {"kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}        # any case
_SIZE_UNITS_IEC = {"KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}  # exactly this case
MEMCAP_FIX = "write a size above 0, e.g. 64mb (memcaps are byte limits; any size up to 2^64-1 is a valid bound)"
SIZE_HELP = "write a byte count, or a number with kb, mb or gb (powers of 1024), e.g. 64mb or 1.5gb"


def parse_size(value) -> Fraction:
    """A Suricata size string ("64mb", "1 kb", "1.5MB", "1048576", "2GiB") as bytes, before
    truncation to a whole number (callers compare it with their maximum first, as Suricata's
    ParseSizeStringU16/U32/U64 do).  Units are powers of 1024: kb/mb/gb in any case, or
    KiB/MiB/GiB exactly.  Raises ValueError on anything else (negative, NaN, inf, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{shown(value)} is not a size")
    text = str(value)
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"'{text}' is not a size")
    number, unit = Fraction(m.group(1)), m.group(2)
    if unit is None:
        return number
    factor = _SIZE_UNITS.get(unit.lower()) or _SIZE_UNITS_IEC.get(unit)
    if factor is None:
        raise ValueError(f"'{text}' has an unknown unit '{unit}'")
    return number * factor


def format_size(n: int) -> str:
    for unit, factor in (("gb", 1024 ** 3), ("mb", 1024 ** 2), ("kb", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def randomize_chunk(size: int, chunk_range: int, rng: random.Random) -> int:
    """Suricata's start-up randomization of a reassembly chunk size: size moves by
    size * (r - 0.5) * range / 100 for r uniform in [0, 1], truncated toward zero -- at most
    range/2 percent either way -- and is kept within 1..65535."""
    delta = int(size * (rng.random() - 0.5) * chunk_range / 100)
    return min(U16_MAX, max(1, size + delta))


# --------------------------------------------------------------------------- keys not implemented
@dataclass(frozen=True, slots=True)
class NoEffect:
    """Suricata allocation/performance tuning with no behavioural meaning in ipsbridge:
    accepted (its value still has to have the right shape) with one warning."""

    why: str
    shape: str = "any"            # bool | int | size | str | word | policy | any


@dataclass(frozen=True, slots=True)
class Refused:
    """A Suricata key whose meaning ipsbridge does not implement.

    A value in `honoured` means what ipsbridge does anyway: accepted silently (and with
    `gate`, the other keys of the same mapping are then not judged: `enabled: no` makes
    `ports` moot).  A value in `stock` is what Suricata's stock suricata.yaml carries:
    accepted so that file loads, with a warning saying `instead` (silently when `instead`
    is empty).  Any other value is refused with `message` and `fix`."""

    message: str
    fix: str
    shape: str = "bool"
    honoured: tuple = ()
    stock: tuple = ()
    instead: str = ""
    gate: bool = False


_EBPF = Refused("eBPF/XDP capture is not supported: ipsbridge reads frames through AF_PACKET rings only",
                "remove the key", shape="any")
_TUNNEL_PARENT = Refused("the carrier packet of an IP-in-IP tunnel is never flow-tracked in ipsbridge",
                         "remove the key or set it to no", honoured=(False,))
_NO_CLOSED_STATE = NoEffect("UDP and ICMP flows have no closed state (Suricata 7 does not read this "
                            "key either)", "int")


def _tunnel_decoder(name: str, var: str) -> dict:
    instead = f"ipsbridge does not decode {name}: packets on the {name} ports are inspected as plain UDP"
    fix = f"set decoder.{name.lower()}.enabled: no (or keep Suricata's stock enabled: true, ports: ${var})"
    return {
        f"decoder.{name.lower()}.enabled": Refused(f"{name} decoding is not implemented", fix,
                                                   honoured=(False,), stock=(True,), instead=instead,
                                                   gate=True),
        f"decoder.{name.lower()}.ports": Refused(f"{name} decoding is not implemented, so its ports cannot "
                                                 "be chosen", fix, shape="str", stock=(f"${var}",)),
    }


# Every Suricata 7 key, inside a section ipsbridge reads, that ipsbridge does not implement,
# by its dotted path ("af-packet.KEY" for interface entries).  A path with entries below it
# ("decoder.vntag") is a mapping whose keys are judged one by one.
UNIMPLEMENTED: dict[str, NoEffect | Refused] = {
    # af-packet
    "af-packet.mmap-locked": NoEffect("the rings are not locked in memory (mlock is a performance "
                                      "setting)", "bool"),
    "af-packet.use-emergency-flush": NoEffect("ipsbridge never flushes a ring unread: every frame is "
                                              "inspected and overload shows in kernel_drops", "bool"),
    "af-packet.v2-block-size": NoEffect("ipsbridge sizes TPACKET_V2 ring blocks from the MTU", "int"),
    "af-packet.disable-hwtimestamp": NoEffect("ipsbridge always uses the kernel's software receive "
                                              "timestamps", "bool"),
    **{f"af-packet.{k}": _EBPF for k in ("xdp-mode", "xdp-filter-file", "ebpf-lb-file", "ebpf-filter-file",
                                         "pinned-maps", "pinned-maps-name", "xdp-cpu-redirect",
                                         "use-percpu-hash")},
    # stream
    "stream.prealloc-sessions": NoEffect("TCP sessions are allocated as flows appear, bounded by "
                                         "flow.memcap and stream.memcap", "int"),
    "stream.max-sessions": NoEffect("obsolete (Suricata 7 ignores it too): sessions are bounded by "
                                    "flow.memcap and stream.memcap", "int"),
    "stream.max-syn-queued": Refused("ipsbridge tracks the first handshake of a flow and does not queue "
                                     "alternative SYN packets", "remove the key", shape="int"),
    "stream.max-synack-queued": Refused("ipsbridge tracks the first handshake of a flow and does not "
                                        "queue alternative SYN/ACK packets", "remove the key", shape="int"),
    "stream.liberal-timestamps": Refused("ipsbridge does not validate TCP timestamps (no PAWS check, no "
                                         "host OS policies)", "remove the key"),
    "stream.reassembly.segment-prealloc": NoEffect("segments are allocated as they arrive, bounded by "
                                                   "stream.reassembly.memcap", "int"),
    "stream.reassembly.max-regions": NoEffect("allocation tuning of Suricata's streaming buffer", "int"),
    "stream.reassembly.urgent.policy": Refused(
        "only 'inline' is implemented: urgent data stays part of the stream", "remove the key or set it "
        "to inline", shape="str", honoured=("inline",)),
    "stream.reassembly.urgent.oob-limit-policy": NoEffect("it only applies to urgent.policy: oob, which "
                                                          "is not implemented", "str"),
    # flow
    "flow.memcap-policy": Refused("at flow.memcap ipsbridge evicts the oldest flow and enters emergency "
                                  "mode, as Suricata's 'ignore'; no other exception policy is implemented "
                                  "for it", "remove the key or set it to ignore", shape="policy",
                                  honoured=("ignore",)),
    "flow.hash-size": NoEffect("the flow table grows as needed; flow.memcap bounds it", "int"),
    "flow.prealloc": NoEffect("flows are allocated as they appear", "int"),
    "flow.managers": NoEffect("each worker expires its own flows: there are no flow manager threads", "int"),
    "flow.recyclers": NoEffect("each worker frees its own flows: there are no flow recycler threads", "int"),
    **{f"flow-timeouts.{proto}.{k}": _NO_CLOSED_STATE for proto in ("udp", "icmp")
       for k in ("closed", "emergency-closed")},
    # defrag
    "defrag.memcap": Refused("a byte limit on IP reassembly is not implemented",
                             "remove defrag.memcap (Suricata's stock 32mb is accepted) and bound reassembly "
                             "with defrag.max-frags and defrag.trackers", shape="size",
                             stock=(STOCK_DEFRAG_MEMCAP,),
                             instead="ipsbridge bounds fragment memory by defrag.max-frags and "
                             "defrag.trackers, not by bytes"),
    "defrag.memcap-policy": Refused("ipsbridge has no defrag memcap, so no exception policy applies to it",
                                    "remove the key or set it to ignore", shape="policy",
                                    honoured=("ignore",)),
    "defrag.hash-size": NoEffect("the tracker table grows as needed; defrag.trackers bounds it", "int"),
    "defrag.prealloc": NoEffect("trackers are allocated as fragments arrive", "bool"),
    "defrag.host-config": Refused("per-host defrag settings are not implemented",
                                  "remove it; defrag.timeout applies to every host", shape="any"),
    # decoder
    **_tunnel_decoder("Teredo", "TEREDO_PORTS"),
    **_tunnel_decoder("Geneve", "GENEVE_PORTS"),
    "decoder.vntag.enabled": Refused("VN-Tag decoding is not implemented", "remove the key or set it to no",
                                     honoured=(False,), gate=True),
    "decoder.erspan.typeI.enabled": Refused("ERSPAN type I decoding is not implemented",
                                            "remove the key or set it to no", honoured=(False,), gate=True),
    "decoder.max-layers": Refused("a limit on the number of decoded layers is not implemented: ipsbridge "
                                  "decodes at most 3 nested tunnels and 3 VLAN tags", "remove the key",
                                  shape="int"),
    "decoder.recursion-level.use-for-tracking": Refused(
        "ipsbridge's flow key does not include the tunnel depth", "remove the key or set it to no",
        honoured=(False,)),
    "decoder.ipv4.ipip.enabled": Refused("ipsbridge always decodes IPv4-in-IPv4 tunnels",
                                         "remove the key or set it to yes", honoured=(True,)),
    "decoder.ipv4.ipip.track-parent-flow": _TUNNEL_PARENT,
    "decoder.ipv6.ipip-ipv4.track-parent-flow": _TUNNEL_PARENT,
    "decoder.ipv6.ipip-ipv6.track-parent-flow": _TUNNEL_PARENT,
    # pcap-file (ipsbridge replay)
    "pcap-file.buffer-size": NoEffect("replay reads capture files with buffered file I/O (and Suricata 7 "
                                      "does not read pcap-file.buffer-size either)", "size"),
    "pcap-file.delay": NoEffect("it tunes pcap-file.continuous, which ipsbridge does not have", "int"),
    "pcap-file.poll-interval": NoEffect("it tunes pcap-file.continuous, which ipsbridge does not have", "int"),
    "pcap-file.tenant-id": Refused("multi-tenancy is not implemented", "remove the key", shape="any"),
    "pcap-file.delete-when-done": Refused("replay never deletes capture files", "remove the key or set it "
                                          "to no", honoured=(False,)),
    "pcap-file.recursive": Refused("replay reads only the files directly inside a directory",
                                   "remove the key or set it to no, and give subdirectories as arguments",
                                   honoured=(False,)),
    "pcap-file.continuous": Refused("replay reads the files present when it starts and stops; watching a "
                                    "directory is not implemented", "remove the key or set it to no",
                                    honoured=(False,)),
    "pcap-file.bpf-filter": Refused("replay has no BPF filter (and Suricata 7 takes the filter from its "
                                    "command line, not from here)",
                                    "remove the key; filter the capture first, e.g. tcpdump -r IN -w OUT "
                                    "'FILTER'", shape="any"),
}


# app-layer: what ipsbridge's HTTP, TLS and DNS parsers do not make configurable.  A libhtp
# option is honoured when its value is what ipsbridge's HTTP parser does (Suricata 7.0.10 with its
# stock default-config, personality IDS: rules/applayer/http.py, http_body.py); options that
# would change the buffers are refused, the body inspection sizes accepted at their stock values.
_HTTP = "app-layer.protocols.http"
_HTP = f"{_HTTP}.libhtp.default-config"
_URI_AS_STOCK = ("ipsbridge normalizes http.uri as Suricata 7.0.10 does with its stock default-config "
                 "(personality IDS)")
_WHOLE_BODY = ("ipsbridge inspects the whole body kept so far (up to the body limit) each time it grows "
               "once it holds the minimal inspect size, in every mode: there are no inspection windows")
_SMTP = "app-layer.protocols.smtp"
_SP = Refused("detection by source port is not implemented: DNS and TLS are probed on their server port "
              "(dp)", "remove it and list the server ports under dp", shape="any")


def _htp_uri_option(name: str, honoured: tuple = (), shape: str = "bool") -> dict:
    default = f" or set it to {honoured[0] if honoured[0] is not False else 'no'}" if honoured else ""
    return {f"{_HTP}.{name}": Refused(f"{_URI_AS_STOCK}; other values of {name} are not implemented",
                                      f"remove the key{default}", shape=shape, honoured=honoured)}


def _inspect_size(name: str, stock: int) -> dict:
    return {f"{_HTP}.{name}": Refused("body inspection windows are not implemented",
                                      f"remove the key (Suricata's stock {format_size(stock)} is accepted)",
                                      shape="size", stock=(stock,), instead=_WHOLE_BODY)}


APP_LAYER_UNIMPLEMENTED: dict[str, NoEffect | Refused] = {
    # http
    f"{_HTTP}.memcap": Refused("a memory cap on HTTP state is not implemented: it is bounded per flow by "
                               "meta-field-limit, the body limits and max-tx, and flows by flow.memcap",
                               "remove the key (Suricata's default 0, no cap, is accepted)", shape="size",
                               honoured=(0,)),
    f"{_HTTP}.byterange.memcap": NoEffect("ipsbridge does not put files sent in range requests together "
                                          "(no file tracking)", "size"),
    f"{_HTTP}.byterange.timeout": NoEffect("ipsbridge does not put files sent in range requests together "
                                           "(no file tracking)", "int"),
    f"{_HTP}.personality": Refused(f"{_URI_AS_STOCK}; other personalities are not implemented",
                                   "remove the key or set it to IDS", shape="word", honoured=("ids",)),
    **_htp_uri_option("double-decode-path", (False,)),
    **_htp_uri_option("double-decode-query", (False,)),
    **_htp_uri_option("uri-include-all", (False,)),
    **_htp_uri_option("query-plusspace-decode", (False,)),
    **_htp_uri_option("path-convert-lowercase", (False,)),     # Suricata turns it off with a personality
    **_htp_uri_option("path-nul-encoded-terminates", (False,)),
    **_htp_uri_option("path-nul-raw-terminates", (False,)),
    **_htp_uri_option("path-url-encoding-invalid-handling", ("preserve_percent",), "word"),
    **{k: v for name in ("path-convert-backslash-separators", "path-bestfit-replacement-char",
                         "path-separators-compress", "path-separators-decode", "path-u-encoding-decode",
                         "path-utf8-convert-bestfit")
       for k, v in _htp_uri_option(name, shape="any").items()},
    **_inspect_size("request-body-inspect-window", 4 * 1024),
    **_inspect_size("response-body-inspect-window", 16 * 1024),
    f"{_HTP}.randomize-inspection-sizes": NoEffect(f"{_WHOLE_BODY} to randomize", "bool"),
    f"{_HTP}.randomize-inspection-range": NoEffect(f"{_WHOLE_BODY} to randomize", "int"),
    f"{_HTP}.http-body-inline": Refused(
        "only inline body inspection is implemented", "remove the key or set it to yes", shape="word",
        honoured=("yes",), stock=("auto",),
        instead="ipsbridge inspects HTTP bodies as they arrive in every mode (http-body-inline: yes); "
        "Suricata's auto does so in IPS mode only"),
    f"{_HTP}.response-body-decompress-layer-limit": Refused(
        "ipsbridge decodes at most 2 content codings per response (libhtp's default); other limits are not "
        "implemented", "remove the key or set it to 2", shape="size", honoured=(2,)),
    f"{_HTP}.swf-decompression.enabled": Refused(
        "SWF decompression is not implemented", "remove the key or set it to no", honoured=(False,), gate=True),
    **{f"{_HTP}.swf-decompression.{k}": NoEffect("it tunes swf-decompression, which ipsbridge does not do",
                                                 shape)
       for k, shape in (("type", "str"), ("compress-depth", "size"), ("decompress-depth", "size"))},
    f"{_HTP}.lzma-enabled": Refused("LZMA-encoded bodies are not decoded (libhtp's default): they are "
                                    "inspected as sent", "remove the key or set it to no", honoured=(False,)),
    f"{_HTP}.lzma-memlimit": NoEffect("it tunes lzma-enabled, which ipsbridge does not do", "size"),
    f"{_HTP}.compression-bomb-limit": Refused(
        "ipsbridge stops decompressing a body past 1mb decoded at a ratio over 2048 (libhtp's default); "
        "other limits are not implemented", "remove the key or set it to 1mb", shape="size",
        honoured=(1024 * 1024,)),
    f"{_HTP}.decompression-time-limit": NoEffect(
        "ipsbridge reads no clock while decoding: decompression is bounded by bytes (the body limit, "
        "1mb at a ratio over 2048), a frame by ipsbridge.inspect-time-limit", "int"),
    f"{_HTP}.headers-limit": Refused(
        "a limit on the number of header fields is not implemented", "remove the key", shape="size",
        stock=(1024,), instead="ipsbridge keeps every header field of a message (the header block is "
        "bounded by meta-field-limit)"),
    # tls
    "app-layer.protocols.tls.ja4-fingerprints": Refused(
        "JA4 fingerprints are not computed (no ja4 keyword, no TLS fields in EVE)",
        "remove the key or set it to no", shape="word", honoured=("no", "auto")),
    # dns
    **{f"app-layer.protocols.dns.{k}": NoEffect("obsolete (Suricata 7 does not read it either): DNS "
                                                "transactions are freed once inspected", shape)
       for k, shape in (("request-flood", "int"), ("global-memcap", "size"), ("state-memcap", "size"))},
    # smtp (rules/applayer/smtp.py: no raw extraction, no EVE smtp records, its own bound on
    # attachment bytes not inspected instead of Suricata's pruning by content-inspect-window)
    f"{_SMTP}.raw-extraction": Refused(
        "raw extraction (the whole mail as one file in file.data, which Suricata does only with "
        "decode-mime: no) is not implemented", "remove the key or set it to no (with decode-mime: yes Suricata "
        "turns it off too)", honoured=(False,)),
    **{f"{_SMTP}.mime.{k}": NoEffect("it only changes what Suricata's smtp EVE records carry (no rule keyword "
                                     "reads it in Suricata 7.0), and ipsbridge writes no smtp records", shape)
       for k, shape in (("extract-urls", "bool"), ("extract-urls-schemes", "any"), ("log-url-scheme", "bool"),
                        ("body-md5", "bool"))},
    f"{_SMTP}.inspected-tracker.content-inspect-window": Refused(
        "pruning an attachment's data by content-inspect-window is not implemented",
        "remove the key (Suricata's stock 4kb is accepted)", shape="size", stock=(4096,),
        instead="each inspection of an attachment's file.data sees the bytes added since the last, as "
        "Suricata 7.0 for SMTP (it uses the window only to prune data detection did not read); ipsbridge keeps "
        f"up to {format_size(APP_SETTINGS['smtp']().max_pending)} (at least content-inspect-min-size) of it "
        "not inspected, then lets the oldest go"),
    # ftp
    "app-layer.protocols.ftp.memcap": Refused(
        "a memory cap on FTP state is not implemented: it is bounded per flow by max-tx and max-line-length, "
        "and flows by flow.memcap", "remove the key (Suricata's default 0, no cap, is accepted)", shape="size",
        honoured=(0,)),
    # detection by source port
    **{f"app-layer.protocols.{base}.detection-ports.{k}": _SP
       for base in ("tls", "tls.tcp", "dns", "dns.tcp", "dns.udp") for k in ("sp", "toclient")},
}
UNIMPLEMENTED.update(APP_LAYER_UNIMPLEMENTED)


def _children(path: str) -> tuple[str, ...]:
    """Names directly below `path` in UNIMPLEMENTED (leaves and mappings)."""
    prefix = path + "."
    return tuple(dict.fromkeys(k[len(prefix):].split(".")[0] for k in UNIMPLEMENTED if k.startswith(prefix)))



# --------------------------------------------------------------------------- YAML with line numbers
class _Map(dict):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    line = 0
    key_lines: dict
    texts: dict              # key -> the scalar as written ("off" and "no" both load as False)

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)

    def text_of(self, key) -> str | None:
        return self.texts.get(key)


class _Limit(yaml.MarkedYAMLError):
    """A bound on the YAML itself (size, nesting, expanded aliases) was crossed: refused with
    its own fix, not as a syntax error."""

    def __init__(self, problem: str, mark, fix: str):
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


def _read_yaml(path: str, limit: int) -> str | None:
    """The text of a YAML file, or None when it is larger than `limit` bytes (a regular file's
    size is read before any of it; other files are read up to the limit).  Raises OSError,
    and UnicodeDecodeError for a file that is not UTF-8."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            return None
        data = fh.read(limit + 1)
    if len(data) > limit:
        return None
    return data.decode("utf-8")


def _children_of(node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return ()


def _expanded_values(root: yaml.Node) -> int:
    """How many values (scalars, mappings, lists) the document holds once every alias is written
    out: `&a [x, x]` used ten times in `&b [...]`, and b ten times, is 10 x 10 x 3 values from a
    few lines.  Counted on the composed nodes, each once (an alias is the anchor's node again);
    a node inside itself (the constructor refuses it) counts nothing the second time."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = min(MAX_YAML_VALUES + 1, 1 + sum(sizes.get(id(c), 0) for c in _children_of(node)))
            continue
        if key in sizes or key in on_path:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children_of(node) if id(c) not in sizes)
    return sizes[id(root)]


class _Loader(yaml.SafeLoader):
    """SafeLoader with line numbers (`_Map`), Suricata's `!include`, and the bounds above:
    nesting depth while composing, values after alias expansion before constructing, bytes
    read through `!include` (`budget`: what the file and its includes may still add)."""

    nesting = 0

    def compose_node(self, parent, index):
        if self.nesting >= MAX_YAML_DEPTH:
            raise _Limit(f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark,
                         "a configuration nests a few levels; look for an unclosed '[' or '{'")
        self.nesting += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.nesting -= 1

    def bounded_data(self):
        """get_single_data, refusing a document that aliases expand beyond MAX_YAML_VALUES."""
        node = self.get_single_node()
        if node is None:
            return None
        if _expanded_values(node) > MAX_YAML_VALUES:
            raise _Limit(f"aliases expand the document to more than {MAX_YAML_VALUES} values (what a "
                         f"{_yaml_cap()} file could hold)", node.start_mark,
                         "write the values out, or reuse anchors (&name / *name) less deeply")
        return self.construct_document(node)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    out.texts = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            key = str(key)
        if key in out:
            loader.duplicates.append((key, key_node.start_mark.line + 1))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode):
            out.texts[key] = value_node.value
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def _construct_include(loader: _Loader, node: yaml.Node):
    """Suricata's `key: !include other.yaml` (path relative to the including file)."""
    name = loader.construct_scalar(node)
    path = name if os.path.isabs(name) else os.path.join(loader.base_dir, name)
    if loader.depth > 8:
        raise yaml.constructor.ConstructorError(None, None, f"!include nested too deep at {name}",
                                                node.start_mark)
    try:
        text = _read_yaml(path, loader.budget[0])
    except OSError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"!include {name}: {exc.strerror}",
                                                node.start_mark) from None
    except UnicodeDecodeError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"!include {name}: not UTF-8 text ({exc.reason})",
                                                node.start_mark) from None
    if text is None:
        raise _Limit(f"!include {name}: the configuration and the files it includes are larger than "
                     f"{_yaml_cap()} together", node.start_mark, YAML_SIZE_FIX)
    loader.budget[0] -= len(text)
    try:
        inner = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"!include {name}: character #x{exc.character:04x} is not allowed in YAML",
            node.start_mark) from None
    inner.base_dir, inner.depth, inner.duplicates = os.path.dirname(path), loader.depth + 1, []
    inner.budget = loader.budget
    try:
        return inner.bounded_data()
    finally:
        inner.dispose()


_Loader.add_constructor("!include", _construct_include)


def _checked_scalar(construct):
    """PyYAML's scalar constructors raise ValueError, KeyError, AttributeError or IndexError
    for a value its tag cannot hold, whether written (`!!int abc`, `!!int` with no value,
    `!!timestamp 2:01-12-14`) or resolved from a plain scalar (`2001-13-45` looks like a
    date): a ConstructorError at the value instead, which load_text reports at its line like
    any YAML error."""
    def checked(loader, node):
        try:
            return construct(loader, node)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError, IndexError) as exc:
            value = node.value if len(node.value) <= 40 else node.value[:40] + "..."
            why = f" ({exc})" if isinstance(exc, ValueError) and len(str(exc)) < 80 else ""
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}{why}", node.start_mark) from None
    return checked


for _tag in ("null", "bool", "int", "float", "binary", "timestamp", "str"):
    _tag = f"tag:yaml.org,2002:{_tag}"
    _Loader.add_constructor(_tag, _checked_scalar(yaml.SafeLoader.yaml_constructors[_tag]))


class _Parser:
    """Turns the YAML tree into a Config, collecting Problems."""

    def __init__(self, source: str, base_dir: str, rng: random.Random | None = None):
        self.source = source
        self.base_dir = base_dir
        self.rng = rng if rng is not None else random.Random()
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}

    # ---- reporting
    def error(self, where, key, message, fix, line=0):
        self.problems.append(Problem(where, str(key), message, fix, self.source, line))

    def warn(self, event, where, key, line=0, **kw):
        log.warning(event, where=where, key=key, file=self.source, line=line, **kw)

    def check_keys(self, where: str, mapping: _Map, known, path: str | None = None):
        """Unknown keys of `mapping` are errors with a did-you-mean; keys Suricata knows that
        ipsbridge does not implement (UNIMPLEMENTED below `path`) are judged."""
        path = where if path is None else path
        others = _children(path)
        gated = self.gate_closed(path, mapping)
        for key in mapping:
            if key in known:
                continue
            line = mapping.line_of(key)
            if key in others:
                spec = UNIMPLEMENTED.get(f"{path}.{key}")
                if not gated or isinstance(spec, Refused) and spec.gate:
                    self.judge(where, f"{path}.{key}", key, mapping[key], line)
            else:
                self.error(where, key, "unknown key" + did_you_mean(key, tuple(known) + others),
                           "correct the spelling or remove the key", line)

    def gate_closed(self, path: str, mapping: _Map) -> bool:
        """A `gate` key of this mapping (`enabled`) holds a value that switches the feature off:
        its sibling keys mean nothing then."""
        for key, value in mapping.items():
            spec = UNIMPLEMENTED.get(f"{path}.{key}")
            if isinstance(spec, Refused) and spec.gate:
                v = self.shaped(spec.shape, path, key, value, mapping.line_of(key), report=False)
                if v is not None and v in spec.honoured:
                    return True
        return False

    def judge(self, where: str, path: str, key: str, value, line: int) -> None:
        """One key of UNIMPLEMENTED (or a mapping of them) as the table says."""
        spec = UNIMPLEMENTED.get(path)
        if spec is None:                                   # a mapping of judged keys
            if not isinstance(value, _Map):
                self.error(where, key, "must be a mapping", f"indent its keys under '{key}:'", line)
                return
            self.check_keys(f"{where}.{key}", value, (), path)
            return
        v = self.shaped(spec.shape, where, key, value, line)
        if v is None and spec.shape != "any":
            return                                         # wrong shape: already an error
        if isinstance(spec, NoEffect):
            self.warn("config_key_ignored", where, key, line, reason=f"no effect in ipsbridge: {spec.why}")
        elif spec.shape != "any" and v in spec.honoured:
            pass
        elif spec.shape != "any" and v in spec.stock:
            if spec.instead:
                self.warn("config_key_stock_value", where, key, line,
                          reason=f"{spec.instead}; accepted as Suricata's stock value, any other value is refused")
        else:
            self.error(where, key, spec.message, spec.fix, line)

    def shaped(self, shape, where, key, value, line, report=True):
        if not report:
            saved, self.problems = self.problems, []
            try:
                return self.shaped(shape, where, key, value, line)
            finally:
                self.problems = saved
        if shape == "bool":
            return self.as_bool(where, key, value, line)
        if shape == "int":
            return self.as_int(where, key, value, line, minimum=0, maximum=U64_MAX)
        if shape == "size":
            return self.as_size(where, key, value, line, minimum=0, maximum=U64_MAX)
        if shape == "str":
            v = self.as_str(where, key, value, line)
            return v.strip() if v is not None else None
        if shape == "policy":
            return self.as_policy(where, key, value, line)
        if shape == "word":
            return self.as_word(where, key, value, line)
        return value

    # ---- typed values
    def as_bool(self, where, key, value, line):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        self.error(where, key, f"{shown(value)} is not a boolean", "write yes or no", line)
        return None

    def as_int(self, where, key, value, line, minimum=None, maximum=None, fix=None):
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            result = int(value)
        else:
            self.error(where, key, f"{shown(value)} is not an integer", "write a whole number", line)
            return None
        if minimum is not None and result < minimum:
            self.error(where, key, f"{result} is below the minimum {minimum}",
                       fix or f"write a number of at least {minimum}", line)
            return None
        if maximum is not None and result > maximum:
            self.error(where, key, f"{result} is above the maximum {maximum}",
                       fix or f"write a number of at most {maximum}", line)
            return None
        return result

    def as_number(self, where, key, value, line, minimum=None, maximum=None, unit="seconds"):
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None or not math.isfinite(number):
            self.error(where, key, f"{shown(value)} is not a number", f"write a finite number of {unit}", line)
            return None
        if minimum is not None and number < minimum or maximum is not None and number > maximum:
            self.error(where, key, f"{shown(value)} is outside {minimum}..{maximum}",
                       f"write a number of {unit} between {minimum} and {maximum}", line)
            return None
        return number

    def as_size(self, where, key, value, line, minimum=0, maximum=U64_MAX, fix=None):
        """A Suricata size string as a whole number of bytes within minimum..maximum."""
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.error(where, key, str(exc), SIZE_HELP, line)
            return None
        if size > maximum:
            self.error(where, key, f"{shown(value)} is above the maximum {maximum}",
                       fix or f"write at most {format_size(maximum)}", line)
            return None
        result = int(size)
        if result < minimum:
            self.error(where, key, f"{shown(value)} is below the minimum {minimum}",
                       fix or f"write at least {minimum}", line)
            return None
        return result

    def as_str(self, where, key, value, line, allow_none=False):
        if value is None and allow_none:
            return None
        if isinstance(value, bool):
            self.error(where, key, f"{shown(value)} is a boolean where a string is expected",
                       "quote the value", line)
            return None
        if isinstance(value, (str, int, float)):
            return str(value)
        self.error(where, key, f"expected a string, got a {type(value).__name__}",
                   "write a single value", line)
        return None

    def as_word(self, where, key, value, line):
        """A word Suricata compares without case, its true/false spellings (and YAML booleans)
        read as yes/no: "IDS" -> "ids", "Off" -> "no", true -> "yes"."""
        if isinstance(value, bool):
            return "yes" if value else "no"
        text = self.as_str(where, key, value, line)
        if text is None:
            return None
        text = text.strip().lower()
        return "yes" if text in _SURI_TRUE else "no" if text in _SURI_FALSE else text

    def as_enabled(self, where, key, value, line):
        """app-layer.protocols.*.enabled: yes, no (any of Suricata's true/false spellings) or
        detection-only; anything else (Suricata exits on it) is refused."""
        v = self.as_word(where, key, value, line) if value is not None else None
        if v in ("yes", "no", "detection-only"):
            return v
        if v is not None or value is None:
            self.error(where, key, f"{shown(value)} is not yes, no or detection-only", ENABLED_HELP, line)
        return None

    def as_choice(self, where, key, value, line, choices, *, bools=False):
        if bools and isinstance(value, bool):
            value = "yes" if value else "no"
        text = self.as_str(where, key, value, line)
        if text is None:
            return None
        if text not in choices:
            self.error(where, key, f"unknown value '{text}'" + did_you_mean(text, choices),
                       "use one of " + ", ".join(choices), line)
            return None
        return text

    def as_policy(self, where, key, value, line):
        """An exception policy as written (Suricata's exact spelling)."""
        if value == "rejectboth":
            self.error(where, key, "'rejectboth' (a reset to both sides) is not implemented",
                       "use reject (a reset or ICMP error to the sender of the packet)", line)
            return None
        return self.as_choice(where, key, value, line, EXCEPTION_POLICIES)

    def as_threads(self, where, key, value, line):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return min(cpu_count(), max_threads())
        if isinstance(value, int) and not isinstance(value, bool) or \
                isinstance(value, str) and value.strip().isdigit():
            return self.as_int(where, key, value, line, minimum=1, maximum=max_threads(),
                               fix=threads_fix())
        self.error(where, key, f"{shown(value)} is not a thread count",
                   "write a positive integer or 'auto' (one per CPU)", line)
        return None

    def path(self, value: str) -> str:
        value = os.path.expanduser(value)
        return value if os.path.isabs(value) else os.path.normpath(os.path.join(self.base_dir, value))

    def mapping(self, raw, where: str, line: int, hint: str):
        """`raw` when it is a mapping (None when absent); an error otherwise."""
        if raw is None or isinstance(raw, _Map):
            return raw
        self.error(where, "", "must be a mapping", hint, line)
        return None

    # ---- sections
    def interface_entry(self, entry, index: int):
        """Raw typed values of one af-packet entry: (name, {field: value}, line)."""
        if not isinstance(entry, _Map):
            self.error("af-packet", f"[{index}]", "entry is not a mapping",
                       "write entries as '- interface: NAME' followed by indented keys")
            return None
        name = entry.get("interface")
        if name is None or isinstance(name, (bool, dict, list)):
            self.error("af-packet", "interface", f"entry {index + 1} has no 'interface'",
                       "start the entry with '- interface: NAME'", entry.line)
            return None
        name = str(name)
        self.check_keys(name, entry, INTERFACE_KEYS, "af-packet")
        values = {}
        for key, value in entry.items():
            if key not in INTERFACE_KEYS or key == "interface":
                continue
            line = entry.line_of(key)
            field = key.replace("-", "_")
            if key == "threads":
                v = self.as_threads(name, key, value, line)
            elif key == "cluster-id":
                v = self.as_int(name, key, value, line, minimum=0, maximum=U16_MAX,
                                fix="pick a fanout group id between 0 and 65535 (PACKET_FANOUT takes 16 bits)")
            elif key == "cluster-type":
                from conf.model import CLUSTER_TYPES
                v = self.as_choice(name, key, value, line, CLUSTER_TYPES)
            elif key == "copy-mode":
                if value is None or isinstance(value, str) and value.lower() == "none":
                    values[field] = None
                    continue
                v = self.as_choice(name, key, value, line, ("ips", "tap", "none"))
            elif key in ("copy-iface", "bpf-filter"):
                v = self.as_str(name, key, value, line, allow_none=True)
                if v is None:
                    values[field] = None
                    continue
            elif key == "checksum-checks":
                v = self.as_choice(name, key, value, line, CHECKSUM_CHECKS, bools=True)
            elif key == "bypass":
                # Suricata's boolean: yes = bypass in the kernel (eBPF), no = only its own
                # user-space (local) bypass; `off` is ours (YAML reads it as a boolean too)
                if isinstance(value, bool):
                    text = (entry.text_of(key) or "").lower()
                    value = "off" if text == "off" else "kernel" if value else "user"
                v = self.as_choice(name, key, value, line, BYPASS_MODES)
            elif key == "ring-size":
                v = self.as_int(name, key, value, line, minimum=1, maximum=MAX_RING_FRAMES,
                                fix=f"write at most {MAX_RING_FRAMES} frames: a ring must stay below "
                                f"{format_size(MAX_RING_BYTES)} per socket (2048-byte frames at MTU 1500); "
                                "the default 2048 is usually enough")
            elif key == "block-size":
                v = self.as_int(name, key, value, line, minimum=1, maximum=MAX_RING_BYTES,
                                fix=f"write at most {MAX_RING_BYTES} bytes (a V3 block must fit in the ring)")
            elif key == "block-timeout":
                v = self.as_int(name, key, value, line, minimum=1, maximum=MAX_BLOCK_TIMEOUT,
                                fix=f"write 1..{MAX_BLOCK_TIMEOUT} ms (a V3 block held longer only delays "
                                "its frames)")
            elif key == "buffer-size":
                v = self.as_int(name, key, value, line, minimum=0, maximum=2 ** 31 - 1,
                                fix="write a byte count below 2 GiB (SO_RCVBUF is an int), or 0 for the "
                                "kernel default")
            else:  # the booleans
                v = self.as_bool(name, key, value, line)
            if v is not None:
                values[field] = v
        return name, values, entry.line

    def af_packet(self, raw, line) -> list[Interface]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error("af-packet", "", "must be a list of '- interface: NAME' entries",
                       "write each interface as a list item", line)
            return []
        parsed = [self.interface_entry(e, i) for i, e in enumerate(raw)]
        parsed = [p for p in parsed if p is not None]
        defaults = {}
        for name, values, _ in parsed:
            if name == "default":
                defaults = values
        out = []
        for name, values, entry_line in parsed:
            if name == "default":
                continue
            merged = {**defaults, **values}
            iface = Interface(interface=name, line=entry_line, **merged)
            if iface.copy_mode in ("ips", "tap") and iface.defrag:
                iface.defrag = False
                if "defrag" in merged:
                    self.warn("config_defrag_forced_off", name, "defrag", entry_line,
                              reason="on an inline interface the kernel would hand over reassembled "
                              "datagrams larger than the MTU, which cannot be forwarded")
            if iface.copy_mode in ("ips", "tap") and iface.tpacket_v3:
                iface.tpacket_v3 = False
                self.warn("config_tpacket_v3_forced_off", name, "tpacket-v3", entry_line,
                          reason="inline interfaces use TPACKET_V2: a V3 block waits up to "
                          "block-timeout ms before its frames are forwarded")
            out.append(iface)
        return out

    def vars(self, raw, line) -> dict[str, dict[str, str]]:
        out = {"address-groups": dict(DEFAULT_ADDRESS_GROUPS), "port-groups": dict(DEFAULT_PORT_GROUPS)}
        if raw is None:
            return out
        if not isinstance(raw, _Map):
            self.error("vars", "", "must be a mapping with address-groups and port-groups",
                       "indent 'address-groups:' and 'port-groups:' under 'vars:'", line)
            return out
        self.check_keys("vars", raw, VARS_KEYS)
        written: list = []
        for group in VARS_KEYS:
            section = raw.get(group)
            if section is None:
                continue
            if not isinstance(section, _Map):
                self.error("vars", group, "must be a mapping of NAME: value",
                           "write one 'NAME: value' per line", raw.line_of(group))
                continue
            for name, value in section.items():
                if isinstance(value, list):  # unquoted [a, b] is a YAML list: mean the same group
                    value = "[" + ",".join(str(v) for v in value) + "]"
                text = self.as_str(f"vars.{group}", name, value, section.line_of(name))
                if text is not None:
                    out[group][str(name)] = text
                    written.append((group, str(name), section.line_of(name)))
        self.check_vars(out, written)
        return out

    def check_vars(self, out: dict, written: list) -> None:
        """Every variable the file defines must compile (an address like 10.0.0.0/33, a port
        group [80,abc], a variable defined through itself): refused here with its line, not
        rule by rule when a rule happens to use it."""
        from rules import addr
        from rules.errors import RuleError

        for group, name, line in written:
            parse = addr.parse_addr if group == "address-groups" else addr.parse_ports
            try:
                parse(f"${name}", vars=out, column=1)
            except RuleError as e:
                why = e.message
                prefix = f"in ${name}: "
                if why.startswith(prefix):
                    why = why[len(prefix):]
                kind = "an address" if group == "address-groups" else "a port"
                self.error(f"vars.{group}", name, f"{why}", f"write {kind} group Suricata accepts "
                           f"({'198.51.100.0/24, [a,b], !$VAR' if kind == 'an address' else '80, [80,443], 1024:, !$VAR'})",
                           line)

    def policy(self, where: str, raw: _Map, key: str, dotted: str, out: dict, field: str) -> None:
        """An exception policy, stored as written; its line is kept for later refusals."""
        if key in raw:
            v = self.as_policy(where, key, raw[key], raw.line_of(key))
            if v is not None:
                out[field] = v
                self.lines[dotted] = raw.line_of(key)

    def stream(self, raw, line, decode: dict) -> StreamSettings:
        """stream.* and stream.reassembly.* -> StreamSettings (policies as written);
        stream.checksum-validation goes to the decoder's options (`decode`)."""
        kw: dict = {}
        raw = self.mapping(raw, "stream", line, "indent its keys under 'stream:'")
        reassembly = None
        if raw is not None:
            self.check_keys("stream", raw, STREAM_KEYS)
            L = raw.line_of
            if "memcap" in raw:
                v = self.as_size("stream", "memcap", raw["memcap"], L("memcap"), minimum=1, fix=MEMCAP_FIX)
                if v is not None:
                    kw["memcap"] = v
            for key in ("midstream", "async-oneside", "drop-invalid", "bypass", "checksum-validation"):
                if key in raw:
                    v = self.as_bool("stream", key, raw[key], L(key))
                    if v is not None:
                        (decode if key == "checksum-validation" else kw)[key.replace("-", "_")] = v
            if "inline" in raw:
                v = self.as_choice("stream", "inline", raw["inline"], L("inline"), STREAM_INLINE, bools=True)
                if v is not None:
                    kw["inline"] = v
            self.policy("stream", raw, "memcap-policy", "stream.memcap-policy", kw, "memcap_policy")
            self.policy("stream", raw, "midstream-policy", "stream.midstream-policy", kw, "midstream_policy")
            reassembly = self.mapping(raw.get("reassembly"), "stream.reassembly", L("reassembly"),
                                      "indent its keys under 'reassembly:'")
        randomize, chunk_range = True, DEFAULT_CHUNK_RANGE
        if reassembly is not None:
            where = "stream.reassembly"
            self.check_keys(where, reassembly, REASSEMBLY_KEYS)
            L = reassembly.line_of
            if "memcap" in reassembly:
                v = self.as_size(where, "memcap", reassembly["memcap"], L("memcap"), minimum=1,
                                 fix=MEMCAP_FIX)
                if v is not None:
                    kw["reassembly_memcap"] = v
            self.policy(where, reassembly, "memcap-policy", "stream.reassembly.memcap-policy", kw,
                        "reassembly_memcap_policy")
            if "depth" in reassembly:
                v = self.as_size(where, "depth", reassembly["depth"], L("depth"), maximum=U32_MAX,
                                 fix="write less than 4gb (Suricata keeps the depth in 32 bits), or 0 for "
                                 "no limit")
                if v is not None:
                    kw["depth"] = v
            for key in ("toserver-chunk-size", "toclient-chunk-size"):
                if key in reassembly:
                    v = self.as_size(where, key, reassembly[key], L(key), minimum=1, maximum=U16_MAX,
                                     fix="write 1..65535 bytes (Suricata keeps chunk sizes in 16 bits)")
                    if v is not None:
                        kw[key.replace("-", "_")] = v
            for key in ("raw", "check-overlap-different-data"):
                if key in reassembly:
                    v = self.as_bool(where, key, reassembly[key], L(key))
                    if v is not None:
                        kw[key.replace("-", "_")] = v
            if "randomize-chunk-size" in reassembly:
                v = self.as_bool(where, "randomize-chunk-size", reassembly["randomize-chunk-size"],
                                 L("randomize-chunk-size"))
                randomize = v if v is not None else randomize
            if "randomize-chunk-range" in reassembly:
                v = self.as_size(where, "randomize-chunk-range", reassembly["randomize-chunk-range"],
                                 L("randomize-chunk-range"), maximum=MAX_CHUNK_RANGE,
                                 fix="write a percentage lower than 100 (default 10)")
                chunk_range = v if v is not None else chunk_range
        base = stream_as_written()
        stream = dataclasses.replace(base, **kw)
        if randomize:
            stream = dataclasses.replace(
                stream, toserver_chunk_size=randomize_chunk(stream.toserver_chunk_size, chunk_range, self.rng),
                toclient_chunk_size=randomize_chunk(stream.toclient_chunk_size, chunk_range, self.rng))
        return stream

    def flow(self, raw, line) -> dict:
        kw: dict = {}
        raw = self.mapping(raw, "flow", line, "indent its keys under 'flow:'")
        if raw is None:
            return kw
        self.check_keys("flow", raw, FLOW_KEYS)
        if "memcap" in raw:
            v = self.as_size("flow", "memcap", raw["memcap"], raw.line_of("memcap"), minimum=1,
                             fix=MEMCAP_FIX)
            if v is not None:
                kw["memcap"] = v
        if "emergency-recovery" in raw:
            v = self.as_int("flow", "emergency-recovery", raw["emergency-recovery"],
                            raw.line_of("emergency-recovery"), minimum=1, maximum=100,
                            fix="write a percentage between 1 and 100 (default 30)")
            if v is not None:
                kw["emergency_recovery"] = v
        return kw

    def flow_timeouts(self, raw, line) -> dict[str, FlowTimeouts] | None:
        raw = self.mapping(raw, "flow-timeouts", line, "indent default, tcp, udp and icmp under it")
        if raw is None:
            return None
        self.check_keys("flow-timeouts", raw, TIMEOUT_PROTOS)
        out = dict(DEFAULT_TIMEOUTS)
        for proto in TIMEOUT_PROTOS:
            where = f"flow-timeouts.{proto}"
            sub = self.mapping(raw.get(proto), where, raw.line_of(proto),
                               f"indent new, established, ... under '{proto}:'")
            if sub is None:
                continue
            known = tuple(k for k in TIMEOUT_KEYS if f"{where}.{k}" not in UNIMPLEMENTED)
            self.check_keys(where, sub, known)
            kw = {}
            for key in known:
                if key in sub:
                    v = self.as_int(where, key, sub[key], sub.line_of(key), minimum=0, maximum=U32_MAX,
                                    fix="write a whole number of seconds, 0 or more")
                    if v is not None:
                        kw[key.replace("-", "_")] = v
            out[proto] = dataclasses.replace(out[proto], **kw)
        return out

    def defrag(self, raw, line) -> DefragSettings:
        kw: dict = {}
        raw = self.mapping(raw, "defrag", line, "indent its keys under 'defrag:'")
        if raw is not None:
            self.check_keys("defrag", raw, DEFRAG_KEYS)
            if "timeout" in raw:
                lo, hi = DEFRAG_TIMEOUT_RANGE
                v = self.as_int("defrag", "timeout", raw["timeout"], raw.line_of("timeout"), minimum=lo,
                                maximum=hi, fix=f"write {lo}..{hi} seconds (default 60)")
                if v is not None:
                    kw["timeout"] = v
            for key in ("trackers", "max-frags"):
                if key in raw:
                    v = self.as_int("defrag", key, raw[key], raw.line_of(key), minimum=0, maximum=U32_MAX)
                    if v:                       # 0: the default, as in Suricata
                        kw[key.replace("-", "_")] = v
        return DefragSettings(**kw)

    def ports(self, where, key, value, line, port_groups) -> tuple[int, ...] | None:
        seen = set()

        def expand(text, depth):
            if depth > 8:
                raise ValueError("variables refer to each other in a loop")
            out = []
            for part in text.strip().strip("[]").split(","):
                part = part.strip()
                if not part:
                    continue
                if part.startswith("$"):
                    name = part[1:]
                    if name not in port_groups:
                        raise ValueError(f"unknown port variable ${name}"
                                         + did_you_mean(name, port_groups))
                    out += expand(port_groups[name], depth + 1)
                elif part.isdigit() and 0 < int(part) < 65536:
                    out.append(int(part))
                else:
                    raise ValueError(f"'{part}' is not a port number")
            return out

        try:
            result = expand(str(value) if not isinstance(value, list) else
                            ",".join(str(v) for v in value), 0)
        except ValueError as exc:
            self.error(where, key, str(exc), "write ports as 4789, '[4789, 8472]' or $VXLAN_PORTS", line)
            return None
        return tuple(p for p in result if not (p in seen or seen.add(p)))

    def decoder(self, raw, line, port_groups, decode: dict) -> None:
        """decoder.* into `decode` (DecodeOptions keyword arguments)."""
        ports = self.ports("decoder.vxlan", "ports", "$VXLAN_PORTS", 0, port_groups)
        if ports:
            decode["vxlan_ports"] = ports
        raw = self.mapping(raw, "decoder", line, "indent its keys under 'decoder:'")
        if raw is None:
            return
        self.check_keys("decoder", raw, DECODER_KEYS)
        for proto, known in (("vxlan", ("enabled", "ports")), ("gre", ("enabled",))):
            sub = raw.get(proto)
            if sub is None:
                continue
            where = f"decoder.{proto}"
            if not isinstance(sub, _Map):
                self.error("decoder", proto, "must be a mapping", f"indent 'enabled:' under '{proto}:'",
                           raw.line_of(proto))
                continue
            self.check_keys(where, sub, known)
            if "enabled" in sub:
                v = self.as_bool(where, "enabled", sub["enabled"], sub.line_of("enabled"))
                if v is not None:
                    decode[f"{proto}_enabled"] = v
            if "ports" in sub:
                v = self.ports(where, "ports", sub["ports"], sub.line_of("ports"), port_groups)
                if v is not None:
                    decode["vxlan_ports"] = v

    # ---- app-layer
    def app_layer(self, raw, line, config: Config) -> None:
        """app-layer.* -> config.app (EngineSettings.app): the Settings of the protocols ipsbridge
        parses (APP_PARSED) and the protocols whose `enabled` is no or detection-only; Suricata's
        other protocols are accepted with one warning (ipsbridge does not parse them)."""
        app = default_app()
        self.app_vars = config.vars
        raw = self.mapping(raw, "app-layer", line, "indent 'protocols:' under 'app-layer:'")
        protocols = None
        if raw is not None:
            self.check_keys("app-layer", raw, APP_LAYER_KEYS)
            out: dict = {}
            self.policy("app-layer", raw, "error-policy", "app-layer.error-policy", out, "v")
            config.app_error_policy = out.get("v", config.app_error_policy)
            protocols = self.mapping(raw.get("protocols"), "app-layer.protocols", raw.line_of("protocols"),
                                     "indent one 'NAME:' mapping per protocol under 'protocols:'")
        if protocols is not None:
            self.check_keys("app-layer.protocols", protocols, APP_PARSED + APP_OTHER)
            parse = {"http": self.app_http, "tls": self.app_tls, "dns": self.app_dns, "smtp": self.app_smtp,
                     "ftp": self.app_ftp}
            for name in APP_PARSED:
                sub = self.mapping(protocols.get(name), f"app-layer.protocols.{name}", protocols.line_of(name),
                                   f"indent its keys under '{name}:'")
                if sub is not None:
                    app[name] = parse[name](sub, app[ENABLED])
            others = [name for name in protocols if name in APP_OTHER]
            for name in others:
                self.app_other(name, protocols[name], protocols.line_of(name))
            if others:
                self.warn("config_app_protocols_not_parsed", "app-layer.protocols", "",
                          protocols.line_of(others[0]), protocols=others,
                          reason=f"ipsbridge parses {', '.join(APP_PARSED[:-1])} and {APP_PARSED[-1]} only: the "
                          "settings of these protocols have no effect, and rules for them are refused at load "
                          "as unsupported")
        config.app = app

    def app_common(self, name: str, raw: _Map, modes: dict) -> tuple[dict, dict]:
        """`enabled` and `detection-ports` of a protocol ipsbridge parses, looked up as Suricata
        does: the protocol's own key, for every IP protocol it runs over, else the IP protocol's
        (`dns.udp.enabled`).  Modes other than yes go into `modes` ((name, IP protocol number) ->
        mode).  Returns ({"tcp": mode, ...}, {"tcp": (dp ports, line) or None, ...})."""
        where = f"app-layer.protocols.{name}"
        ipnames = APP_IPPROTOS[name]
        with_ports = "detection-ports" in APP_KEYS[name]
        top_mode = top_ports = None
        if "enabled" in raw:
            top_mode = self.as_enabled(where, "enabled", raw["enabled"], raw.line_of("enabled"))
            self.lines[f"{where}.enabled"] = raw.line_of("enabled")
        if "detection-ports" in raw:
            top_ports = self.detection_ports(f"{where}.detection-ports", raw["detection-ports"],
                                             raw.line_of("detection-ports"))
        both = " and ".join(ip.upper() for ip in ipnames)
        enabled, ports = {}, {}
        for ip in ipnames:
            mode, dp = top_mode, top_ports
            sub_where = f"{where}.{ip}"
            sub = self.mapping(raw.get(ip), sub_where, raw.line_of(ip), f"indent 'enabled:' under '{ip}:'")
            if sub is not None:
                self.check_keys(sub_where, sub, ("enabled", "detection-ports") if with_ports else ("enabled",))
                for key in ("enabled", "detection-ports"):
                    if key in sub and key in raw:
                        self.error(sub_where, key, f"{where}.{key} (line {raw.line_of(key)}) already decides for "
                                   f"{both} and Suricata ignores this one", "remove one of them", sub.line_of(key))
                if "enabled" in sub and "enabled" not in raw:
                    mode = self.as_enabled(sub_where, "enabled", sub["enabled"], sub.line_of("enabled"))
                    self.lines[f"{sub_where}.enabled"] = sub.line_of("enabled")
                if "detection-ports" in sub and "detection-ports" not in raw:
                    dp = self.detection_ports(f"{sub_where}.detection-ports", sub["detection-ports"],
                                              sub.line_of("detection-ports"))
            enabled[ip] = mode or "yes"
            if enabled[ip] != "yes":
                modes[(name, IPPROTO_NUMBERS[ip])] = enabled[ip]
            ports[ip] = dp
        return enabled, ports

    def detection_ports(self, where: str, value, line: int):
        """A detection-ports mapping: (the dp ports, as a set, line), None when wrong.  dp is
        Suricata's port syntax (a list with or without brackets, ranges, negation, any, port-groups
        variables, in one string); without dp nothing is probed, as in Suricata."""
        if value is None:
            return frozenset(), line
        if not isinstance(value, _Map):
            self.error(where, "", "must be a mapping", "indent 'dp: PORTS' under 'detection-ports:'", line)
            return None
        self.check_keys(where, value, DETECTION_PORTS_KEYS)
        if "dp" in value and "toserver" in value:
            self.error(where, "toserver", "Suricata reads dp and ignores toserver (dp's other name)",
                       "remove one of them", value.line_of("toserver"))
        key = "dp" if "dp" in value else "toserver" if "toserver" in value else None
        if key is None:
            return frozenset(), line
        raw, kline = value[key], value.line_of(key)
        if isinstance(raw, list):
            self.error(where, key, "a YAML list: Suricata reads only a string here (with a list it probes no "
                       "port)", f"write the ports as one string: {key}: " + ", ".join(map(str, raw[:3])), kline)
            return None
        text = self.as_str(where, key, raw, kline)
        if text is None:
            return None
        text = text.strip()
        try:
            ports = parse_ports(text if text.startswith("[") else f"[{text}]", vars=self.app_vars)
        except RuleError as exc:
            self.error(where, key, f"'{text}': {exc.message}", PORTS_HELP, kline)
            return None
        return frozenset(p for lo, hi in ports.iv for p in range(lo, hi + 1)), kline

    def app_http(self, raw: _Map, modes: dict):
        """app-layer.protocols.http -> rules.applayer.http.Settings."""
        where = "app-layer.protocols.http"
        self.check_keys(where, raw, APP_KEYS["http"])
        self.app_common("http", raw, modes)
        kw = {}
        libhtp = self.mapping(raw.get("libhtp"), f"{where}.libhtp", raw.line_of("libhtp"),
                              "indent 'default-config:' under 'libhtp:'")
        if libhtp is not None:
            self.check_keys(f"{where}.libhtp", libhtp, LIBHTP_KEYS)
            if libhtp.get("server-config") not in (None, [], {}):
                self.error(f"{where}.libhtp", "server-config", "per-server libhtp configurations are not "
                           "implemented: every server is parsed with default-config",
                           "remove the entries under server-config (an empty server-config is accepted) and "
                           "put what they share in default-config", libhtp.line_of("server-config"))
            dc_where = f"{where}.libhtp.default-config"
            dc = self.mapping(libhtp.get("default-config"), dc_where, libhtp.line_of("default-config"),
                              "indent its keys under 'default-config:'")
            if dc is not None:
                self.check_keys(dc_where, dc, tuple(HTP_LIMITS))
                if "request-body-limit" in dc and "request_body_limit" in dc:
                    self.error(dc_where, "request_body_limit", "the same key as request-body-limit (Suricata's "
                               "other spelling)", "keep one of them", dc.line_of("request_body_limit"))
                for key, (field, minimum) in HTP_LIMITS.items():
                    if key in dc:
                        what = "0 for no limit" if minimum == 0 else "at least 1"
                        v = self.as_size(dc_where, key, dc[key], dc.line_of(key), minimum=minimum, maximum=U32_MAX,
                                         fix=f"write a size below 4gb (Suricata keeps it in 32 bits), {what}")
                        if v is not None:
                            kw[field] = v
        return APP_SETTINGS["http"](**kw)

    def app_tls(self, raw: _Map, modes: dict):
        """app-layer.protocols.tls -> rules.applayer.tls.Settings."""
        where = "app-layer.protocols.tls"
        self.check_keys(where, raw, APP_KEYS["tls"])
        _, ports = self.app_common("tls", raw, modes)
        kw = {}
        if ports["tcp"] is not None:          # where an SSLv2 hello of any version is TLS
            kw["detection_ports"] = tuple(sorted(ports["tcp"][0]))
        if "ja3-fingerprints" in raw:
            line = raw.line_of("ja3-fingerprints")
            v = self.as_word(where, "ja3-fingerprints", raw["ja3-fingerprints"], line)
            if v is not None and v not in ("yes", "no", "auto"):
                self.error(where, "ja3-fingerprints", f"unknown value '{v}'", "write auto (the default), yes or no",
                           line)
            elif v is not None:
                kw["ja3_fingerprints"] = v
                self.lines[f"{where}.ja3-fingerprints"] = line
        if "encryption-handling" in raw:
            v = self.as_choice(where, "encryption-handling", raw["encryption-handling"],
                               raw.line_of("encryption-handling"), TLS_ENCRYPTION)
            if v is not None:
                kw["encryption_handling"] = v
        if "no-reassemble" in raw:
            line = raw.line_of("no-reassemble")
            if "encryption-handling" in raw:
                self.error(where, "no-reassemble", "Suricata ignores it when encryption-handling is set",
                           "remove no-reassemble (its yes is encryption-handling: bypass)", line)
            else:
                v = self.as_bool(where, "no-reassemble", raw["no-reassemble"], line)
                if v is not None:
                    kw["encryption_handling"] = "bypass" if v else "default"
        return APP_SETTINGS["tls"](**kw)

    def app_dns(self, raw: _Map, modes: dict):
        """app-layer.protocols.dns -> rules.applayer.dns.Settings."""
        self.check_keys("app-layer.protocols.dns", raw, APP_KEYS["dns"])
        enabled, ports = self.app_common("dns", raw, modes)
        kw = {f"{ip}_enabled": mode for ip, mode in enabled.items()}
        kw.update({f"{ip}_ports": dp[0] for ip, dp in ports.items() if dp is not None})
        return APP_SETTINGS["dns"](**kw)

    def app_smtp(self, raw: _Map, modes: dict):
        """app-layer.protocols.smtp -> rules.applayer.smtp.Settings (Suricata 7.0's SMTPConfigure)."""
        where = "app-layer.protocols.smtp"
        self.check_keys(where, raw, APP_KEYS["smtp"])
        self.app_common("smtp", raw, modes)
        kw = {}
        if "max-tx" in raw:                   # ParseSizeStringU64; 0 still lets one mail through
            v = self.as_size(where, "max-tx", raw["max-tx"], raw.line_of("max-tx"))
            if v is not None:
                kw["max_tx"] = v
        mime = self.mapping(raw.get("mime"), f"{where}.mime", raw.line_of("mime"),
                            "indent 'decode-mime:' under 'mime:'")
        if mime is not None:
            m_where = f"{where}.mime"
            self.check_keys(m_where, mime, SMTP_MIME_KEYS)
            for key, field in SMTP_MIME_BOOLS.items():
                if key in mime:
                    v = self.as_bool(m_where, key, mime[key], mime.line_of(key))
                    if v is not None:
                        kw[field] = v
                        self.lines[f"{m_where}.{key}"] = mime.line_of(key)
            if "header-value-depth" in mime:  # ConfGetChildValueInt, kept in 32 bits
                v = self.as_int(m_where, "header-value-depth", mime["header-value-depth"],
                                mime.line_of("header-value-depth"), minimum=0, maximum=U32_MAX,
                                fix=f"write a byte count below 4gb (0 is Suricata's default, "
                                f"{SMTP_HEADER_VALUE_DEPTH})")
                if v is not None:
                    kw["header_value_depth"] = v or SMTP_HEADER_VALUE_DEPTH
        tracker = self.mapping(raw.get("inspected-tracker"), f"{where}.inspected-tracker",
                               raw.line_of("inspected-tracker"), "indent 'content-limit:' under 'inspected-tracker:'")
        if tracker is not None:
            t_where = f"{where}.inspected-tracker"
            self.check_keys(t_where, tracker, tuple(SMTP_TRACKER_KEYS))
            for key, field in SMTP_TRACKER_KEYS.items():
                if key in tracker:            # ParseSizeStringU32
                    v = self.as_size(t_where, key, tracker[key], tracker.line_of(key), maximum=U32_MAX,
                                     fix="write a size below 4gb (Suricata keeps it in 32 bits)")
                    if v is not None:
                        kw[field] = SMTP_NO_CONTENT_LIMIT if field == "content_limit" and v == 0 else v
        return APP_SETTINGS["smtp"](**kw)

    def app_ftp(self, raw: _Map, modes: dict):
        """app-layer.protocols.ftp -> rules.applayer.ftp.Settings (Suricata 7.0's FTPParseMemcap)."""
        where = "app-layer.protocols.ftp"
        self.check_keys(where, raw, APP_KEYS["ftp"])
        self.app_common("ftp", raw, modes)
        kw = {}
        # ParseSizeStringU32 both; max-tx 0 still keeps one command open, a line limit of 0 would
        # cut every line to nothing
        for key, field, minimum in (("max-tx", "max_tx", 0), ("max-line-length", "max_line_len", 1)):
            if key in raw:
                v = self.as_size(where, key, raw[key], raw.line_of(key), minimum=minimum, maximum=U32_MAX,
                                 fix=f"write a size below 4gb (Suricata keeps it in 32 bits)"
                                 f"{', at least 1' if minimum else ''}")
                if v is not None:
                    kw[field] = v
        return APP_SETTINGS["ftp"](**kw)

    def app_other(self, name: str, value, line: int) -> None:
        """A protocol ipsbridge does not parse: its `enabled` must still be a value Suricata
        takes (it exits on any other); its other keys are not read."""
        where = f"app-layer.protocols.{name}"
        if value is None:
            return
        if not isinstance(value, _Map):
            self.error(where, "", "must be a mapping", f"indent its keys under '{name}:'", line)
        elif "enabled" in value:
            self.as_enabled(where, "enabled", value["enabled"], value.line_of("enabled"))

    def pcap_file(self, raw, line, config: Config) -> None:
        raw = self.mapping(raw, "pcap-file", line, "indent 'checksum-checks:' under it")
        if raw is None:
            return
        self.check_keys("pcap-file", raw, PCAP_FILE_KEYS)
        if "checksum-checks" in raw:
            value, kline = raw["checksum-checks"], raw.line_of("checksum-checks")
            if isinstance(value, str) and value == "kernel":
                # Suricata 7 takes any other word as 'no' here, silently (source-pcap-file.c)
                self.error("pcap-file", "checksum-checks",
                           "'kernel' applies to af-packet interfaces only (the kernel marks each frame "
                           "it captures); a capture file carries no such mark", "use auto (the default), yes or no",
                           kline)
                return
            v = self.as_choice("pcap-file", "checksum-checks", value, kline, PCAP_CHECKSUM_CHECKS, bools=True)
            if v is not None:
                config.pcap_file_checksum_checks = v

    def parse(self, doc) -> Config:
        config = Config(source=self.source)
        config.default_rule_path = self.base_dir
        if doc is None:
            doc = _Map()
            doc.key_lines = {}
        if not isinstance(doc, _Map):
            self.error("yaml", "", "the top level is not a mapping",
                       "start the file with 'af-packet:' and the other sections", 1)
            return config
        for key in doc:
            if key == "include":
                self.warn("config_section_ignored", "include", "", doc.line_of(key),
                          reason="top-level 'include:' files are not read; use 'KEY: !include FILE' "
                          "for a section, or copy its content into this file")
            elif key == "libhtp":
                self.error("libhtp", "", "a top-level 'libhtp:' is Suricata's old place of the HTTP settings "
                           "(Suricata 7 still reads it when app-layer.protocols.http.libhtp is missing)",
                           "move its default-config under app-layer.protocols.http.libhtp", doc.line_of(key))
            elif key == "tls" and isinstance(doc[key], _Map) and "no-reassemble" in doc[key]:
                self.error("tls", "no-reassemble", "Suricata 7 still reads this old form of "
                           "app-layer.protocols.tls.encryption-handling: bypass",
                           "write app-layer.protocols.tls.encryption-handling: bypass instead",
                           doc[key].line_of("no-reassemble"))
            elif key not in TOP_LEVEL:
                self.warn("config_section_ignored", str(key), "", doc.line_of(key),
                          reason="not used by ipsbridge")
        L = doc.line_of
        config.vars = self.vars(doc.get("vars"), L("vars"))
        config.af_packet = self.af_packet(doc.get("af-packet"), L("af-packet"))
        if doc.get("default-rule-path") is not None:
            v = self.as_str("default-rule-path", "", doc["default-rule-path"], L("default-rule-path"))
            if v is not None:
                config.default_rule_path = self.path(v)
        rule_files = doc.get("rule-files")
        if rule_files is not None:
            if isinstance(rule_files, str):
                rule_files = [rule_files]
            if not isinstance(rule_files, list):
                self.error("rule-files", "", "must be a list of file names",
                           "write one '- NAME.rules' per line", L("rule-files"))
            else:
                for item in rule_files:
                    v = self.as_str("rule-files", "", item, L("rule-files"))
                    if v is not None:
                        config.rule_files.append(os.path.expanduser(v))
        if doc.get("classification-file") is not None:
            v = self.as_str("classification-file", "", doc["classification-file"], L("classification-file"))
            if v is not None:
                config.classification_file = self.path(v)
        if doc.get("threshold-file") is not None:     # Suricata's key; left out: no threshold.config
            v = self.as_str("threshold-file", "", doc["threshold-file"], L("threshold-file"))
            if v is not None:
                config.threshold_file = self.path(v)
        decode: dict = {}
        config.stream = self.stream(doc.get("stream"), L("stream"), decode)
        self.decoder(doc.get("decoder"), L("decoder"), config.vars["port-groups"], decode)
        config.decoder = DecodeOptions(**decode)
        flow = self.flow(doc.get("flow"), L("flow"))
        timeouts = self.flow_timeouts(doc.get("flow-timeouts"), L("flow-timeouts"))
        if timeouts is not None:
            flow["timeouts"] = timeouts
        config.flow = FlowSettings(**flow)
        config.defrag = self.defrag(doc.get("defrag"), L("defrag"))
        self.app_layer(doc.get("app-layer"), L("app-layer"), config)
        if "exception-policy" in doc:
            v = self.as_policy("exception-policy", "", doc["exception-policy"], L("exception-policy"))
            if v is not None:
                config.exception_policy = v
                self.lines["exception-policy"] = L("exception-policy")
        self.pcap_file(doc.get("pcap-file"), L("pcap-file"), config)
        self.outputs(doc, config)
        self.unix_command(doc.get("unix-command"), L("unix-command"), config)
        own = doc.get("ipsbridge")
        if isinstance(own, _Map):
            self.check_keys("ipsbridge", own, IPSBRIDGE_KEYS)
            if own.get("eve-log") is not None:
                config.eve_log = self.as_str("ipsbridge", "eve-log", own["eve-log"], own.line_of("eve-log"))
                self.lines["eve-log"] = own.line_of("eve-log")
            if "stats-interval" in own:
                v = self.as_number("ipsbridge", "stats-interval", own["stats-interval"],
                                   own.line_of("stats-interval"), minimum=0, maximum=MAX_STATS_INTERVAL)
                if v is not None:
                    config.stats_interval = v
            if own.get("verdict-hook") is not None:
                config.verdict_hook = self.as_str("ipsbridge", "verdict-hook", own["verdict-hook"],
                                                  own.line_of("verdict-hook"))
            if "inspect-time-limit" in own:
                v = self.as_number("ipsbridge", "inspect-time-limit", own["inspect-time-limit"],
                                   own.line_of("inspect-time-limit"), minimum=0, maximum=60)
                if v is not None:
                    config.inspect_time_limit = v
            if "fail-open" in own:
                v = self.as_bool("ipsbridge", "fail-open", own["fail-open"], own.line_of("fail-open"))
                if v is not None:
                    config.fail_open = v
                    self.lines["fail-open"] = own.line_of("fail-open")
        elif own is not None:
            self.error("ipsbridge", "", "must be a mapping",
                       "indent eve-log, stats-interval, verdict-hook and fail-open under 'ipsbridge:'",
                       L("ipsbridge"))
        config.lines = dict(self.lines)
        if not self.problems:
            self.problems += policy_problems(config)      # the combinations Suricata refuses in any mode
        assign_cluster_ids(config)
        return config

    def unix_command(self, raw, line, config):
        """Suricata's `unix-command: {enabled: yes|no|auto, filename}`: the control socket."""
        if raw is None:
            return
        if not isinstance(raw, _Map):
            self.error("unix-command", "", "must be a mapping", "indent enabled and filename under 'unix-command:'",
                       line)
            return
        self.check_keys("unix-command", raw, UNIX_COMMAND_KEYS)
        if "enabled" in raw:
            v = self.as_choice("unix-command", "enabled", raw["enabled"], raw.line_of("enabled"),
                               ("yes", "no", "auto"), bools=True)
            if v is not None:
                config.unix_command = v
        if raw.get("filename") is not None:
            v = self.as_str("unix-command", "filename", raw["filename"], raw.line_of("filename"))
            if v:
                config.unix_command_path = v if os.path.isabs(v) else os.path.join(UNIX_COMMAND_DIR, v)

    def outputs(self, doc, config):
        """Suricata's `outputs: - eve-log: {enabled, filename}` sets eve_log; the rest is unused."""
        raw = doc.get("outputs")
        if raw is None:
            return
        used = False
        if isinstance(raw, list):
            for item in raw:
                if isinstance(item, _Map) and isinstance(item.get("eve-log"), _Map):
                    eve = item["eve-log"]
                    enabled = self.as_bool("outputs.eve-log", "enabled", eve.get("enabled", True),
                                           eve.line_of("enabled"))
                    if enabled and eve.get("filename"):
                        name = str(eve["filename"])
                        log_dir = doc.get("default-log-dir")
                        if not os.path.isabs(name) and log_dir:
                            name = os.path.join(str(log_dir), name)
                        config.eve_log = name
                        self.lines["eve-log"] = eve.line_of("filename")
                        used = True
                        break
        log.warning("config_section_ignored", where="outputs", key="", file=self.source,
                    line=doc.line_of("outputs"),
                    reason="only eve-log's filename is used" if used else "not used by ipsbridge")


def assign_cluster_ids(config: Config) -> None:
    """cluster-id left out: 99, 98, ... in entry order, skipping ids set explicitly."""
    used = {i.cluster_id for i in config.af_packet if i.cluster_id is not None}
    next_id = _AUTO_CLUSTER_ID_START
    for iface in config.af_packet:
        if iface.cluster_id is None:
            while next_id in used:
                next_id -= 1
            iface.cluster_id = next_id
            used.add(next_id)
            next_id -= 1


def _reader_problem(text: str, exc: yaml.reader.ReaderError, source: str) -> Problem:
    """A character YAML does not allow (a control character, a lone surrogate), at its line."""
    pos = exc.position
    line = text.count("\n", 0, pos) + 1
    col = pos - text.rfind("\n", 0, pos)
    c = exc.character
    escape = f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    return Problem("yaml", "", f"syntax error: character #x{c:04x} is not allowed in YAML, column {col}",
                   f'remove it, or write it as an escape in a double-quoted string ("{escape}")', source, line)


def load_text(text: str, source: str = "<string>", base_dir: str | None = None, *,
              rng: random.Random | None = None) -> Config:
    """Parse YAML text (suricata.yaml shape) into a Config; ConfigError lists every problem.
    `rng` draws the randomized reassembly chunk sizes (default: a fresh, system-seeded one)."""
    base_dir = base_dir or os.getcwd()
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError([Problem("yaml", "", f"{len(text)} characters, more than the {_yaml_cap()} "
                                   "a configuration may have", YAML_SIZE_FIX, source)])
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:    # the reader refuses a character before parsing starts
        raise ConfigError([_reader_problem(text, exc, source)]) from None
    loader.duplicates, loader.base_dir, loader.depth = [], base_dir, 0
    loader.budget = [MAX_YAML_BYTES - len(text)]
    try:
        doc = loader.bounded_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 0
        col = f", column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, _Limit):
            raise ConfigError([Problem("yaml", "", f"{what}{col}", exc.fix, source, line)]) from None
        raise ConfigError([Problem("yaml", "", f"syntax error: {what}{col}",
                                   "fix the YAML at that line (indentation, a missing ':' or quote)",
                                   source, line)]) from None
    except RecursionError:        # !include files nested inside each other, each within the depth bound
        raise ConfigError([Problem("yaml", "", "nested too deeply to read (through its !include files)",
                                   "a configuration nests a few levels; look for an unclosed '[' or '{'",
                                   source)]) from None
    finally:
        loader.dispose()
    parser = _Parser(source, base_dir, rng)
    for key, line in loader.duplicates:
        parser.error("yaml", key, "key given twice in the same mapping (the last one would win)",
                     "keep one of them", line)
    config = parser.parse(doc)
    if parser.problems:
        raise ConfigError(parser.problems)
    return config


def load_file(path: str, *, rng: random.Random | None = None) -> Config:
    """Load a suricata.yaml-shaped file; ConfigError lists every problem with file and line."""
    try:
        text = _read_yaml(path, MAX_YAML_BYTES)
    except OSError as exc:
        raise ConfigError([Problem("config", "", f"cannot read {path}: {exc.strerror}",
                                   "give the path of an existing YAML file with -c", path)]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem("config", "", f"{path} is not UTF-8 text ({exc.reason})",
                                   "give a YAML text file with -c", path)]) from None
    if text is None:
        raise ConfigError([Problem("config", "", f"{path} is larger than {_yaml_cap()}, the most a "
                                   "configuration file may be", YAML_SIZE_FIX, path)])
    return load_text(text, path, os.path.dirname(os.path.abspath(path)), rng=rng)


# --------------------------------------------------------------------------- quick form
def _split_bridge(spec: str):
    left, sep, right = spec.partition(":")
    if not sep or not left or not right or ":" in right:
        return None
    return left, right


def from_args(args) -> Config:
    """Config from `run`/`check` arguments.

    With -c FILE the file is loaded first, then:
      --bridge A:B / --ids IFACE  ADD interfaces (naming one already in the file is an error);
      --mode                      applies to the --bridge pairs only;
      --threads / --cluster-type  OVERRIDE that key on every interface, file and quick ones alike
                                  (so both sides of a pair stay equal);
      -S/--rules                  REPLACES rule-files;
      --eve, --stats-interval, --verdict-hook  OVERRIDE the file's ipsbridge section.
    """
    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    config_path = g("config")
    config = load_file(config_path) if config_path else Config(source="<command line>")
    if not config_path:
        config.vars = {"address-groups": dict(DEFAULT_ADDRESS_GROUPS),
                       "port-groups": dict(DEFAULT_PORT_GROUPS)}
    problems: list[Problem] = []

    def bad(flag, value, message, fix):
        problems.append(Problem(flag, str(value), message, fix))

    from conf.model import CLUSTER_TYPES

    threads = g("threads")
    if isinstance(threads, str):
        text = threads.strip().lower()
        threads = min(cpu_count(), max_threads()) if text == "auto" else int(text) if text.isdigit() else text
    if threads is not None and thread_count_refusal(threads):
        bad("--threads", threads, "is not a thread count", threads_fix())
        threads = None
    cluster_type = g("cluster_type")
    if cluster_type is not None and cluster_type not in CLUSTER_TYPES:
        bad("--cluster-type", cluster_type, "unknown value" + did_you_mean(cluster_type, CLUSTER_TYPES),
            "use one of " + ", ".join(CLUSTER_TYPES))
        cluster_type = None
    mode = g("mode")
    if mode is not None and mode not in ("ips", "tap"):
        bad("--mode", mode, "unknown value" + did_you_mean(mode, ("ips", "tap")), "use ips or tap")
        mode = None
    bridges = g("bridge") or []
    ids = g("ids") or []
    if g("mode") is not None and not bridges:
        bad("--mode", mode, "given without --bridge", "add --bridge IFACE:IFACE, or set 'copy-mode' in the file")

    existing = {i.interface for i in config.af_packet}
    new: list[Interface] = []

    def add(iface: Interface, flag: str, spec: str):
        if iface.interface in existing:
            where = f"also in {config.source}" if config_path else "given twice"
            bad(flag, spec, f"interface {iface.interface} is {where}",
                "name each interface once, in the file or on the command line")
            return
        existing.add(iface.interface)
        new.append(iface)

    for spec in bridges:
        pair = _split_bridge(spec)
        if pair is None:
            bad("--bridge", spec, "is not IFACE:IFACE", "write the two ports as --bridge eth0:eth1")
            continue
        a, b = pair
        if a == b:
            bad("--bridge", spec, "bridges an interface to itself", "name two different ports")
            continue
        for x, y in ((a, b), (b, a)):
            add(Interface(interface=x, copy_mode=mode or "ips", copy_iface=y, defrag=False), "--bridge", spec)
    for name in ids:
        add(Interface(interface=name), "--ids", name)
    config.af_packet.extend(new)
    for iface in config.af_packet:
        if threads is not None:
            iface.threads = threads
        if cluster_type is not None:
            iface.cluster_type = cluster_type
    rules = g("rules")
    if rules:
        config.rule_files = [os.path.abspath(r) for r in rules]
    if g("eve") is not None:
        config.eve_log = g("eve")
        config.lines.pop("eve-log", None)          # no longer the file's
    if g("stats_interval") is not None:
        config.stats_interval = float(g("stats_interval"))
    if g("verdict_hook") is not None:
        config.verdict_hook = g("verdict_hook")
    if not config_path:
        config.default_rule_path = os.getcwd()
    assign_cluster_ids(config)
    if problems:
        raise ConfigError(problems)
    return config
