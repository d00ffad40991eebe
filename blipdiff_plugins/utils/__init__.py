"""Small helpers every layer may use: the one atomic writer, image loading and grids.

Nothing here imports another part of the package.
"""
