"""elementwise ops."""

__all__ = []
