"""ONNX models in and out (the onnx package is an optional dependency: pip install 'fastlayers[onnx]').

    model = fastlayers.onnx.load("resnet.onnx")          # a fastlayers graph Model (eval mode)
    y = model.predict(x)
    fastlayers.onnx.export(model, "out.onnx")            # or model.export_onnx("out.onnx")

load() maps each ONNX node onto fastlayers layers (see SUPPORTED_OPS and docs/interop.md); a node
whose operator or attribute fastlayers does not cover is an UnsupportedOnnxError naming the node and
its operator. export() writes opset 17 with a dynamic batch dimension.
"""

from ._export import export  # noqa: F401
from ._import import SUPPORTED_OPS, UnsupportedOnnxError, load  # noqa: F401

__all__ = ["load", "export", "UnsupportedOnnxError", "SUPPORTED_OPS"]
