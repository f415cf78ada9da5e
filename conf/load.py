"""Build a `Config` from a suricata.yaml-shaped file or from `run`/`check` quick flags.

Parsing collects every problem before raising `ConfigError`, so one run shows
them all.  Rules of the road:

* A whole suricata.yaml loads: top-level sections ipsbridge does not use
  (outputs, app-layer, logging, detect, threading, ...) give ONE warning each.
* Inside the sections ipsbridge reads (af-packet entries, vars, stream,
  decoder, pcap-file, ipsbridge) an unknown key is an error with a
  did-you-mean; keys Suricata knows but ipsbridge ignores (mmap-locked,
  stream.reassembly, decoder.teredo, ...) give a warning.
* Booleans take yes/no/true/false/on/off/1/0 like Suricata; `threads: auto` is
  one thread per CPU.
* Relative `default-rule-path` and `classification-file` are taken relative to
  the directory of the YAML file (Suricata takes them relative to its working
  directory; ipsbridge's way lets a config directory be moved as a whole).
  Without `default-rule-path` the rules are looked up next to the YAML file.
* `cluster-id` left out: 99, 98, ... in entry order (as Suricata does),
  skipping ids that some entry sets explicitly.
* `tpacket-v3: yes` on an ips/tap interface is turned off (V2) with a warning:
  a V3 block is handed over when full or after block-timeout ms, which on a
  quiet link delays every forwarded frame by up to that long.
* `defrag` defaults to yes on IDS interfaces and is always off on ips/tap
  interfaces (a warning when set to yes): with the fanout defrag flag the
  kernel hands the socket the reassembled datagram, which is larger than the
  MTU and cannot be sent on -- fragmented traffic would be lost (measured in
  the lab: a 4000-byte ping through the bridge fails with defrag on, passes
  with it off).
"""
from __future__ import annotations

import dataclasses
import os
import re

import structlog
import yaml

from conf.model import DEFAULT_ADDRESS_GROUPS, DEFAULT_PORT_GROUPS, Config, Decoder, Interface, Stream
from conf.validate import ConfigError, Problem, did_you_mean

log = structlog.get_logger("conf")

# Top-level keys ipsbridge reads.  Everything else is a section of Suricata's
# that ipsbridge does not use: accepted with one warning.
TOP_LEVEL = ("af-packet", "vars", "default-rule-path", "rule-files", "classification-file",
             "stream", "decoder", "exception-policy", "pcap-file", "ipsbridge", "outputs",
             "default-log-dir")

INTERFACE_KEYS = tuple(f.name.replace("_", "-") for f in dataclasses.fields(Interface)
                       if f.name != "line")
# af-packet keys Suricata 7 knows that ipsbridge does not implement: warning, not error.
INTERFACE_IGNORED = ("mmap-locked", "use-emergency-flush", "xdp-mode", "xdp-filter-file",
                     "ebpf-lb-file", "ebpf-filter-file", "bypass", "pinned-maps",
                     "pinned-maps-name", "xdp-cpu-redirect", "hash-mode", "vlan-hdr",
                     "copy-flags")
STREAM_KEYS = ("midstream", "async-oneside", "checksum-validation", "inline")
STREAM_IGNORED = ("memcap", "memcap-policy", "reassembly", "bypass", "drop-invalid",
                  "prealloc-sessions", "max-sessions", "max-synack-queued", "max-syn-queued",
                  "wrong-thread", "liberal-timestamps", "midstream-policy", "reassembly-policy")
DECODER_KEYS = ("vxlan", "gre")
DECODER_IGNORED = ("teredo", "geneve", "vntag", "erspan", "max-layers", "recursion-level",
                   "ipv4", "ipv6")
PCAP_FILE_KEYS = ("checksum-checks",)
PCAP_FILE_IGNORED = ("buffer-size", "tenant-id", "delete-when-done", "recursive", "continuous",
                     "bpf-filter")
IPSBRIDGE_KEYS = ("eve-log", "stats-interval", "verdict-hook")
VARS_KEYS = ("address-groups", "port-groups")

CHECKSUM_CHECKS = ("auto", "yes", "no", "kernel")
STREAM_INLINE = ("auto", "yes", "no")
EXCEPTION_POLICIES = ("auto", "drop-packet", "drop-flow", "pass-packet", "pass-flow", "bypass",
                      "reject", "ignore")
_TRUE = ("yes", "true", "on", "1", "y")
_FALSE = ("no", "false", "off", "0", "n")
_AUTO_CLUSTER_ID_START = 99


# --------------------------------------------------------------------------- YAML with line numbers
class _Map(dict):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    line = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            key = str(key)
        if key in out:
            loader.duplicates.append((key, key_node.start_mark.line + 1))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def _construct_include(loader: _Loader, node: yaml.Node):
    """Suricata's `key: !include other.yaml` (path relative to the including file)."""
    name = loader.construct_scalar(node)
    path = name if os.path.isabs(name) else os.path.join(loader.base_dir, name)
    if loader.depth > 8:
        raise yaml.constructor.ConstructorError(None, None, f"!include nested too deep at {name}",
                                                node.start_mark)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"!include {name}: {exc.strerror}",
                                                node.start_mark) from None
    inner = _Loader(text)
    inner.base_dir, inner.depth, inner.duplicates = os.path.dirname(path), loader.depth + 1, []
    try:
        return inner.get_single_data()
    finally:
        inner.dispose()


_Loader.add_constructor("!include", _construct_include)


class _Parser:
    """Turns the YAML tree into a Config, collecting Problems."""

    def __init__(self, source: str, base_dir: str):
        self.source = source
        self.base_dir = base_dir
        self.problems: list[Problem] = []

    # ---- reporting
    def error(self, where, key, message, fix, line=0):
        self.problems.append(Problem(where, str(key), message, fix, self.source, line))

    def warn(self, event, where, key, line=0, **kw):
        log.warning(event, where=where, key=key, file=self.source, line=line, **kw)

    def check_keys(self, where: str, mapping: _Map, known, ignored=()):
        for key in mapping:
            if key in known:
                continue
            line = mapping.line_of(key)
            if key in ignored:
                self.warn("config_key_ignored", where, key, line,
                          reason="a Suricata setting ipsbridge does not use")
            else:
                self.error(where, key, "unknown key" + did_you_mean(key, known),
                           "correct the spelling or remove the key", line)

    # ---- typed values
    def as_bool(self, where, key, value, line):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        self.error(where, key, f"{value!r} is not a boolean", "write yes or no", line)
        return None

    def as_int(self, where, key, value, line, minimum=None):
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            result = int(value)
        else:
            self.error(where, key, f"{value!r} is not an integer", "write a whole number", line)
            return None
        if minimum is not None and result < minimum:
            self.error(where, key, f"{result} is below the minimum {minimum}",
                       f"write a number of at least {minimum}", line)
            return None
        return result

    def as_number(self, where, key, value, line):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value))
        except ValueError:
            self.error(where, key, f"{value!r} is not a number", "write a number of seconds", line)
            return None

    def as_str(self, where, key, value, line, allow_none=False):
        if value is None and allow_none:
            return None
        if isinstance(value, bool):
            self.error(where, key, f"{value!r} is a boolean where a string is expected",
                       "quote the value", line)
            return None
        if isinstance(value, (str, int, float)):
            return str(value)
        self.error(where, key, f"expected a string, got a {type(value).__name__}",
                   "write a single value", line)
        return None

    def as_choice(self, where, key, value, line, choices, *, bools=False):
        if bools and isinstance(value, bool):
            value = "yes" if value else "no"
        text = self.as_str(where, key, value, line)
        if text is None:
            return None
        if text not in choices:
            self.error(where, key, f"unknown value '{text}'" + did_you_mean(text, choices),
                       "use one of " + ", ".join(choices), line)
            return None
        return text

    def as_threads(self, where, key, value, line):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return os.cpu_count() or 1
        if isinstance(value, int) and not isinstance(value, bool) or \
                isinstance(value, str) and value.strip().isdigit():
            return self.as_int(where, key, value, line, minimum=1)
        self.error(where, key, f"{value!r} is not a thread count",
                   "write a positive integer or 'auto' (one per CPU)", line)
        return None

    def path(self, value: str) -> str:
        value = os.path.expanduser(value)
        return value if os.path.isabs(value) else os.path.normpath(os.path.join(self.base_dir, value))

    # ---- sections
    def interface_entry(self, entry, index: int):
        """Raw typed values of one af-packet entry: (name, {field: value}, line)."""
        if not isinstance(entry, _Map):
            self.error("af-packet", f"[{index}]", "entry is not a mapping",
                       "write entries as '- interface: NAME' followed by indented keys")
            return None
        name = entry.get("interface")
        if name is None or isinstance(name, (bool, dict, list)):
            self.error("af-packet", "interface", f"entry {index + 1} has no 'interface'",
                       "start the entry with '- interface: NAME'", entry.line)
            return None
        name = str(name)
        self.check_keys(name, entry, INTERFACE_KEYS, INTERFACE_IGNORED)
        values = {}
        for key, value in entry.items():
            if key not in INTERFACE_KEYS or key == "interface":
                continue
            line = entry.line_of(key)
            field = key.replace("-", "_")
            if key == "threads":
                v = self.as_threads(name, key, value, line)
            elif key == "cluster-id":
                v = self.as_int(name, key, value, line, minimum=0)
            elif key == "cluster-type":
                from conf.model import CLUSTER_TYPES
                v = self.as_choice(name, key, value, line, CLUSTER_TYPES)
            elif key == "copy-mode":
                if value is None or isinstance(value, str) and value.lower() == "none":
                    values[field] = None
                    continue
                v = self.as_choice(name, key, value, line, ("ips", "tap", "none"))
            elif key in ("copy-iface", "bpf-filter"):
                v = self.as_str(name, key, value, line, allow_none=True)
                if v is None:
                    values[field] = None
                    continue
            elif key == "checksum-checks":
                v = self.as_choice(name, key, value, line, CHECKSUM_CHECKS, bools=True)
            elif key in ("ring-size", "block-size", "block-timeout"):
                v = self.as_int(name, key, value, line, minimum=1)
            elif key == "buffer-size":
                v = self.as_int(name, key, value, line, minimum=0)
            else:  # the booleans
                v = self.as_bool(name, key, value, line)
            if v is not None:
                values[field] = v
        return name, values, entry.line

    def af_packet(self, raw, line) -> list[Interface]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error("af-packet", "", "must be a list of '- interface: NAME' entries",
                       "write each interface as a list item", line)
            return []
        parsed = [self.interface_entry(e, i) for i, e in enumerate(raw)]
        parsed = [p for p in parsed if p is not None]
        defaults = {}
        for name, values, _ in parsed:
            if name == "default":
                defaults = values
        out = []
        for name, values, entry_line in parsed:
            if name == "default":
                continue
            merged = {**defaults, **values}
            iface = Interface(interface=name, line=entry_line, **merged)
            if iface.copy_mode in ("ips", "tap") and iface.defrag:
                iface.defrag = False
                if "defrag" in merged:
                    self.warn("config_defrag_forced_off", name, "defrag", entry_line,
                              reason="on an inline interface the kernel would hand over reassembled "
                              "datagrams larger than the MTU, which cannot be forwarded")
            if iface.copy_mode in ("ips", "tap") and iface.tpacket_v3:
                iface.tpacket_v3 = False
                self.warn("config_tpacket_v3_forced_off", name, "tpacket-v3", entry_line,
                          reason="inline interfaces use TPACKET_V2: a V3 block waits up to "
                          "block-timeout ms before its frames are forwarded")
            out.append(iface)
        return out

    def vars(self, raw, line) -> dict[str, dict[str, str]]:
        out = {"address-groups": dict(DEFAULT_ADDRESS_GROUPS), "port-groups": dict(DEFAULT_PORT_GROUPS)}
        if raw is None:
            return out
        if not isinstance(raw, _Map):
            self.error("vars", "", "must be a mapping with address-groups and port-groups",
                       "indent 'address-groups:' and 'port-groups:' under 'vars:'", line)
            return out
        self.check_keys("vars", raw, VARS_KEYS)
        for group in VARS_KEYS:
            section = raw.get(group)
            if section is None:
                continue
            if not isinstance(section, _Map):
                self.error("vars", group, "must be a mapping of NAME: value",
                           "write one 'NAME: value' per line", raw.line_of(group))
                continue
            for name, value in section.items():
                if isinstance(value, list):  # unquoted [a, b] is a YAML list: mean the same group
                    value = "[" + ",".join(str(v) for v in value) + "]"
                text = self.as_str(f"vars.{group}", name, value, section.line_of(name))
                if text is not None:
                    out[group][str(name)] = text
        return out

    def stream(self, raw, line) -> Stream:
        stream = Stream()
        if raw is None:
            return stream
        if not isinstance(raw, _Map):
            self.error("stream", "", "must be a mapping", "indent its keys under 'stream:'", line)
            return stream
        self.check_keys("stream", raw, STREAM_KEYS, STREAM_IGNORED)
        for key in ("midstream", "async-oneside", "checksum-validation"):
            if key in raw:
                v = self.as_bool("stream", key, raw[key], raw.line_of(key))
                if v is not None:
                    setattr(stream, key.replace("-", "_"), v)
        if "inline" in raw:
            v = self.as_choice("stream", "inline", raw["inline"], raw.line_of("inline"),
                               STREAM_INLINE, bools=True)
            if v is not None:
                stream.inline = v
        return stream

    def ports(self, where, key, value, line, port_groups) -> tuple[int, ...] | None:
        seen = set()

        def expand(text, depth):
            if depth > 8:
                raise ValueError("variables refer to each other in a loop")
            out = []
            for part in text.strip().strip("[]").split(","):
                part = part.strip()
                if not part:
                    continue
                if part.startswith("$"):
                    name = part[1:]
                    if name not in port_groups:
                        raise ValueError(f"unknown port variable ${name}"
                                         + did_you_mean(name, port_groups))
                    out += expand(port_groups[name], depth + 1)
                elif part.isdigit() and 0 < int(part) < 65536:
                    out.append(int(part))
                else:
                    raise ValueError(f"'{part}' is not a port number")
            return out

        try:
            result = expand(str(value) if not isinstance(value, list) else
                            ",".join(str(v) for v in value), 0)
        except ValueError as exc:
            self.error(where, key, str(exc), "write ports as 4789, '[4789, 8472]' or $VXLAN_PORTS", line)
            return None
        return tuple(p for p in result if not (p in seen or seen.add(p)))

    def decoder(self, raw, line, port_groups) -> Decoder:
        decoder = Decoder()
        decoder.vxlan_ports = self.ports("decoder.vxlan", "ports", "$VXLAN_PORTS", 0, port_groups) \
            or decoder.vxlan_ports
        if raw is None:
            return decoder
        if not isinstance(raw, _Map):
            self.error("decoder", "", "must be a mapping", "indent its keys under 'decoder:'", line)
            return decoder
        self.check_keys("decoder", raw, DECODER_KEYS, DECODER_IGNORED)
        for proto, known in (("vxlan", ("enabled", "ports")), ("gre", ("enabled",))):
            sub = raw.get(proto)
            if sub is None:
                continue
            where = f"decoder.{proto}"
            if not isinstance(sub, _Map):
                self.error("decoder", proto, "must be a mapping", f"indent 'enabled:' under '{proto}:'",
                           raw.line_of(proto))
                continue
            self.check_keys(where, sub, known)
            if "enabled" in sub:
                v = self.as_bool(where, "enabled", sub["enabled"], sub.line_of("enabled"))
                if v is not None:
                    setattr(decoder, f"{proto}_enabled", v)
            if "ports" in sub:
                v = self.ports(where, "ports", sub["ports"], sub.line_of("ports"), port_groups)
                if v is not None:
                    decoder.vxlan_ports = v
        return decoder

    def parse(self, doc) -> Config:
        config = Config(source=self.source)
        config.default_rule_path = self.base_dir
        if doc is None:
            doc = _Map()
            doc.key_lines = {}
        if not isinstance(doc, _Map):
            self.error("yaml", "", "the top level is not a mapping",
                       "start the file with 'af-packet:' and the other sections", 1)
            return config
        for key in doc:
            if key == "include":
                self.warn("config_section_ignored", "include", "", doc.line_of(key),
                          reason="top-level 'include:' files are not read; use 'KEY: !include FILE' "
                          "for a section, or copy its content into this file")
            elif key not in TOP_LEVEL:
                self.warn("config_section_ignored", str(key), "", doc.line_of(key),
                          reason="not used by ipsbridge")
        L = doc.line_of
        config.vars = self.vars(doc.get("vars"), L("vars"))
        config.af_packet = self.af_packet(doc.get("af-packet"), L("af-packet"))
        if doc.get("default-rule-path") is not None:
            v = self.as_str("default-rule-path", "", doc["default-rule-path"], L("default-rule-path"))
            if v is not None:
                config.default_rule_path = self.path(v)
        rule_files = doc.get("rule-files")
        if rule_files is not None:
            if isinstance(rule_files, str):
                rule_files = [rule_files]
            if not isinstance(rule_files, list):
                self.error("rule-files", "", "must be a list of file names",
                           "write one '- NAME.rules' per line", L("rule-files"))
            else:
                for item in rule_files:
                    v = self.as_str("rule-files", "", item, L("rule-files"))
                    if v is not None:
                        config.rule_files.append(os.path.expanduser(v))
        if doc.get("classification-file") is not None:
            v = self.as_str("classification-file", "", doc["classification-file"], L("classification-file"))
            if v is not None:
                config.classification_file = self.path(v)
        config.stream = self.stream(doc.get("stream"), L("stream"))
        config.decoder = self.decoder(doc.get("decoder"), L("decoder"), config.vars["port-groups"])
        if "exception-policy" in doc:
            v = self.as_choice("exception-policy", "", doc["exception-policy"], L("exception-policy"),
                               EXCEPTION_POLICIES)
            if v is not None:
                config.exception_policy = v
        pcap = doc.get("pcap-file")
        if isinstance(pcap, _Map):
            self.check_keys("pcap-file", pcap, PCAP_FILE_KEYS, PCAP_FILE_IGNORED)
            if "checksum-checks" in pcap:
                v = self.as_choice("pcap-file", "checksum-checks", pcap["checksum-checks"],
                                   pcap.line_of("checksum-checks"), CHECKSUM_CHECKS, bools=True)
                if v is not None:
                    config.pcap_file_checksum_checks = v
        elif pcap is not None:
            self.error("pcap-file", "", "must be a mapping", "indent 'checksum-checks:' under it",
                       L("pcap-file"))
        self.outputs(doc, config)
        own = doc.get("ipsbridge")
        if isinstance(own, _Map):
            self.check_keys("ipsbridge", own, IPSBRIDGE_KEYS)
            if own.get("eve-log") is not None:
                config.eve_log = self.as_str("ipsbridge", "eve-log", own["eve-log"], own.line_of("eve-log"))
            if "stats-interval" in own:
                v = self.as_number("ipsbridge", "stats-interval", own["stats-interval"],
                                   own.line_of("stats-interval"))
                if v is not None:
                    config.stats_interval = v
            if own.get("verdict-hook") is not None:
                config.verdict_hook = self.as_str("ipsbridge", "verdict-hook", own["verdict-hook"],
                                                  own.line_of("verdict-hook"))
        elif own is not None:
            self.error("ipsbridge", "", "must be a mapping",
                       "indent eve-log, stats-interval and verdict-hook under 'ipsbridge:'", L("ipsbridge"))
        assign_cluster_ids(config)
        return config

    def outputs(self, doc, config):
        """Suricata's `outputs: - eve-log: {enabled, filename}` sets eve_log; the rest is unused."""
        raw = doc.get("outputs")
        if raw is None:
            return
        used = False
        if isinstance(raw, list):
            for item in raw:
                if isinstance(item, _Map) and isinstance(item.get("eve-log"), _Map):
                    eve = item["eve-log"]
                    enabled = self.as_bool("outputs.eve-log", "enabled", eve.get("enabled", True),
                                           eve.line_of("enabled"))
                    if enabled and eve.get("filename"):
                        name = str(eve["filename"])
                        log_dir = doc.get("default-log-dir")
                        if not os.path.isabs(name) and log_dir:
                            name = os.path.join(str(log_dir), name)
                        config.eve_log = name
                        used = True
                        break
        log.warning("config_section_ignored", where="outputs", key="", file=self.source,
                    line=doc.line_of("outputs"),
                    reason="only eve-log's filename is used" if used else "not used by ipsbridge")


def assign_cluster_ids(config: Config) -> None:
    """cluster-id left out: 99, 98, ... in entry order, skipping ids set explicitly."""
    used = {i.cluster_id for i in config.af_packet if i.cluster_id is not None}
    next_id = _AUTO_CLUSTER_ID_START
    for iface in config.af_packet:
        if iface.cluster_id is None:
            while next_id in used:
                next_id -= 1
            iface.cluster_id = next_id
            used.add(next_id)
            next_id -= 1


def load_text(text: str, source: str = "<string>", base_dir: str | None = None) -> Config:
    """Parse YAML text (suricata.yaml shape) into a Config; ConfigError lists every problem."""
    base_dir = base_dir or os.getcwd()
    loader = _Loader(text)
    loader.duplicates, loader.base_dir, loader.depth = [], base_dir, 0
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 0
        col = f", column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem("yaml", "", f"syntax error: {what}{col}",
                                   "fix the YAML at that line (indentation, a missing ':' or quote)",
                                   source, line)]) from None
    finally:
        loader.dispose()
    parser = _Parser(source, base_dir)
    for key, line in loader.duplicates:
        parser.error("yaml", key, "key given twice in the same mapping (the last one would win)",
                     "keep one of them", line)
    config = parser.parse(doc)
    if parser.problems:
        raise ConfigError(parser.problems)
    return config


def load_file(path: str) -> Config:
    """Load a suricata.yaml-shaped file; ConfigError lists every problem with file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([Problem("config", "", f"cannot read {path}: {exc.strerror}",
                                   "give the path of an existing YAML file with -c", path)]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem("config", "", f"{path} is not UTF-8 text ({exc.reason})",
                                   "give a YAML text file with -c", path)]) from None
    return load_text(text, path, os.path.dirname(os.path.abspath(path)))


# --------------------------------------------------------------------------- quick form
def _split_bridge(spec: str):
    left, sep, right = spec.partition(":")
    if not sep or not left or not right or ":" in right:
        return None
    return left, right


def from_args(args) -> Config:
    """Config from `run`/`check` arguments.

    With -c FILE the file is loaded first, then:
      --bridge A:B / --ids IFACE  ADD interfaces (naming one already in the file is an error);
      --mode                      applies to the --bridge pairs only;
      --threads / --cluster-type  OVERRIDE that key on every interface, file and quick ones alike
                                  (so both sides of a pair stay equal);
      -S/--rules                  REPLACES rule-files;
      --eve, --stats-interval, --verdict-hook  OVERRIDE the file's ipsbridge section.
    """
    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    config_path = g("config")
    config = load_file(config_path) if config_path else Config(source="<command line>")
    if not config_path:
        config.vars = {"address-groups": dict(DEFAULT_ADDRESS_GROUPS),
                       "port-groups": dict(DEFAULT_PORT_GROUPS)}
    problems: list[Problem] = []

    def bad(flag, value, message, fix):
        problems.append(Problem(flag, str(value), message, fix))

    from conf.model import CLUSTER_TYPES

    threads = g("threads")
    if isinstance(threads, str):
        if threads.strip().lower() == "auto":
            threads = os.cpu_count() or 1
        elif threads.strip().isdigit() and int(threads) > 0:
            threads = int(threads)
        else:
            bad("--threads", threads, "is not a thread count", "give a positive integer or 'auto'")
            threads = None
    elif threads is not None and threads < 1:
        bad("--threads", threads, "is not a thread count", "give a positive integer or 'auto'")
        threads = None
    cluster_type = g("cluster_type")
    if cluster_type is not None and cluster_type not in CLUSTER_TYPES:
        bad("--cluster-type", cluster_type, "unknown value" + did_you_mean(cluster_type, CLUSTER_TYPES),
            "use one of " + ", ".join(CLUSTER_TYPES))
        cluster_type = None
    mode = g("mode")
    if mode is not None and mode not in ("ips", "tap"):
        bad("--mode", mode, "unknown value" + did_you_mean(mode, ("ips", "tap")), "use ips or tap")
        mode = None
    bridges = g("bridge") or []
    ids = g("ids") or []
    if g("mode") is not None and not bridges:
        bad("--mode", mode, "given without --bridge", "add --bridge IFACE:IFACE, or set 'copy-mode' in the file")

    existing = {i.interface for i in config.af_packet}
    new: list[Interface] = []

    def add(iface: Interface, flag: str, spec: str):
        if iface.interface in existing:
            where = f"also in {config.source}" if config_path else "given twice"
            bad(flag, spec, f"interface {iface.interface} is {where}",
                "name each interface once, in the file or on the command line")
            return
        existing.add(iface.interface)
        new.append(iface)

    for spec in bridges:
        pair = _split_bridge(spec)
        if pair is None:
            bad("--bridge", spec, "is not IFACE:IFACE", "write the two ports as --bridge eth0:eth1")
            continue
        a, b = pair
        if a == b:
            bad("--bridge", spec, "bridges an interface to itself", "name two different ports")
            continue
        for x, y in ((a, b), (b, a)):
            add(Interface(interface=x, copy_mode=mode or "ips", copy_iface=y, defrag=False), "--bridge", spec)
    for name in ids:
        add(Interface(interface=name), "--ids", name)
    config.af_packet.extend(new)
    for iface in config.af_packet:
        if threads is not None:
            iface.threads = threads
        if cluster_type is not None:
            iface.cluster_type = cluster_type
    rules = g("rules")
    if rules:
        config.rule_files = [os.path.abspath(r) for r in rules]
    if g("eve") is not None:
        config.eve_log = g("eve")
    if g("stats_interval") is not None:
        config.stats_interval = float(g("stats_interval"))
    if g("verdict_hook") is not None:
        config.verdict_hook = g("verdict_hook")
    if not config_path:
        config.default_rule_path = os.getcwd()
    assign_cluster_ids(config)
    if problems:
        raise ConfigError(problems)
    return config
