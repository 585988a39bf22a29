"""Workflows on top of the questions: surplus sharing, parameter sweeps, figures and exports."""
