"""Bad values in `vars` are refused when the configuration loads, each at its line --
not discovered rule by rule when a rule happens to use the variable."""
from __future__ import annotations

import pytest

import conf
from conf.validate import ConfigError


@pytest.mark.parametrize("text, line, key, why", [
    ('vars:\n  address-groups:\n    HOME_NET: "10.0.0.0/33"\n', 3, "HOME_NET", "bad CIDR '10.0.0.0/33'"),
    ('vars:\n  port-groups:\n    HTTP_PORTS: "[80,abc]"\n', 3, "HTTP_PORTS", "bad port 'abc'"),
    ('vars:\n  port-groups:\n    X_PORTS: "$X_PORTS"\n', 3, "X_PORTS", "variable cycle"),
    ('vars:\n  address-groups:\n    A: "$B"\n    B: "[$A,198.51.100.1]"\n', 3, "A", "variable cycle"),
])
def test_a_bad_variable_is_refused_at_its_line(text, line, key, why):
    with pytest.raises(ConfigError) as ei:
        conf.load_text(text, "v.yaml")
    p = next(p for p in ei.value.problems if p.key == key)
    assert p.line == line and why in p.message and p.where.startswith("vars.")


def test_good_variables_and_the_defaults_load():
    c = conf.load_text('vars:\n  address-groups:\n    HOME_NET: "[198.51.100.0/24,2001:db8::/32]"\n'
                       '    EXTERNAL_NET: "!$HOME_NET"\n  port-groups:\n    HTTP_PORTS: "[80,8080:8090]"\n',
                       "v.yaml")
    assert c.vars["address-groups"]["EXTERNAL_NET"] == "!$HOME_NET"
    assert c.vars["port-groups"]["HTTP_PORTS"] == "[80,8080:8090]"
