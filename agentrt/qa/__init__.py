"""Question answering with gold answers: the data sets, EM/F1 metrics, the evaluation harness
(`agentrt eval qa`) and the prompts the QA methods share."""
