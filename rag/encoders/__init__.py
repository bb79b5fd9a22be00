"""The encoder models: where a model setting points, and the faster copies of an encoder (number formats, their build,
their check and their record).
"""
