"""torchvision's model definitions in the tests, whatever the state of its compiled ops.

torchvision 0.28.0 (the release for torch 2.13) ships wheels built against the CUDA torch; with the
CPU torch its compiled ops (torchvision::nms and friends) do not load, and `import torchvision`
fails inside torch.library.register_fake ("operator torchvision::nms does not exist"). The model
definitions (torchvision.models.*) are pure Python and need none of those ops, so the import is
retried once with register_fake tolerating exactly that error: the fake (meta) kernels of the
missing operators are not registered, which only matters for the detection ops, never used here.
This is confined to the tests; the library does not import torch or torchvision.
"""

from __future__ import annotations

import sys

_CACHE = {}


def import_torchvision():
    """torchvision.models, or (None, reason) when it cannot be imported even so."""
    if "models" in _CACHE:
        return _CACHE["models"], _CACHE["reason"]
    models, reason = None, ""
    try:
        import torch
        import torch.library
    except ImportError as e:
        reason = f"PyTorch is not installed ({e})"
    else:
        try:
            import torchvision.models as models  # noqa: F811
        except ImportError as e:
            reason = f"torchvision is not installed ({e})"
        except RuntimeError as e:
            if "does not exist" not in str(e):
                reason = f"import torchvision failed: {e}"
            else:
                for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                    del sys.modules[name]
                original = torch.library.register_fake

                def tolerant(op, func=None, /, *args, **kwargs):
                    def register(fn):
                        try:
                            return original(op, fn, *args, **kwargs)
                        except RuntimeError as err:
                            if "does not exist" in str(err):
                                return fn
                            raise
                    return register if func is None else register(func)

                torch.library.register_fake = tolerant
                try:
                    import torchvision.models as models  # noqa: F811
                except Exception as err:  # noqa: BLE001 - any failure here is a skip reason
                    models, reason = None, f"import torchvision failed even with its op registrations tolerated: {err}"
                finally:
                    torch.library.register_fake = original
    _CACHE["models"], _CACHE["reason"] = models, reason
    return models, reason
