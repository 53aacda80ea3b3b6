"""``python -m bouncd``."""

from __future__ import annotations

import sys

from bouncd.cli import main

sys.exit(main())
