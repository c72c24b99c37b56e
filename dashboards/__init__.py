"""Streamlit dashboards for finance, platform teams and agent owners; they read only the HTTP API.

`APP` is the script `streamlit run` starts (`muster dashboard` does that against the running
server). The pages live in `dashboards/pages/`; `dashboards.api` is their only way to Muster and
`dashboards.prefill` turns an observed identity into an Agent document to register.
"""

from pathlib import Path

APP = Path(__file__).parent / "app.py"

__all__ = ["APP"]
