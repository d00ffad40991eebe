"""The task layer under both front doors (the CLI's ``commands/`` and the web app's ``app/``).

It loads a model by name, picks schedulers, runs each task (generate, fine-tune, edit, style, attention,
interpolate) from plain values, and writes result files with their JSON sidecars. The front doors only turn
their inputs into these calls and the results (and `ArgumentError` messages) into their own words.
"""
