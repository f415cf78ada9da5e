"""app-layer-protocol:[!]<proto>: the flow's detected app-layer protocol, as Suricata 7.

A packet check: it matches once detection has decided the flow (a protocol
ipsbridge parses, or `failed` when none of them matched, seen from the packet
after the one it failed on); while detection is still undecided it matches
nothing, negated or not, as in Suricata (checked with suricata -r, both modes).  `!http`
matches flows decided as anything else, `failed` included.  The rule itself
stays whatever its header says (`alert tcp ... app-layer-protocol:!http;` is a
TCP rule); the protocol is probed on every flow because of it.  Protocols
ipsbridge does not detect (smb, ssh, ...) are unsupported: a flow of theirs
would look `failed`, so neither `smb` nor `!smb` could be answered right.
Suricata 7.0's optional second value (to_server, to_client, final, ...) is
unsupported too.
"""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword


def _app_layer_protocol(value: str, ctx: Ctx):
    from rules.applayer import registry

    text = value.strip()
    if "," in text:
        raise ctx.error("unsupported: app-layer-protocol with a mode (to_server, final, ...)",
                        unsupported="app-layer-protocol:mode")
    negated = ctx.negated or text.startswith("!")
    name = text.lstrip("!").strip().lower()
    if not name:
        raise ctx.error("app-layer-protocol needs a protocol name")
    proto = registry.HEADER_PROTOS.get(name, name)
    if proto != "failed" and proto not in registry.PROTOCOLS:
        raise ctx.error(f"unsupported: app-layer-protocol '{name}' (ipsbridge detects "
                        f"{', '.join(sorted(registry.PROTOCOLS))} and failed)",
                        unsupported=f"app-layer-protocol:{name}")
    ctx.fields.setdefault("_detect", set()).update(registry.PROTOCOLS if proto == "failed" else {proto})

    def check(pkt) -> bool:
        f = pkt.flow
        st = f.app if f is not None else None
        if st is None or not st.proto:
            return False                          # not decided yet
        if st.proto == "failed" and f.pkts_toserver + f.pkts_toclient <= st.failed_at:
            return False                          # failed on this very packet: seen from the next one
        return (st.proto != proto) if negated else (st.proto == proto)

    ctx.add_check(check, cost=1)
    return ("!" if negated else "") + proto


app_layer_protocol = Keyword("app-layer-protocol", _app_layer_protocol, REQUIRED, negation=True)
