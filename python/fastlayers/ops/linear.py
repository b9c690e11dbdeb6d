"""linear ops."""

__all__ = []
