"""Feature engineering: weekly feature groups computed from the data lake's OHLC panels.

``inputs`` loads the panels, ``kernels`` holds the shared array kernels, ``registry`` the
group registry, one module per group computes it, and ``run`` writes the feature store.
"""
