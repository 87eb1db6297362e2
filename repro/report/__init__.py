"""Tables (tabulate), figures (matplotlib) and the verdict against golden files."""
