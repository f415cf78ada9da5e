"""From a `Config` to what the engine is built from.

    engine_settings(config, mode) -> rules.settings.EngineSettings
    load_rules(config, paths=None) -> rules.loader.LoadResult
    mode_of(config) -> "ips" | "tap" | "ids"

`conf` imports `rules`, never the other way round: the engine only ever sees
the frozen `EngineSettings` built here, and the loader gets the vars, the
classification file and the rule directory as plain arguments.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from conf.model import POLICY_UNSET, STREAM_POLICIES, Config
from conf.validate import ConfigError, master_policy, policy_problems, rule_path
from rules import loader
from rules.settings import EngineSettings, resolve_midstream_policy, resolve_policy

# The classification.config shipped with ipsbridge (ET Open's), used when the
# configuration names none.
DEFAULT_CLASSIFICATION = Path(__file__).resolve().parent / "classification.config"


def mode_of(config: Config) -> str:
    """ips when any interface is inline, tap when any taps, else ids (ips with no interface)."""
    modes = {i.copy_mode for i in config.af_packet}
    if "ips" in modes or not modes:
        return "ips"
    if "tap" in modes:
        return "tap"
    return "ids"


def resolve_stream_policy(config: Config, key: str, mode: str) -> str:
    """One of the stream exception policies (`key` as in suricata.yaml) resolved for `mode`, as
    Suricata 7 does: a policy the file sets is taken as written (`auto`: drop-flow in ips mode
    -- for midstream-policy only without midstream pick-up -- else ignore); one it leaves out
    takes the master `exception-policy` (whose drop-packet/drop-flow mean ignore outside ips
    mode, `master_policy`)."""
    written = getattr(config.stream, STREAM_POLICIES[key])
    value = written if written != POLICY_UNSET else master_policy(config.exception_policy, mode)
    if key == "stream.midstream-policy":
        return resolve_midstream_policy(value, mode, config.stream.midstream)
    return resolve_policy(value, mode)


def engine_settings(config: Config, mode: str | None = None) -> EngineSettings:
    """The engine's settings for `config` in `mode` (default: `mode_of(config)`), with every
    exception policy resolved for that mode.  Raises ConfigError when a policy combination
    cannot run in `mode` (Suricata refuses it too; `conf.validate.policy_problems`)."""
    mode = mode or mode_of(config)
    problems = policy_problems(config, mode)
    if problems:
        raise ConfigError(problems)
    stream = dataclasses.replace(config.stream, **{
        field: resolve_stream_policy(config, key, mode) for key, field in STREAM_POLICIES.items()})
    master = master_policy(config.exception_policy, mode)
    return EngineSettings(
        mode=mode,
        # internal engine errors: the master switch when set to one of these, else fail open
        # (Suricata has no such exception, so its `auto` does not apply)
        exception_policy=master if master in ("drop-packet", "drop-flow", "pass-packet", "pass-flow")
        else "ignore",
        decoder=config.decoder, flow=config.flow, stream=stream, defrag=config.defrag,
    )


def classification_file(config: Config) -> str:
    return config.classification_file or str(DEFAULT_CLASSIFICATION)


def load_rules(config: Config, paths=None, *, strict: bool = False) -> loader.LoadResult:
    """The configured rule files (or `paths`) through the loader, with the config's vars,
    classification file, default-rule-path and threshold file."""
    if paths is None:
        paths = [rule_path(config, p) for p in config.rule_files]
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    return loader.load(list(paths), vars=config.vars, classification_file=classification_file(config),
                       base_dir=config.default_rule_path, strict=strict, threshold_file=config.threshold_file)
