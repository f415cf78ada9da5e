"""Meta keywords: msg, sid, rev, gid, classtype, priority, reference, metadata, target.

They change how a match is reported, never whether it happens."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_int, split_commas, unescape

U32 = (1 << 32) - 1


def _msg(value: str, ctx: Ctx):
    ctx.once()
    ctx.fields["msg"] = unescape(value)
    return ctx.fields["msg"]


def _int_field(name: str, lo: int):
    def parse(value: str, ctx: Ctx):
        ctx.once()
        n = parse_int(value, ctx, lo=lo, hi=U32, what=name)
        ctx.fields[name] = n
        return n
    return parse


def _classtype(value: str, ctx: Ctx):
    ctx.once()
    name = value.strip()
    if name not in ctx.classification:
        hint = ""
        if not ctx.classification:
            hint = " (no classification file loaded)"
        raise ctx.error(f"unknown classtype '{name}'{hint}; known classtypes come from classification.config")
    desc, prio = ctx.classification[name]
    ctx.fields["classtype"] = name
    ctx.fields["category"] = desc
    ctx.fields.setdefault("_class_priority", prio)
    return name


def _priority(value: str, ctx: Ctx):
    ctx.once()
    n = parse_int(value, ctx, lo=0, hi=255, what="priority")
    ctx.fields["priority"] = n
    return n


def _reference(value: str, ctx: Ctx):
    parts = split_commas(value)
    if len(parts) < 2 or not parts[0][0] or not parts[1][0]:
        raise ctx.error("reference must be 'type,value' (e.g. reference:cve,2021-44228)")
    ref = f"{parts[0][0]},{','.join(p for p, _ in parts[1:])}"
    ctx.fields.setdefault("references", []).append(ref)
    return ref


def _metadata(value: str, ctx: Ctx):
    items = [p for p, _ in split_commas(value) if p]
    if not items:
        raise ctx.error("metadata needs at least one 'key value' entry")
    ctx.fields.setdefault("metadata", []).extend(items)
    return tuple(items)


def _target(value: str, ctx: Ctx):
    ctx.once()
    v = value.strip()
    if v not in ("src_ip", "dest_ip"):
        raise ctx.error(f"target must be src_ip or dest_ip, not '{v}'")
    ctx.fields["target"] = v
    return v


msg = Keyword("msg", _msg, REQUIRED, quotes="mandatory", iponly=True)   # Suricata refuses an unquoted msg
sid = Keyword("sid", _int_field("sid", 1), iponly=True)
rev = Keyword("rev", _int_field("rev", 0), iponly=True)
gid = Keyword("gid", _int_field("gid", 0), iponly=True)
classtype = Keyword("classtype", _classtype, iponly=True)
priority = Keyword("priority", _priority, iponly=True)
reference = Keyword("reference", _reference, iponly=True)
metadata = Keyword("metadata", _metadata, iponly=True)
target = Keyword("target", _target, iponly=True)
