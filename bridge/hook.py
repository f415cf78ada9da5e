"""Which Inspector a worker uses, built inside the worker process.

Order: an explicit `verdict-hook: module:factory` (tests, plug-ins), else the
rule engine when rule files are configured, else forward everything.  A factory
takes the Config and returns an object with the `rules.api.Inspector` methods.
"""
from __future__ import annotations

import importlib

from conf.model import Config
from rules.api import ForwardAll, Inspector


def build_inspector(config: Config) -> Inspector:
    if config.verdict_hook:
        module_name, _, attr = config.verdict_hook.partition(":")
        if not attr:
            raise ValueError(f"verdict-hook {config.verdict_hook!r}: expected 'module:factory'")
        factory = getattr(importlib.import_module(module_name), attr)
        return factory(config)
    if config.rule_files:
        return build_engine(config)
    return ForwardAll()


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
    return Engine(result.rules, engine_settings(config, mode), rules_failed=len(result.errors))
