"""classification.config: ``config classification: name,description,priority``.

`load(path)` returns {name: (description, priority)}; a malformed line is a
RuleError with its file and line.  Which file is the configuration's business
(`classification-file`, default conf/classification.config): the rule loader
is handed its path."""
from __future__ import annotations

from pathlib import Path

from rules.errors import RuleError

Classification = dict[str, tuple[str, int]]

_PREFIX = "config classification:"



def parse(text: str, *, file: str = "") -> Classification:
    out: Classification = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_PREFIX):
            raise RuleError("expected 'config classification: name,description,priority'", file=file,
                            line=no, column=len(raw) - len(raw.lstrip()) + 1)
        body = line[len(_PREFIX):]
        parts = [p.strip() for p in body.split(",")]
        col = raw.find(_PREFIX) + len(_PREFIX) + 1
        if len(parts) != 3 or not parts[0]:
            raise RuleError("classification needs exactly 'name,description,priority'", file=file, line=no,
                            column=col)
        try:
            prio = int(parts[2])
        except ValueError:
            raise RuleError(f"classification priority '{parts[2]}' is not a number", file=file, line=no,
                            column=raw.rfind(",") + 2) from None
        out[parts[0]] = (parts[1], prio)
    return out


def load(path: str | Path) -> Classification:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise RuleError(f"cannot read classification file: {e.strerror}", file=str(p), line=0, column=0) from None
    return parse(text, file=str(p))
