"""Configuration: suricata.yaml-shaped files and quick command-line forms -> `conf.model.Config`.

    conf.load_file(path) -> Config        (raises ConfigError: .problems, one line each)
    conf.from_args(args) -> Config        (`run`/`check` quick flags, optionally on top of -c FILE)
    conf.validate(config) -> [Problem]    (static refusals: setups that cannot work)
"""
from conf.load import assign_cluster_ids, from_args, load_file, load_text
from conf.model import Config, Decoder, Interface, Stream
from conf.validate import ConfigError, Problem, did_you_mean, rule_path, validate

__all__ = [
    "Config", "ConfigError", "Decoder", "Interface", "Problem", "Stream", "assign_cluster_ids",
    "did_you_mean", "from_args", "load_file", "load_text", "rule_path", "validate",
]
