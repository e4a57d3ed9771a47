"""Run the built-in tool agent against any OpenAI-compatible server.

    # e.g. a llama.cpp server:  llama-server -m model.gguf --port 8080 --jinja
    AGENTRT_API_KEY=... python examples/openai_compatible.py http://127.0.0.1:8080/v1#my-model "What is 2**20?"
    OPENAI_API_KEY=...  python examples/openai_compatible.py openai:gpt-4o-mini "What is 2**20?"

Servers that parse tool calls natively return them as tool calls; servers that don't return them
as text, which agentrt parses the same way it does for local models.
"""

from __future__ import annotations

import sys

from agentrt import (
    TrajectoryStore,
    default_store_path,
    load_graph,
    run,
    run_config,
    user_input,
)

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    spec, question = sys.argv[1], sys.argv[2]
    with TrajectoryStore(default_store_path()) as store:
        result = run(load_graph("react"), "react", user_input(question), run_config(model=spec, temperature=0.0), store)
    print(result.answer if result.status == "completed" else f"failed: {result.error}")
