"""S10 terminal services: the host's messages to the operator, and the operator's answers.

- S10F3 (one line) and S10F5 (several) from the host: noted in the journal's S10 log
  (``GemContext.note_message``, source ``host``: ``viaform gem messages`` and
  ``GET /gem/messages`` show it), put on the daemon's event stream (a ``gem_terminal``
  event on SSE ``/events``), TerminalMessageReceived fired with the text, ACKC10 0
  (accepted for display). A terminal other than 0 gets ACKC10 2 (terminal not
  available: the line has one, the daemon's) and is not noted.
- The operator answers with ``answer``: S10F1 to the host (``terminal_to_host``, which
  notes it, source ``equipment``), TerminalMessageSent fired, audited with the name.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sequencer.faces.gem.context import GemContext

ACKC10_OK, ACKC10_NO_TERMINAL = 0, 2
#: what the line's messages use beyond ASCII, as a terminal shows it (E5 TEXT is ASCII)
_ASCII = str.maketrans({"→": "->", "°": "deg", "–": "-", "—": "-", "−": "-", "≥": ">=",
                        "≤": "<=", "×": "x", "·": ".", "²": "2", "÷": "/", "τ": "tau",
                        "µ": "u"})


def ascii_text(text: str) -> str:
    """``text`` in ASCII for a terminal: the line's symbols spelled out, accents dropped,
    anything else ``?`` (secsgem cannot send other characters as TEXT at all)."""
    spelled = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return "".join(ch for ch in spelled if not unicodedata.combining(ch)).encode(
        "ascii", "replace").decode("ascii")


def received(ctx: GemContext, tid: int, text: str) -> None:
    """A host message: noted, and its event fired."""
    ctx.note_message("host", text)
    ctx.publish("gem_terminal", {"source": "host", "tid": tid, "text": text})
    ctx.emit("TerminalMessageReceived", {"TerminalID": tid, "TerminalText": text})


def answer(ctx: GemContext, text: str, who: str) -> str:
    """The operator's answer to the host; ``ValueError`` for an empty one (nothing sent).
    Returns the text as sent."""
    text = ascii_text(text.strip())
    if not text:
        raise ValueError("the answer is empty")
    ctx.terminal_to_host(text)
    ctx.audit(who, "gem.terminal.answer", {"text": text})
    ctx.emit("TerminalMessageSent", {"TerminalID": 0, "TerminalText": text})
    return text


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def install_terminal(handler: Any, ctx: GemContext) -> None:
    """S10F3 and S10F5 from the host (S10F1 to the host is ``GemContext.terminal_to_host``)."""
    def on_message(_: Any, message: Any) -> Any:
        req = handler.settings.streams_functions.decode(message)
        tid = req.TID.get()
        tid = tid[0] if isinstance(tid, list | tuple | bytes) else int(tid)
        reply = handler.stream_function(10, message.header.function + 1)
        if tid != 0:
            return reply(ACKC10_NO_TERMINAL)
        raw = req.TEXT.get()
        lines = raw if isinstance(raw, list) else [raw]
        received(ctx, tid, "\n".join(_text(line) for line in lines))
        return reply(ACKC10_OK)

    handler.register_stream_function(10, 3, on_message)
    handler.register_stream_function(10, 5, on_message)
