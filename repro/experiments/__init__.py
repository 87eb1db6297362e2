"""The four PULSE experiments and the session that shares data, models and evaluations between them."""
