"""DragonFly Mail Agent (DMA, the BSD ``dma``): a text/plain bounce written by ``dma/mail.c``."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail
from bouncd.parse.textreport import ADDRESS, Hint, TextDetector, TextFormat


def _is_dma(mail: Mail) -> bool:
    # dma writes "This is the DragonFly Mail Agent vX at host." as the first body line and names
    # itself in the Received header it adds.
    return "DragonFly Mail Agent" in mail.text[:400] or "DragonFly Mail Agent" in mail.header("Received")


class DragonFly(TextDetector):
    """``There was an error delivering your mail to <addr>.`` then the remote's reply."""

    fmt = TextFormat(
        name="dragonfly",
        gate=_is_dma,
        starts=("this is the dragonfly mail agent",),
        ends=("message headers follow.", "original message follows."),
        recipient=re.compile(r"^There was an error delivering your mail to " + ADDRESS + r"\.?\s*(?P<rest>)$"),
        frame=re.compile(r"^(?P<host>\S+)(?: \[[^\]]*\])? did not like our [A-Za-z ]+:"),
        hints=(
            # dma gives up after MAX_TIMEOUT: "Could not deliver for the last %d seconds. Giving up."
            Hint(re.compile(r"Could not deliver for the last \d+ seconds\. Giving up\.?"), "expired", "dma.giving-up"),
        ),
    )
