"""Checks that return problems: a dataset root against the v3 format (`validate`), and the checks the
Dagster layer gates on. Each is a plain function, testable without Dagster."""

from lerobot_assets.checks.validate import NotAV3DatasetError, Problem, ValidationReport, validate_dataset

__all__ = ["NotAV3DatasetError", "Problem", "ValidationReport", "validate_dataset"]
