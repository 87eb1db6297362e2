"""Evaluation: multiple-choice scoring (letter and option log-likelihood) and accuracy metrics."""
