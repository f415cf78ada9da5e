"""Mutation testing of the engine's stages and the worker with the fast unit suites (mutmut 3).

    pip install 'mutmut>=3.8,<4'
    nice -n 10 python3 tests/bench/mutation.py                        # every module below, HEAD
    nice -n 10 python3 tests/bench/mutation.py rules/flow.py --source worktree
    nice -n 10 python3 tests/bench/mutation.py --source 2c762e6 --dir /tmp/mutation-before   # an older commit
    python3 tests/bench/mutation.py --report                          # the scores of the last run in --dir

Never touches this checkout: the code is copied to --dir (HEAD with `git archive`, or with
--source worktree the files as they are now, uncommitted tests included), mutmut's
configuration is appended to the copy's pyproject.toml (mutmut 3 reads only that file, or
setup.cfg, in its working directory), and mutmut runs there with one process.  mutmut
runs, for each mutant, only the tests that reached the mutated function while the
selection below ran once (its "stats"), and stops at the first failure.

A module with more than --sample mutants (default 150) is sampled: that many of its
mutants at random with --seed (default 9), the same ones on every run of the same code.
Each module is mutated in its own copy, DIR/<module>/, with the fast suites that cover it
(MODULE_TESTS) and the tests written for its surviving mutants
(tests/unit/test_mutation_holes_<module>*.py).  The report counts killed (a test failed, or a timeout: an endless loop is caught too),
survived and "no tests" (no selected test reaches the function; counted as survived), per
module; the surviving mutants' names go to DIR/<module>/survivors.txt, and
`cd DIR/<module> && python3 -m mutmut show NAME` prints one as a diff.
"""
from __future__ import annotations

import argparse
import glob
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Each module with the fast unit suites that cover it (seconds each; the ones missing in an
# older checkout are left out).  test_mutated_common_frames_agree (12 s of random frames) is
# deselected: it would run for every decoder mutant that survives.
ENGINE = ["test_engine.py", "test_engine_decisions.py"]
RING = ["test_ring_parsing.py", "test_tx_ring.py", "test_worker_lean2.py", "test_ring_release.py"]
MODULE_TESTS = {
    "rules/flow.py": ["test_flow.py", "test_flow_states.py"],
    "rules/verdict.py": ["test_verdict.py", "test_signature_order.py", "test_thresholds_judge.py",
                         "test_mutation_holes_thresholds.py"] + ENGINE,
    "rules/thresholds.py": ["test_thresholds_judge.py", "test_threshold_config.py", "test_bounds_under_flood.py"]
                           + ENGINE,
    "rules/stream.py": ["test_stream.py", "test_bounds_under_flood.py"] + ENGINE,
    "rules/decode.py": ["test_decode.py", "test_decode_common.py", "test_linktypes.py", "test_vlan_layers.py",
                        "test_checksum_checks.py"],
    "rules/detect.py": ["test_detect.py", "test_signature_order.py", "test_negated_fast_pattern.py",
                        "test_prefilter.py"] + ENGINE,
    "bridge/ring.py": RING,
    "bridge/worker.py": ["test_worker_fastpath.py", "test_watchdog.py"] + RING,
}
MODULES = list(MODULE_TESTS)
HOLES = "test_mutation_holes_{stem}*.py"          # the tests written for a module's surviving mutants
DESELECT = ["tests/unit/test_decode_common.py::test_mutated_common_frames_agree"]

# mutmut's exit codes (mutmut.stats.status_by_exit_code) as this report counts them
KILLED = {1, 3, 36, -24, 24, 152, 255, -11, -9}
SURVIVED = {0}
NO_TESTS = {5, 33}


def tests_present(root: Path, module: str) -> list[str]:
    unit = root / "tests" / "unit"
    names = [t for t in MODULE_TESTS[module] if (unit / t).exists()]
    names += sorted(p.name for p in unit.glob(HOLES.format(stem=Path(module).stem)))
    return [f"tests/unit/{n}" for n in names]


def workdir(base: Path, module: str) -> Path:
    return base / module.replace("/", ".")


def prepare(work: Path, source: str, module: str) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if source != "worktree":
        archive = subprocess.run(["git", "-C", str(REPO), "archive", source], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    else:
        files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-c", "-o", "--exclude-standard", "-z"],
                               check=True, capture_output=True).stdout.decode().split("\0")
        for f in filter(None, files):
            src = REPO / f
            if src.is_file():
                (work / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, work / f)
    for so in glob.glob(str(REPO / "rules" / "_csum*.so")):      # the built extension (pip install -e .)
        shutil.copy2(so, work / "rules")
    selection = tests_present(work, module)
    selection += [a for d in DESELECT for a in ("--deselect", d) if d.split("::")[0] in selection]
    conf = ["", "[tool.mutmut]",
            'source_paths = ["rules", "bridge", "conf"]',
            f"only_mutate = {json.dumps([module])}",
            # the tests go into mutants/ too: tests/conftest.py puts its parent first on sys.path
            'also_copy = ["tests", "netns-lab"]',
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]',
            f"pytest_add_cli_args_test_selection = {json.dumps(selection)}", ""]
    with open(work / "pyproject.toml", "a") as f:
        f.write("\n".join(conf))


def mutmut(work: Path, *names: str, check: bool = True) -> int:
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names]
    return subprocess.run(cmd, cwd=work, check=check).returncode


def codes_of(base: Path, module: str) -> dict | None:
    p = workdir(base, module) / "mutants" / (module + ".meta")
    return json.loads(p.read_text())["exit_code_by_key"] if p.exists() else None


def sample(base: Path, module: str, n: int, seed: int) -> list[str]:
    keys = sorted(codes_of(base, module) or ())
    chosen = sorted(random.Random(f"{seed}:{module}").sample(keys, n)) if n and len(keys) > n else keys
    (workdir(base, module) / "sample.txt").write_text("\n".join(chosen) + "\n")
    return chosen


def report(base: Path) -> None:
    print(f"{'module':22} {'mutants':>8} {'checked':>8} {'killed':>7} {'survived':>8} {'no tests':>8} {'score':>7}")
    for m in MODULES:
        codes = codes_of(base, m)
        if codes is None:
            continue
        sfile = workdir(base, m) / "sample.txt"
        keys = sfile.read_text().split() if sfile.exists() else list(codes)
        got = [codes.get(k) for k in keys]
        killed = sum(c in KILLED for c in got)
        survived = [k for k, c in zip(keys, got) if c in SURVIVED]
        none = [k for k, c in zip(keys, got) if c in NO_TESTS]
        checked = sum(c is not None for c in got)
        score = f"{100 * killed / checked:.1f}%" if checked else "-"
        tag = f" (sampled, seed in {sfile})" if len(keys) < len(codes) else ""
        print(f"{m:22} {len(codes):>8} {checked:>8} {killed:>7} {len(survived):>8} {len(none):>8} {score:>7}{tag}")
        (workdir(base, m) / "survivors.txt").write_text("\n".join(survived + none) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*", default=MODULES, help="modules to mutate (default: all eight, in turn)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/ipsbridge-mutation"))
    ap.add_argument("--source", default="HEAD", help="a commit, or 'worktree' for the files as they are now")
    ap.add_argument("--sample", type=int, default=150, help="mutants per module at most (0: all)")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--report", action="store_true", help="only print the scores of the last run in --dir")
    a = ap.parse_args()
    if a.report:
        report(a.dir)
        return
    bad = [m for m in a.modules if m not in MODULES]
    if bad:
        ap.error(f"not in scope: {bad} (one of {MODULES})")
    for m in a.modules:
        work = workdir(a.dir, m)
        prepare(work, a.source, m)
        # generate the mutants and run the stats (which tests reach which function); the
        # filter matches nothing on purpose, so mutmut stops before running any mutant
        mutmut(work, "no-such-mutant", check=False)
        chosen = sample(a.dir, m, a.sample, a.seed)
        if chosen:
            mutmut(work, *chosen, check=False)
        report(a.dir)


if __name__ == "__main__":
    main()
