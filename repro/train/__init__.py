"""Training: fine-tuning loop, unlearning losses, the method registry and the reference model."""
