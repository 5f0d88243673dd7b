"""Test tooling that is not part of the installed packages (headless-browser helpers)."""
