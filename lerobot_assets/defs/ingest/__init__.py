"""Ingest: recording sessions as partitions (sim, inbox, import), their raw episodes and session datasets."""
