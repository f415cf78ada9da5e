"""A rule reload compiles the rules once, in the supervisor (bridge.reload): the engine is
serialized there and each worker loads it instead of building it.  The loaded engine must
decide every frame as the original does (drop, pcre with its flags and match limits, nocase,
dns.query, flowbits), the hyperscan database must come through (PatternDB), the bytes must
reach a worker through its command pipe without blocking its frame loop, and what does not
serialize (a verdict-hook plug-in, an object that does not pickle) is built by each worker
as before; tables keyed by id() are rebuilt from the loaded objects' ids."""
from __future__ import annotations

import gc
import multiprocessing
import os
import threading

import pytest
from scapy.all import UDP
from scapy.layers.dns import DNS, DNSQR

from bridge import hook
from bridge import worker as worker_mod
from bridge.reload import Reloader, compile_inspector, load_inspector, serialize
from conf.model import Config
from rules.api import Verdict
from rules.keywords.pcre import LIMITS, PCRE2_CASELESS, PcreRegex
from rules.prefilter import PatternDB
from tests.unit.test_engine_decisions import Feed, Tcp, eng, fr, sids, udp
from tests.unit.test_mutation_holes_worker_setup import plain_worker

RULES = (
    'drop udp any any -> any 7000 (msg:"drop"; content:"EVIL"; sid:1;)',
    'alert tcp any any -> any 80 (msg:"pcre"; flow:established,to_server; pcre:"/user=[a-z]+\\d{3}/i"; sid:2;)',
    'alert udp any any -> any 7001 (msg:"nocase"; content:"MiXeD"; nocase; sid:3;)',
    'alert udp any any -> any 53 (msg:"dns"; dns.query; content:"evil.example"; nocase; sid:4;)',
    ('alert tcp any any -> any 80 (msg:"login"; flow:established,to_server; content:"LOGIN"; '
     'flowbits:set,logged; flowbits:noalert; sid:5;)'),
    ('drop tcp any any -> any 80 (msg:"admin after login"; flow:established,to_server; content:"GET /admin"; '
     'flowbits:isset,logged; sid:6;)'),
    'alert udp any any -> any 7002 (msg:"redos"; pcre:"/(a+)+$/"; sid:7;)',
)


@pytest.fixture
def unfrozen():
    """load_inspector freezes the heap (as a worker does): give it back to the collector."""
    yield
    gc.unfreeze()


def round_trip(inspector):
    return load_inspector(serialize(inspector))


def traffic(engine) -> list:
    """The same frames, in the same order, into `engine`: [(verdict, reason, sids)]."""
    f = Feed(engine)
    out = []

    def note(r):
        out.append((r.verdict, r.reason, sids(r)))

    note(udp(f, b"..EVIL..", sport=5000))                       # drop
    note(udp(f, b"harmless", sport=5001))
    note(udp(f, b"all mixed up", sport=5002, dport=7001))       # nocase
    note(udp(f, b"ALL MIXED UP", sport=5003, dport=7001))
    note(f(fr(UDP(sport=5353, dport=53) / DNS(rd=1, qd=DNSQR(qname="www.EVIL.example.com")))))
    note(f(fr(UDP(sport=5354, dport=53) / DNS(rd=1, qd=DNSQR(qname="www.example.org")))))
    note(udp(f, b"a" * 40 + b"b", sport=5004, dport=7002))      # pcre match limit: no match
    t = Tcp(f, sport=39999)
    for r in t.handshake():
        note(r)
    note(t.c(b"USER=Alice123\r\n"))                             # pcre, caseless
    t = Tcp(f, sport=40000)
    for r in t.handshake():
        note(r)
    note(t.c(b"GET /admin HTTP/1.0\r\n"))                       # flowbit not set yet: forwarded
    note(t.c(b"LOGIN ok\r\n"))
    note(t.c(b"GET /admin HTTP/1.0\r\n"))                       # dropped now
    other = Tcp(f, sport=40001)
    for r in other.handshake():
        note(r)
    note(other.c(b"GET /admin HTTP/1.0\r\n"))                   # another flow: no flowbit
    return out


def test_a_loaded_engine_decides_the_same_frames_as_the_original(unfrozen):
    original, copy = eng(*RULES), round_trip(eng(*RULES))
    assert type(copy) is type(original)
    want = traffic(original)
    assert traffic(copy) == want
    drops = [s for v, _, s in want if v == Verdict.DROP]
    alerts = sorted(x for _, _, s in want for x in s)
    assert drops == [[1], [6]]
    assert alerts == [1, 2, 3, 3, 4, 6]                         # sid 7 hit its match limit, no alert
    assert copy.stats() == original.stats()
    assert copy.stats()["detect.pcre_limit_hits"] >= 1


def test_a_pcre_regex_keeps_its_flags_and_limits():
    rx = PcreRegex(b"abc", PCRE2_CASELESS)
    rx.limit_hits = 2
    back = round_trip(rx)
    assert back.search(b"xABCx") is not None and back.limit_hits == 2
    slow = round_trip(PcreRegex(LIMITS + b"(a+)+$", 0))
    assert slow.search(b"a" * 40 + b"b") is None and slow.limit_hits == 1


@pytest.mark.parametrize("backend", ["libhs", "hyperscan-module"])
def test_a_pattern_db_comes_through_with_a_scratch_of_its_own(backend):
    db = PatternDB([(b"abc", False), (b"XyZ", True), (b"\x00\xff", False)], backend=backend)
    back = round_trip(db)
    data = b"--abc--xyz--\x00\xff"
    assert back.scan(data) == db.scan(data) == {0, 1, 2}
    assert back.scan(b"ABC") == db.scan(b"ABC") == frozenset()
    if backend == "libhs":        # a database of its own (its scratch is inside it), scan its own method
        assert back._hsdb is not None and back._hsdb is not db._hsdb and back._db is None
        assert back.scan.__self__ is back._hsdb
    else:
        assert back._scratch is not None and back._scratch is not db._scratch and back._hsdb is None
    assert back._found == set()
    assert len(back) == 3 and back.patterns == db.patterns
    empty = round_trip(PatternDB([], backend=backend))
    assert empty.scan(b"abc") == frozenset() and empty._db is None and empty._hsdb is None


class Locked:
    """An inspector holding what does not pickle."""

    def __init__(self):
        self.lock = threading.Lock()


class Rule:
    pass


class ById:
    """Tables keyed by id() of its rules (as rules.detect_tx's TxDetector.bucket)."""

    def __init__(self, rules):
        self.rules = rules
        self.by_id = {id(r): i for i, r in enumerate(rules)}
        self.ids = {id(r) for r in rules}
        self.frozen = frozenset(self.ids)


class OwnState(ById):
    def __getstate__(self):
        return dict(self.__dict__)


ELSEWHERE = [Rule(), Rule()]       # alive, but not reachable from the inspector


def test_tables_keyed_by_id_are_rebuilt_from_the_loaded_objects(unfrozen):
    original = ById([Rule(), Rule(), Rule()])
    copy = round_trip(original)
    assert [copy.by_id[id(r)] for r in copy.rules] == [0, 1, 2]
    assert copy.ids == {id(r) for r in copy.rules} and type(copy.frozen) is frozenset and copy.frozen == copy.ids
    assert not copy.ids & original.ids


def test_what_does_not_serialize_is_built_by_each_worker():
    data, why = compile_inspector(Config(), build=lambda config, settle: Locked())
    assert data is None and "Locked does not serialize" in why and "lock" in why
    stray = ById([Rule()])
    stray.by_id.update({id(r): 9 for r in ELSEWHERE})
    data, why = compile_inspector(Config(), build=lambda config, settle: stray)
    assert data is None and "ById.by_id is keyed by id(): 2 of its 3 ids name no object it refers to" in why
    data, why = compile_inspector(Config(), build=lambda config, settle: OwnState([Rule()]))
    assert data is None and "OwnState.by_id is keyed by id(), and OwnState pickles its own way" in why

    def never(config, settle):
        raise AssertionError("a verdict-hook is built by the workers, never in the supervisor")

    data, why = compile_inspector(Config(verdict_hook="tests.lab.hooks:forward_all"), build=never)
    assert data is None and why.startswith("verdict-hook tests.lab.hooks:forward_all")


def test_the_supervisor_builds_from_the_validated_rules_what_a_worker_builds(tmp_path):
    """bridge.reload.build_inspector (from the rules the validation loaded) and
    bridge.hook.build_inspector (a worker's: it loads them itself) build the same engine."""
    from bridge.reload import build_once as from_loaded
    from bridge.reload import load_ruleset

    path = tmp_path / "live.rules"
    path.write_text("\n".join(RULES + ('alert tcp any any -> any any (msg:"u"; asn1:oversize_length 1; sid:77;)',)))
    config = Config(rule_files=[str(path)])
    _, _, loaded = load_ruleset(config)
    ours, theirs = from_loaded(config, loaded), hook.build_inspector(config, settle=False)
    assert type(ours) is type(theirs) and ours.settings == theirs.settings
    assert [s.rule.text for s in ours.detector.sigs] == [s.rule.text for s in theirs.detector.sigs]
    assert ours.stats() == theirs.stats() and ours.stats()["rules.loaded"] == len(RULES)
    assert traffic(ours) == traffic(theirs)


def test_a_build_that_fails_raises():
    def boom(config, settle):
        raise ValueError("hyperscan says no")

    with pytest.raises(ValueError):
        compile_inspector(Config(), build=boom)


class Log:
    def __init__(self):
        self.lines = []

    def info(self, event, **kw):
        self.lines.append(("info", event, kw))

    def warning(self, event, **kw):
        self.lines.append(("warning", event, kw))

    def error(self, event, **kw):
        self.lines.append(("error", event, kw))

    def events(self, name):
        return [kw for _, e, kw in self.lines if e == name]


def reloader(tmp_path, rules, *, compile=compile_inspector, send=None, dup_ctl=None):
    path = tmp_path / "live.rules"
    path.write_text("\n".join(rules) + "\n")
    config = Config(rule_files=[str(path)])
    log = Log()
    r = Reloader(config, lambda: (Config(rule_files=[str(path)]), []), log, send, dup_ctl=dup_ctl, compile=compile)
    return r, log


def validated(r: Reloader) -> None:
    r._thread.join(60)
    assert r._validated is not None


def test_the_fallback_sends_the_config_and_says_why_once(tmp_path):
    sent = []
    dups = []
    r, log = reloader(tmp_path, RULES[:1], send=lambda idx, msg: sent.append((idx, msg)) or True,
                      dup_ctl=lambda idx: dups.append(idx),
                      compile=lambda config, loaded: compile_inspector(config, build=lambda c, settle: Locked()))
    for generation in (1, 2):
        r.request()
        validated(r)
        r.poll([0, 1])
        assert [(i, m[:2], len(m)) for i, m in sent] == [(0, ("reload", generation), 3), (1, ("reload", generation), 3)]
        assert sent[0][1][2].rule_files == r.config.rule_files
        sent.clear()
        r.worker_done(0, generation, True, "")
        r.worker_done(1, generation, True, "")
        assert r.state == "idle" and r.reloads == generation
    assert dups == []                                   # no bytes to write
    (told,) = log.events("reload_built_per_worker")     # once, not once per reload
    assert "Locked does not serialize" in told["reason"]
    assert [e["built"] for e in log.events("rules_reloaded")] == ["per worker", "per worker"]


def test_compiled_rules_reach_a_worker_through_its_pipe_between_drains(tmp_path, monkeypatch, unfrozen):
    """The supervisor's side (Reloader: header, then the bytes from a thread) and the worker's
    (control: the bytes read as they come, a little per call; the build thread loads them;
    swap_rules) over a real pipe.  The old engine adopts the loaded rules."""
    monkeypatch.setattr(hook, "resettle_heap", lambda: None)
    monkeypatch.setattr(worker_mod, "PAYLOAD_READ", 4096)    # many calls: never a wait for the rest
    ctl_r, ctl_w = multiprocessing.Pipe(duplex=False)
    r, log = reloader(tmp_path, RULES, send=lambda idx, msg: ctl_w.send(msg) or True,
                      dup_ctl=lambda idx: os.dup(ctl_w.fileno()))
    old = eng('alert udp any any -> any 9 (content:"zzz"; sid:99;)')
    w = plain_worker(old)
    w.ctl = ctl_r
    r.request()
    validated(r)
    r.poll([0])
    assert r.state == "applying"
    calls = 0
    while w.reload_thread is None:
        ctl_r.poll(5)
        assert w.control() is False
        calls += 1
        if w.incoming is not None:
            assert w.incoming[3] <= calls * 4096          # at most PAYLOAD_READ per call
    assert calls > 2 and w.incoming is None
    r.senders[0].join(10)
    w.reload_thread.join(60)
    w.swap_rules()
    (msg,) = w.conn.sent
    assert msg[0] == "reloaded" and msg[3:5] == (1, True), msg
    r.worker_done(0, msg[3], msg[4], msg[5])
    assert r.state == "idle" and r.reloads == 1
    (done,) = log.events("rules_reloaded")
    assert done["built"] == "once" and done["compiled_bytes"] > 0 and done["added"] == len(RULES)
    assert w.inspector is old and old.stats()["rules.loaded"] == len(RULES)
    assert traffic(old)[0][:2] == (Verdict.DROP, "rule")    # the new drop rule runs
    ctl_r.close()
    ctl_w.close()


def test_a_worker_reads_what_the_pipe_holds_and_no_more(tmp_path, unfrozen):
    """Half the bytes written: control() takes them and returns (the frame loop goes on); the
    rest later: the build starts."""
    ctl_r, ctl_w = multiprocessing.Pipe(duplex=False)
    data = serialize(eng(*RULES))
    w = plain_worker(eng(*RULES[:1]))
    w.ctl = ctl_r
    started = []
    w.start_reload = lambda gen, cfg, payload=None: started.append((gen, cfg, bytes(payload)))
    ctl_w.send(("reload", 4, "config-4", len(data)))
    half = len(data) // 2
    os.write(ctl_w.fileno(), data[:1000])
    assert w.control() is False and w.incoming[3] == 1000 and started == []
    assert w.control() is False and w.incoming[3] == 1000          # nothing more there: no wait
    writer = threading.Thread(target=lambda: os.write(ctl_w.fileno(), data[1000:half]))
    writer.start()
    while w.incoming[3] < half:
        ctl_r.poll(5)
        w.control()
    writer.join()
    assert started == []
    writer = threading.Thread(target=lambda: os.write(ctl_w.fileno(), data[half:]))
    writer.start()
    while not started:
        ctl_r.poll(5)
        w.control()
    writer.join()
    assert started == [(4, "config-4", data)] and w.incoming is None
    ctl_w.close()
    assert w.control() is True                          # the supervisor's end closed
    ctl_r.close()


def test_a_worker_that_dies_or_hangs_while_its_rules_are_written(tmp_path):
    """The bytes go out from a thread: the supervisor's loop never waits for a worker.  A
    worker that dies: the write fails (EPIPE), the thread ends, the reload fails for it.  A
    worker that reads nothing: the reload times out, and the next reload fails for it while
    the thread still writes (a second writer would mix two payloads on one pipe); a reload
    asked for while one runs is refused."""
    pipes = {i: multiprocessing.Pipe(duplex=False) for i in (0, 1)}
    payload = b"x" * (4 << 20)                      # far more than a pipe holds
    r, log = reloader(tmp_path, RULES[:1], send=lambda idx, msg: pipes[idx][1].send(msg) or True,
                      dup_ctl=lambda idx: os.dup(pipes[idx][1].fileno()),
                      compile=lambda config, loaded: (payload, ""))
    answers = []
    r.request(lambda ok, msg: answers.append((ok, msg)))
    r.request(lambda ok, msg: answers.append((ok, msg)))
    assert answers == [(False, "Reload already in progress")]
    answers.clear()
    validated(r)
    r.poll([0, 1])
    assert r.state == "applying" and set(r._pending) == {0, 1}
    assert pipes[0][0].recv() == ("reload", 1, r._new[0], len(payload))
    pipes[0][0].close()                             # worker 0 dies
    r.senders[0].join(10)
    assert not r.senders[0].is_alive()
    r.worker_gone(0)
    r._deadline = 0.0                               # worker 1 never reads: its answer is overdue
    r.poll([1])
    assert answers == [(False, "worker 0: exited during the reload; worker 1: no answer within 120 s")]
    assert r.state == "idle" and r.senders[1].is_alive()
    r.request()
    validated(r)
    r.poll([1])
    assert r.state == "idle" and r.failed_reloads == 2
    assert log.events("reload_failed")[-1]["reason"] == "worker 1: still receiving an earlier reload's rules"
    pipes[1][0].close()
    r.senders[1].join(10)
    assert not r.senders[1].is_alive()
    pipes[0][1].close()
    pipes[1][1].close()


def test_a_process_forked_while_the_reload_thread_holds_the_collector_off_has_it_on(tmp_path):
    """The reload thread turns the garbage collector off in the supervisor; a worker forked
    then (a restart) must not run without it."""
    import bridge.reload as reload_mod

    release = threading.Event()
    entered = threading.Event()

    def compile(config, loaded):
        entered.set()
        release.wait(30)
        return None, ""

    r, _ = reloader(tmp_path, RULES[:1], send=lambda idx, msg: True, dup_ctl=lambda idx: None, compile=compile)
    r.request()
    try:
        assert entered.wait(30)
        assert not gc.isenabled() and reload_mod._collector_held
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:                                    # the child: report, then leave at once
            os.write(wr, b"1" if gc.isenabled() else b"0")
            os._exit(0)
        os.close(wr)
        assert os.read(rd, 1) == b"1"
        os.close(rd)
        os.waitpid(pid, 0)
    finally:
        release.set()
        validated(r)
    assert gc.isenabled() and not reload_mod._collector_held
