"""From a `Config` to what the engine is built from.

    engine_settings(config, mode) -> rules.settings.EngineSettings
    load_rules(config, paths=None) -> rules.loader.LoadResult
    mode_of(config) -> "ips" | "tap" | "ids"

`conf` imports `rules`, never the other way round: the engine only ever sees
the frozen `EngineSettings` built here, and the loader gets the vars, the
classification file and the rule directory as plain arguments.
"""
from __future__ import annotations

from pathlib import Path

from conf.model import Config
from conf.validate import rule_path
from rules import loader
from rules.settings import DecodeOptions, EngineSettings, FlowSettings, StreamSettings, resolve_midstream_policy

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


def engine_settings(config: Config, mode: str | None = None) -> EngineSettings:
    """The engine's settings for `config` in `mode` (default: `mode_of(config)`), with every
    `auto` exception policy resolved for that mode."""
    mode = mode or mode_of(config)
    st = config.stream
    dec = config.decoder
    stream = StreamSettings(
        midstream=st.midstream, async_oneside=st.async_oneside, inline=st.inline,
        midstream_policy=resolve_midstream_policy("auto", mode, st.midstream),
    )
    decoder = DecodeOptions(vxlan_enabled=dec.vxlan_enabled, vxlan_ports=tuple(dec.vxlan_ports),
                            gre_enabled=dec.gre_enabled, checksum_validation=st.checksum_validation)
    exception = config.exception_policy
    return EngineSettings(
        mode=mode,
        # internal engine errors: the master switch when set explicitly, else fail open
        exception_policy=exception if exception in ("drop-packet", "drop-flow", "pass-packet", "pass-flow")
        else "ignore",
        decoder=decoder, flow=FlowSettings(), stream=stream,
    )


def classification_file(config: Config) -> str:
    return config.classification_file or str(DEFAULT_CLASSIFICATION)


def load_rules(config: Config, paths=None, *, strict: bool = False) -> loader.LoadResult:
    """The configured rule files (or `paths`) through the loader, with the config's vars,
    classification file and default-rule-path."""
    if paths is None:
        paths = [rule_path(config, p) for p in config.rule_files]
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    return loader.load(list(paths), vars=config.vars, classification_file=classification_file(config),
                       base_dir=config.default_rule_path, strict=strict)
