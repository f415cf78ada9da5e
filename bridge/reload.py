"""Rule reload, the supervisor's side: SIGUSR2, `ipsbridge reload` and the control
socket's reload-rules all come here.

    request()  -> a thread re-reads the configuration (`reconfigure`, the same path
                  `run` took at start) and loads the rule files once, off the data path
    validated  -> refused when the configuration does not load or a rule is invalid
                  (a syntax error, an unknown keyword: a typo in a new drop rule must
                  not be skipped silently); valid Suricata that ipsbridge does not
                  support is skipped and counted, as at start
    applying   -> every worker gets ("reload", generation, config) on its control pipe,
                  builds the new engine in a thread and swaps it in between two ring
                  drains (bridge.worker); flows keep their state
    done       -> when every worker answered: one log line with what changed (rules
                  added, removed, changed by gid:sid), waiters answered

What a reload takes from the new configuration: `RELOADED` (the rule files and
what their meaning depends on).  Everything else (interfaces, threads, rings,
outputs) needs a restart: a changed key there is named in a warning and ignored.
A reload while one is running is refused (as Suricata does).  A worker that does
not answer within WORKER_TIMEOUT fails the reload; a worker that fails to build
keeps its old rules and fails the reload (the others may run the new ones: the
log says which).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

RELOADED = ("vars", "default_rule_path", "rule_files", "classification_file", "threshold_file")
NOT_COMPARED = ("source", "lines") + RELOADED
WORKER_TIMEOUT = 120.0
MAX_REPORTED = 10       # invalid rules named in a refusal


@dataclass
class RuleSetInfo:
    """What the supervisor knows of a loaded rule set (the workers hold the rules)."""
    digest: dict[tuple[int, int], str] = field(default_factory=dict)   # (gid, sid) -> rule text
    loaded: int = 0
    failed: list[str] = field(default_factory=list)                    # one line per rule not loaded
    when: float = 0.0                                                  # wall time it was loaded


def ruleset_info(config) -> tuple[RuleSetInfo, list[str]]:
    """Load `config`'s rule files: (info, invalid), `invalid` one line per rule that is not
    valid (syntax, unknown keyword); unsupported rules are in info.failed only."""
    from conf.build import load_rules

    result = load_rules(config)
    digest = {(r.gid, r.sid): r.text for r in result.rules}
    failed = [str(e) for e in result.errors]
    invalid = [str(e) for e in result.errors if not e.unsupported]
    for e in result.errors:            # their tracebacks hold frames in cycles: let refcounting free them
        e.__traceback__ = None
    return RuleSetInfo(digest, len(result.rules), failed, time.time()), invalid


def diff(old: dict, new: dict) -> dict[str, list[str]]:
    key = lambda k: f"{k[0]}:{k[1]}"   # noqa: E731
    return {
        "added": sorted((key(k) for k in new.keys() - old.keys())),
        "removed": sorted((key(k) for k in old.keys() - new.keys())),
        "changed": sorted((key(k) for k in new.keys() & old.keys() if new[k] != old[k])),
    }


def merged(current, new):
    """`current` with the reloadable fields of `new`; [names of other fields that differ]."""
    changed = [f.name for f in dataclasses.fields(current)
               if f.name not in NOT_COMPARED and getattr(current, f.name) != getattr(new, f.name)]
    repl = {name: getattr(new, name) for name in RELOADED if hasattr(new, name)}
    return dataclasses.replace(current, **repl), changed


class Reloader:
    """The state of rule reloads in the supervisor.  Not thread-safe by design: only the
    validation runs in a thread, and it hands its result over through `_validated`."""

    def __init__(self, config, reconfigure: Callable[[], tuple[Any, list]] | None, log,
                 send: Callable[[int, tuple], bool]) -> None:
        self.config = config
        self.reconfigure = reconfigure
        self.log = log
        self.send = send                  # (worker index, message) -> False if the worker is gone
        self.info = RuleSetInfo()
        self.state = "idle"               # idle | validating | applying
        self.generation = 0
        self.waiters: list[Callable[[bool, str], None]] = []
        self._thread: threading.Thread | None = None
        self._validated: tuple | None = None
        self._pending: dict[int, None] = {}
        self._failures: list[str] = []
        self._new: tuple | None = None
        self._deadline = 0.0
        self._started = 0.0
        self.reloads = 0
        self.failed_reloads = 0

    # ------------------------------------------------------------------ start
    def load_initial(self) -> None:
        """The running rule set's digest and failures, for diffs and ruleset-* commands
        (a thread at start; the workers build their own engines meanwhile)."""
        def work():
            try:
                info, _ = ruleset_info(self.config)
            except Exception as e:  # noqa: BLE001 - the workers report their own load errors
                self.log.warning("ruleset_digest_failed", error=repr(e))
                return
            if self.generation == 0 and self.state == "idle":
                self.info = info
        if self.config.rule_files:
            threading.Thread(target=work, name="ruleset-digest", daemon=True).start()

    # ------------------------------------------------------------------ requests
    def request(self, waiter: Callable[[bool, str], None] | None = None, *, why: str = "") -> None:
        if self.state != "idle":
            if waiter is not None:
                waiter(False, "Reload already in progress")
            self.log.warning("reload_refused", reason="a reload is in progress", trigger=why)
            return
        if self.reconfigure is None:
            if waiter is not None:
                waiter(False, "this bridge was not started from a configuration that can be re-read")
            return
        if waiter is not None:
            self.waiters.append(waiter)
        self.state = "validating"
        self._started = time.monotonic()
        self.log.info("reload_start", trigger=why)
        self._thread = threading.Thread(target=self._validate, name="rule-reload", daemon=True)
        self._thread.start()

    def _validate(self) -> None:
        try:
            new, problems = self.reconfigure()
            if problems:
                self._validated = (False, "; ".join(str(p) for p in problems[:MAX_REPORTED]), None, None)
                return
            config, ignored = merged(self.config, new)
            info, invalid = ruleset_info(config)
            if invalid:
                more = f" (and {len(invalid) - MAX_REPORTED} more)" if len(invalid) > MAX_REPORTED else ""
                self._validated = (False, f"{len(invalid)} invalid rule(s): " + "; ".join(invalid[:MAX_REPORTED]) + more,
                                   None, None)
                return
            self._validated = (True, "", (config, info), ignored)
        except Exception as e:  # noqa: BLE001 - a failed reload keeps the running rules, whatever the cause
            self._validated = (False, f"reload failed: {e!r}", None, None)

    # ------------------------------------------------------------------ progress
    def poll(self, workers: list[int]) -> None:
        """From the supervisor's loop: move a reload on (validated -> applying -> done)."""
        if self.state == "validating" and self._validated is not None:
            ok, why, new, ignored = self._validated
            self._validated = None
            self._thread = None
            if not ok:
                self._finish(False, why)
                return
            if ignored:
                self.log.warning("reload_ignores", keys=ignored,
                                 reason="only the rule settings are reloaded; these need a restart")
            self.generation += 1
            self._new = new
            self._pending = {}
            self._failures = []
            for idx in workers:
                if self.send(idx, ("reload", self.generation, new[0])):
                    self._pending[idx] = None
                else:
                    self._failures.append(f"worker {idx}: not reachable")
            self.state = "applying"
            self._deadline = time.monotonic() + WORKER_TIMEOUT
            self._maybe_done()
        elif self.state == "applying" and time.monotonic() > self._deadline:
            self._failures += [f"worker {i}: no answer within {WORKER_TIMEOUT:.0f} s" for i in self._pending]
            self._pending = {}
            self._maybe_done()

    def worker_done(self, index: int, generation: int, ok: bool, detail: str) -> None:
        if self.state != "applying" or generation != self.generation or index not in self._pending:
            return
        del self._pending[index]
        if not ok:
            self._failures.append(f"worker {index}: {detail}")
        self._maybe_done()

    def worker_gone(self, index: int) -> None:
        if self.state == "applying" and index in self._pending:
            del self._pending[index]
            self._failures.append(f"worker {index}: exited during the reload")
            self._maybe_done()

    def _maybe_done(self) -> None:
        if self._pending:
            return
        config, info = self._new
        self._new = None
        if self._failures:
            self._finish(False, "; ".join(self._failures))
            return
        changes = diff(self.info.digest, info.digest)
        self.config = config
        self.info = info
        secs = round(time.monotonic() - self._started, 2)
        self.log.info("rules_reloaded", generation=self.generation, loaded=info.loaded,
                      not_loaded=len(info.failed), seconds=secs,
                      added=len(changes["added"]), removed=len(changes["removed"]), changed=len(changes["changed"]),
                      **{f"{k}_sids": v[:50] for k, v in changes.items() if v})
        self._finish(True, "done")

    def _finish(self, ok: bool, message: str) -> None:
        self.state = "idle"
        if ok:
            self.reloads += 1
        else:
            self.failed_reloads += 1
            self.log.error("reload_failed", reason=message, action="the running rules stay")
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            w(ok, message)
