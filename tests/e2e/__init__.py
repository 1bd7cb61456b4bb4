"""End-to-end tests: Playwright driving the real Streamlit app in Debian's headless Chromium."""
