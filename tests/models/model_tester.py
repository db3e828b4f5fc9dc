"""A small mixin every hfssl model family's tests share: shapes, finite loss, gradients, save/load, eager == sdpa."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

from hfssl.models import HfsslTextConfig, HfsslVisionConfig

TINY_VOCAB = 61


def tiny_text_config(**overrides) -> HfsslTextConfig:
    """A 2-layer, 32-wide text config (vocabulary TINY_VOCAB, 64 positions, no hidden dropout); `overrides` win."""
    fields = {"vocab_size": TINY_VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 64, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0, "num_labels": 2}
    return HfsslTextConfig(**{**fields, **overrides})


def tiny_vision_config(**overrides) -> HfsslVisionConfig:
    """A 2-layer, 32-wide ViT config for 16 px RGB images in 4 px patches, with a 1-layer MAE decoder."""
    fields = {"image_size": 16, "patch_size": 4, "num_channels": 3, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 64, "decoder_hidden_size": 32,
              "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 4, "decoder_intermediate_size": 64}
    return HfsslVisionConfig(**{**fields, **overrides})


class ModelTesterMixin:
    """Subclasses define `model_classes`, `make_config(**overrides)` and `make_inputs(config)` (with labels)."""

    model_classes: tuple = ()
    atol = 1e-5

    def make_config(self, **overrides):
        raise NotImplementedError

    def make_inputs(self, config) -> dict:
        raise NotImplementedError

    def build(self, cls, **overrides):
        torch.manual_seed(0)
        config = self.make_config(**overrides)
        return cls(config).eval(), self.make_inputs(config)

    def test_loss_is_finite_and_gradients_reach_every_parameter(self):
        for cls in self.model_classes:
            model, inputs = self.build(cls)
            model.train()
            loss = model(**inputs).loss
            assert torch.isfinite(loss), cls.__name__
            loss.backward()
            missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
            assert not missing, f"{cls.__name__}: no gradient reaches {missing}"

    def test_save_load_round_trip_gives_equal_outputs(self, tmp_path):
        for cls in self.model_classes:
            model, inputs = self.build(cls)
            model.save_pretrained(tmp_path / cls.__name__)
            loaded = cls.from_pretrained(tmp_path / cls.__name__).eval()
            with torch.no_grad():
                a, b = model(**inputs), loaded(**inputs)
            torch.testing.assert_close(a.logits, b.logits)
            torch.testing.assert_close(a.loss, b.loss)

    def test_eager_and_sdpa_attention_are_equal(self):
        for cls in self.model_classes:
            model, inputs = self.build(cls)
            model.config._attn_implementation = "sdpa"
            with torch.no_grad():
                sdpa = model(**inputs).logits
            model.config._attn_implementation = "eager"
            with torch.no_grad():
                eager = model(**inputs).logits
            torch.testing.assert_close(sdpa, eager, atol=self.atol, rtol=1e-4)


    def test_return_dict_false_gives_the_outputs_as_a_tuple(self):
        for cls in self.model_classes:
            model, inputs = self.build(cls)
            with torch.no_grad():
                expected = model(**inputs).to_tuple()
                given = model(**inputs, return_dict=False)
                model.config.return_dict = False  # as torchscript=True sets it
                from_config = model(**inputs)
            for result in (given, from_config):
                assert type(result) is tuple and len(result) == len(expected), cls.__name__
                for a, b in zip(result, expected):
                    if torch.is_tensor(a):
                        torch.testing.assert_close(a, b)


def run_without_hfssl(code: str, cwd) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python where `import hfssl` fails, as on a machine without hfssl installed."""
    guard = textwrap.dedent(
        """
        import sys, importlib.abc
        class _NoHfssl(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "hfssl" or name.startswith("hfssl."):
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        sys.meta_path.insert(0, _NoHfssl())
        try:
            import hfssl
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("hfssl is still importable")
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(cwd / "hf_modules")}
    return subprocess.run(
        [sys.executable, "-c", guard + textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )
