"""SIM-RAG: multi-round RAG whose stopping decision is a (trained) sufficiency critic's.

Configurable per run: ``model``, ``critic`` (auto | llm-judge | accept-all | reject-all | a
trained critic's name or path), ``max_rounds``, ``docs_per_round``, ``at_cap`` (answer |
abstain), ``index`` (an index folder; default: the HotpotQA demo index).
"""

from agentrt.sim_rag.graph import build_sim_rag

graph = build_sim_rag().compile(name="sim_rag")
