"""SIM-RAG: multi-round RAG whose stopping decision is a trained sufficiency critic.

``graph`` (the LangGraph graph, its critics by name), ``critics`` (fixed and LLM-judge critics),
``practice`` (self-practice that labels rounds), ``dataset`` (the labelled rounds), ``train`` and
``stopping`` (training the critic and choosing its threshold by replaying the loop), ``cli``.
"""
