"""The toy-world oracle benchmark on the shared runner: dataset (protocols v1 and v2), the text-only and copy-reference
methods, the oracle scorer, reports, the UMM fusion-weight sweep, picture grids and rescoring a run with another oracle."""
