"""Scoring head-pose models on the maskbench suites."""
