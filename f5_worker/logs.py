"""How values a job controls appear in error messages and log lines: cut, and escaped.

A job's input is echoed back in errors (an unknown field's name, an unknown action) and written to the
worker's log (a voice name, a URL). Without a bound, ``{"action": "x" * 1000000}`` makes a 1 MB error and
a 1 MB log line; without escaping, a newline in a field name writes a line of the attacker's choosing
into the log, one that looks like the worker's own, and a NUL byte reaches the log raw.

- ``echo`` and ``shorten`` cut a value to ``MAX_ECHO_CHARS`` (saying how long it was) for messages;
- ``hide_credentials`` blanks a URL's user name and password (``https://***@host/``): a job's URL, or a
  setting's, may carry them, and a message or a log line that quotes it would hand them to whoever reads
  it (``echo``, ``shorten``, ``cut`` and ``SafeFormatter`` all apply it, before any cut, so no piece of a
  secret survives either);
- ``keep_secret`` adds a secret setting's value (``API_TOKEN``) to what those same four blank, wherever it
  appears: a client that sends the token in a URL's query, or as a field's value, finds it in no log line;
- ``escape`` turns control characters into visible escapes (``\\n``, ``\\x00``);
- ``SafeFormatter``, the worker's log format (``configure``), escapes every message, and indents
  every continuation line of a traceback, so no input can start a line of its own in the log.
"""

from __future__ import annotations

import logging
import re
from typing import IO, Any

MAX_ECHO_CHARS = 80  # of a job's value, in an error or a log line
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTINUATION = "  | "  # starts every further line of a record (a traceback): never a record's own start

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: what could end a line or
# hide text in a terminal or a log viewer.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A URL's user information: from its scheme's ``//`` to the last ``@`` before the host ends (``/``, ``?``,
# ``#`` or the line's end), as urllib.parse reads it: greedy, so ``a:b@c@host`` hides ``a:b@c`` as urlsplit
# does, and across spaces, which urlsplit keeps in a user name. At worst it hides a host followed by an ``@``.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\r\n/?#]*@")
HIDDEN = "***"
MIN_SECRET_CHARS = 8  # a shorter value is not kept: hiding it would blank common words in every line
_SECRETS: set[str] = set()  # secret settings' values, blanked in every message and log line (keep_secret)


def _escaped(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def hide_credentials(text: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``."""
    return _USERINFO.sub(rf"\g<1>{HIDDEN}@", text) if "@" in text else text


def keep_secret(value: str) -> None:
    """Blank ``value`` (a secret setting's) in every message and log line from now on."""
    if len(value) >= MIN_SECRET_CHARS:
        _SECRETS.add(value)


def _hidden(text: str) -> str:
    """``text`` with URLs' user information and every kept secret blanked."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return hide_credentials(text)


def escape(text: str) -> str:
    """``text`` on one line, its control characters written as escapes."""
    return _CONTROL.sub(_escaped, text)


def shorten(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` escaped, and cut to ``limit`` characters as shown, escapes counted (saying how long it was).

    Counting the escapes keeps a cut field name within an error's bound for fields (errors.MAX_FIELD_CHARS),
    so it is never cut a second time, which would state the length of the first cut instead of the value's.
    """
    text = _hidden(text)
    whole = escape(text[: limit + 1])
    if len(whole) <= limit:
        return whole
    pieces, used = [], 0
    for char in text[:limit]:
        piece = escape(char)
        if used + len(piece) > limit:
            break
        pieces.append(piece)
        used += len(piece)
    return f"{''.join(pieces)}... ({len(text)} characters)"


def echo(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """A job's value as a message quotes it: its ``repr``, escaped and cut (``shorten``)."""
    return shorten(repr(value), limit)


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters (a message's last line of defence against a huge echo)."""
    text = _hidden(text)
    return text if len(text) <= limit else f"{text[: max(limit - 30, 0)]}... ({len(text)} characters)"


class SafeFormatter(logging.Formatter):
    """The log format, with each record on lines that no logged value can forge (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        # logging caches a record's traceback text with the first handler that formats it: another handler's
        # (pytest's, a library's) would hand this one a traceback neither escaped nor with URLs' secrets hidden
        cached = record.exc_text
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's names
        message = record.message
        record.message = escape(_hidden(message))
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei) -> str:  # noqa: N802 - logging's names
        return _continued(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's names
        return _continued(super().formatStack(stack_info))


def _continued(text: str) -> str:
    return "\n".join(CONTINUATION + escape(_hidden(line)) for line in text.split("\n"))


def configure(level: str, stream: IO[str]) -> None:
    """The worker's logging: every record through ``SafeFormatter`` to ``stream`` (runpod_handler.py).

    ``force``: importing runpod has already given the root logger a handler of its own format (its
    ``rp_upload`` calls ``basicConfig`` at import), and without it this call would change nothing: no record
    would pass through ``SafeFormatter``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
