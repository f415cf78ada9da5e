"""App-layer keywords: the sticky buffers of every app-layer protocol module
(rules.applayer.registry), their older names, and the legacy content modifiers.

- A sticky buffer (`http.uri;`, `tls.sni;`, `file.data;`) makes later payload
  keywords inspect that buffer of the flow's transactions; the rule then needs
  the buffer's protocol (detected on the flow, rules.applayer).
- A legacy modifier (`content:"x"; http_uri;`) moves the content just before it
  into that buffer, as Suricata 7 still accepts: the modifiers of that content
  (nocase, distance, ...) may come before or after it, and a relative content is
  relative to the previous content of the same buffer.
- `urilen` is a condition on the length of http.uri (or with `,raw` of
  http.uri.raw), Suricata's syntax: `N`, `<N`, `>N`, `A<>B`.

Every entry here is generated from the protocol modules, so a new buffer is one
BufferDef in its protocol module and nothing else.
"""
from __future__ import annotations

from rules.applayer import registry
from rules.keywords._base import NONE, Ctx, Keyword, parse_uint_cmp


def _sticky(name: str, proto: str):
    # a name several protocols have (file.data: HTTP and SMTP) is the rule's protocol's
    # when it has one of that name, else `proto`'s (registry.BUFFERS holds that one)
    shared = {m.PROTO for m in registry.MODULES if any(b.name == name for b in m.BUFFERS)}

    def parse(value, ctx: Ctx):
        ctx.need_app(ctx.app_proto if ctx.app_proto in shared else proto)
        ctx.switch(name)
        return True
    return parse


def _modifier(name: str, proto: str):
    def parse(value, ctx: Ctx):
        # after a sticky buffer it moves that buffer's last content (Suricata 7 loads ET's
        # `http.uri; content:"/a"; http_content_type; ...`)
        c = ctx.last_content()
        if ctx.moved is c:
            raise ctx.error(f"'{ctx.keyword}' given after another http modifier for the same content")
        for i, it in enumerate(ctx.items):
            if it is c:
                del ctx.items[i]
                break
        ctx.need_app(proto)
        ctx.buffers.setdefault(name, []).append(c)
        ctx.moved = c
        return True
    return parse


def _urilen(value, ctx: Ctx):
    from rules.applayer.http import LINE

    text, _, flag = value.partition(",")
    flag = flag.strip().lower()
    if flag not in ("", "norm", "raw"):
        raise ctx.error(f"urilen: unknown flag '{flag}' (norm or raw)", len(text) + 1)
    norm, pred = parse_uint_cmp(text, ctx, hi=65535, what="urilen")
    get = registry.BUFFERS["http.uri.raw" if flag == "raw" else "http.uri"].get    # cached per transaction

    def check(tx) -> bool:
        v = get(tx)
        return v is not None and pred(len(v))
    ctx.app_check("http", True, LINE, check)
    return norm


def keywords() -> dict[str, Keyword]:
    out: dict[str, Keyword] = {}
    for b in registry.BUFFERS.values():
        out[b.name] = Keyword(b.name, _sticky(b.name, b.proto), NONE)
    for old, new in registry.ALIASES.items():
        b = registry.BUFFERS[new]
        out[old] = Keyword(old, _sticky(b.name, b.proto), NONE)
    for m in registry.MODULES:
        for mod, buf in getattr(m, "MODIFIERS", {}).items():
            out[mod] = Keyword(mod, _modifier(buf, m.PROTO), NONE)
    if "http" in registry.PROTOCOLS:
        out["urilen"] = Keyword("urilen", _urilen)
    return out
