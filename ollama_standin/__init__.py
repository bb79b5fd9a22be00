"""A stand-in Ollama server: llama_cpp running a bundled GGUF model behind Ollama's HTTP API.

For machines without Ollama (tests, newcomers): the official ``ollama`` client and
``langchain_ollama.ChatOllama`` talk to it exactly as to a real Ollama, so swapping in the real thing
changes no application code. Run it with ``python -m ollama_standin``; nothing in ``rag/`` imports it.
"""

__version__ = "0.1.0"
