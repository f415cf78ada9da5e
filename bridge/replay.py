"""`ipsbridge replay`: run the bridge's Engine.inspect over capture files.

The same `rules.engine.Engine` the workers use, fed from pcap/pcapng records:
`FrameMeta(ts=record time, iface=pcapng interface name or "", pcap_cnt=1-based
position in the whole stream, linktype=the record's link type)`.  Several files
or a directory are one stream (a TCP session may continue from one file into
the next), and may mix link types: Ethernet, Linux cooked SLL/SLL2, raw IP,
NULL/LOOP (`rules.decode.LINKTYPES`).  Before the first packet every file's
link types are read from its headers (`bridge.pcap.linktypes`, a walk over a
pcapng's blocks), so a capture of a link type we do not read is refused, exit
2, before anything is inspected or written.

Outputs: EVE JSON (`--eve`, written fresh), `--write-pass` / `--write-drop`
captures split by the engine's verdict (FORWARD vs DROP/REJECT, whatever the
mode, so tap/ids runs show what ips would drop), a summary on stdout, progress
on stderr when it is a terminal.  The written records keep their bytes and
link type: a `.pcapng` name gets pcapng (one interface per link type; note
that libpcap, hence tcpdump and Suricata, reads only pcapng files with a
single link type), any other name a classic pcap of the inputs' link type --
refused at the start when the inputs mix link types.  An output that cannot be
written (no such directory, a directory, /proc), one that is also an input (it
would be truncated before it is read) or two outputs on one file are refused
before the rules load, exit 2, and nothing is created or truncated.  So is a
--workers count outside 1..4 per CPU (`conf.validate.max_threads`).

`pcap-file.checksum-checks` is every record's FrameMeta.checksum hint: `yes`
validates checksums, `no` does not, `auto` (the default) validates the first
999 records and, at the 1000th, stops for the rest of the input when more than
a tenth of them were TCP packets with a wrong checksum (a capture taken before
checksum offload filled them in) -- Suricata 7's pcap-file auto, checked with
`suricata -r` (tests/replay/test_replay_checksum_checks.py); the summary says when it
turned validation off.  With `--workers N` each worker samples its own share.
`stream.checksum-validation: no` turns all three off.

The summary counts packets per link type and, for Linux cooked captures, per
packet type (host, broadcast, multicast, otherhost, outgoing: the direction
the capturing kernel saw).  That is all the packet type is used for, as in
Suricata, which ignores it when reading files: a `tcpdump -i any` capture on a
router or bridge holds each forwarded packet twice, in and out, and both
copies are inspected; the count explains the doubling.

`--bypass user` (the default) runs the bridge's user-space fast path (bridge.fastpath) in
front of the engine, as a worker does with `bypass: user`: once the engine decides a flow
(`Result.bypass`: a pass or drop that holds for the flow, the `bypass` keyword,
stream.bypass, no rule left that could match), the flow's later Ethernet frames are
answered from the fast path's table without `inspect`; their counts reach the engine
through `Inspector.bypassed` before every tick (the engine ticks by packet time, every
TICK_EVERY seconds) and at the end, so flows time out as they would.  Verdicts, alerts
and EVE records are the same as with `--bypass off` (every frame inspected): a frame the
fast path drops in ips mode gets the engine's `drop` event (reason "flow"), built from
the frame.  The summary counts what the fast path took (`bypass.*`).  `--bypass kernel`
is refused: there is no kernel path offline.

`--workers N` spreads packets over N processes by a symmetric flow hash
(addresses, ports, protocol; the outer header of a tunnelled frame; found
through the record's link type), each worker reading the files itself and
inspecting only its share; the parent merges EVE lines in pcap_cnt order.
Alerts are the same as with one worker because flows never span workers --
except that threshold/detection_filter state tracked by_src/by_dst/by_rule is
per worker, as it is per Engine.
"""
from __future__ import annotations

import gc
import heapq
import multiprocessing as mp
import os
import struct
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

from rules.api import CSUM_AUTO, CSUM_SKIP, CSUM_VALIDATE, FrameMeta, Verdict
from rules.decode import (
    CHECKSUM_SAMPLE_COUNT, ETH_P_IP, ETH_P_IPV6, LINKTYPE_ETHERNET, decode, link_pkttype, network_header,
)
from rules.events import Alert, DecoderEvent, Drop, headers
from bridge import afpacket as afp
from bridge.fastpath import DROP as FAST_DROP
from bridge.fastpath import FastPath, FastPort
from bridge.hook import settle_heap
from bridge.pcap import PcapError, iter_pcaps, linktype_name, linktypes, open_writer
from bridge.syscheck import OUTPUT_FIX, output_refusal
from conf.validate import thread_count_refusal, threads_fix

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
TICK_EVERY = 1.0          # seconds of packet time between Engine.tick calls
BYPASS_CHOICES = ("user", "off", "kernel")     # --bypass; kernel is refused offline

# pcap-file.checksum-checks -> the FrameMeta.checksum hint of every record (the engine's
# ChecksumChecks keeps auto's sample: one for the whole stream, as Suricata's pcap-file)
CHECKSUM_HINTS = {"auto": CSUM_AUTO, "yes": CSUM_VALIDATE, "no": CSUM_SKIP}


# Linux packet types (sll_pkttype) by name, for the summary
PKTTYPE_NAMES = {afp.PACKET_HOST: "host", afp.PACKET_BROADCAST: "broadcast", afp.PACKET_MULTICAST: "multicast",
                 afp.PACKET_OTHERHOST: "otherhost", afp.PACKET_OUTGOING: "outgoing"}


# ---------------------------------------------------------------------- flow hash
def flow_hash(frame: bytes, linktype: int = LINKTYPE_ETHERNET) -> int:
    """Symmetric hash of a frame's outer flow (sorted endpoints, protocol); 0 for non-IP."""
    try:
        n = len(frame)
        et, off = network_header(frame, linktype)
        if et == ETH_P_IP:
            ihl = (frame[off] & 0x0F) * 4
            proto = frame[off + 9]
            a, b = frame[off + 12:off + 16], frame[off + 16:off + 20]
            frag = struct.unpack_from("!H", frame, off + 6)[0] & 0x3FFF
            l4 = off + ihl if not frag else -1
        elif et == ETH_P_IPV6:
            proto = frame[off + 6]
            a, b = frame[off + 8:off + 24], frame[off + 24:off + 40]
            l4 = off + 40
        else:
            return 0
        pa = pb = 0
        if proto in (6, 17, 132) and l4 >= 0 and l4 + 4 <= n:
            pa, pb = struct.unpack_from("!HH", frame, l4)
        ea, eb = (bytes(a), pa), (bytes(b), pb)
        lo, hi = (ea, eb) if ea <= eb else (eb, ea)
        h = 2166136261
        for byte in lo[0] + lo[1].to_bytes(2, "big") + hi[0] + hi[1].to_bytes(2, "big") + bytes((proto,)):
            h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
        return h
    except (IndexError, struct.error):
        return 0


# ---------------------------------------------------------------------- one worker
@dataclass
class Totals:
    packets: int = 0
    bytes: int = 0
    alerts: Counter = field(default_factory=Counter)          # sid -> n
    drops_by_sid: Counter = field(default_factory=Counter)
    drops_by_reason: Counter = field(default_factory=Counter)
    decoder: Counter = field(default_factory=Counter)
    links: Counter = field(default_factory=Counter)           # link type -> packets
    pkttypes: Counter = field(default_factory=Counter)        # SLL/SLL2 packet type -> packets
    msgs: dict = field(default_factory=dict)
    dropped: list = field(default_factory=list)               # pcap_cnt of frames with verdict != FORWARD
    stats: Counter = field(default_factory=Counter)
    warnings: list = field(default_factory=list)

    def merge(self, o: "Totals") -> None:
        self.packets += o.packets
        self.bytes += o.bytes
        self.alerts.update(o.alerts)
        self.drops_by_sid.update(o.drops_by_sid)
        self.drops_by_reason.update(o.drops_by_reason)
        self.decoder.update(o.decoder)
        self.links.update(o.links)
        self.pkttypes.update(o.pkttypes)
        self.msgs.update(o.msgs)
        self.dropped.extend(o.dropped)
        self.stats.update(o.stats)


def _engine(rules_paths, config, mode):
    from bridge.hook import build_engine

    return build_engine(config, mode=mode, paths=rules_paths)


def fast_path_for(inspector, mode: str) -> FastPath:
    """Replay's fast path: one port, no peer (both directions of a flow on it), no kernel."""
    return FastPath([FastPort(0, 0, None)], inspector, mode=mode)


def flow_drop_event(data, meta: FrameMeta, flow, to_server: bool) -> Drop:
    """The `drop` event the engine gives a frame of a dropped flow (reason "flow"), for a
    frame the fast path dropped: the frame decoded for its EVE fields, the flow's id and
    the direction from the fast path's entry."""
    from rules.engine import packet_info

    pkt = decode(data, meta)[0]
    pkt.flow = flow
    pkt.to_server = to_server
    return Drop(packet_info(pkt), "flow", 0, None, *headers(pkt))


def run_stream(engine, pcaps, *, eve_sink=None, share=None, progress=None, pass_writer=None,
               drop_writer=None, on_warning=None, checksum: str = "auto", bypass: str = "off",
               mode: str = "ips") -> Totals:
    """Inspect every record of `pcaps` (one stream).  `share=(i, n)` keeps only
    the frames whose flow hash falls to worker i of n.  `eve_sink(cnt, events)`
    receives each packet's events.  Writers get `write(ts, frame, linktype)`.
    `checksum` is pcap-file.checksum-checks (auto, yes, no).  `bypass` "user": the
    fast path answers the frames of decided flows (module docstring); `mode` is the
    engine's (ips, tap, ids)."""
    hint = CHECKSUM_HINTS[checksum]
    t = Totals()
    stream = iter_pcaps(pcaps, on_warning=on_warning)
    last_tick = None
    # Engine.inspect behind its compiled lanes (Engine.front); any other inspector as it is
    inspect = engine.front() if hasattr(engine, "front") else engine.inspect
    links = t.links
    cnt = 0
    fp = fast_path_for(engine, mode) if bypass == "user" else None
    if fp is not None:
        hit, install, sync = fp.hit, fp.install, fp.sync
    ips = mode == "ips"

    def count(cnt, events):
        for e in events:
            if isinstance(e, Alert):
                t.alerts[e.sid] += 1
                t.msgs[e.sid] = e.msg
            elif isinstance(e, Drop):
                t.drops_by_reason[e.reason] += 1
                if e.sid:
                    t.drops_by_sid[e.sid] += 1
            elif isinstance(e, DecoderEvent):
                t.decoder[e.name] += 1
        if eve_sink is not None:
            eve_sink(cnt, events)

    for cnt, (ts, data, _src, iface, lt) in enumerate(stream.records(), 1):
        if share is not None and flow_hash(data, lt) % share[1] != share[0]:
            continue
        t.packets += 1
        t.bytes += len(data)
        links[lt] += 1
        if lt != LINKTYPE_ETHERNET:
            pt = link_pkttype(data, lt)
            if pt >= 0:
                t.pkttypes[pt] += 1
        if last_tick is None:
            last_tick = ts
        elif ts - last_tick >= TICK_EVERY:
            if fp is not None:
                sync()                         # the fast path's counts first: timeouts see them
            ended = engine.tick(ts)            # flows that timed out: their last inspection (IDS)
            if fp is not None:
                sync()                         # and the flows that tick ended leave the fast path now
            if ended:
                count(cnt, ended)
            last_tick = ts
        if fp is not None and lt == LINKTYPE_ETHERNET:
            v = hit(0, data, 0, len(data), 0, ts)
            if v:
                if v == FAST_DROP:
                    t.dropped.append(cnt)
                    if drop_writer is not None:
                        drop_writer.write(ts, data, lt)
                    if ips:                    # the engine's drop event of a dropped flow's frame
                        if eve_sink is None:
                            t.drops_by_reason["flow"] += 1
                        else:
                            meta = FrameMeta(ts, iface, (), cnt, (), lt, hint)
                            count(cnt, (flow_drop_event(data, meta, *fp.lookup(0, data, 0, len(data), 0)),))
                elif pass_writer is not None:
                    pass_writer.write(ts, data, lt)
                if progress is not None:
                    progress(stream, t.packets)
                continue
        r = inspect(data, FrameMeta(ts, iface, (), cnt, (), lt, hint))
        if r.bypass is not None and fp is not None and lt == LINKTYPE_ETHERNET:
            install(0, data, 0, len(data), 0, r.bypass, ts)
        if r.verdict != Verdict.FORWARD:
            t.dropped.append(cnt)
            if drop_writer is not None:
                drop_writer.write(ts, data, lt)
        elif pass_writer is not None:
            pass_writer.write(ts, data, lt)
        if r.events:
            count(cnt, r.events)
        if progress is not None:
            progress(stream, t.packets)
    if fp is not None:
        sync()                                 # the last counts, before the flows end
    ended = engine.finish()                    # the end of the input ends every flow, as in Suricata
    if ended:
        count(cnt, ended)
    t.warnings = list(stream.warnings)
    t.stats.update(engine.stats())
    if fp is not None:
        fp.clear()
        t.stats.update(fp.stats())
    return t


def _worker(args) -> Totals:
    i, n, rules_paths, config_path, mode, pcaps, eve_tmp, bypass = args
    from bridge.eve import dumps

    config = _load_config(config_path)
    engine = _engine(rules_paths, config, mode)
    settle_heap()
    out = open(eve_tmp, "w") if eve_tmp else None

    def sink(cnt, events):
        for e in events:
            out.write(f"{cnt}\t{dumps(e)}\n")

    try:
        return run_stream(engine, pcaps, eve_sink=sink if out else None, share=(i, n), on_warning=lambda m: None,
                          checksum=config.pcap_file_checksum_checks, bypass=bypass, mode=mode)
    finally:
        if out:
            out.close()


def _load_config(path):
    from conf.model import Config

    if not path:
        c = Config()
        c.default_rule_path = os.getcwd()
        return c
    from conf.load import load_file

    return load_file(path)


def config_or_refusal(path, command: str):
    """(config, None), or (None, exit status) after saying in one line per problem why the
    configuration at `path` is refused -- for replay and rules check alike."""
    from conf.validate import ConfigError

    try:
        return _load_config(path), None
    except ConfigError as e:
        print(f"ipsbridge {command}: configuration refused:\n{e}", file=sys.stderr)
    except OSError as e:
        print(f"ipsbridge {command}: cannot read {path}: {e.strerror}", file=sys.stderr)
    return None, EXIT_USAGE


# ---------------------------------------------------------------------- command
class _Progress:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, stream, packets: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        el = max(now - self.start, 1e-9)
        tot = stream.total_bytes or 1
        sys.stderr.write(f"\r{stream.bytes_read / 1e6:.1f}/{tot / 1e6:.1f} MB ({100 * stream.bytes_read / tot:.0f}%) "
                         f"{packets} packets {packets / el:.0f} pkt/s ")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


def format_summary(t: Totals, elapsed: float, mode: str, workers: int, bypass: str = "off") -> str:
    lines = [f"packets: {t.packets} ({t.bytes} bytes)", f"mode: {mode}, workers: {workers}"]
    if t.links:
        lines.append("link types: " + ", ".join(f"{lt} {linktype_name(lt).split(',')[0]} {n}"
                                                for lt, n in sorted(t.links.items())))
    if t.pkttypes:
        lines.append("  Linux cooked packet types: " + ", ".join(
            f"{PKTTYPE_NAMES.get(pt, pt)} {n}" for pt, n in sorted(t.pkttypes.items())))
    lines.append(f"alerts: {sum(t.alerts.values())}")
    for sid, n in sorted(t.alerts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {n:>8}  sid {sid}: {t.msgs.get(sid, '')}")
    nd = len(t.dropped)
    lines.append(f"dropped frames: {nd}" + (" (verdicts; not enforced in this mode)" if mode != "ips" else ""))
    if t.drops_by_reason:
        lines.append("  by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(t.drops_by_reason.items())))
    for sid, n in sorted(t.drops_by_sid.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {n:>8}  sid {sid}: {t.msgs.get(sid, '')}")
    dec = Counter(t.decoder)
    for k, v in t.stats.items():
        if k.startswith("decoder.") and k != "decoder.packets_with_events" and k not in dec:
            dec[k] = v
    lines.append(f"decoder events: {sum(dec.values())}")
    for name, n in sorted(dec.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {n:>8}  {name}")
    lines.append(f"flows: {t.stats.get('flow.created', 0)}")
    decided = {k[len("flow.decided."):]: v for k, v in t.stats.items() if k.startswith("flow.decided.") and v}
    if decided:
        lines.append(f"  decided: {sum(decided.values())} (" + ", ".join(f"{k} {v}" for k, v in
                                                                    sorted(decided.items())) + ")")
    lines.append(format_bypass(t.stats, bypass))
    if t.stats.get("checksum.auto_disabled"):
        lines.append(f"checksum validation: off from packet {CHECKSUM_SAMPLE_COUNT} on (pcap-file.checksum-checks: "
                     f"auto; {t.stats.get('checksum.auto_invalid', 0)} invalid TCP checksums in the "
                     f"{t.stats.get('checksum.auto_sampled', 0)}-packet sample)")
    if t.stats.get("engine.errors"):
        lines.append(f"engine errors: {t.stats['engine.errors']}")
    rate = t.packets / elapsed if elapsed > 0 else 0.0
    lines.append(f"elapsed: {elapsed:.3f} s, {rate:.0f} pkt/s")
    return "\n".join(lines)


def format_bypass(stats, bypass: str) -> str:
    """The summary's fast-path line: what the frames of decided flows cost (bypass.* counters)."""
    if bypass != "user":
        return f"bypass: {bypass} (every frame inspected)"
    pf, pb = stats.get("bypass.pass_frames", 0), stats.get("bypass.pass_bytes", 0)
    df, db = stats.get("bypass.drop_frames", 0), stats.get("bypass.drop_bytes", 0)
    line = (f"bypass: user: {stats.get('bypass.installed', 0)} flows, {pf + df} frames not inspected "
            f"(pass {pf} frames {pb} bytes, drop {df} frames {db} bytes)")
    if stats.get("bypass.scan_installed"):
        line += (f"\nprefilter: {stats['bypass.scan_installed']} UDP flow directions, "
                 f"{stats.get('bypass.scan_frames', 0)} datagrams passed on the fast path's pattern scan alone, "
                 f"{stats.get('bypass.scan_hits', 0)} with a fast pattern inspected")
    return line


def _is_capture(path: str) -> bool:
    if os.path.isdir(path):
        return True
    if path.endswith((".pcap", ".pcapng", ".cap")):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                    b"\x0a\x0d\x0d\x0a")


def cmd_replay(args) -> int:
    from conf.validate import ConfigError
    from bridge.eve import EveWriter
    from conf.build import engine_settings, load_rules
    from rules import loader

    t0 = time.monotonic()
    config, refused = config_or_refusal(args.config, "replay")
    if refused is not None:
        return refused
    rules_list = list(args.rules or [])
    pcap_args = list(args.pcap or [])
    if not pcap_args:
        # `-r a.rules b.rules capture.pcap`: -r takes several files, so the captures land in it
        while rules_list and _is_capture(rules_list[-1]):
            pcap_args.insert(0, rules_list.pop())
    if not pcap_args:
        print("ipsbridge replay: no capture given (PCAP|DIR ...)", file=sys.stderr)
        return EXIT_USAGE
    args.pcap = pcap_args
    mode = args.mode or "ips"
    bypass = getattr(args, "bypass", None) or "user"
    if bypass == "kernel":
        print("ipsbridge replay: --bypass kernel needs live interfaces (eBPF on their receive path); "
              "offline use --bypass user (the default) or off", file=sys.stderr)
        return EXIT_USAGE
    workers = args.workers if args.workers is not None else 1
    refusal = thread_count_refusal(workers, "worker count")
    if refusal:                                # never silently another count than the one asked for
        print(f"ipsbridge replay: --workers: {refusal} -- fix: {threads_fix(auto=False)}", file=sys.stderr)
        return EXIT_USAGE
    outputs = [(opt, path) for opt, path in (("--eve", args.eve), ("--write-pass", args.write_pass),
                                             ("--write-drop", args.write_drop)) if path]
    for opt, path in outputs:                  # before the rules load: an output that cannot be written
        refusal = output_refusal(path)         # is refused at once, and nothing is created or truncated
        if refusal:
            print(f"ipsbridge replay: {opt}: {refusal} -- fix: {OUTPUT_FIX}", file=sys.stderr)
            return EXIT_USAGE
    try:                                       # policies Suricata refuses in this mode: refused here
        settings = engine_settings(config, mode)
    except ConfigError as e:
        print(f"ipsbridge replay: configuration refused:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    rules_paths = [os.path.abspath(p) for p in rules_list]
    if not rules_paths:
        from conf.validate import rule_path

        rules_paths = [rule_path(config, p) for p in config.rule_files]
    if not rules_paths:
        print("ipsbridge replay: no rules: give -r/--rules FILE or rule-files in the config", file=sys.stderr)
        return EXIT_USAGE
    res = load_rules(config, rules_paths)
    if res.errors:
        print(loader.format_report(res), file=sys.stderr)
        if args.strict:
            return EXIT_USAGE
    if not res.rules:
        print("ipsbridge replay: no rule loaded", file=sys.stderr)
        return EXIT_USAGE if args.strict else EXIT_FAIL
    try:
        pcaps = iter_pcaps(args.pcap).files
    except PcapError as e:
        print(f"ipsbridge replay: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not pcaps:
        print("ipsbridge replay: no capture files found", file=sys.stderr)
        return EXIT_USAGE
    pcaps = [str(p) for p in pcaps]
    clash = _output_clash(outputs, pcaps)
    if clash:
        print(f"ipsbridge replay: {clash}", file=sys.stderr)
        return EXIT_USAGE
    # every file's link types, from its headers: a capture we cannot read is refused (and a
    # pcap output that cannot hold the inputs' link types) before anything is inspected
    seen: dict[int, str] = {}                  # link type -> first file with it
    pw = dw = eve = None
    try:
        for p in pcaps:
            for lt in sorted(linktypes(p)):
                seen.setdefault(lt, p)
        pw = open_writer(args.write_pass, seen) if args.write_pass else None
        dw = open_writer(args.write_drop, seen) if args.write_drop else None
        if args.eve:
            with open(args.eve, "w"):
                pass                           # a fresh file per replay
            eve = EveWriter(args.eve)
    except (PcapError, OSError) as e:
        for w in (pw, dw):
            if w is not None:
                w.close()
        print(f"ipsbridge replay: {_why(e, 'cannot write')}", file=sys.stderr)
        return EXIT_USAGE
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        if workers == 1:
            from rules.engine import Engine

            engine = Engine(res.rules, settings, rules_failed=len(res.errors))
            settle_heap()
            sink = (lambda cnt, events: eve.write(events)) if eve else None
            totals = run_stream(engine, pcaps, eve_sink=sink, progress=progress, pass_writer=pw, drop_writer=dw,
                                checksum=config.pcap_file_checksum_checks, bypass=bypass, mode=mode)
        else:
            totals = _run_workers(workers, rules_paths, args.config, mode, pcaps, eve, pw, dw, bypass)
    except BrokenPipeError:
        raise                                  # an output piped to a reader that left: bridge.offline
    except (PcapError, OSError) as e:          # a capture that breaks off, an output that fails midway
        if progress:
            progress.done()
        print(f"ipsbridge replay: {_why(e, 'stopped')}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        gc.unfreeze()                          # (settle_heap) the engine's objects collectable again
        if eve is not None:
            eve.close()
        for w in (pw, dw):
            if w is not None:
                w.close()
    if progress:
        progress.done()
    print(format_summary(totals, time.monotonic() - t0, mode, workers, bypass))
    return EXIT_OK


def _output_clash(outputs, pcaps) -> str | None:
    """An output that is one of the captures read (it would be truncated before it is read) or
    another output (both would write one file): one line saying which, with the fix."""
    def same(a: str, b: str) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:                        # an output not there yet: the same name is the same file
            return os.path.abspath(a) == os.path.abspath(b)

    for i, (opt, path) in enumerate(outputs):
        for p in pcaps:
            if same(path, p):
                return (f"{opt}: {path} is also a capture being read, which writing it would destroy -- fix: "
                        "write the output to another file")
        for other, path2 in outputs[i + 1:]:
            if same(path, path2):
                return f"{opt} and {other} both write {path} -- fix: give each output its own file"
    return None


def _why(e: Exception, doing: str) -> str:
    """One line for a capture or an output that failed: a PcapError says it itself; an
    OSError gets `doing`, the file and the system's reason ("cannot write /tmp: Is a
    directory")."""
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"{doing}{where}: {e.strerror or e}"
    return str(e)


def _merge_eve(tmps, eve) -> None:
    """The workers' EVE lines ("pcap_cnt<TAB>line"), in pcap_cnt order, into `eve`."""
    files = [open(t) for t in tmps]
    try:
        def keyed(f):
            for line in f:
                cnt, _, rest = line.partition("\t")
                yield int(cnt), rest
        batch = []
        for _cnt, line in heapq.merge(*(keyed(f) for f in files), key=lambda kv: kv[0]):
            batch.append(line)
            if len(batch) >= 1024:
                eve.write_lines(batch)
                batch = []
        eve.write_lines(batch)
    finally:
        for f in files:
            f.close()


def _run_workers(n, rules_paths, config_path, mode, pcaps, eve, pw, dw, bypass="user") -> Totals:
    tmpdir = tempfile.mkdtemp(prefix="ipsbridge-replay-")
    tmps = [os.path.join(tmpdir, f"w{i}.eve") if eve else None for i in range(n)]
    ctx = mp.get_context("spawn")          # hyperscan state is built inside each worker
    try:
        with ctx.Pool(n) as pool:
            try:
                parts = pool.map(_worker, [(i, n, rules_paths, config_path, mode, pcaps, tmps[i], bypass)
                                           for i in range(n)])
            except PcapError:
                # a capture that breaks off (an absurd length): every worker stops at the same record;
                # once they all have, the events before it are logged, as with one worker
                pool.close()
                pool.join()
                if eve is not None:
                    _merge_eve(tmps, eve)
                raise
        totals = Totals()
        for p in parts:
            totals.merge(p)
        totals.stats["flow.created"] = sum(p.stats.get("flow.created", 0) for p in parts)
        for w in parts[0].warnings:
            print(f"warning: {w}", file=sys.stderr)
        if eve is not None:
            _merge_eve(tmps, eve)
        if pw is not None or dw is not None:
            dropped = set(totals.dropped)
            for cnt, rec in enumerate(iter_pcaps(pcaps, on_warning=lambda m: None).records(), 1):
                w = dw if cnt in dropped else pw
                if w is not None:
                    w.write(rec.ts, rec.data, rec.linktype)
        totals.dropped.sort()
        return totals
    finally:
        for t in tmps:
            if t and os.path.exists(t):
                os.unlink(t)
        os.rmdir(tmpdir)
