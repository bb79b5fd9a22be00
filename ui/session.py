"""What one run of one session works with: its settings (with the sidebar's overrides) and its pipeline.

`app.py` builds it before running the page (`set_current`); pages read it with `current()`.
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from rag.llm import OllamaStatus
from rag.pipeline import Pipeline
from rag.settings import Settings

_KEY = "_app_context"


@dataclass
class AppContext:
    settings: Settings
    """The session's settings: `Settings()` from RAG_* with the sidebar's choices applied."""
    pipeline: Pipeline
    ollama: OllamaStatus
    documents: int
    """Documents in the store at the start of this run."""
    sidebar_top: DeltaGenerator
    """A place at the top of the sidebar, above the settings, for the page's own sidebar part."""


def set_current(context: AppContext) -> None:
    st.session_state[_KEY] = context


def current() -> AppContext:
    """The context `app.py` built in this run. Every page calls this first.

    Streamlit decides per process whether the app uses `st.navigation` only once a run has called it: until then
    (the first run after the server starts, when it opens on a page's URL; and every AppTest run) a folder named
    `pages/` makes it run the page file on its own, without `app.py`. Then this runs `app.py` instead, which
    calls `st.navigation`, draws the sidebar and runs this page again, and stops the page's own run.
    """
    if PagesManager.uses_pages_directory:
        ctx = get_script_run_ctx()
        if ctx is not None:
            runpy.run_path(str(ctx.pages_manager.main_script_path), run_name="__main__")
            st.stop()
    return st.session_state[_KEY]
