"""What the configuration tests share: a YAML text loaded as `test.yaml`, and a refusal
checked for its one line in the shape README documents ("file:line: where: key: message
-- fix: what to do").  Imported by test_conf_keys, test_conf_bounds, test_conf_app_layer
and test_conf_app_smtp_ftp; the DECISIONS rows of test_conf_keys and
test_conf_app_layer are judged by `check_decision`."""
from __future__ import annotations

import random
import re
import textwrap

import pytest
from structlog.testing import capture_logs

import conf
from conf import Config, ConfigError
from conf.build import engine_settings

LINE_SHAPE = re.compile(r"^test\.yaml:[1-9]\d*: [^:\s]+: (?:[^:\s]+: )?.+ -- fix: .+$")


def load(text: str, seed: int = 1) -> Config:
    return conf.load_text(textwrap.dedent(text), "test.yaml", "/", rng=random.Random(seed))


def refusals(text: str) -> list:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value.problems


def one_refusal(text: str):
    problems = refusals(text)
    assert len(problems) == 1, [str(p) for p in problems]
    line = str(problems[0])
    assert "\n" not in line and LINE_SHAPE.match(line), line
    return problems[0]


def warnings_of(text: str) -> list[dict]:
    with capture_logs() as logs:
        load(text)
    return [e for e in logs if e["log_level"] == "warning"]


def check_decision(text: str, kind: str, fragment: str, *, other_events: tuple[str, ...] = ()) -> None:
    """A DECISIONS row of a key ipsbridge does not implement: "error" (one refusal naming
    `fragment`), "ok" (no warning), "warn" (config_key_ignored, "no effect in ipsbridge") or
    "stock" (config_key_stock_value: any other value is refused).  `other_events`: warnings
    the text raises besides the key's own (left out before the one warning is checked)."""
    if kind == "error":
        p = one_refusal(text)
        assert fragment in p.message
        return
    logs = [e for e in warnings_of(text) if e["event"] not in other_events]
    if kind == "ok":
        assert logs == []
        return
    (w,) = logs
    assert fragment in w["reason"] and w["file"] == "test.yaml" and w["line"] > 0
    if kind == "warn":
        assert w["event"] == "config_key_ignored" and w["reason"].startswith("no effect in ipsbridge: ")
    else:
        assert w["event"] == "config_key_stock_value" and "any other" in w["reason"]


def app(text: str) -> dict:
    """EngineSettings.app of an ips engine built from the configuration."""
    return engine_settings(load(text), "ips").app


def protocols(body: str) -> str:
    """`body` (YAML, two-space indents from column 0) under app-layer.protocols."""
    return "app-layer:\n  protocols:\n" + textwrap.indent(textwrap.dedent(body), "    ")
