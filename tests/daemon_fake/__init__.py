"""Test doubles of the daemon's line, kept out of the shipped package: ``FakeLine``, an
in-memory ``LineControl`` (fake_line.py, fake_state.py)."""
