"""conv2d's direct kernel with output pixels in the lanes (csrc/cpu/conv_pixels*: AVX-512 and AVX2
kernels, each test run on every one this CPU has) per call: at most 25 taps (C x R x S), stride 1
or 2, one group; the forward up to 16 output channels (any number where AVX2's blocked rows run:
stride 1, more than 11 taps, not 1x1), backward-weight below 8 (any number on AVX2 but for 1x1).
Against the float64 reference with test_conv.py's tolerances (not widened). The inference plan's use of the same kernel is tested in tests/nn/test_plan.py.
"""

import pytest


from ..helpers import Device, num_threads
from .test_conv import _case_data, _check_all, _workspace_floats

# Every test once per vector ISA the kernels have (conftest.simd_isa; the generic ISA keeps
# conv2d's other paths, tested in test_conv*.py).
pytestmark = pytest.mark.usefixtures("simd_isa")

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (3, 1, 28, 28, 6, 5, 5, 1, 2, 1, 1),     # LeNet-5's conv1: both passes here
    (2, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1),    # the small ResNet's first conv: the forward here
    (2, 1, 9, 35, 7, 3, 3, 2, 0, 1, 1),      # stride 2, rows of three 16-pixel segments
    (1, 2, 10, 33, 5, 3, 3, 2, 1, 1, 1),     # stride 2 with padding, 18 taps
    (2, 25, 6, 7, 4, 1, 1, 1, 0, 1, 1),      # exactly 25 taps, read in place (no padding)
    (2, 16, 14, 14, 3, 1, 1, 2, 0, 1, 1),    # a 1x1 stride-2 projection, 3 channels
    (2, 3, 5, 5, 2, 3, 3, 1, 3, 1, 1),       # padding wider than the taps
    (2, 16, 14, 15, 6, 1, 1, 2, 0, 1, 1),    # 1x1 stride 2, 8-pixel rows: one whole AVX2 vector
    # More than 11 taps at stride 1: AVX2 runs the register-blocked rows (blocked_rows_pay).
    (1, 1, 9, 9, 13, 5, 5, 1, 0, 1, 1),      # 13 channels in blocks of 4, 4, 5; 5 segments, the last alone
    (2, 1, 11, 21, 7, 5, 5, 1, 2, 1, 1),     # 25 taps read per channel block, the last 3 channels together
    # From 8 channels on AVX-512, rows of more than 16 pixels and not a multiple of 16 run as one run
    # of pixels, vectors crossing into the next row (every split point n1 comes up at Q = 37):
    (2, 1, 6, 37, 12, 5, 5, 1, 2, 1, 1),     # 25 taps, channels 8 + 4, rows of 37
    (3, 2, 9, 21, 8, 3, 3, 1, 0, 1, 1),      # 18 taps gathered once per segment, rows of 19
    (2, 1, 12, 20, 1, 4, 4, 1, 1, 1, 1),     # one output channel, 16 taps, rows of 19 (three segments)
    (2, 1, 12, 14, 24, 5, 5, 1, 0, 1, 1),    # 24 output channels: per call only where the blocked rows run
    (2, 1, 12, 20, 32, 5, 5, 1, 0, 1, 1),    # rows of 16: whole segments only (seg_block<FULL>), 32 channels
    (2, 1, 7, 27, 32, 4, 4, 1, 0, 1, 1),     # rows of 24 over an odd width: the CNN's conv1 shape of row, 16 taps
    (2, 40, 13, 11, 9, 1, 1, 2, 0, 1, 1),    # 1x1 stride 2 with 40 taps: AVX2's blocked rows on the even pixels
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pixels_match_reference(rng, case, threads):
    x, w, b, params = _case_data(rng, case)
    with num_threads(threads):
        _check_all(Device("cpu"), x, w, b, params, rng, f"{case} threads={threads}")


def test_pixels_is_taken(monkeypatch):
    """The predicate, told by the workspace size (a 1x1 stride-1 conv needs no room on the GEMM path;
    backward-weight here needs its 16-lane sums, K x taps x 16 floats): for a 1x1 conv below 8 output
    channels, not from 8 (larger filters on AVX2 take any number), not with FASTLAYERS_CONV_PIXELS=0."""
    taken, not_taken = (2, 25, 6, 7, 4, 1, 1, 1, 0, 1, 1), (2, 25, 6, 7, 8, 1, 1, 1, 0, 1, 1)
    monkeypatch.setenv("FASTLAYERS_CONV_PIXELS", "0")
    off = [_workspace_floats(c, 2) for c in (taken, not_taken)]
    monkeypatch.delenv("FASTLAYERS_CONV_PIXELS")
    on = [_workspace_floats(c, 2) for c in (taken, not_taken)]
    assert on[0] > off[0] and on[1] == off[1]
