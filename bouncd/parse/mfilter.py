"""m-FILTER (Digital Arts) text bounces: ``-------server message`` / ``-------SMTP command`` sections."""

from __future__ import annotations

import re

from bouncd.parse.base import Mail, find_command
from bouncd.parse.textreport import ADDRESS_RE, build_parsed, failure_from_words, own_addresses
from bouncd.records import Parsed

_SECTION = re.compile(r"^-{5,}\s*(server message|smtp command|original (?:message|mail info))\s*$", re.I)


class MFilter:
    """Addresses before ``-------server message``, the reply after it, the command after ``-------SMTP command``."""

    name = "mfilter"

    def detect(self, mail: Mail) -> Parsed | None:
        """Read m-FILTER's sections."""
        text = mail.text
        if "m-FILTER" not in text[:400] and "-------server message" not in text:
            return None
        own = own_addresses(mail)
        addrs: list[str] = []
        server: list[str] = []
        command_lines: list[str] = []
        section = "head"
        rest_at = len(text)
        offset = 0
        for line in text.splitlines(keepends=True):
            m = _SECTION.match(line.strip())
            if m:
                section = m.group(1).lower()
                if section.startswith("original"):
                    rest_at = offset + len(line)
                    break
            elif section == "head":
                a = ADDRESS_RE.fullmatch(line.strip())
                if a and a.group("addr").lower() not in own:
                    addrs.append(a.group("addr").lower())
            elif section == "server message" and line.strip():
                server.append(line.strip())
            elif section == "smtp command" and line.strip():
                command_lines.append(line.strip())
            offset += len(line)
        if not addrs:
            return None
        command = None
        if command_lines:
            word = command_lines[0].split()[0].upper()
            command = {"RCPT": "RCPT", "MAIL": "MAIL", "DATA": "DATA", "HELO": "HELO", "EHLO": "HELO"}.get(word)
            command = command or find_command(command_lines[0])
        failures = [failure_from_words(a, "\n".join(server), command=command) for a in dict.fromkeys(addrs)]
        return build_parsed(mail, self.name, failures, text[rest_at:])
