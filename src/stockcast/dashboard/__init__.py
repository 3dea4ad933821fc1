"""The Streamlit dashboard: `stockcast dashboard` serves app.py."""
