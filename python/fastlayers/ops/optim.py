"""optim ops."""

__all__ = []
