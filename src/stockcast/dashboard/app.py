"""Streamlit entry point (`stockcast dashboard` runs this file): one page per concern."""

from __future__ import annotations

import streamlit as st

from stockcast.dashboard.pages import PAGES


def main() -> None:
    st.set_page_config(page_title="stockcast", page_icon=":chart_with_upwards_trend:", layout="wide")
    pages = [
        st.Page(render, title=title, url_path=path, default=index == 0)
        for index, (path, (title, render)) in enumerate(PAGES.items())
    ]
    st.navigation(pages).run()


main()
