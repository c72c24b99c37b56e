"""Polars jobs: price every model call, attribute it to an agent, detect sprawl, drift and overspend.

Not built yet (issue 4).
"""

__all__: list[str] = []
