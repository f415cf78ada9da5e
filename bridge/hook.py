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
        from rules.engine import build

        return build(config)
    return ForwardAll()
