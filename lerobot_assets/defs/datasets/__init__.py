"""Datasets: the merged dataset of every valid session, its stats and its byte index."""
