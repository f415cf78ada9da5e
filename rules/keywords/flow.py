"""flow: direction (to_server / from_client, to_client / from_server) and
state (established, not_established, stateless).

Direction is not a check here: it sets `Rule.flow_to_server`, which the engine
compares with `pkt.to_server`.  State becomes a check on `pkt.flow.established` (the flow table decides
when a session counts as established, as Suricata does)
(a packet without a flow is never established).  ``no_stream`` makes payload
keywords inspect packets only, ``only_stream`` the reassembled stream only
(the rule then matches only on a stream match), as in Suricata;
``only_frag`` and ``no_frag`` are unsupported."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, split_commas

_DIR = {"to_server": True, "from_client": True, "to_client": False, "from_server": False}
_STATE = ("established", "not_established", "stateless")


def _established(p) -> bool:
    f = p.flow
    return f is not None and f.established


def _not_established(p) -> bool:
    f = p.flow
    return f is None or not f.established


def _flow(value: str, ctx: Ctx):
    # flow may repeat (Suricata accepts it): all its options add up, and a
    # contradiction with an earlier flow keyword is an error like one within it
    direction = ctx.fields.get("flow_to_server")
    state = ctx.fields.get("_flow_state")
    stream = ctx.fields.get("_flow_stream")
    prev_state = state
    opts = []
    for p, at in split_commas(value):
        if not p:
            raise ctx.error("empty flow option", at)
        if p in _DIR:
            if direction is not None and direction != _DIR[p]:
                raise ctx.error(f"flow: '{p}' contradicts an earlier direction", at)
            direction = _DIR[p]
        elif p in _STATE:
            if state is not None and state != p:
                raise ctx.error(f"flow: '{p}' contradicts '{state}'", at)
            state = p
        elif p in ("no_stream", "only_stream"):
            if stream is not None and stream != p:
                raise ctx.error(f"flow: '{p}' contradicts '{stream}'", at)
            stream = p
            # no_stream: payload keywords inspect packets only; only_stream: the stream
            # only, and the rule matches only when its payload matched there
            ctx.fields["_require"] = "packet" if p == "no_stream" else "stream"
            ctx.fields["_only_stream"] = p == "only_stream"
        elif p in ("only_frag", "no_frag"):
            raise ctx.error(f"unsupported flow option '{p}'", at, unsupported=f"flow:{p}")
        else:
            raise ctx.error(f"unknown flow option '{p}' (expected to_server, to_client, from_server, "
                            "from_client, established, not_established, stateless, no_stream)", at)
        opts.append(p)
    ctx.fields["flow_to_server"] = direction
    ctx.fields["_flow_state"] = state
    ctx.fields["_flow_stream"] = stream
    if state == prev_state:
        return tuple(opts)
    if state == "established":
        ctx.add_check(_established, cost=1)
    elif state == "not_established":
        ctx.add_check(_not_established, cost=1)
    return tuple(opts)


flow = Keyword("flow", _flow, REQUIRED)
