"""Tests of the Gradio demos (hfssl.demo)."""
