from tests.training.helpers import one_thread  # noqa: F401  (autouse fixture: tiny models train faster on one thread)
