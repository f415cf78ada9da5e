"""RuleError: the operator's rule text is wrong (or uses something ipsbridge
does not support).  Raised at load, never while inspecting traffic.

`str()` reads like a compiler message so editors can jump to it:
``file:line:col: message (keyword 'x')``.  `column` is 1-based in the line as
written; `unsupported` names the missing feature (a keyword, ``proto:http``,
``pcre-modifier:U``, ...) when the rule is valid Suricata that ipsbridge
cannot run yet -- the loader counts those separately from real mistakes.
"""
from __future__ import annotations


class RuleError(Exception):
    def __init__(self, message: str, *, file: str = "", line: int = 0, column: int = 0,
                 keyword: str | None = None, unsupported: str | None = None,
                 missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.keyword = keyword
        self.unsupported = unsupported
        # every unsupported feature found in the rule (the first one is `unsupported`)
        self.missing = missing or ((unsupported,) if unsupported else ())

    def __str__(self) -> str:
        where = f"{self.file or '<rule>'}:{self.line}:{self.column}"
        kw = f" (keyword '{self.keyword}')" if self.keyword else ""
        return f"{where}: {self.message}{kw}"

    def __repr__(self) -> str:
        return f"RuleError({str(self)!r})"

    def at(self, *, file: str | None = None, line: int | None = None,
           column: int | None = None) -> "RuleError":
        """Relocate (used by the loader to map a logical-line column back to
        the physical line of a multi-line rule)."""
        if file is not None:
            self.file = file
        if line is not None:
            self.line = line
        if column is not None:
            self.column = column
        return self
