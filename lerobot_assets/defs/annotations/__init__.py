"""Annotations: the curated dataset with LeRobot 0.6.1 language columns (`annotated_dataset`)."""
