"""Saved chat conversations, and their export to Markdown and JSON.
"""
