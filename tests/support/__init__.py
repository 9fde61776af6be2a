"""Helpers the tests share (the fixtures stay in ``conftest.py``)."""
