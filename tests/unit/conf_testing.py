"""What the configuration tests share: a YAML text loaded as `test.yaml`, and a refusal
checked for its one line in the shape README documents ("file:line: where: key: message
-- fix: what to do").  Imported by test_conf_keys, test_conf_bounds, test_conf_app_layer
and test_conf_app_smtp_ftp."""
from __future__ import annotations

import random
import re
import textwrap

import pytest

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


def app(text: str) -> dict:
    """EngineSettings.app of an ips engine built from the configuration."""
    return engine_settings(load(text), "ips").app


def protocols(body: str) -> str:
    """`body` (YAML, two-space indents from column 0) under app-layer.protocols."""
    return "app-layer:\n  protocols:\n" + textwrap.indent(textwrap.dedent(body), "    ")
