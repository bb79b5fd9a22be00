"""Documents in and out: bytes to text with page marks (PDF in a child process), and the library that ingests,
replaces, deletes and lists them.
"""
