"""Data: corpora, loading through `datasets`, tokenizer training, packing and collators.

Import the submodules directly (`from hfssl.data.text import load_text_dataset`); this package
imports nothing on its own, so `import hfssl.data` stays cheap.
"""
