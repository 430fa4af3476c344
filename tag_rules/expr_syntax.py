"""Parsing rule expressions: Python's parser in eval mode, made friendly to YAML and to error messages.

``parse`` accepts multi-line and indented expressions (YAML block scalars) by retrying inside
parentheses, and reports every failure as a :class:`ParseFailure` with a 1-based position inside
the expression as written. The tables name, in plain words, the constructs the language refuses.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings

OP_SYMBOL: dict[type[ast.AST], str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@",
    ast.Invert: "~",
}
"""How an operator is written, for messages."""

FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access (a.b) is not allowed",
    ast.Subscript: "indexing and slicing (x[...]) are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.Starred: "star unpacking (*x) is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: 'set literals are not allowed; use a tuple, for example x in ("a", "b")',
    ast.Slice: "slicing is not allowed",
}
"""Plain-words names for constructs that are not allowed; anything else gets its class name."""


class ParseFailure(Exception):
    """``source`` is not an expression. ``too_deep``: the parser gave up on its nesting."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None,
                 too_deep: bool = False) -> None:
        self.message = message
        self.line = line
        self.col = col
        self.too_deep = too_deep
        super().__init__(message)


def parse(src: str, lines: list[str], filename: str, max_depth: int) -> tuple[ast.Expression, int]:
    """Parses ``src`` (split into ``lines``) and returns ``(tree, line_shift)``.

    ``line_shift`` is 1 when the source was parsed wrapped in parentheses (multi-line rules), so
    node line numbers are one more than in ``src``. Raises :class:`ParseFailure`.
    """
    try:
        return _parse(src, filename), 0
    except SyntaxError as exc:
        first: SyntaxError = exc
    err = first
    # Multi-line rules (YAML block scalars) and leading indentation: parse inside parentheses, but only
    # when the source's own brackets balance, so "a) or (b" stays an error.
    if _brackets_balance("(\n" + src + "\n)"):
        try:
            tree = _parse("(\n" + src + "\n)", filename)
        except SyntaxError as second:
            if isinstance(first, IndentationError) or "\n" in src.strip():
                err = second
                if err.lineno is not None:
                    err.lineno -= 1
        else:
            return tree, 1
    if _nesting(src) > max_depth:
        raise ParseFailure("nested too deeply", too_deep=True)
    line = err.lineno
    col = err.offset
    if line is not None:
        line = max(1, min(line, len(lines)))
        if col is not None:
            col = max(1, min(col, len(lines[line - 1]) + 1))
    raise ParseFailure(err.msg or "invalid syntax", line, col)


def _parse(src: str, filename: str) -> ast.Expression:
    try:
        with warnings.catch_warnings():
            # SyntaxWarning/DeprecationWarning (e.g. "\d" in a string) must not become errors under
            # "-W error"; the expression is validated by us anyway.
            warnings.simplefilter("ignore")
            return ast.parse(src, filename=filename, mode="eval")
    except SyntaxError:
        raise
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        # null bytes, lone surrogates, or the parser's own nesting limits
        raise SyntaxError(str(exc) or type(exc).__name__) from None


def shape_problem(tree: ast.Expression, max_depth: int, max_nodes: int) -> tuple[ast.AST, str] | None:
    """The first node beyond the depth or size limit and what is wrong, or None. Walked iteratively:
    hostile nesting must not hit the recursion limit."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr_context | ast.operator | ast.unaryop | ast.cmpop | ast.boolop):
            continue
        count += 1
        if depth > max_depth:
            return node, f"is nested too deeply (maximum depth {max_depth})"
        if count > max_nodes:
            return node, f"is too complex (more than {max_nodes} parts)"
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return None


def char_col(line_text: str, byte_offset: int) -> int:
    """1-based character column from the AST's 0-based UTF-8 byte offset."""
    return len(line_text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")) + 1


def source_text(lines: list[str], line_shift: int, node: ast.expr) -> str:
    """The text of a one-line ``node`` as written (identifiers before Python's NFKC normalization)."""
    line = getattr(node, "lineno", 0) - line_shift
    end = getattr(node, "end_col_offset", None)
    if not 0 < line <= len(lines) or end is None or getattr(node, "end_lineno", None) != node.lineno:
        return ""
    raw = lines[line - 1].encode("utf-8", errors="surrogatepass")
    return raw[node.col_offset:end].decode("utf-8", errors="replace")


def _brackets_balance(wrapped: str) -> bool:
    """True if the outer parentheses of ``wrapped`` stay open until its end (strings/comments ignored)."""
    depth = 0
    closed = False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(wrapped).readline):
            if tok.type != tokenize.OP or tok.string not in "()[]{}":
                if closed and tok.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
                    return False
                continue
            if closed:
                return False
            depth += 1 if tok.string in "([{" else -1
            closed = depth == 0
    except Exception:  # tokenize errors on junk input: the strict parse error is the one to report
        return False
    return closed


def _nesting(src: str) -> int:
    """Rough bracket depth (ignores strings); used only to word the error for sources the parser refused."""
    depth = best = 0
    for ch in src:
        if ch in "([{":
            depth += 1
            best = max(best, depth)
        elif ch in ")]}":
            depth -= 1
    return best
