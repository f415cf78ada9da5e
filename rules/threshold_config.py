"""threshold.config: Suricata's global thresholds, suppressions and rate filters.

Read once at load by rules.loader (the file named by the configuration's
`threshold-file`, like a rule file), parsed here, then applied to the loaded rules, as Suricata attaches them to its
signatures; the engine only ever sees the rules' `threshold`, `suppress` and
`noalert` (rules.thresholds applies them per packet).

    threshold    gen_id G, sig_id S, type limit|threshold|both, track by_src|by_dst|by_rule|by_both, count N, seconds T
    event_filter (the same as threshold)
    rate_filter  gen_id G, sig_id S, track by_src|by_dst|by_rule|by_both, count N, seconds T, new_action A, timeout T
    suppress     gen_id G, sig_id S
    suppress     gen_id G, sig_id S, track by_src|by_dst|by_either, ip ADDRESSES

The syntax is Suricata 7's (util-threshold-config.c): the options in this order,
comma separated, lower-case names; `#` starts a comment line (only a whole
line: a comment after an entry makes it malformed); a line ending in `\\`
continues on the next; `ip` takes an address, a CIDR block, `$VAR` of the
address-groups or a `[list]` of those (no `!` and no ranges, as Suricata's
grammar).  Suricata logs a malformed line and goes on without it; here it is
a `RuleError` (file:line:column, with the fix) in the load's errors, as a
broken rule is, so `rules check`, `check`, `replay --strict` and a reload see
it.  `sig_id 0` means every rule (of `gen_id G`, or of every gid with
`gen_id 0`); a `sig_id` with `gen_id 0` is refused, as by Suricata.

How the entries combine with the rules' own threshold / detection_filter,
as Suricata 7 does it, in file order (each rule has one threshold slot,
which its own `threshold` or `detection_filter` fills):
- `threshold`/`event_filter` for one sid replaces whatever the slot holds
  (the rule's threshold, its detection_filter, an earlier line's entry);
- with `sig_id 0`, and `rate_filter` with any sid, it only fills an empty
  slot: a rule's own threshold or detection_filter, or an earlier line's
  entry, takes precedence (a warning names the rule when a sid is given);
- `suppress` without track makes the rule noalert (its action still
  applies); with track and ip it adds an address suppression, which comes
  before the threshold slot (a suppressed match is not counted);
- `rate_filter` new_action `log` and `sdrop` are accepted and change nothing,
  as in Suricata ("supported by the parser but not implemented");
- an entry naming an unknown rule is a warning, as in Suricata.
Checked against Suricata 7.0.10 (tests/replay/threshold_config, made by
tests/replay/make_threshold_config.py).  One difference kept: Suricata attaches
an entry for one sid only to the first direction of a bidirectional (`<>`)
rule, so the reverse direction escapes it; here it applies to the rule.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rules.addr import parse_addr
from rules.errors import RuleError
from rules.rule import Rule, Suppress, Threshold

KINDS = ("threshold", "event_filter", "rate_filter", "suppress")
TYPES = ("limit", "threshold", "both")
TRACKS = ("by_src", "by_dst", "by_rule", "by_both")
SUPPRESS_TRACKS = ("by_src", "by_dst", "by_either")
NEW_ACTIONS = ("alert", "drop", "pass", "reject", "log", "sdrop")
NO_EFFECT_ACTIONS = ("log", "sdrop")
U32_MAX = 0xFFFF_FFFF

# the options after gen_id and sig_id, in Suricata's order; "ip" takes the rest of the line
OPTIONS = {
    "threshold": ("type", "track", "count", "seconds"),
    "rate_filter": ("track", "count", "seconds", "new_action", "timeout"),
    "suppress": ("track", "ip"),
}
EXAMPLES = {
    "threshold": "threshold gen_id 1, sig_id 123, type limit, track by_src, count 1, seconds 60",
    "event_filter": "event_filter gen_id 1, sig_id 123, type limit, track by_src, count 1, seconds 60",
    "rate_filter": "rate_filter gen_id 1, sig_id 123, track by_rule, count 100, seconds 60, new_action drop, "
                   "timeout 10",
    "suppress": "suppress gen_id 1, sig_id 123   or   suppress gen_id 1, sig_id 123, track by_src, ip 203.0.113.0/24",
}
_IP_CHARS = re.compile(r"[\[\],$\sA-Za-z0-9.:/_]*")     # what Suricata's suppress grammar lets through


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of threshold.config."""

    kind: str                 # threshold (event_filter too) | rate_filter | suppress
    gid: int
    sid: int
    threshold: Threshold | None = None      # threshold / event_filter / rate_filter
    suppress: Suppress | None = None        # suppress with track and ip
    file: str = ""
    line: int = 0

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class Loaded:
    entries: list[Entry]
    errors: list[RuleError]


def logical_lines(text: str):
    """(logical line, [(offset in it, physical line)]): a line whose last non-blank
    character is a backslash continues on the next (the backslash is left out)."""
    buf, segs = "", []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        segs.append((len(buf), no))
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            buf += stripped[:-1]
            continue
        buf += line
        yield buf, segs
        buf, segs = "", []
    if segs:
        yield buf, segs


def _place(segs, col: int) -> tuple[int, int]:
    """(physical line, column) of 1-based column `col` of a logical line."""
    line, base = segs[0][1], 0
    for start, no in segs:
        if start <= col - 1:
            line, base = no, start
    return line, col - base


class _Line:
    """Reads one logical line, option by option, raising RuleError with the fix."""

    def __init__(self, text: str, segs, file: str) -> None:
        self.text, self.segs, self.file = text, segs, file
        self.pos = 0
        self.kind = ""

    def error(self, msg: str, col: int | None = None) -> RuleError:
        line, c = _place(self.segs, (self.pos if col is None else col) + 1)
        fix = f"; write it as: {EXAMPLES[self.kind]}" if self.kind else ""
        return RuleError(msg + fix, file=self.file, line=line, column=c, keyword=self.kind or None)

    def skip_blank(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def word(self) -> tuple[str, int]:
        self.skip_blank()
        m = re.compile(r"[A-Za-z_]+").match(self.text, self.pos)
        at = self.pos
        if not m:
            return "", at
        self.pos = m.end()
        return m.group(0), at

    def comma(self, after: str) -> None:
        self.skip_blank()
        if self.pos >= len(self.text) or self.text[self.pos] != ",":
            found = self.text[self.pos:].strip()
            raise self.error(f"expected ',' after {after}" + (f", found '{found[:20]}'" if found else ""))
        self.pos += 1

    def option(self, name: str) -> tuple[str, int]:
        """`name VALUE` (value: up to the next comma, or the rest of the line for ip)."""
        got, at = self.word()
        if got != name:
            what = f"'{got}'" if got else (f"'{self.text[at:at + 10].strip()}'" if self.text[at:].strip()
                                           else "the end of the line")
            raise self.error(f"expected '{name}' here, found {what}", at)
        self.skip_blank()
        start = self.pos
        if name == "ip":
            value = self.text[start:].rstrip()
            self.pos = len(self.text)
        else:
            end = self.text.find(",", start)
            end = len(self.text) if end < 0 else end
            value = self.text[start:end].rstrip()
            self.pos = start + len(value)
        if not value:
            raise self.error(f"'{name}' needs a value", start)
        if "#" in value:
            raise self.error("a comment must be on a line of its own", start + value.index("#"))
        return value, start

    def number(self, name: str, *, positive: bool = False) -> int:
        value, at = self.option(name)
        digits = re.match(r"[0-9]+", value)
        if digits and digits.end() < len(value):
            rest = value[digits.end():].strip()
            raise self.error(f"expected ',' after {name} {digits.group(0)}, found '{rest[:20]}'",
                             at + len(value) - len(value[digits.end():].lstrip()))
        if not digits:
            raise self.error(f"'{name}' must be a whole number, not '{value}'", at)
        n = int(value)
        if n > U32_MAX:
            raise self.error(f"'{name}' {n} is too large (at most {U32_MAX})", at)
        if positive and n == 0:
            raise self.error(f"'{name}' must be at least 1", at)
        return n

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value, at = self.option(name)
        if value not in allowed:
            raise self.error(f"{self.kind} {name} must be one of {', '.join(allowed)}, not '{value}'", at)
        return value

    def end(self) -> None:
        self.skip_blank()
        if self.pos < len(self.text):
            rest = self.text[self.pos:].strip()
            hint = " (a comment must be on a line of its own)" if rest.startswith("#") else ""
            raise self.error(f"unexpected '{rest[:30]}' at the end of the line{hint}")


def parse_line(text: str, segs, file: str = "", vars: dict | None = None) -> Entry:
    """One logical line (not blank, not a comment) -> Entry; RuleError when malformed."""
    r = _Line(text, segs, file)
    kind, at = r.word()
    if kind not in KINDS:
        found = kind or text.strip()[:20]
        raise r.error(f"unknown threshold.config entry '{found}': expected threshold, event_filter, "
                      f"rate_filter or suppress", at)
    r.kind = kind
    gid = r.number("gen_id")
    r.comma("gen_id")
    sid = r.number("sig_id")
    if gid == 0 and sid != 0:
        raise r.error(f"sig_id {sid} with gen_id 0: give the rule's gid (1 unless the rule sets gid), "
                      f"or sig_id 0 for every rule", at)
    where = {"file": file, "line": _place(segs, at + 1)[0]}
    if kind == "suppress":
        r.skip_blank()
        if r.pos >= len(text):
            return Entry("suppress", gid, sid, **where)
        r.comma("sig_id")
        track = r.choice("track", SUPPRESS_TRACKS)
        r.comma("track")
        ip, ip_at = r.option("ip")
        bad = _IP_CHARS.fullmatch(ip)
        if bad is None:
            i = next(i for i, ch in enumerate(ip) if not _IP_CHARS.fullmatch(ch))
            raise r.error(f"'{ip[i]}' is not allowed in a suppress ip (an address, a CIDR block, $VAR or "
                          f"a [list] of them; no negation, no ranges)", ip_at + i)
        try:
            addrs = parse_addr(ip, vars=vars, column=ip_at + 1, keyword="ip")
        except RuleError as e:
            raise r.error(f"suppress ip '{ip}': {e.message}", ip_at) from None
        return Entry("suppress", gid, sid, suppress=Suppress(track, addrs), **where)
    r.comma("sig_id")
    if kind == "rate_filter":
        track = r.choice("track", TRACKS)
        r.comma("track")
        count = r.number("count", positive=True)
        r.comma("count")
        seconds = r.number("seconds")
        r.comma("seconds")
        action = r.choice("new_action", NEW_ACTIONS)
        r.comma("new_action")
        timeout = r.number("timeout")
        r.end()
        t = Threshold("rate", track, count, seconds, new_action=action, timeout=timeout)
        return Entry("rate_filter", gid, sid, threshold=t, **where)
    ttype = r.choice("type", TYPES)
    r.comma("type")
    track = r.choice("track", TRACKS)
    r.comma("track")
    count = r.number("count", positive=True)
    r.comma("count")
    seconds = r.number("seconds")
    r.end()
    return Entry("threshold", gid, sid, threshold=Threshold(ttype, track, count, seconds), **where)


def parse(text: str, file: str = "", vars: dict | None = None) -> Loaded:
    """Every entry of a threshold.config text, and a RuleError per malformed line."""
    out = Loaded([], [])
    for logical, segs in logical_lines(text):
        s = logical.strip()
        if not s or s.startswith("#"):
            continue
        try:
            out.entries.append(parse_line(logical, segs, file, vars))
        except RuleError as e:
            out.errors.append(e)
    return out


def apply(entries: list[Entry], rules: list[Rule]) -> list[RuleError]:
    """Attach `entries` (in file order) to `rules`, as Suricata does; the warnings to
    report (unknown sid, an entry the rule's own threshold takes precedence over,
    suppressing every rule, new_action log/sdrop)."""
    warnings: list[RuleError] = []
    by_id: dict[tuple[int, int], Rule] = {(r.gid, r.sid): r for r in rules}

    def warn(e: Entry, msg: str) -> None:
        warnings.append(RuleError(msg, file=e.file, line=e.line, column=1, keyword=e.kind))

    for e in entries:
        if e.sid:
            r = by_id.get((e.gid, e.sid))
            if r is None:
                warn(e, f"{e.kind}: no loaded rule has gid {e.gid} sid {e.sid} (the line has no effect)")
                continue
            targets = [r]
        else:
            targets = [r for r in rules if e.gid == 0 or r.gid == e.gid]
        if e.threshold is not None and e.threshold.new_action in NO_EFFECT_ACTIONS:
            warn(e, f"rate_filter new_action {e.threshold.new_action} has no effect (as in Suricata: "
                    f"only alert, drop, pass and reject change the action)")
        if e.kind == "suppress":
            if e.suppress is None:
                if not e.sid:
                    warn(e, "suppress without sig_id and track: no rule"
                            + ("" if not e.gid else f" of gid {e.gid}") + " will alert")
                for r in targets:
                    r.noalert = True
            else:
                for r in targets:
                    r.suppress = r.suppress + (e.suppress,)
            continue
        t = e.threshold
        if e.kind == "threshold" and e.sid:
            # replaces the rule's own threshold or detection_filter, and an earlier entry
            r = targets[0]
            r.threshold, r.detection_filter = t, None
            continue
        for r in targets:
            if r.threshold is not None or r.detection_filter is not None:
                if e.sid:
                    held = "detection_filter" if r.detection_filter is not None else "threshold"
                    warn(e, f"{e.kind} for sid {e.sid} is ignored: the rule already has a {held} (its own "
                            f"or an earlier line's), which takes precedence as in Suricata; remove that one "
                            f"to use this line")
                continue
            r.threshold = t
    return warnings
