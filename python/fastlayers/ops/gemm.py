"""gemm ops."""

__all__ = []
