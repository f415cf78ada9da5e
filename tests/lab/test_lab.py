"""The lab itself: namespaces come up isolated and go away completely."""
from pyroute2 import netns

import netnslab


def test_lab_builds_and_tears_down(lab_factory):
    lab = lab_factory()
    names = set(lab.ns.values())
    assert names <= set(netns.listnetns())
    # Without a bridge nothing crosses: the two veth pairs are not connected.
    proc = lab.ping("client", netnslab.SERVER4, count=1, check=False)
    assert proc.returncode != 0
    out = lab.run("bridge", "ip", "-o", "link", "show").stdout
    assert "eth0" in out and "eth1" in out
    lab.down()
    assert not names & set(netns.listnetns())


def test_spawned_processes_are_killed_by_pid(lab):
    proc = lab.spawn("client", "sleep", "300")
    assert proc.poll() is None
    lab.down()
    assert proc.poll() is not None


def test_cleanup_stale_removes_dead_owner_namespaces():
    name = "ipsbt-999999999-abcdef-c"  # a PID that cannot exist
    netns.create(name)
    try:
        removed = netnslab.cleanup_stale("ipsbt")
        assert name in removed
    finally:
        if name in netns.listnetns():
            netns.remove(name)


def test_a_helpers_output_after_its_ready_line_is_kept(lab):
    """A helper that prints its result in the same write as its READY line (a short transfer
    done before the test reads the pipe): spawn_listener takes only the READY line, and
    finish() gets the rest.  A buffered readline took both, and the result was lost."""
    proc = netnslab.spawn_listener(lab, "client", 'print("listening\\nthe result", flush=True)')
    assert netnslab.finish(proc) == "the result"
