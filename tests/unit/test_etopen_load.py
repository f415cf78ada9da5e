"""Load the whole real corpus (ET Open + Suricata 7.0.10's own rules).

Every failure must be an "unsupported ..." error (a valid Suricata feature
ipsbridge lacks), never an invalid-rule error or a crash, and every rule whose
protocol and keywords are all supported must load (only unsupported *values*
such as a pcre modifier may still stop it)."""
import glob
import re
from pathlib import Path

import pytest

from conf.build import load_rules
from conf.model import Config
from rules.keywords import REGISTRY
from rules.loader import format_report, logical_lines
from rules.parser import PROTOS
from rules.settings import DEFAULT_VARS

CORPUS = Path("/work/shared/corpus/rules")
FILES = sorted(glob.glob(str(CORPUS / "et-open" / "*.rules")) + glob.glob(str(CORPUS / "suricata-7.0.10" / "*.rules")))
_KW = re.compile(r'(?:^|;)\s*([A-Za-z0-9_.\-]+)\s*(?=[:;])')


def option_names(rule_text: str) -> list[str]:
    """An independent, rough keyword scan: strip quoted strings, then take
    the word before each ':' or ';' at option starts."""
    body = rule_text[rule_text.index("(") + 1:rule_text.rstrip().rindex(")")]
    body = re.sub(r'"(?:\\.|[^"\\])*"', '""', body)
    body = re.sub(r"\\;", "", body)
    return [m.group(1).lower() for m in _KW.finditer(body)]


@pytest.fixture(scope="module")
def result():
    assert FILES, f"no rule files under {CORPUS}"
    cfg = Config(vars=DEFAULT_VARS, classification_file=str(CORPUS / "et-open" / "classification.config"))
    return load_rules(cfg, FILES)


def test_every_failure_is_an_unsupported_feature(result):
    invalid = [str(e) for e in result.errors if not e.unsupported]
    assert invalid == [], "\n".join(invalid[:20])
    assert result.counts["invalid"] == 0
    assert result.counts["loaded"] + result.counts["failed"] + result.counts["replaced"] == result.counts["total"]


def test_rules_with_only_known_keywords_load(result):
    failed_at = {(e.file, e.line): e for e in result.errors}
    checked = 0
    for f in FILES:
        for text, line, _ in logical_lines(Path(f).read_text(errors="replace")):
            s = text.strip()
            if not s or s.startswith("#"):
                continue
            proto = s.split()[1].lower()
            if proto not in PROTOS:
                continue
            if all(n in REGISTRY for n in option_names(s)):
                checked += 1
                e = failed_at.get((f, line))
                if e is not None:
                    # only unsupported option *values* may stop such a rule
                    assert e.unsupported and not e.unsupported in REGISTRY, str(e)
                    assert ":" in e.unsupported or e.unsupported == "pcre-syntax", str(e)
    assert checked > 3000


def test_load_rate_and_report(result):
    c = result.counts
    assert c["total"] > 25000
    # packet-level rules, DNS-over-UDP query rules and the HTTP rules (app layer): nearly all load
    assert c["loaded"] > 21900, format_report(result)
    assert sum(1 for r in result.rules if r.proto == "dns") > 3900
    http = [r for r in result.rules if r.proto == "http"]
    assert len(http) > 14000, format_report(result)
    # an http rule is matched on transactions (its buffers), or on flows detected as HTTP
    assert all(r.app is not None or r.app_proto == "http" for r in http)
    rep = format_report(result)
    assert " 0 invalid," in rep, rep


def test_loaded_rules_are_complete(result):
    sids = set()
    for r in result.rules:
        assert (r.gid, r.sid) not in sids
        sids.add((r.gid, r.sid))
        assert r.msg and r.rev >= 1
        if r.payload is not None and any(getattr(i, "pattern", None) and not i.negated for i in r.payload.items):
            assert r.fast_pattern, r.text
