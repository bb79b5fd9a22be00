"""From the sent chunks to the answer: the LLM adapter, the prompt, the LCEL chain steps, evidence and citations, and
declines when the documents are silent.
"""
