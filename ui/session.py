"""What one run of one session works with: its settings (with the sidebar's overrides) and its pipeline.

`app.py` builds it before running the page (`set_current`); pages read it with `current()`.
"""

from __future__ import annotations

import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner import get_script_run_ctx

from rag.answers.llm import OllamaStatus
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
    (the first runs after the server starts, when sessions open on a page's URL; and every AppTest run) a folder
    named `pages/` makes it run the page file on its own, without `app.py`. Then this runs `app.py` instead, which
    calls `st.navigation`, draws the sidebar and runs this page again, and stops the page's own run.
    """
    ctx = get_script_run_ctx()
    if ctx is not None and not _inside(ctx.pages_manager.main_script_path):
        runpy.run_path(str(ctx.pages_manager.main_script_path), run_name="__main__")
        st.stop()
    return st.session_state[_KEY]


def _inside(script: str) -> bool:
    """Is `script` (app.py) running this page, somewhere up this thread's stack?

    Asked of the stack, not of Streamlit's process-wide `PagesManager.uses_pages_directory`: that flag turns False as
    soon as any session's run calls `st.navigation`, so a second session that had already started on a page's file
    alone (several sessions opening page URLs on a just-started server) would read it as False and find no context.
    """
    target = Path(script).resolve()
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(target.name) and Path(frame.f_code.co_filename).resolve() == target:
            return True
        frame = frame.f_back
    return False
