"""The Streamlit side of the app: cached resources, session state and small widgets shared by the pages."""
