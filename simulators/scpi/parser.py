"""SCPI line parsing: `;` compound commands, IEEE 488.2 path rules, long/short headers.

A line splits into program units at `;` outside double quotes. A unit's header
starting with `:` is absolute, with `*` is a common command, and otherwise is
relative to the path of the previous header on the same line (its nodes but the
last). Parameters follow the header after white space, separated by commas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ScpiError

_MNEMONIC = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_COMMON = re.compile(r"^\*[A-Za-z]+\??$")


@dataclass(frozen=True)
class Unit:
    """One program unit: an absolute header path (or a common command), query flag, args."""

    path: tuple[str, ...]  # upper-case mnemonics as sent, absolute; ("*IDN",) for common
    query: bool
    args: list[str]
    common: bool = False


def split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ScpiError(-102)
    parts.append("".join(current))
    return parts


def iter_units(line: str):
    """Yield units one at a time, so a syntax error (ScpiError -102) stops the line where
    it is and the units before it have already run."""
    current: tuple[str, ...] = ()
    for raw in split_outside_quotes(line, ";"):
        text = raw.strip()
        if not text:
            raise ScpiError(-102)
        header, _, rest = text.partition(" ")
        if "\t" in header:
            header, _, more = header.partition("\t")
            rest = more + " " + rest
        args = [a.strip() for a in split_outside_quotes(rest, ",")] if rest.strip() else []
        if header.startswith("*"):
            if not _COMMON.match(header):
                raise ScpiError(-102)
            query = header.endswith("?")
            yield Unit((header.rstrip("?").upper(),), query, args, common=True)
            continue
        query = header.endswith("?")
        body = header[:-1] if query else header
        absolute = body.startswith(":")
        nodes = body[1:].split(":") if absolute else body.split(":")
        if not all(_MNEMONIC.match(n) for n in nodes):
            raise ScpiError(-102)
        path = tuple(n.upper() for n in nodes)
        full = path if absolute else current + path
        current = full[:-1]
        yield Unit(full, query, args)


@dataclass(frozen=True)
class Node:
    short: str
    long: str
    optional: bool

    def matches(self, mnemonic: str) -> bool:
        return mnemonic == self.short or mnemonic == self.long


def compile_header(header: str) -> tuple[Node, ...]:
    """``SYSTem:ERRor[:NEXT]`` → nodes; the upper-case prefix of each is its short form."""
    nodes: list[Node] = []
    for token in re.findall(r"\[:?[A-Za-z][A-Za-z0-9]*\]|[A-Za-z][A-Za-z0-9]*", header):
        optional = token.startswith("[")
        name = token.strip("[]:")
        # the short form is the upper-case letters and digits: EXPosure → EXP, GAS:CF4 → CF4
        short = "".join(ch for ch in name if ch.isupper() or ch.isdigit()) or name.upper()
        nodes.append(Node(short, name.upper(), optional))
    return tuple(nodes)


def path_matches(nodes: tuple[Node, ...], path: tuple[str, ...]) -> bool:
    """True if the sent ``path`` spells ``nodes`` (optional nodes may be left out)."""
    if not nodes:
        return not path
    head, rest = nodes[0], nodes[1:]
    if path and head.matches(path[0]) and path_matches(rest, path[1:]):
        return True
    return head.optional and path_matches(rest, path)
