"""The backend benchmark's table and chart: tokens per second side by side, and the ratios a
reader compares (llama.cpp against transformers, prefix reuse against a fresh prompt)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class BackendRow(BaseModel):
    """One backend's figures (``None`` where it could not be measured; ``note`` says why)."""

    backend: str
    spec: str
    ok: bool = True
    note: str = ""
    threads: int | None = None
    load_s: float | None = None
    prompt_tokens: int | None = None
    ttft_s: float | None = None  # long prompt, fresh cache, max_tokens=1
    prompt_tok_s: float | None = None
    decode_prompt_tokens: int | None = None
    completion_tokens: int | None = None  # actually generated (may be < new_tokens if it stopped)
    finish_reason: str | None = None
    decode_s: float | None = None  # total - time to first token
    decode_tok_s: float | None = None
    reuse_cold_s: float | None = None  # documents + question 1, fresh cache
    reuse_warm_s: float | None = None  # documents + question 2 right after
    reuse_shared_tokens: int | None = None  # common prefix of the two prompts
    reuse_prompt_tokens: int | None = None

    @property
    def reuse_speedup(self) -> float | None:
        if self.reuse_cold_s and self.reuse_warm_s:
            return self.reuse_cold_s / self.reuse_warm_s
        return None


# --------------------------------------------------------------------------------- prompts


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def render(rows: list[BackendRow], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Local backends, same model and same token ids")
    for col, justify in [("backend", "left"), ("load s", "right"), ("prompt tok", "right"), ("TTFT s", "right"),
                         ("prompt tok/s", "right"), ("new tok", "right"), ("decode tok/s", "right"),
                         ("RAG 2nd question TTFT s", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        if not r.ok:
            table.add_row(r.backend, "[yellow]-[/]", "", "", "", "", "", "")
            continue
        reuse = (f"{r.reuse_warm_s:.3f} ({r.reuse_speedup:.1f}x faster)" if r.reuse_speedup and r.reuse_speedup >= 1.5
                 else _f(r.reuse_warm_s, ".3f") + (f" (cold {r.reuse_cold_s:.3f})" if r.reuse_cold_s else ""))
        table.add_row(r.backend, _f(r.load_s, ".1f"), _f(r.prompt_tokens, "d"), _f(r.ttft_s, ".3f"),
                      _f(r.prompt_tok_s, ",.0f"), _f(r.completion_tokens, "d"), _f(r.decode_tok_s, ",.1f"), reuse)
    by = {r.backend: r for r in rows if r.ok}
    if "transformers" in by and "llama.cpp" in by:
        t, ll = by["transformers"], by["llama.cpp"]
        table.add_row(
            "[bold]llama.cpp / transformers[/]", _ratio(ll.load_s, t.load_s), "", _ratio(ll.ttft_s, t.ttft_s),
            f"[bold]{_ratio(ll.prompt_tok_s, t.prompt_tok_s)}[/]", "",
            f"[bold]{_ratio(ll.decode_tok_s, t.decode_tok_s)}[/]", _ratio(ll.reuse_warm_s, t.reuse_warm_s),
            end_section=False,
        )
    console.print(table)
    for r in rows:
        extra = []
        if r.threads:
            extra.append(f"{r.threads} threads")
        if r.ok and r.reuse_shared_tokens is not None:
            extra.append(f"RAG prompts share {r.reuse_shared_tokens} of {r.reuse_prompt_tokens} tokens")
        if r.finish_reason:
            extra.append(f"decode finish: {r.finish_reason}")
        text = "; ".join(x for x in [r.note, *extra] if x)
        console.print(f"  {r.backend} ({r.spec}): {text}")
    console.print("  decode tok/s = (new tokens - 1) / (generation time - time to first token), greedy; "
                  "TTFT = prompt processing + 1 token, fresh cache; RAG 2nd question = same documents, another "
                  "question, right after the first.")
    if "transformers" in by and "llama.cpp" in by:
        console.print("  ratio row = llama.cpp value / transformers value: above 1 is better for tok/s, "
                      "worse for seconds.")


def write_chart(rows: list[BackendRow], path: Path) -> Path | None:
    """A bar chart of prompt and decode tok/s, if matplotlib is installed (it is not a dependency)."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.ok]
    if not ok:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, attr, title in [(axes[0], "prompt_tok_s", "prompt tok/s"), (axes[1], "decode_tok_s", "decode tok/s")]:
        values = [getattr(r, attr) or 0 for r in ok]
        bars = ax.bar([r.backend for r in ok], values, color=["#4c72b0", "#dd8452", "#55a868"][: len(ok)])
        ax.bar_label(bars, fmt="%.0f")
        ax.set_title(title)
    fig.suptitle(ok[0].spec.split(":", 1)[1])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
