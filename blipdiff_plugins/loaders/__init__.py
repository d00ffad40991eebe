"""Loader mixins of the blipdiff_plugins pipelines."""

from .subject_loader import LoadedSubject, SubjectModelLoaderMixin

__all__ = ["LoadedSubject", "SubjectModelLoaderMixin"]
