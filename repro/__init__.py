"""pulse-repro: the PULSE unlearning evaluation protocol for LLaVA, end to end."""

__version__ = "0.1.0"
