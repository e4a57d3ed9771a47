"""CR-Planner: a sub-goal critic picks reason / query / retrieve / answer at each step, and an
execution critic picks the best of several sampled candidates for it.

Configurable per run: ``model``, ``subgoal_critic`` and ``execution_critic`` (auto | llm-judge |
a ranking critic's name or path; auto = the trained ``cr-subgoal`` / ``cr-execution`` if saved,
else the LLM judge), ``max_steps``, ``samples``, ``retrieve_k``, ``keep_docs``, ``sample_temperature``,
``seed``, ``index`` (an index folder; default: the HotpotQA demo index).
"""

from agentrt.cr_planner.graph import build_cr_planner

graph = build_cr_planner().compile(name="cr_planner")
