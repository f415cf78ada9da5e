"""Which Inspector a worker uses, built inside the worker process.

Order: an explicit `verdict-hook: module:factory` (tests, plug-ins), else the
rule engine when rule files are configured, else forward everything.  A factory
takes the Config and returns an object with the `rules.api.Inspector` methods.
"""
from __future__ import annotations

import importlib

from conf.model import Config
from rules.api import ForwardAll, Inspector


def build_inspector(config: Config, *, settle: bool = True) -> Inspector:
    """`settle`: freeze the heap once built (settle_heap); a rule reload builds in a
    thread and settles after the swap instead."""
    if config.verdict_hook:
        module_name, _, attr = config.verdict_hook.partition(":")
        if not attr:
            raise ValueError(f"verdict-hook {config.verdict_hook!r}: expected 'module:factory'")
        factory = getattr(importlib.import_module(module_name), attr)
        return factory(config)
    if config.rule_files:
        engine = build_engine(config)
        if settle:
            settle_heap()
        return engine
    return ForwardAll()


def settle_heap() -> None:
    """Once the engine is built, in the process that runs it: collect once, then take
    every object alive now (the rules, their matchers, the prefilter's tables: hundreds
    of thousands of objects with ET Open) out of the garbage collector's view
    (gc.freeze).  The frame path allocates containers all the time (flows, sessions,
    packets), so collections run often, and each full one walked the whole rule set:
    with all loadable ET Open rules that was 6-8 us per frame on HTTP-like traffic
    (Engine.inspect 17-20 -> 10.5-12 us/frame).  Frozen objects are never freed: a
    process that replaces its engine (a rule reload) calls `resettle_heap` instead."""
    import gc

    gc.collect()
    gc.freeze()


def resettle_heap() -> None:
    """After a rule reload swapped the engine: freeze what is alive now (the new rules)
    without a full collection (with ET Open that walk stalls the frame path for most of a
    second).  The old engine's objects hold no reference cycles, so they went by reference
    counting when the swap dropped them, frozen or not (tests/unit/test_worker_reload.py
    checks that a reload leaves no cyclic garbage behind)."""
    import gc

    gc.collect(0)
    gc.freeze()


def build_engine(config: Config, *, mode: str | None = None, paths=None):
    """The rule engine for `config`: its rule files (or `paths`) loaded, load errors logged
    once, built with the config's engine settings for `mode` (default: the config's)."""
    from conf.build import engine_settings, load_rules
    from rules.engine import Engine

    result = load_rules(config, paths)
    if result.errors:
        import structlog

        log = structlog.get_logger("rules")
        log.warning("rules_load_errors", failed=len(result.errors), loaded=len(result.rules),
                    first=[str(e) for e in result.errors[:5]],
                    unsupported=dict(sorted(result.unsupported.items())[:20]))
        for e in result.errors:     # a traceback holds frames in reference cycles: free them by refcount
            e.__traceback__ = None
    return Engine(result.rules, engine_settings(config, mode), rules_failed=len(result.errors))
