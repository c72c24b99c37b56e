"""Streamlit dashboards for finance, platform teams and agent owners; they read only the HTTP API.

Not built yet (issue 6).
"""

__all__: list[str] = []
