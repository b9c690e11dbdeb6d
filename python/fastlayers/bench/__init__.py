"""fastlayers' benchmark suite: `fastlayers bench` or `python -m fastlayers.bench`.

- `main(argv)`: the command line (see `fastlayers bench --help`).
- `records`: the shared results format (JSON + markdown) that every benchmark writes.
- `probes`: measured peak FLOP/s and memory bandwidth (CPU and GPU) for the roofline.
- `timing`: warm-up + budgeted repetitions, CUDA events on the GPU.
- `cases`, `suite`, `plots`: what is measured, how it runs, and the PNGs.
"""

from . import records, timing  # noqa: F401
from .cli import main  # noqa: F401

__all__ = ["main", "records", "timing"]
