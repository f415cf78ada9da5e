"""threshold and detection_filter: ``type limit|threshold|both, track by_src|by_dst
(threshold also by_rule|by_both), count N, seconds M`` in any order.
The engine applies them (Rule.threshold / Rule.detection_filter)."""
from __future__ import annotations

from rules.keywords._base import Ctx, Keyword, parse_int, split_commas
from rules.rule import Threshold


def _parse(value: str, ctx: Ctx, *, with_type: bool, tracks: tuple[str, ...]) -> Threshold:
    ctx.once()
    got: dict[str, object] = {}
    allowed = ("type", "track", "count", "seconds") if with_type else ("track", "count", "seconds")
    for p, at in split_commas(value):
        key, _, val = p.partition(" ")
        val = val.strip()
        vat = at + len(p) - len(val)
        if key not in allowed:
            raise ctx.error(f"unknown {ctx.keyword} option '{key}' (expected {', '.join(allowed)})", at)
        if key in got:
            raise ctx.error(f"{ctx.keyword}: '{key}' given twice", at)
        if not val:
            raise ctx.error(f"{ctx.keyword}: '{key}' needs a value", at)
        if key == "type":
            if val not in ("limit", "threshold", "both"):
                raise ctx.error(f"threshold type must be limit, threshold or both, not '{val}'", vat)
            got[key] = val
        elif key == "track":
            if val not in tracks:
                unsup = val == "by_flow"      # valid in Suricata 7, not tracked here
                raise ctx.error(f"{ctx.keyword} track must be {', '.join(tracks)}, not '{val}'", vat,
                                unsupported=f"{ctx.keyword}:track {val}" if unsup else None)
            got[key] = val
        else:
            got[key] = parse_int(val, ctx, lo=0, hi=(1 << 31) - 1, what=key, at=vat)
    missing = [k for k in allowed if k not in got]
    if missing:
        raise ctx.error(f"{ctx.keyword} is missing {', '.join(missing)}")
    return Threshold(type=str(got.get("type", "df")), track=str(got["track"]), count=int(got["count"]),
                     seconds=int(got["seconds"]))


def _exclusive(ctx: Ctx) -> None:
    if "threshold" in ctx.fields or "detection_filter" in ctx.fields:
        raise ctx.error("threshold and detection_filter cannot be used in the same rule")


def _threshold(value: str, ctx: Ctx):
    _exclusive(ctx)
    t = _parse(value, ctx, with_type=True, tracks=("by_src", "by_dst", "by_rule", "by_both"))
    ctx.fields["threshold"] = t
    return t


def _detection_filter(value: str, ctx: Ctx):
    _exclusive(ctx)
    t = _parse(value, ctx, with_type=False, tracks=("by_src", "by_dst"))
    ctx.fields["detection_filter"] = t
    return t


threshold = Keyword("threshold", _threshold, iponly=True)
detection_filter = Keyword("detection_filter", _detection_filter, iponly=True)
