"""From a `Config` to what the engine is built from.

    engine_settings(config, mode) -> rules.settings.EngineSettings
    load_rules(config, paths=None) -> rules.loader.LoadResult
    mode_of(config) -> "ips" | "tap" | "ids"

load_rules notes the loaded rules the app-layer settings keep from ever matching,
which Suricata would refuse at load or load in vain: rules of a protocol whose
`enabled` is no, rules inspecting the buffers of a detection-only protocol, ja3
rules with `ja3-fingerprints: no`, SMTP file.data rules with `mime.decode-mime: no` (no
attachment is decoded).  They stay loaded (a rule file shared with a
Suricata that parses the protocol should not fail here).

`conf` imports `rules`, never the other way round: the engine only ever sees
the frozen `EngineSettings` built here, and the loader gets the vars, the
classification file and the rule directory as plain arguments.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from conf.model import (
    APP_IPPROTOS,
    IPPROTO_NUMBERS,
    POLICY_UNSET,
    STREAM_POLICIES,
    Config,
)
from conf.validate import ConfigError, master_policy, policy_problems, rule_path
from rules import loader
from rules.applayer import ENABLED
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
        # a parser error (Suricata's app-layer.error-policy; unset: the master switch)
        app_error_policy=resolve_policy(config.app_error_policy if config.app_error_policy != POLICY_UNSET
                                        else master, mode),
        app={**config.app, ENABLED: dict(config.app[ENABLED])},
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
    result = loader.load(list(paths), vars=config.vars, classification_file=classification_file(config),
                         base_dir=config.default_rule_path, strict=strict, threshold_file=config.threshold_file)
    result.notes += app_layer_notes(config, result.rules)
    return result


def app_layer_notes(config: Config, rules) -> list[str]:
    """One note per app-layer setting that keeps loaded rules from ever matching (see above)."""
    modes = config.app[ENABLED]
    lines = config.lines

    def setting(proto: str, key: str) -> str:
        line = lines.get(f"app-layer.protocols.{proto}.{key}") or next(
            (lines[f"app-layer.protocols.{proto}.{ip}.{key}"] for ip in APP_IPPROTOS.get(proto, ())
             if f"app-layer.protocols.{proto}.{ip}.{key}" in lines), 0)
        return f"{config.source}:{line}" if line else config.source

    hit: dict[tuple, list] = {}
    for r in rules:
        proto = r.app.proto if r.app is not None else r.app_proto
        if proto not in APP_IPPROTOS:
            continue
        written = {modes.get((proto, IPPROTO_NUMBERS[ip]), "yes") for ip in APP_IPPROTOS[proto]}
        if written == {"no"}:
            hit.setdefault((proto, "no"), []).append(r)
        elif r.app is not None and "yes" not in written:
            hit.setdefault((proto, "detection-only"), []).append(r)
        elif r.app is not None and proto == "tls" and config.app["tls"].ja3_fingerprints == "no" and \
                any(b.name.startswith("ja3") for b in r.app.bufs):
            hit.setdefault((proto, "ja3"), []).append(r)
        elif r.app is not None and proto == "smtp" and not config.app["smtp"].decode_mime and \
                any(b.name == "file.data" for b in r.app.bufs):
            hit.setdefault((proto, "mime"), []).append(r)
    notes = []
    for (proto, why), found in hit.items():
        one = len(found) == 1
        first = f"{found[0].file}:{found[0].line}" if found[0].file else f"sid {found[0].sid}"
        n = f"1 rule ({first})" if one else f"{len(found)} rules (the first at {first})"
        s, never = ("s", "it never matches") if one else ("", "they never match")
        if why == "no":
            notes.append(f"{n} need{s} {proto}, which is off (app-layer.protocols.{proto} enabled: no, "
                         f"{setting(proto, 'enabled')}): {never} (Suricata refuses such rules at load)")
        elif why == "detection-only":
            written = "/".join(sorted({modes[(proto, IPPROTO_NUMBERS[ip])] for ip in APP_IPPROTOS[proto]}))
            notes.append(f"{n} inspect{s} {proto} buffers, which stay empty: {proto} is detected but not "
                         f"parsed (app-layer.protocols.{proto} enabled: {written}, {setting(proto, 'enabled')}): "
                         f"{never}")
        elif why == "mime":
            notes.append(f"{n} inspect{s} SMTP file.data, which stays empty (app-layer.protocols.smtp.mime."
                         f"decode-mime: no, {setting(proto, 'mime.decode-mime')}): {never}")
        else:
            notes.append(f"{n} inspect{s} JA3 buffers, which stay empty (app-layer.protocols.tls.ja3-fingerprints: "
                         f"no, {setting(proto, 'ja3-fingerprints')}): {never} (Suricata refuses such rules at load)")
    return notes
