"""Rule reload, the supervisor's side: SIGUSR2, `ipsbridge reload` and the control
socket's reload-rules all come here.

    request()  -> a thread re-reads the configuration (`reconfigure`, the same path
                  `run` took at start) and loads the rule files once, off the data path
    validated  -> refused when the configuration does not load or a rule is invalid
                  (a syntax error, an unknown keyword: a typo in a new drop rule must
                  not be skipped silently); valid Suricata that ipsbridge does not
                  support is skipped and counted, as at start
    compiled   -> the same thread builds the engine once, from the rules it validated
                  (what bridge.hook.build_inspector builds in a worker), and serializes
                  it (`serialize`: cloudpickle; hyperscan databases as hyperscan's own
                  bytes, PCRE2 patterns as their source); a build that fails refuses
                  the reload
    applying   -> every worker gets ("reload", generation, config, size) on its command
                  pipe, then the `size` bytes, written by a thread per worker; it reads
                  them between ring drains, loads them in a thread (`load_inspector`) and
                  swaps the engine in between two ring drains (bridge.worker); flows keep
                  their state
    done       -> when every worker answered: one log line with what changed (rules
                  added, removed, changed by gid:sid) and how the rules were built
                  (`built`: once, or per worker), waiters answered

Each worker builds the engine itself instead, in a thread (("reload", generation, config)),
when the configuration names a verdict-hook (a plug-in's factory is user code meant to run
in each worker process) or when the engine does not serialize; the reason is logged once
(`reload_built_per_worker`).  Measured in the lab (2 workers, ET Open: 22,020 rules loaded,
a 2 ms ping through the bridge): a reload took 10-12 s instead of 16-19 s, each worker spent
about 1 s of CPU on it instead of 5.5-6.5 s, the supervisor 5.7 s instead of 4.4 s; the
serialized engine is 55 MB; the ping's 99th percentile RTT during the reload was 7-13 ms
instead of 34-110 ms.

What a reload takes from the new configuration: `RELOADED` (the rule files and
what their meaning depends on).  Everything else (interfaces, threads, rings,
outputs) needs a restart: a changed key there is named in a warning and ignored.
A reload while one is running is refused (as Suricata does).  A worker that does
not answer within WORKER_TIMEOUT fails the reload; a worker that fails to build or
load keeps its old rules and fails the reload (the others may run the new ones: the
log says which); so does a worker still receiving an earlier reload's bytes.  A worker
restarted during a reload starts on the running rules (`config` changes only when the
reload is done) and the reload fails for its slot ("exited during the reload").
"""
from __future__ import annotations

import collections
import ctypes
import dataclasses
import gc
import os
import pickle
import threading
import time
import types
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
    info, invalid, _ = load_ruleset(config)
    return info, invalid


def load_ruleset(config) -> tuple[RuleSetInfo, list[str], Any]:
    """ruleset_info's (info, invalid) and the loader's result (rules.loader.LoadResult)."""
    from conf.build import load_rules

    result = load_rules(config)
    digest = {(r.gid, r.sid): r.text for r in result.rules}
    failed = [str(e) for e in result.errors]
    invalid = [str(e) for e in result.errors if not e.unsupported]
    for e in result.errors:            # their tracebacks hold frames in cycles: let refcounting free them
        e.__traceback__ = None
    return RuleSetInfo(digest, len(result.rules), failed, time.time()), invalid, result


def diff(old: dict, new: dict) -> dict[str, list[str]]:
    key = lambda k: f"{k[0]}:{k[1]}"   # noqa: E731
    return {
        "added": sorted((key(k) for k in new.keys() - old.keys())),
        "removed": sorted((key(k) for k in old.keys() - new.keys())),
        "changed": sorted((key(k) for k in new.keys() & old.keys() if new[k] != old[k])),
    }


class IdentityKeyed(pickle.PicklingError):
    """An attribute keyed by id() whose keys are not all objects reachable from its owner."""


_ID_CONTAINERS = (dict, set, frozenset)
_NOT_WALKED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)
ID_WALK_LIMIT = 1_000_000       # objects walked from an attribute's owner to find the objects its ids name


def _id_like(keys) -> bool:
    """A non-empty dict or set whose first key looks like an object's address (an int of at
    least 2**32, a multiple of 8): what id() gives, never a sid, port or pattern id."""
    for k in keys:
        return type(k) is int and k >= 1 << 32 and not k & 7
    return False


def _by_id(keys: set[int], root) -> dict[int, Any]:
    """{id: object} for every id in `keys`, found walking the objects `root` refers to
    (breadth first, not into classes, modules or functions); IdentityKeyed when some are
    not there."""
    found: dict[int, Any] = {}
    seen = {id(root)}
    queue = collections.deque((root,))
    walked = 0
    while queue and len(found) < len(keys) and walked < ID_WALK_LIMIT:
        walked += 1
        for r in gc.get_referents(queue.popleft()):
            i = id(r)
            if i in seen:
                continue
            seen.add(i)
            if i in keys:
                found[i] = r
            if not isinstance(r, _NOT_WALKED):
                queue.append(r)
    if len(found) < len(keys):
        raise IdentityKeyed(f"{len(keys) - len(found)} of its {len(keys)} ids name no object it refers to")
    return found


def _dict_by_id(pairs) -> dict:
    return {id(obj): value for obj, value in pairs}


def _set_by_id(objs, frozen: bool):
    ids = {id(obj) for obj in objs}
    return frozenset(ids) if frozen else ids


class _ById:
    """Stands for a container keyed by id() in a pickle: it holds the objects themselves, and
    the container is rebuilt from their new ids when loaded."""

    def __init__(self, container, objs: dict[int, Any]) -> None:
        if type(container) is dict:
            self.reduced = (_dict_by_id, ([(objs[k], v) for k, v in container.items()],))
        else:
            self.reduced = (_set_by_id, ([objs[k] for k in container], type(container) is frozenset))

    def __reduce__(self):
        return self.reduced


def _plain_state(cls) -> bool:
    """Instances of `cls` pickle as (cls.__new__, their __dict__) with nothing of their own."""
    return (cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and cls.__getstate__ is object.__getstate__ and not hasattr(cls, "__setstate__")
            and not hasattr(cls, "__slots__"))


def serialize(obj) -> bytes:
    """cloudpickle (lambdas and closures by value, as rule keywords build them), with two
    changes.  Its dispatch table is a plain dict: cloudpickle 2's ChainMap answered the
    pickler's lookup for every object in Python (about a tenth of the time).  And an
    instance attribute that is a dict or set keyed by id() (rules.detect_tx's TxDetector.bucket:
    id(signature) -> header bucket) is pickled with the objects its ids name, and rebuilt
    from their ids when loaded: the copy's objects have ids of their own.  Such an attribute
    whose ids are not all objects its owner refers to, or whose owner pickles its own way,
    fails it (IdentityKeyed)."""
    import copyreg
    import io

    import cloudpickle

    base = cloudpickle.CloudPickler

    class Pickler(base):
        def __init__(self, file) -> None:
            self.dispatch_table = dict(base.dispatch_table)
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

        def reducer_override(self, o):
            state = getattr(o, "__dict__", None)
            if type(state) is dict:
                keyed = [name for name, v in state.items() if type(v) in _ID_CONTAINERS and _id_like(v)]
                if keyed:
                    return self.by_id(o, state, keyed)
            return super().reducer_override(o)

        @staticmethod
        def by_id(o, state: dict, keyed: list[str]):
            cls = type(o)
            where = f"{cls.__module__}.{cls.__qualname__}.{keyed[0]} is keyed by id()"
            if not _plain_state(cls):
                raise IdentityKeyed(f"{where}, and {cls.__qualname__} pickles its own way")
            keys = {k for name in keyed for k in state[name]}
            try:
                objs = _by_id(keys, o)
            except IdentityKeyed as e:
                raise IdentityKeyed(f"{where}: {e}") from None
            state = dict(state)
            for name in keyed:
                state[name] = _ById(state[name], objs)
            return copyreg.__newobj__, (cls,), state

    buf = io.BytesIO()
    Pickler(buf).dump(obj)
    return buf.getvalue()


def build_once(config, loaded=None):
    """What bridge.hook.build_inspector(config, settle=False) builds, for a configuration
    without a verdict-hook; with `loaded` (the validation's rules.loader.LoadResult for
    `config`) the engine is built from those rules, as hook.build_engine builds it from the
    ones it loads: the rule files are not read a second time (with ET Open that read is
    3-4 s), and the rules compiled are the rules validated."""
    if loaded is None or not config.rule_files:
        from bridge.hook import build_inspector

        return build_inspector(config, settle=False)
    from conf.build import engine_settings
    from rules.engine import Engine

    return Engine(loaded.rules, engine_settings(config), rules_failed=len(loaded.errors))


def compile_inspector(config, loaded=None, *, build: Callable | None = None) -> tuple[bytes | None, str]:
    """The inspector for `config`, built once (`build_once`) and serialized for the
    workers: (bytes, ""); (None, why) when the workers must build it themselves.  A build
    that fails raises (the reload fails: each worker's build would fail the same way).
    `build(config, settle)`: for tests."""
    if config.verdict_hook:
        return None, f"verdict-hook {config.verdict_hook}: a plug-in is built by each worker"
    inspector = build_once(config, loaded) if build is None else build(config, settle=False)
    try:
        return serialize(inspector), ""
    except Exception as e:  # noqa: BLE001 - anything that does not serialize: the workers build it
        return None, f"{type(inspector).__name__} does not serialize: {e}"


def load_inspector(data) -> Any:
    """In a worker's build thread: the inspector `compile_inspector` serialized.  The garbage
    collector (the whole process's) is off during the load, and what was loaded is frozen at
    once (bridge.hook.settle_heap): with it on, collections walked the growing rule set again
    and again; with ET Open (22,020 rules) the load took 3.6-3.8 s and kept the frame loop
    from the interpreter lock for up to 420-470 ms at a time, with it off 1.4 s and at most
    80 ms (building the engine there took 11 s, with waits of up to 360 ms).  Cyclic garbage
    the frame loop leaves meanwhile is frozen too, as resettle_heap freezes it at a swap."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        inspector = pickle.loads(data)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
    return inspector


def trim_heap() -> None:
    """The engine built and serialized is gone: glibc's malloc_trim gives the memory it freed
    back to the system (with ET Open the supervisor kept 320-360 MB instead of about 255)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):      # not glibc
        pass


def write_all(fd: int, data) -> None:
    """Write all of `data` to `fd` (blocking; a pipe takes it as the reader reads)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def merged(current, new):
    """`current` with the reloadable fields of `new`; [names of other fields that differ]."""
    changed = [f.name for f in dataclasses.fields(current)
               if f.name not in NOT_COMPARED and getattr(current, f.name) != getattr(new, f.name)]
    repl = {name: getattr(new, name) for name in RELOADED if hasattr(new, name)}
    return dataclasses.replace(current, **repl), changed


_collector_held = False         # the reload thread turned the garbage collector off (Reloader._validate)


def _collector_back_on() -> None:
    if _collector_held:
        gc.enable()


os.register_at_fork(after_in_child=_collector_back_on)


class Reloader:
    """The state of rule reloads in the supervisor.  Not thread-safe by design: only the
    validation (and build) runs in a thread, and it hands its result over through
    `_validated`; the sender threads only write their bytes."""

    def __init__(self, config, reconfigure: Callable[[], tuple[Any, list]] | None, log,
                 send: Callable[[int, tuple], bool], dup_ctl: Callable[[int], int | None] | None = None,
                 compile: Callable[[Any, Any], tuple[bytes | None, str]] = compile_inspector) -> None:
        self.config = config
        self.reconfigure = reconfigure
        self.log = log
        self.send = send                  # (worker index, message) -> False if the worker is gone
        self.dup_ctl = dup_ctl            # worker index -> a duplicate of its command pipe's fd, or None
        self.compile = compile            # (config, LoadResult) -> (bytes, "") or (None, why); with dup_ctl only
        self.senders: dict[int, threading.Thread] = {}   # worker index -> the thread writing it the rules
        self._told: set[str] = set()      # reasons for building per worker already logged
        self._compiled: tuple = ("", 0, 0.0)   # how the rules being applied were built (for the log)
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
        """The thread: load and validate, then build and serialize.  The garbage collector is
        off meanwhile (in the whole supervisor, whose loop allocates little): an engine is
        about a million objects, and collections walked them again and again (a quarter of
        the thread's time with ET Open); the engine goes by reference counting once
        serialized.  A worker forked meanwhile (a restart) gets the collector back on."""
        global _collector_held
        enabled = gc.isenabled()
        gc.disable()
        _collector_held = enabled
        try:
            self._validated = self._load_and_build()
        except Exception as e:  # noqa: BLE001 - a failed reload keeps the running rules, whatever the cause
            self._validated = (False, f"reload failed: {e!r}", None, None)
        finally:
            _collector_held = False
            if enabled:
                gc.enable()

    def _load_and_build(self) -> tuple:
        new, problems = self.reconfigure()
        if problems:
            return False, "; ".join(str(p) for p in problems[:MAX_REPORTED]), None, None
        config, ignored = merged(self.config, new)
        info, invalid, loaded = load_ruleset(config)
        if invalid:
            more = f" (and {len(invalid) - MAX_REPORTED} more)" if len(invalid) > MAX_REPORTED else ""
            return False, f"{len(invalid)} invalid rule(s): " + "; ".join(invalid[:MAX_REPORTED]) + more, None, None
        blob, why, secs = None, "", 0.0
        if self.dup_ctl is not None:
            t0 = time.monotonic()
            try:
                blob, why = self.compile(config, loaded)
            except Exception as e:  # noqa: BLE001 - the new rules do not build: the running ones stay
                return False, f"reload failed: building the rules: {e!r}", None, None
            finally:
                del loaded
                trim_heap()
            secs = time.monotonic() - t0
        return True, "", (config, info, blob, why, secs), ignored

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
            config, info, blob, why, secs = new
            self.generation += 1
            self._new = (config, info)
            self._pending = {}
            self._failures = []
            if blob is None:
                self._compiled = ("per worker", 0, 0.0)
                if why and why not in self._told:      # once per reason: it holds for every reload
                    self._told.add(why)
                    say = self.log.info if config.verdict_hook else self.log.warning
                    say("reload_built_per_worker", reason=why,
                        effect="each worker builds the rules itself, in a thread beside its frame loop")
            else:
                self._compiled = ("once", len(blob), round(secs, 2))
            for idx in workers:
                if blob is None:
                    if self.send(idx, ("reload", self.generation, config)):
                        self._pending[idx] = None
                    else:
                        self._failures.append(f"worker {idx}: not reachable")
                    continue
                self._ship(idx, config, blob)
            del blob
            self.state = "applying"
            self._deadline = time.monotonic() + WORKER_TIMEOUT
            self._maybe_done()
        elif self.state == "applying" and time.monotonic() > self._deadline:
            self._failures += [f"worker {i}: no answer within {WORKER_TIMEOUT:.0f} s" for i in self._pending]
            self._pending = {}
            self._maybe_done()

    def _ship(self, idx: int, config, blob: bytes) -> None:
        """The header on the command pipe, then the bytes from a thread of their own: a pipe
        takes them only as fast as the worker reads them (between its ring drains), and the
        supervisor's loop must not wait for that.  The thread writes to a duplicate of the
        pipe's descriptor: a worker restarted meanwhile gets a new pipe and never sees them
        (the write to the dead worker's pipe fails, EPIPE, and the thread ends)."""
        sender = self.senders.get(idx)
        if sender is not None and sender.is_alive():   # a worker stuck in an earlier reload
            self._failures.append(f"worker {idx}: still receiving an earlier reload's rules")
            return
        fd = self.dup_ctl(idx)
        if fd is None:
            self._failures.append(f"worker {idx}: not reachable")
            return
        if not self.send(idx, ("reload", self.generation, config, len(blob))):
            os.close(fd)
            self._failures.append(f"worker {idx}: not reachable")
            return
        self._pending[idx] = None

        def send():
            try:
                write_all(fd, blob)
            except OSError:
                pass                    # the worker is gone: worker_gone() says so
            finally:
                os.close(fd)

        self.senders[idx] = t = threading.Thread(target=send, name=f"rule-send-{idx}", daemon=True)
        t.start()

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
        built, size, compile_secs = self._compiled
        self.log.info("rules_reloaded", generation=self.generation, loaded=info.loaded,
                      not_loaded=len(info.failed), seconds=secs, built=built,
                      **({"compiled_bytes": size, "compile_seconds": compile_secs} if size else {}),
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
