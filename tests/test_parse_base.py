"""The shortcuts in the shared parsing helpers answer exactly as the plain regex scans they skip.

``find_command`` skips a pattern whose required words are absent, and ``text_can_help`` skips its scan
when no stage word appears; on ASCII text the test is a lower-case substring check, and text with other
characters (where re.IGNORECASE folds "\\u017f" to "s" and the Kelvin sign to "k") always runs every pattern.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bouncd.parse import base, dsn
from bouncd.parse.base import Mail
from bouncd.records import Failure

_WORDS = [
    "in reply to RCPT TO command", "In Reply To end of DATA", "after end of data", "AFTER MAIL FROM", "after pipelined",
    "did not like our final DATA", ">>> RCPT To:<a@b>", "[RCPT_TO]", "[rcpt_to]", "(DATA)", "SMTP:RCPT", "smtp:rcpt",
    "for TEXT command", "after EHLO command", "does not like recipient", "but sender was rejected",
    "failed after I sent the message", "didn't like the message", "but greeting failed", "\u017fmtp:", "a\u017fter rcpt to",
    "\u212a", "é", "550 5.1.1", "x", " ", "\n",
]  # fmt: skip
_texts = st.lists(st.sampled_from(_WORDS), max_size=6).map(" ".join) | st.text(max_size=80)


def reference_command(text: str) -> str | None:
    """find_command as it was: every pattern in order."""
    for rx in base._COMMAND_RES:
        m = rx.search(text)
        if m:
            return base._COMMAND_NAMES.get(m.group(1).upper().replace("_", " ").split()[0])
    return None


@settings(max_examples=600)
@given(_texts)
def test_find_command_answers_as_scanning_every_pattern(text: str) -> None:
    """Skipping patterns whose words are absent never changes which command is found."""
    assert base.find_command(text) == reference_command(text)


@settings(max_examples=300)
@given(_texts)
def test_text_can_help_answers_as_the_stage_word_scan(text: str) -> None:
    """With only the command missing, the text helps exactly when the stage-word pattern matches it."""
    mail = Mail.from_bytes(b"Subject: x\n\n" + text.encode("utf-8"))
    failure = Failure(recipient="a@example.org", action="failed", status="5.1.1", diagnostic="x", reply_code="550")
    assert dsn.text_can_help(mail, [failure]) == bool(dsn._STAGE_WORDS.search(mail.text[:20000]))
