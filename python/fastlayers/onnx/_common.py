"""Shared by the ONNX importer and exporter."""

from __future__ import annotations


def require_onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fastlayers.onnx needs the onnx package: pip install 'fastlayers[onnx]'") from e
    return onnx


OPSET = 17
