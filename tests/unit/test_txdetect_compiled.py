"""The compiled candidate selection (rules/_txdetect.c) answers what its Python reference
(TxDetector._candidates_py) answers, call for call, with the same effects: the app-layer
differential scenarios (HTTP, TLS, DNS, SMTP, FTP; the pcaps and rules Suricata decided)
replayed once with each."""
from __future__ import annotations

import pytest

import rules.detect_tx as detect_tx
from bridge.replay import _engine, _load_config, run_stream
from tests.unit.scenario_replay import DIFF, replay, scenarios

SCENARIOS = scenarios("app_")
COMPILED = detect_tx._txdetect


def _replay(sc: dict, impl, monkeypatch) -> tuple[list, dict, int]:
    """Replay a scenario with `impl` as the candidate selection: every call's answer (sids in
    order), the alerts and drops, and the number of calls."""
    calls: list = []

    def recorded(txd, tx, d, memo, pkt, proto):
        got = impl(txd, tx, d, memo, pkt, proto)
        calls.append((tx.id, d, [s.rule.sid for s in got], len(tx.found), sorted(memo.items())))
        return got

    monkeypatch.setattr(detect_tx, "_CANDIDATES", recorded)
    out = replay(sc)
    return calls, out, len(calls)


def test_the_compiled_module_is_built_and_used():
    """The install builds it; the engine uses it (a silent fallback would hide a build break)."""
    assert COMPILED is not None
    assert detect_tx._CANDIDATES is COMPILED.candidates


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_compiled_candidates_answer_as_the_python_reference(name, monkeypatch):
    sc = SCENARIOS[name]
    c_calls, c_out, n = _replay(sc, COMPILED.candidates, monkeypatch)
    py_calls, py_out, _ = _replay(sc, detect_tx.TxDetector._candidates_py, monkeypatch)
    if name.startswith(("app_http", "app_tls", "app_dns", "app_keywords")):
        assert n > 0                               # the scenario did reach transaction detection
    assert c_calls == py_calls
    assert c_out == py_out


def _largest_seen(sc: dict, monkeypatch) -> int:
    """Replay a scenario with the compiled selection; the most values any slot remembers."""
    config = _load_config(str(DIFF / sc.get("config", "ipsbridge.yaml")))
    engine = _engine([str(DIFF / sc["rules"])], config, sc.get("mode", "ips"))
    run_stream(engine, [str(DIFF / sc["pcap"])], mode=sc.get("mode", "ips"))
    txd = engine.detector.tx
    return max(len(sl.seen) for d in (True, False) for sl in txd.slots[d])


def test_compiled_scans_remember_a_bounded_number_of_values(monkeypatch):
    """The compiled _Slot.scan keeps at most seen_max values per slot (then forgets them at
    once), as the Python one: with a bound of 3 no slot holds more, where without one a slot
    of the same replay holds more."""
    sc = SCENARIOS["app_http_requests"]
    args = (detect_tx.header_ok, detect_tx._order_key, detect_tx._EMPTY, detect_tx.DONE, detect_tx._SEEN_VALUE_MAX)
    try:
        COMPILED.setup(*args, 10**6)
        assert _largest_seen(sc, monkeypatch) > 3
        COMPILED.setup(*args, 3)
        assert _largest_seen(sc, monkeypatch) <= 3
    finally:
        COMPILED.setup(*args, detect_tx._SEEN_MAX)
