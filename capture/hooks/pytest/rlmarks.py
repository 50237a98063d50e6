"""The mark protocol as the tests read it (the Go side is
capture/hooks/mark.go): parse, strip, and split output into marked lines."""

import re
import secrets

MARK_LEN = 42
_MARK = re.compile(rb"\x1b_rl1;([0-9a-f]{16});([rd])([0-9a-f]{16})\x1b\\")


def new_nonce():
    return secrets.token_hex(8)


def new_span():
    return secrets.token_hex(8)


def traceparent(span):
    return "00-%s-%s-01" % (secrets.token_hex(16), span)


def mark(nonce, kind, span):
    return ("\x1b_rl1;%s;%s%s\x1b\\" % (nonce, kind, span)).encode()


def strip(data, nonce):
    """data without the marks of nonce (a mark of another nonce stays),
    as Strip/StripWriter do."""
    return _MARK.sub(lambda m: b"" if m.group(1) == nonce.encode() else m.group(0), data)


class Line(object):
    """One line of output: its text without our marks, the first mark's
    (kind, span) or None, and where our marks were found."""

    __slots__ = ("raw", "text", "mark", "positions")

    def __init__(self, raw, nonce):
        self.raw = raw
        found = [m for m in _MARK.finditer(raw) if m.group(1) == nonce.encode()]
        self.positions = [m.start() for m in found]
        self.mark = (found[0].group(2).decode(), found[0].group(3).decode()) if found else None
        self.text = strip(raw, nonce).decode("utf-8", "replace")

    def __repr__(self):
        return "Line(mark=%r, positions=%r, text=%r)" % (self.mark, self.positions, self.text[:200])


def lines(data, nonce):
    """The lines of data (split at b"\\n"; a last line without newline
    counts), parsed."""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [Line(p, nonce) for p in parts]


def foreign_marks(data, nonce):
    """Marks in data with a nonce other than ours."""
    return [m.group(0) for m in _MARK.finditer(data) if m.group(1) != nonce.encode()]
