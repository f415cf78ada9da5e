"""The long fuzz run: each target of the fuzz tests, coverage-guided with Atheris
(libFuzzer), for as long or as many inputs as asked.  Not a test: run it before
closing a change to the engine, the parsers or the readers (tests/bench/README.md).

    nice -n 10 python3 tests/bench/fuzz_long.py all --runs 1000000       # every target in turn
    nice -n 10 python3 tests/bench/fuzz_long.py engine --time 600       # one target, 10 minutes
    python3 tests/bench/fuzz_long.py engine --reproduce crash-1234...   # replay a saved input
    python3 tests/bench/fuzz_long.py pcap -- -max_len=4096              # libFuzzer's own options after --

Targets, and what counts as a finding (any other exception is one too):
  engine  Engine.inspect over a sequence of frames, one fresh engine per input, in
          each configuration of tests/unit/test_engine_fuzz.py (ips, tap, ids; small
          caps): engine.errors must stay 0, the tables within their caps after every
          frame, and every session, byte and fragment given back by finish().
  rules   rule text, each line through rules.parser.parse_rule and the whole as a rule
          file through rules.loader.load: RuleError only, never the loader's
          "internal error" (its net for a parser exception).
  conf    YAML text through conf.load_text, then validate and engine_settings in each
          mode: ConfigError only.
  pcap    bytes as a capture file through bridge.pcap.read_file and linktypes:
          PcapError only.

Each target starts from a seed corpus built from the fuzz tests' own real inputs (the
frames, rule corpus, shipped and stock YAML, pcap/pcapng files) and a dictionary of
the format's tokens, both written under --workdir (default $TMPDIR/ipsbridge-fuzz),
where the corpus libFuzzer grows is kept for the next run and crashing inputs land
(crash-*, timeout-*).  One process, one CPU: the targets run one after another.

Without Atheris (`pip install atheris`: wheels for CPython 3.8-3.11 on x86-64 Linux,
no compiler needed), `--hypothesis N` runs the pytest fuzz files with N times their
examples instead (IPSBRIDGE_FUZZ_SCALE=N).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "tests" / "unit"
for p in (REPO, UNIT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

TARGETS = ("engine", "rules", "conf", "pcap")
FUZZ_FILES = ["tests/unit/test_engine_fuzz.py", "tests/unit/test_decode_fuzz.py", "tests/unit/test_parser_fuzz.py",
              "tests/unit/test_conf_fuzz.py", "tests/unit/test_pcap_fuzz.py"]


# ---------------------------------------------------------------------------- engine
# An input: [config][linktype] then records [op][length, 2 bytes][data]: op 0 a frame,
# 1 a frame whose checksums the capture layer vouched for (CSUM_SKIP), 2 a tick `length`
# seconds later, 3 a frame on the other interface; bytes left over are one last frame.
LINKTYPE_LIST = (1, 0, 101, 108, 113, 228, 229, 276)


def encode_frames(config: int, frames, ops=None) -> bytes:
    out = bytearray((config, 0))
    for i, f in enumerate(frames):
        op = ops[i] if ops else 0
        out += bytes((op,)) + len(f).to_bytes(2, "big") + f
    return bytes(out)


def decode_frames(data: bytes):
    """(config, linktype, [(op, bytes)])"""
    if len(data) < 2:
        return 0, 1, [(0, data)]
    config, lt = data[0], LINKTYPE_LIST[data[1] % len(LINKTYPE_LIST)]
    steps, i = [], 2
    while i < len(data) and len(steps) < 64:
        if i + 3 > len(data):
            steps.append((0, data[i:]))
            break
        op, n = data[i] & 3, int.from_bytes(data[i + 1:i + 3], "big")
        steps.append((op, data[i + 3:i + 3 + n] if op != 2 else n))
        i += 3 + (n if op != 2 else 0)
    return config, lt, steps


def engine_target():
    import test_engine_fuzz as T

    from rules.api import CSUM_SKIP, CSUM_VALIDATE, FrameMeta

    def one(data: bytes) -> None:
        config, lt, steps = decode_frames(data)
        e = T.fresh(config % len(T.CONFIGS))
        ts = 1000.0
        for n, (op, arg) in enumerate(steps, 1):
            if op == 2:
                ts += arg / 100
                e.tick(ts)
                T.check_bounds(e)
                continue
            ts += 0.01
            meta = FrameMeta(ts=ts, iface="eth1" if op == 3 else "eth0", pcap_cnt=n, linktype=lt,
                             checksum=CSUM_SKIP if op == 1 else CSUM_VALIDATE)
            T.check_result(e.inspect(arg, meta), arg, e.settings.mode)
            T.check_bounds(e)
        T.check_drained(e, ts)

    seeds = [encode_frames(c, f) for c in range(len(T.CONFIGS)) for f in T.FLOWS]
    seeds.append(encode_frames(0, [f for _k, f in T.HANDSHAKES] + [T.tcp_frame(40000, True, 1001, 5001, 0x18, 512,
                                                                               b"cmd.exe LOGIN")]))
    seeds.append(encode_frames(1, T.ALL_FRAMES[:60]))
    seeds.append(encode_frames(3, T.ALL_FRAMES[60:], [i % 4 for i in range(len(T.ALL_FRAMES) - 60)]))
    words = [b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x12\xb5", b"\x65\x58", b"\x00\x50"] + \
        [t.encode() if isinstance(t, str) else t for t in T.TRIGGERS]
    return one, seeds, words


# ---------------------------------------------------------------------------- rules
def rules_target(workdir: Path):
    import test_parser_fuzz as T

    from rules import loader
    from rules.errors import RuleError
    from rules.keywords import REGISTRY

    path = workdir / "fuzz.rules"

    def one(data: bytes) -> None:
        # the loader parses every rule of the file (parse_rule) and turns an exception other
        # than RuleError into an "internal error" RuleError: that is the finding
        path.write_bytes(data)
        res = loader.load([path], classification_file=T.CLASS_FILE)
        for e in res.errors + res.warnings:
            assert isinstance(e, RuleError) and "internal error" not in e.message, str(e)
            assert e.line >= 1 and e.column >= 0, str(e)

    seeds = [r.encode() for r in T.REAL] + ["\n".join(T.REAL[i:i + 5]).encode() for i in range(0, 200, 5)]
    words = [f"{k}:".encode() for k in REGISTRY] + [f"{k};".encode() for k in REGISTRY] + \
        [s.encode() for s in T.SPECIALS]
    return one, seeds, words


# ---------------------------------------------------------------------------- conf
def conf_target():
    import test_conf_fuzz as T

    def one(data: bytes) -> None:
        T.check(data.decode("utf-8", "replace"))

    seeds = [s.encode() for s in T.SEEDS]
    words = [t.encode() for t in T.TOKENS] + [k.encode() for k in (
        "af-packet", "interface", "threads", "copy-mode", "copy-iface", "ring-size", "stream", "reassembly",
        "memcap", "depth", "flow", "flow-timeouts", "defrag", "decoder", "vxlan", "exception-policy", "vars",
        "address-groups", "port-groups", "rule-files", "ipsbridge", "outputs", "eve-log")]
    return one, seeds, words


# ---------------------------------------------------------------------------- pcap
def pcap_target(workdir: Path):
    import test_pcap_fuzz as T

    T.FILE = workdir / "fuzz.pcap"

    def one(data: bytes) -> None:
        T.check(data)

    words = [b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\x2b\x1a",
             b"\x1a\x2b\x3c\x4d", b"\x01\x00\x00\x00", b"\x06\x00\x00\x00", b"\x09\x00\x01\x00", b"\x00\x00\x04\x00"]
    return one, list(T.SEEDS), words


# ---------------------------------------------------------------------------- driver
def build(target: str, workdir: Path):
    if target == "engine":
        return engine_target()
    if target == "rules":
        return rules_target(workdir)
    if target == "conf":
        return conf_target()
    return pcap_target(workdir)


def write_seeds(corpus: Path, seeds, words, dict_path: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds):
        (corpus / f"seed-{i:04d}").write_bytes(s)
    with open(dict_path, "w") as f:
        f.writelines('"' + "".join(f"\\x{b:02x}" for b in w) + '"\n' for w in dict.fromkeys(words))


def run_one(args) -> int:
    import atheris

    workdir = Path(args.workdir) / args.target
    workdir.mkdir(parents=True, exist_ok=True)
    max_len = args.max_len or (16384 if args.target == "conf" else 4096)
    with atheris.instrument_imports(include=["rules", "conf", "bridge"]):
        import bridge.pcap  # noqa: F401
        import conf
        import conf.build  # noqa: F401
        import rules.engine
        import rules.loader  # noqa: F401
    one, seeds, words = build(args.target, workdir)
    if args.reproduce:
        for name in args.reproduce:
            print(f"replaying {name}", flush=True)
            one(Path(name).read_bytes())
        print("no finding")
        return 0
    corpus = workdir / "corpus"
    crashes = workdir / "crashes"
    crashes.mkdir(exist_ok=True)
    dict_path = workdir / "tokens.dict"
    write_seeds(corpus, seeds, words, dict_path)
    argv = [sys.argv[0], str(corpus), f"-dict={dict_path}", f"-artifact_prefix={crashes}/",
            "-print_final_stats=1", "-timeout=10", "-rss_limit_mb=4096", f"-max_len={max_len}"]
    if args.runs:
        argv.append(f"-runs={args.runs}")
    if args.time:
        argv.append(f"-max_total_time={args.time}")
    argv += args.libfuzzer
    atheris.Setup(argv, one)
    atheris.Fuzz()
    return 0


def run_all(args) -> int:
    """Each target in its own process, one after another; a summary of runs per target."""
    summary = []
    for target in TARGETS:
        cmd = [sys.executable, __file__, target, "--workdir", args.workdir, "--max-len", str(args.max_len)]
        if args.runs:
            cmd += ["--runs", str(args.runs)]
        if args.time:
            cmd += ["--time", str(args.time)]
        cmd += ["--", *args.libfuzzer] if args.libfuzzer else []
        t0 = time.monotonic()
        log = Path(args.workdir) / f"{target}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
        text = log.read_text(errors="replace")
        runs = re.findall(r"Done (\d+) runs in (\d+) second", text)
        cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
        found = sorted(p.name for p in (Path(args.workdir) / target / "crashes").glob("*"))
        summary.append((target, int(runs[-1][0]) if runs else None, time.monotonic() - t0,
                        cov[-1] if cov else ("?", "?"), rc, found))
    print(f"{'target':8} {'inputs':>10} {'seconds':>8} {'cov':>6} {'ft':>7}  result")
    for target, runs, secs, (cov, ft), rc, found in summary:
        result = "no finding" if rc == 0 and not found else f"exit {rc}; {', '.join(found) or 'see log'}"
        print(f"{target:8} {runs if runs is not None else '?':>10} {secs:8.0f} {cov:>6} {ft:>7}  {result}")
    print(f"logs: {args.workdir}/<target>.log")
    return 0 if all(rc == 0 and not found for *_, rc, found in summary) else 1


def run_hypothesis(args) -> int:
    env = dict(os.environ, IPSBRIDGE_FUZZ_SCALE=str(args.hypothesis))
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FUZZ_FILES],
                           cwd=REPO, env=env)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", nargs="?", choices=TARGETS + ("all",), default="all")
    ap.add_argument("--runs", type=int, default=0, help="inputs per target (libFuzzer -runs)")
    ap.add_argument("--time", type=int, default=0, help="seconds per target (libFuzzer -max_total_time)")
    ap.add_argument("--max-len", type=int, default=0,
                    help="largest input libFuzzer makes, bytes (default: 16384 for conf, 4096 for the others)")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ipsbridge-fuzz"))
    ap.add_argument("--reproduce", nargs="+", metavar="FILE", help="run these inputs once and stop")
    ap.add_argument("--hypothesis", type=int, metavar="N", help="no Atheris: the pytest fuzz files, N times")
    ap.add_argument("libfuzzer", nargs="*", help="after --: libFuzzer options")
    args = ap.parse_args(argv)
    if args.hypothesis:
        return run_hypothesis(args)
    if args.target == "all":
        if args.reproduce:
            ap.error("--reproduce needs one target")
        return run_all(args)
    return run_one(args)


if __name__ == "__main__":
    sys.exit(main())
