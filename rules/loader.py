"""Load rule files: every rule that parses becomes a `Rule`, every one that
does not becomes a `RuleError` (file, line, column) -- loading goes on past
failures unless `strict`.

- ``#`` comment lines and commented-out rules are skipped; a line ending in
  ``\\`` continues on the next one (error columns are mapped back to the
  physical line the offending character is on);
- relative rule paths are taken from `base_dir` (the configuration's
  `default-rule-path`);
- a second rule with the same (gid, sid) replaces the first when its rev is
  higher (as Suricata does; a warning says so), else it is an error;
- without `vars`, Suricata's default vars are used (said in `notes`);
- `classification_file` (the configuration's, read here at load time) gives
  classtype descriptions and priorities; without it any classtype is unknown;
- `unsupported` counts, per missing feature (keyword, ``proto:http``,
  ``pcre-modifier:U``, ...), the rules that need it;
- `threshold_file` (the configuration's `threshold-file`, read here at load
  time) is applied to the loaded rules (rules.threshold_config): a malformed
  line is an error (file:line:col) like a broken rule, an entry that names no
  loaded rule or that Suricata would ignore is a warning.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from rules import classification as _classification
from rules import threshold_config as _threshold_config
from rules.errors import RuleError
from rules.parser import parse_rule
from rules.rule import Rule
from rules.settings import DEFAULT_VARS

_COMMENTED_RULE = re.compile(r"#+\s*(alert|drop|pass|reject|rejectsrc|rejectdst|rejectboth)\s")
_SID = re.compile(r"[;(]\s*sid\s*:")


@dataclass(slots=True)
class LoadResult:
    rules: list[Rule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    unsupported: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # things the operator should know (defaults applied)
    warnings: list[RuleError] = field(default_factory=list)   # e.g. a rule replaced by a higher rev
    threshold_file: str = ""                          # the threshold.config applied, if any
    thresholds: int = 0                               # its entries read (malformed lines are errors)
    counts: dict[str, int] = field(default_factory=lambda: {
        "total": 0, "loaded": 0, "failed": 0, "unsupported": 0, "invalid": 0, "commented": 0, "replaced": 0})

    @property
    def ok(self) -> bool:
        return not self.errors


def logical_lines(text: str) -> Iterable[tuple[str, int, list[tuple[int, int, int]]]]:
    """(logical line, first physical line number, segments) where segments map
    offsets in the logical line back to (offset, physical line, column offset)."""
    buf = ""
    segs: list[tuple[int, int, int]] = []
    first = 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not segs:
            first = no
        segs.append((len(buf), no, 0))
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf += line[:-1]
            continue
        buf += line
        yield buf, first, segs
        buf, segs = "", []
    if segs:
        yield buf, first, segs


def _map_column(segs: list[tuple[int, int, int]], col: int) -> tuple[int, int]:
    off = max(col - 1, 0)
    line, base, c0 = segs[0][1], segs[0][0], segs[0][2]
    for start, no, cofs in segs:
        if start <= off:
            line, base, c0 = no, start, cofs
    return line, off - base + c0 + 1


def load(paths: str | Path | Iterable[str | Path] = (), *, vars: dict | None = None,
         classification_file: str | Path | None = None, base_dir: str | Path = ".",
         strict: bool = False, threshold_file: str | Path | None = None) -> LoadResult:
    """Load rule files; relative paths are taken from `base_dir`.  `threshold_file`: a
    threshold.config applied to the rules once they are loaded."""
    result = LoadResult()
    if not vars or not any(vars.get(k) for k in ("address-groups", "port-groups")):
        vars = DEFAULT_VARS
        result.notes.append("no vars configured: using Suricata's default address-groups/port-groups "
                            "(HOME_NET = [192.168.0.0/16,10.0.0.0/8,172.16.0.0/12])")
    base = Path(base_dir)
    if isinstance(paths, (str, Path)):
        paths = [paths]

    classes: dict = {}
    if classification_file is not None:
        try:
            classes = _classification.load(classification_file)
        except RuleError as e:
            if strict:
                raise
            result.errors.append(e)

    seen: dict[tuple[int, int], Rule] = {}
    cache: dict = {}     # compiled header sets shared by the rules of this load
    for p in paths:
        path = Path(p)
        if not path.is_absolute():
            path = base / path
        fname = str(path)
        result.files.append(fname)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            err = RuleError(f"cannot read rule file: {e.strerror}", file=fname, line=0, column=0)
            if strict:
                raise err from None
            result.errors.append(err)
            continue
        for logical, lineno, segs in logical_lines(text):
            s = logical.strip()
            if not s:
                continue
            if s.startswith("#"):
                if _COMMENTED_RULE.match(s):
                    result.counts["commented"] += 1
                continue
            result.counts["total"] += 1
            try:
                rule = parse_rule(logical, file=fname, line=lineno, vars=vars, classification=classes,
                                  cache=cache)
            except RuleError as e:
                e.file = fname
                e.line, e.column = _map_column(segs, e.column) if e.column else (lineno, 0)
                _fail(result, e, strict)
                continue
            except Exception as e:  # a parser bug must not take the whole load down
                err = RuleError(f"internal error while parsing: {type(e).__name__}: {e}", file=fname,
                                line=lineno, column=1)
                _fail(result, err, strict)
                continue
            key = (rule.gid, rule.sid)
            if key in seen:
                prev = seen[key]
                m = _SID.search(logical)
                col = m.end() - 3 if m else 1
                ln, c = _map_column(segs, col)
                if rule.rev > prev.rev:
                    # Suricata keeps the higher revision; say so instead of doing it silently
                    result.rules[result.rules.index(prev)] = rule
                    seen[key] = rule
                    result.counts["replaced"] += 1
                    result.warnings.append(RuleError(
                        f"sid {rule.sid} (gid {rule.gid}) rev {prev.rev} at {prev.file}:{prev.line} is replaced by "
                        f"this rev {rule.rev}", file=fname, line=ln, column=c, keyword="sid"))
                    continue
                err = RuleError(f"duplicate sid {rule.sid} (gid {rule.gid}): already defined at "
                                f"{prev.file}:{prev.line} with rev {prev.rev} (rev {rule.rev} here is not higher)",
                                file=fname, line=ln, column=c, keyword="sid")
                _fail(result, err, strict)
                continue
            seen[key] = rule
            result.rules.append(rule)
            result.counts["loaded"] += 1
    if threshold_file is not None:
        _apply_thresholds(result, str(threshold_file), vars, strict)
    return result


def _apply_thresholds(result: LoadResult, fname: str, vars: dict, strict: bool) -> None:
    result.threshold_file = fname
    try:
        text = Path(fname).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        err = RuleError(f"cannot read threshold file: {e.strerror}; fix 'threshold-file' or remove it",
                        file=fname, line=0, column=0)
        if strict:
            raise err from None
        result.errors.append(err)
        return
    parsed = _threshold_config.parse(text, fname, vars)
    if parsed.errors:
        if strict:
            raise parsed.errors[0]
        result.errors.extend(parsed.errors)
    result.warnings.extend(_threshold_config.apply(parsed.entries, result.rules))
    result.thresholds = len(parsed.entries)


def _fail(result: LoadResult, err: RuleError, strict: bool) -> None:
    if strict:
        raise err
    result.errors.append(err)
    result.counts["failed"] += 1
    if err.unsupported:
        result.counts["unsupported"] += 1
        for m in err.missing:
            result.unsupported[m] += 1
    else:
        result.counts["invalid"] += 1


def format_report(result: LoadResult, *, verbose: bool = False, top: int = 15) -> str:
    """Per-rule errors (real mistakes always; unsupported ones with `verbose`)
    and a summary with the most-needed missing features."""
    lines = [f"note: {n}" for n in result.notes]
    lines += [f"{w} [warning]" for w in result.warnings]
    for e in result.errors:
        if verbose or not e.unsupported:
            lines.append(str(e))
    c = result.counts
    total = c["total"]
    pct = (100.0 * c["loaded"] / total) if total else 0.0
    lines.append(f"loaded {c['loaded']} of {total} rules ({pct:.1f}%) from {len(result.files)} file(s); "
                 f"{c['failed']} failed: {c['invalid']} invalid, {c['unsupported']} unsupported"
                 + (f"; {c['replaced']} replaced by a higher rev" if c["replaced"] else "")
                 + (f"; {c['commented']} commented out" if c["commented"] else ""))
    if result.threshold_file:
        lines.append(f"threshold file {result.threshold_file}: {result.thresholds} entries read")
    if result.unsupported:
        most = ", ".join(f"{k} ({n})" for k, n in result.unsupported.most_common(top))
        lines.append(f"top unsupported: {most}")
        if not verbose:
            lines.append("(use --verbose to list every unsupported rule)")
    return "\n".join(lines)
