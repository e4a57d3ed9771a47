"""A safe arithmetic calculator.

Models are bad at exact arithmetic, so they get a calculator. It must never run code: the
expression is parsed with :mod:`ast` and only a whitelist of nodes is evaluated (numbers, the
arithmetic operators, parentheses, a few math functions and constants). Anything else is refused
with a message saying what *is* allowed, so the model can correct itself.

Arithmetic can still be abused (``9**9**9`` would take the interpreter hours and gigabytes), so
powers are estimated before they are computed, integer results are capped in size, and the
expression itself is capped in length.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from agentrt.tool import tool

MAX_EXPRESSION_CHARS = 500
MAX_INT_DIGITS = 1000  # larger integer results are refused (and would be useless to a model)
_INT_LIMIT = 10**MAX_INT_DIGITS
MAX_FACTORIAL = 1000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,  # guarded by _check_power before it runs
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _factorial(n: float) -> int:
    if n != int(n) or n < 0 or n > MAX_FACTORIAL:
        raise ValueError(f"factorial needs a whole number between 0 and {MAX_FACTORIAL}")
    return math.factorial(int(n))


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "log": math.log,  # log(x) is natural, log(x, base) any base
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": min,
    "max": max,
    "factorial": _factorial,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}

ALLOWED = (
    "Allowed: numbers, + - * / // % ** (or ^), unary + and -, parentheses, "
    f"functions {', '.join(_FUNCTIONS)}, constants {', '.join(_CONSTANTS)}."
)


@tool(timeout=5.0)
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result.

    Use it for any arithmetic instead of computing in your head. Supports + - * / // % ** (^ also
    means power), parentheses, sqrt, log (natural; log(x, base) for another base), log10, log2,
    exp, sin, cos, tan (radians), asin, acos, atan, abs, round, floor, ceil, min, max, factorial,
    and the constants pi, e, tau. Write plain numbers: 1000000, not 1,000,000.

    Args:
        expression: The expression, e.g. "17 * 23 + 4" or "sqrt(2) / 2".
    """
    return evaluate(expression)


def evaluate(expression: str) -> str:
    """The calculator without the tool wrapper: the result as text, or ``ValueError``."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression too long ({len(expression)} chars, at most {MAX_EXPRESSION_CHARS})")
    source = _normalize(expression)
    if not source:
        raise ValueError("empty expression. " + ALLOWED)
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"cannot parse {expression!r}: {getattr(exc, 'msg', exc)}. {ALLOWED}") from None
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("the result is too large to represent") from None
    except RecursionError:
        raise ValueError("expression nested too deeply") from None
    except TypeError as exc:  # e.g. a function given the wrong number of arguments
        hint = " (write numbers without thousands separators)" if re.search(r"\d,\d{3}", source) else ""
        raise ValueError(f"{exc}{hint}. {ALLOWED}") from None
    return _format(value)


def _normalize(expression: str) -> str:
    """Accept the notations models commonly use: ``×``/``x`` for times, ``^`` for power, ``=``."""
    text = expression.strip().rstrip("=").strip()
    text = text.replace("×", "*").replace("·", "*").replace("÷", "/").replace("−", "-")
    text = text.replace("^", "**")
    if re.search(r"\b0[xX][0-9a-fA-F]", text):
        raise ValueError("hexadecimal numbers are not supported; to multiply by 0 write 0 * n")
    # "x" is multiplication only between two operands ("3 x 4", "(2)x(3)"), so "exp" is untouched.
    return re.sub(r"(?<=[\d.)])\s*x\s*(?=[\d.(])", " * ", text)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ValueError(f"{node.value!r} is not a number. {ALLOWED}")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        hint = f" (it is a function: write {node.id}(...))" if node.id in _FUNCTIONS else ""
        raise ValueError(f"unknown name {node.id!r}{hint}. {ALLOWED}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise ValueError(f"{ast.unparse(node.func)!r} is not an allowed function. {ALLOWED}")
        if node.keywords:
            raise ValueError(f"{node.func.id}() takes no keyword arguments")
        name, args = node.func.id, [_eval(a) for a in node.args]
        try:
            return _checked(_FUNCTIONS[name](*args))
        except ValueError as exc:  # math's own errors say only "math domain error"
            raise ValueError(f"{name}({', '.join(map(repr, args))}): {exc}") from None
    if isinstance(node, ast.Tuple):
        raise ValueError(
            "commas are only allowed between function arguments; do not use them as thousands "
            "separators (write 1000000, not 1,000,000)"
        )
    raise ValueError(f"{type(node).__name__} is not allowed in an expression. {ALLOWED}")


def _check_power(base: Any, exponent: Any) -> None:
    """Refuse integer powers whose result would be huge, before spending time computing them."""
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        digits = exponent * math.log10(abs(base))
        if digits > MAX_INT_DIGITS:
            raise ValueError(
                f"{base} ** {exponent} would have about {digits:.3g} digits; "
                f"results are limited to {MAX_INT_DIGITS} digits"
            )


def _checked(value: Any) -> Any:
    if isinstance(value, complex):
        raise ValueError("the result is a complex number (e.g. a fractional power of a negative number)")
    if isinstance(value, int) and abs(value) >= _INT_LIMIT:
        raise ValueError(f"the result has more than {MAX_INT_DIGITS} digits")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("the result is not a finite number (overflow or undefined)")
    return value


def _format(value: int | float) -> str:
    """Integers exactly; floats to 12 significant digits, so 0.1 + 0.2 prints as 0.3."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"
