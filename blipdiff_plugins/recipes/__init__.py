"""Recipes: pipelines composed into a task (style transfer, subject interpolation, attention maps)."""
