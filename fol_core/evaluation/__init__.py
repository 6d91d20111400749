"""Evaluation harness: localization scores against human-drawn boxes on a Pascal VOC folder.

dataset (VOC folder -> samples), metrics (pure functions), evaluate (runs the methods, calibrates
thresholds), report (results.json / results.md), plots (figures and failure sheets), command (`eval`).
"""
