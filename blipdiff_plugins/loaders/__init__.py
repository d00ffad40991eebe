"""Loader mixins of the blipdiff_plugins pipelines."""

from .subject_model import LoadedSubject, SubjectModelLoaderMixin

__all__ = ["LoadedSubject", "SubjectModelLoaderMixin"]
