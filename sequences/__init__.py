"""Recipes, their validation, the step library and the batch queue (built on the controller)."""
