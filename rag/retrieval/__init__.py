"""Finding the chunks: the Chroma store, the bi-encoder and cross-encoder adapters, the keyword index and its fusion,
and the LangChain retrievers.
"""
