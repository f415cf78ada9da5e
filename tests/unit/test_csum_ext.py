"""rules/_hotpath.c's ones_sum: built by the install, and the same sums as the Python fallback."""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules import checksum


def test_the_c_sum_is_built_and_used():
    # the install (pip install -e .) compiles it; a missing compiler must fail here, loudly,
    # not leave the engine silently on the slow Python sum
    from rules._hotpath import ones_sum

    assert checksum.ones_sum is ones_sum


@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=2**40))
def test_c_and_python_sums_agree(data, initial):
    assert checksum._c_ones_sum(data, initial) == checksum._py_ones_sum(data, initial)
    assert checksum._c_ones_sum(data) == checksum._py_ones_sum(data)


@pytest.mark.parametrize("data,initial,want", [
    (b"", 0, 0), (b"\x00\x00\x00", 0, 0), (b"", 5, 5),
    (b"\xff\xff", 0, 0xFFFF), (b"\x00\x01\xff\xfe", 0, 0xFFFF),     # a sum that is 0 mod 0xFFFF: 0xFFFF
    (b"\x01", 0, 0x0100), (b"\x12\x34\x56", 0, 0x1234 + 0x5600),     # odd length: zero-padded
    (b"\xff\xff\xff\xff", 2, 2),                                      # end-around carry
])
def test_known_sums(data, initial, want):
    assert checksum._c_ones_sum(data, initial) == want
    assert checksum._py_ones_sum(data, initial) == want


def test_any_buffer_and_the_rfc1071_example():
    # RFC 1071's example words 0001 f203 f4f5 f6f7: sum ddf2
    words = bytes.fromhex("0001f203f4f5f6f7")
    assert checksum.ones_sum(words) == 0xDDF2
    ring = bytearray(os.urandom(4096))
    mv = memoryview(ring)
    rnd = random.Random(7)
    for _ in range(200):
        a = rnd.randrange(0, 4000)
        b = rnd.randrange(a, 4096)
        assert checksum.ones_sum(mv[a:b]) == checksum._py_ones_sum(bytes(ring[a:b]))
