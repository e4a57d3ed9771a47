"""CR-Planner: critic-guided planning over reasoning, query writing and retrieval.

``plan`` (states, sub-goals, candidates), ``critics`` (the sub-goal and execution critics, or an
LLM judge), ``graph`` (the planner as a LangGraph graph), ``mcts`` (tree search that collects
the critics' training pairs), ``cli`` (``agentrt plan collect|train``).
"""
