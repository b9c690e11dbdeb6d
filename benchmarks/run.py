#!/usr/bin/env python3
"""Thin wrapper: the suite lives in the package (fastlayers.bench), so `fastlayers bench` works after
`pip install .`. This script runs it from a checkout, with the same options:

    python benchmarks/run.py --quick
    python benchmarks/run.py --out benchmarks/results --filter 'conv2d|gemm'
"""

import sys

from fastlayers.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
