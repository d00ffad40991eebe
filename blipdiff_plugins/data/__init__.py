"""Stage-2 training data ("prompted context generation"): segment, matte and re-composite subjects.

Nothing heavy is imported here; use ``blipdiff_plugins.data.builder.build_training_data``.
"""
