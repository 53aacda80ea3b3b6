"""bouncd: receive bounces and complaints, classify them, keep Do-Not-Contact with a reason trail."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
