"""Tests of hfssl.audit. Tiny run builders come from tests.cards (this folder cannot have a conftest.py)."""
