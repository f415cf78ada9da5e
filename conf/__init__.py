"""Configuration: suricata.yaml-shaped files and quick command-line forms -> `conf.model.Config`.

    conf.load_file(path) -> Config        (raises ConfigError: .problems, one line each)
    conf.from_args(args) -> Config        (`run`/`check` quick flags, optionally on top of -c FILE)
    conf.validate(config) -> [Problem]    (static refusals: setups that cannot work)
    conf.build.engine_settings(config, mode) -> rules.settings.EngineSettings
"""
from conf.load import assign_cluster_ids, from_args, load_file, load_text, parse_size
from conf.model import Config, Interface
from conf.validate import ConfigError, Problem, did_you_mean, rule_path, validate

__all__ = [
    "Config", "ConfigError", "Interface", "Problem", "assign_cluster_ids", "did_you_mean", "from_args",
    "load_file", "load_text", "parse_size", "rule_path", "validate",
]
