"""The ``blipdiff ui`` web app (Gradio): a service holding one shared model, one module per tab, the app builder.

Gradio is imported only by the tab and builder modules of this package (``pip install 'blipdiff_plugins[ui]'``).
"""
