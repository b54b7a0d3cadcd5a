"""Is this text (so far) the beginning of one JSON object or array? Answered incrementally.

The JSON-answer tool parser holds an answer back only while it can still be a call; this scanner
says, one feed at a time, whether the text seen is a prefix of a single JSON value, where that
value ends, or that it can no longer be one. It checks structure (brackets, strings, escapes,
separators, literals); numbers are checked by character class only, and ``json.loads`` has the
last word on the finished text. Runs of string characters and whitespace, and whole items that
can no longer grow, are consumed with one regex match each (within a bounded window), so a feed
costs time linear in its length however the text is split, and every split ends in the same state.
"""

from __future__ import annotations

import enum
import re

MAX_DEPTH = 128  # far deeper than any tool call; bounds the stack on adversarial input

_WS = re.compile(r"[ \t\r\n]*")
_STRING_RUN = re.compile(r'[^"\\\x00-\x1f]*')
_NUMBER_RUN = re.compile(r"[0-9eE+\-.]*")
_WS_CLASS = r"[ \t\r\n]*"
_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_SCALAR = rf"(?:-?[0-9][0-9eE+\-.]*|true|false|null|{_STRING})"


def _nested(value: str) -> str:
    """An object or array whose members are ``value``s, or ``value`` itself: one level deeper."""
    member = rf"{_WS_CLASS}{_STRING}{_WS_CLASS}:{_WS_CLASS}{value}{_WS_CLASS}"
    item = rf"{_WS_CLASS}{value}{_WS_CLASS}"
    obj = rf"\{{(?:{member}(?:,{member})*|{_WS_CLASS})\}}"
    arr = rf"\[(?:{item}(?:,{item})*|{_WS_CLASS})\]"
    return rf"(?:{value}|{obj}|{arr})"


# A whole value up to two containers deep, e.g. one tool call. Every branch starts with a different
# character, so a match never backtracks more than one item.
_VALUE = _nested(_nested(_SCALAR))
# Runs of whole items, each closed by its comma (so none can still grow): one regex call for a long
# list of calls or numbers, or flat key/value pairs, instead of one Python step per token.
_ARRAY_RUN = re.compile(rf"(?:{_WS_CLASS}{_VALUE}{_WS_CLASS},)+")
_OBJECT_RUN = re.compile(rf"(?:{_WS_CLASS}{_STRING}{_WS_CLASS}:{_WS_CLASS}{_VALUE}{_WS_CLASS},)+")
# Each fast match looks at most this far ahead, so one that fails (an item still open, or deeper than
# the patterns reach) costs a bounded amount before the character steps take over.
_WINDOW = 4096
_KEY_COLON = re.compile(rf"{_WS_CLASS}{_STRING}{_WS_CLASS}:")
_LAST_VALUE = re.compile(rf"{_WS_CLASS}{_VALUE}{_WS_CLASS}(?=[}}\]])")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = frozenset('"\\/bfnrtu')
_LITERALS = {"t": "true", "f": "false", "n": "null"}


class Scan(enum.Enum):
    MORE = "more"  # a proper prefix of a JSON value: keep reading
    COMPLETE = "complete"  # the value ended; ``end`` says where in the last feed
    INVALID = "invalid"  # no continuation makes this one JSON value


class _Expect(enum.Enum):
    TOP = "top"  # before the value: only "{" or "[" may start it
    VALUE = "value"
    VALUE_OR_CLOSE = "value_or_close"  # just after "["
    KEY_OR_CLOSE = "key_or_close"  # just after "{"
    KEY = "key"  # after "," in an object
    COLON = "colon"
    AFTER = "after"  # after a value inside a container: "," or the closing bracket
    STRING = "string"
    ESCAPE = "escape"
    UNICODE = "unicode"
    NUMBER = "number"
    LITERAL = "literal"
    DONE = "done"


class JsonPrefixScanner:
    """Feed text; ``Scan.COMPLETE`` comes once, with ``end`` = the index just past the value."""

    def __init__(self) -> None:
        self._expect = _Expect.TOP
        self._stack: list[str] = []  # "{" or "[" per open container
        self._string_is_key = False
        self._pending = ""  # remaining letters of a literal, or hex digits left in a \\u escape
        self.end = -1

    def feed(self, text: str) -> Scan:
        if self._expect is _Expect.DONE:
            return Scan.COMPLETE if text == "" else Scan.INVALID
        pos = 0
        while pos < len(text):
            pos = self._step(text, pos)
            if pos < 0:
                self._expect = _Expect.DONE
                return Scan.INVALID
            if self._expect is _Expect.DONE:
                self.end = pos
                return Scan.COMPLETE
        return Scan.MORE

    # Each step consumes at least one character (or a run) from ``pos`` and returns the new position,
    # or -1 when the text cannot be a JSON prefix.
    def _step(self, text: str, pos: int) -> int:
        expect = self._expect
        if expect is _Expect.STRING:
            pos = _STRING_RUN.match(text, pos).end()  # type: ignore[union-attr]
            if pos == len(text):
                return pos
            return self._string_char(text[pos], pos)
        if expect is _Expect.ESCAPE:
            return self._escape(text[pos], pos)
        if expect is _Expect.UNICODE:
            if text[pos] not in _HEX:
                return -1
            self._pending = self._pending[1:]
            if not self._pending:
                self._expect = _Expect.STRING
            return pos + 1
        if expect is _Expect.NUMBER:
            run_end = _NUMBER_RUN.match(text, pos).end()  # type: ignore[union-attr]
            if run_end > pos:
                return run_end
            self._value_done()  # the number ended just before this character
            return pos
        if expect is _Expect.LITERAL:
            if text[pos] != self._pending[0]:
                return -1
            self._pending = self._pending[1:]
            if not self._pending:
                self._value_done()
            return pos + 1
        run = self._scalar_run(text, pos)
        if run > pos:
            return run
        ws_end = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if ws_end > pos:
            return ws_end
        return self._structural(text[pos], pos)

    def _scalar_run(self, text: str, pos: int) -> int:
        """Whole tokens in one regex call where they cannot still grow: ``item,`` runs, a
        ``"key":``, a last item before its closing bracket. Returns ``pos`` when none applies."""
        expect, end = self._expect, min(len(text), pos + _WINDOW)
        if expect in (_Expect.KEY, _Expect.KEY_OR_CLOSE):
            run = _OBJECT_RUN.match(text, pos, end)
            if run is not None:
                self._expect = _Expect.KEY
                return run.end()
            key = _KEY_COLON.match(text, pos, end)
            if key is not None:
                self._expect = _Expect.VALUE
                return key.end()
            return pos
        if expect not in (_Expect.VALUE, _Expect.VALUE_OR_CLOSE) or not self._stack:
            return pos
        if self._stack[-1] == "[":
            run = _ARRAY_RUN.match(text, pos, end)
            if run is not None:
                self._expect = _Expect.VALUE
                return run.end()
        last = _LAST_VALUE.match(text, pos, end)
        if last is None:
            return pos
        self._value_done()  # the closing bracket that follows is handled as usual
        return last.end()

    def _string_char(self, char: str, pos: int) -> int:
        if char == "\\":
            self._expect = _Expect.ESCAPE
            return pos + 1
        if char != '"':  # a raw control character: JSON strings may not hold one
            return -1
        if self._string_is_key:
            self._expect = _Expect.COLON
        else:
            self._value_done()
        return pos + 1

    def _escape(self, char: str, pos: int) -> int:
        if char not in _ESCAPES:
            return -1
        if char == "u":
            self._pending = "0000"  # four hex digits follow; only the count matters
            self._expect = _Expect.UNICODE
        else:
            self._expect = _Expect.STRING
        return pos + 1

    def _structural(self, char: str, pos: int) -> int:
        expect = self._expect
        if expect is _Expect.TOP:
            return self._open(char, pos) if char in "{[" else -1
        if expect in (_Expect.KEY_OR_CLOSE, _Expect.VALUE_OR_CLOSE) and char in "}]":
            return self._close(char, pos)
        if expect in (_Expect.KEY_OR_CLOSE, _Expect.KEY):
            if char != '"':
                return -1
            self._string_is_key, self._expect = True, _Expect.STRING
            return pos + 1
        if expect is _Expect.COLON:
            if char != ":":
                return -1
            self._expect = _Expect.VALUE
            return pos + 1
        if expect is _Expect.AFTER:
            if char == ",":
                self._expect = _Expect.KEY if self._stack[-1] == "{" else _Expect.VALUE
                return pos + 1
            return self._close(char, pos) if char in "}]" else -1
        return self._value_start(char, pos)  # VALUE or VALUE_OR_CLOSE

    def _value_start(self, char: str, pos: int) -> int:
        if char in "{[":
            return self._open(char, pos)
        if char == '"':
            self._string_is_key, self._expect = False, _Expect.STRING
            return pos + 1
        if char == "-" or char.isdigit():
            self._expect = _Expect.NUMBER
            return pos + 1
        literal = _LITERALS.get(char)
        if literal is None:
            return -1
        self._pending, self._expect = literal[1:], _Expect.LITERAL
        return pos + 1

    def _open(self, char: str, pos: int) -> int:
        if len(self._stack) >= MAX_DEPTH:
            return -1
        self._stack.append(char)
        self._expect = _Expect.KEY_OR_CLOSE if char == "{" else _Expect.VALUE_OR_CLOSE
        return pos + 1

    def _close(self, char: str, pos: int) -> int:
        if not self._stack or {"{": "}", "[": "]"}[self._stack[-1]] != char:
            return -1
        self._stack.pop()
        self._value_done()
        return pos + 1

    def _value_done(self) -> None:
        self._expect = _Expect.AFTER if self._stack else _Expect.DONE
