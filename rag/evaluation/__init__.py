"""Measuring rankings and answers: metrics, retrieval and answer evaluations, and the user's own relevance judgements.
"""
