"""Fuzz test (issue #17): hypothesis drives every public op and layer with arbitrary arguments
(sizes and geometry from 0 to 2**64, dtypes, shapes, views, misaligned and read-only buffers,
aliasing), each call in a spawned worker process with a timeout (runner.py), and asserts a clear
error (TypeError / ValueError naming an argument, MemoryError for an output that cannot be
allocated) or a result equal to the NumPy reference; never a signal, a hang, or a modified input.

Budget: FASTLAYERS_FUZZ_EXAMPLES examples per test (default 250: about a minute here on 2 cores);
set it to thousands for a long run. The examples are derandomized (seeded from each test's source,
with hypothesis pinned in .ci/run), so CI tries the same calls every run and a red CI means a
change, not a lucky draw; FASTLAYERS_FUZZ_RANDOM=1 draws fresh calls for exploring (what it finds
becomes a regression test in tests/test_errors.py or the op's own tests). FASTLAYERS_FUZZ_SHRINK=1 shrinks a failure to a minimal call
(slow when the failure is a crash: every shrink step restarts the worker). The terminal summary
says how many distinct calls were tried.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fastlayers as fl

from . import specs
from .runner import FAILURES

EXAMPLES = int(os.environ.get("FASTLAYERS_FUZZ_EXAMPLES", "250"))
PHASES = (tuple(Phase) if os.environ.get("FASTLAYERS_FUZZ_SHRINK") == "1"
          else (Phase.explicit, Phase.reuse, Phase.generate))
RANDOM = os.environ.get("FASTLAYERS_FUZZ_RANDOM") == "1"
FUZZ = settings(max_examples=EXAMPLES, deadline=None, phases=PHASES, database=None,
                derandomize=not RANDOM, suppress_health_check=list(HealthCheck))

# Op families with hand-written strategies; every other public op is driven from its signature.
FAMILIES = {
    "activation": (specs.unary_calls(), specs.softmax_calls()),
    "conv": (specs.conv_calls(),),
    "dropout": (specs.dropout_calls(),),
    "elementwise": (specs.add_calls(),),
    "gemm": (specs.gemm_calls(),),
    "linear": (specs.linear_calls(),),
    "loss": (specs.loss_calls(),),
    "optim": (specs.optim_calls(),),
}
POOL_OPS = {"max_pool2d", "avg_pool2d", "lp_pool2d", "global_avg_pool2d"}
_COVERED = {"relu", "sigmoid", "tanh", "sign", "leaky_relu", "heaviside", "relu_backward", "sigmoid_backward",
            "tanh_backward", "leaky_relu_backward", "softmax", "log_softmax", "softmax_backward",
            "log_softmax_backward", "conv2d", "conv1d", "conv2d_backward", "conv1d_backward", "dropout",
            "dropout_backward", "dropout_mask", "add", "add_backward", "gemm", "gemm_backward", "linear",
            "linear_backward", "sgd_update", "adam_update"} | {
    k + s for k in ("mse_loss", "binary_cross_entropy_with_logits", "softmax_cross_entropy", "logistic_loss",
                    "hinge_loss") for s in ("", "_backward")} | {p + s for p in POOL_OPS for s in ("", "_backward")}
OTHER_OPS = sorted(set(fl.ops.__all__) - _COVERED)


def _check(runner, spec, kind):
    verdict, detail = runner.run(spec, kind)
    assert verdict not in FAILURES, f"{verdict}: {detail}\ncall: {spec}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fuzz_ops(fuzz_runner, family):
    @FUZZ
    @given(spec=st.one_of(*FAMILIES[family]))
    def run(spec):
        _check(fuzz_runner, spec, "ops")

    run()


def test_fuzz_every_op_from_its_signature(fuzz_runner):
    """Arguments drawn from each op's signature alone (names and defaults): the only fuzzing that ops
    added later without a strategy get (OTHER_OPS, drawn half the time), and a second, cruder
    look at the others. Pool ops have their own test below (test_fuzz_pool_ops_and_layers)."""
    names = sorted(set(fl.ops.__all__) - {p + s for p in POOL_OPS for s in ("", "_backward")})

    @FUZZ
    @given(data=st.data())
    def run(data):
        pool = OTHER_OPS if OTHER_OPS and data.draw(st.booleans()) else names
        name = data.draw(st.sampled_from(pool))
        _check(fuzz_runner, data.draw(specs.generic_calls(name, getattr(fl, name))), "ops")

    run()


def test_fuzz_layers(fuzz_runner):
    @FUZZ
    @given(spec=specs.layer_calls())
    def run(spec):
        _check(fuzz_runner, spec, "layers")

    run()


def test_fuzz_pool_ops_and_layers(fuzz_runner):
    @FUZZ
    @given(spec=st.one_of(specs.pool_calls(), specs.layer_calls(pools=True)))
    def run(spec):
        _check(fuzz_runner, spec, "pool")

    run()


def test_every_public_op_is_driven():
    assert set(fl.ops.__all__) <= _COVERED | set(OTHER_OPS)
