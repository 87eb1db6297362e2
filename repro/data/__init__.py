"""Data: typed records, the MLLMU-Bench and MMBench loaders, the miniature world, the PULSE splits."""
