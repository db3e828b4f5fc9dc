import copy

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
    ViTMAEConfig,
    ViTMAEForPreTraining,
)
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

import hfssl  # noqa: F401  (registers the Auto classes as users get them)
from hfssl.models.configuration_hfssl_vision import VISION_SIZES, HfsslVisionConfig
from hfssl.models.modeling_hfssl_vision import (
    HfsslVisionForImageClassification,
    HfsslVisionForMaskedImageModeling,
    HfsslVisionModel,
    random_masking,
    sincos_positions,
)

from .model_tester import ModelTesterMixin, run_without_hfssl

HIDDEN = 32


def tiny_config(**overrides) -> HfsslVisionConfig:
    fields = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=HIDDEN, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                  decoder_num_attention_heads=4, decoder_intermediate_size=64)
    return HfsslVisionConfig(**{**fields, **overrides})


def pixels(config, batch=3, size=None, seed=1):
    size = size or config.image_size
    return torch.randn(batch, config.num_channels, size, size, generator=torch.Generator().manual_seed(seed))


def mae_inputs(config, batch=3):
    noise = torch.rand(batch, config.num_patches, generator=torch.Generator().manual_seed(2))
    return {"pixel_values": pixels(config, batch), "noise": noise}


class TestMaskedImageModeling(ModelTesterMixin):
    model_classes = (HfsslVisionForMaskedImageModeling,)

    def make_config(self, **overrides):
        return tiny_config(**overrides)

    def make_inputs(self, config):
        return mae_inputs(config)

    def test_encoder_sees_only_the_visible_patches(self):
        model, inputs = self.build(HfsslVisionForMaskedImageModeling)
        encoded = model.forward_encoder(**inputs)
        kept = int(16 * (1 - 0.75))
        assert encoded.last_hidden_state.shape == (3, 1 + kept, HIDDEN)
        assert encoded.mask.shape == (3, 16) and (encoded.mask.sum(dim=1) == 16 - kept).all()
        assert model(**inputs).logits.shape == (3, 16, 4 * 4 * 3)

    @pytest.mark.parametrize("norm_pix_loss", [True, False])
    def test_loss_equals_a_per_patch_reference_on_masked_patches(self, norm_pix_loss):
        model, inputs = self.build(HfsslVisionForMaskedImageModeling, norm_pix_loss=norm_pix_loss)
        out = model(**inputs)
        images, p, errors = inputs["pixel_values"], 4, []
        for i in range(images.shape[0]):
            for j in range(16):
                if out.mask[i, j]:
                    row, col = divmod(j, 4)
                    target = images[i, :, row * p:(row + 1) * p, col * p:(col + 1) * p].permute(1, 2, 0).flatten()
                    if norm_pix_loss:
                        target = (target - target.mean()) / (target.var() + 1e-6).sqrt()
                    errors.append(((out.logits[i, j] - target) ** 2).mean())
        torch.testing.assert_close(out.loss, torch.stack(errors).mean())

    def test_visible_patch_predictions_get_no_gradient(self):
        model, inputs = self.build(HfsslVisionForMaskedImageModeling)
        logits = model(**inputs).logits.detach().requires_grad_()
        mask = model(**inputs).mask
        model.forward_loss(inputs["pixel_values"], logits, mask).backward()
        assert not logits.grad[mask == 0].any()
        assert logits.grad[mask == 1].abs().sum(dim=-1).all()

    def test_noise_fixes_the_mask_and_keeps_the_lowest_noise(self):
        model, inputs = self.build(HfsslVisionForMaskedImageModeling)
        a, b = model(**inputs), model(**inputs)
        torch.testing.assert_close(a.loss, b.loss)
        expected = (inputs["noise"].argsort(dim=1).argsort(dim=1) >= 4).float()  # rank >= kept count
        torch.testing.assert_close(a.mask, expected)
        other = model(pixel_values=inputs["pixel_values"], noise=inputs["noise"].flip(1))
        assert not torch.equal(a.mask, other.mask)

    def test_random_masking_unshuffles_with_ids_restore(self):
        x = torch.arange(2 * 6, dtype=torch.float32).view(2, 6, 1)
        noise = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.8, 0.2], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
        kept, mask, ids_restore = random_masking(x, 0.5, noise)
        assert kept[:, :, 0].tolist() == [[1, 5, 3], [6, 7, 8]]
        assert mask.tolist() == [[1, 0, 1, 0, 1, 0], [0, 0, 0, 1, 1, 1]]
        shuffled = torch.cat([kept, torch.full((2, 3, 1), -1.0)], dim=1)
        restored = shuffled.gather(1, ids_restore[..., None])
        torch.testing.assert_close(restored[mask == 0], x[mask == 0])

    def test_patchify_round_trip_and_layout(self):
        model, _ = self.build(HfsslVisionForMaskedImageModeling)
        images = pixels(model.config, batch=2)
        patches = model.patchify(images)
        assert patches.shape == (2, 16, 48)
        torch.testing.assert_close(patches[:, 1], images[:, :, :4, 4:8].permute(0, 2, 3, 1).flatten(1))
        torch.testing.assert_close(model.unpatchify(patches), images)

    def test_reconstruction_keeps_visible_pixels_and_undoes_normalization(self):
        model, inputs = self.build(HfsslVisionForMaskedImageModeling)
        images = inputs["pixel_values"]
        out = model(**inputs)
        recon = model.reconstruction(images, out.logits, out.mask)
        visible = model.unpatchify((1 - out.mask)[..., None].expand(-1, -1, 48)).bool()
        assert recon.shape == images.shape
        torch.testing.assert_close(recon[visible], images[visible])
        assert not torch.allclose(recon[~visible], images[~visible])
        target = model.patchify(images)
        perfect = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        torch.testing.assert_close(model.reconstruction(images, perfect, out.mask), images)

    def test_loss_and_logits_equal_transformers_vit_mae(self):
        model, inputs = self.build(HfsslVisionForMaskedImageModeling)
        c = model.config
        reference = ViTMAEForPreTraining(ViTMAEConfig(
            image_size=16, patch_size=4, num_channels=3, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4,
            decoder_intermediate_size=64, layer_norm_eps=c.layer_norm_eps, mask_ratio=c.mask_ratio, norm_pix_loss=True,
        )).eval()
        missing, unexpected = reference.load_state_dict(to_vit_mae(model.state_dict()), strict=False)
        assert sorted(missing) == ["decoder.decoder_pos_embed", "vit.embeddings.position_embeddings"] and not unexpected
        # ViTMAE built from a config leaves its fixed positions at zero in transformers 5.24; give it the
        # positions its pretrained checkpoints hold (its builder, halves swapped as in its initialize_weights).
        positions = build_2d_sinusoidal_position_embedding(4, 4, HIDDEN, cls_token=True).roll(HIDDEN // 2, dims=1)
        with torch.no_grad():
            reference.vit.embeddings.position_embeddings.copy_(positions[None])
            reference.decoder.decoder_pos_embed.copy_(positions[None])
        with torch.no_grad():
            ours, theirs = model(**inputs), reference(**inputs)
        torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-5, rtol=1e-4)

    def test_decoder_follows_the_attention_implementation(self, tmp_path):
        model, _ = self.build(HfsslVisionForMaskedImageModeling)
        model.save_pretrained(tmp_path)
        loaded = HfsslVisionForMaskedImageModeling.from_pretrained(tmp_path, attn_implementation="eager")
        assert loaded.decoder.layers[0].attn.config._attn_implementation == "eager"
        assert loaded.decoder.layers[0].attn.config.hidden_size == loaded.config.decoder_hidden_size

    @pytest.mark.parametrize("decoder_layers", [1, 2])
    @pytest.mark.parametrize("norm_pix_loss", [True, False])
    def test_sparse_last_layer_gives_the_full_decoders_loss_and_gradients_on_the_masked_rows(
        self, decoder_layers, norm_pix_loss
    ):
        """A training step's last decoder block and pixel head compute the 12 masked patches only: the loss and
        every gradient equal the full decoder's (class token and 4 visible patches too), and no logits come back;
        in eval mode the decoder predicts every patch again."""
        torch.manual_seed(0)
        config = {"decoder_num_hidden_layers": decoder_layers, "norm_pix_loss": norm_pix_loss}
        sparse = HfsslVisionForMaskedImageModeling(tiny_config(**config)).train()
        full = HfsslVisionForMaskedImageModeling(tiny_config(**config, sparse_last_layer=False)).train()
        full.load_state_dict(sparse.state_dict())
        rows = []
        for model in (sparse, full):
            for module in (model.decoder.layers[-1].mlp, model.decoder.pred):
                module.register_forward_hook(lambda m, args, out: rows.append(tuple(args[0].shape[:2])))
        inputs = mae_inputs(sparse.config)
        outputs = [model(**inputs) for model in (sparse, full)]
        assert rows == [(3, 12), (3, 12), (3, 17), (3, 17)]
        assert outputs[0].logits is None and outputs[1].logits.shape == (3, 16, 48)
        torch.testing.assert_close(outputs[0].loss, outputs[1].loss)
        torch.testing.assert_close(outputs[0].mask, outputs[1].mask)
        for output in outputs:
            output.loss.backward()
        for (name, a), b in zip(sparse.named_parameters(), full.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, msg=name)
        rows.clear()
        evaluated = [model.eval()(**inputs) for model in (sparse, full)]  # gradients on, eval mode: every patch
        assert rows == [(3, 17)] * 4
        torch.testing.assert_close(evaluated[0].logits, evaluated[1].logits)
        torch.testing.assert_close(evaluated[0].loss, outputs[0].loss)

    def test_mae_loss_predicts_the_masked_patches_only_in_any_mode(self):
        """The MAE term of hybrid objectives returns no logits, so it always takes the sparse decoder: the same
        value as the full decoder's, in train and eval mode, with or without gradients."""
        model, inputs = self.build(HfsslVisionForMaskedImageModeling)
        rows = []
        model.decoder.pred.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[1]))
        full = model.forward_loss(inputs["pixel_values"], model(**inputs).logits, model(**inputs).mask)
        rows.clear()
        with torch.no_grad():
            torch.testing.assert_close(model.mae_loss(**inputs), full)
        torch.testing.assert_close(model.train().mae_loss(**inputs), full)
        assert rows == [12, 12]

    def test_a_mask_ratio_that_hides_nothing(self):
        """mask_ratio=0 is refused up front; one too small to hide a patch (1 - 1e-17 rounds to 1) gives loss 0,
        not NaN: the sparse path steps aside."""
        with pytest.raises(ValueError, match="mask_ratio must be in"):
            HfsslVisionForMaskedImageModeling(tiny_config(mask_ratio=0.0))
        with pytest.raises(ValueError, match="none of the 4 patches"):  # int(4 x 0.1) = 0 visible
            HfsslVisionForMaskedImageModeling(tiny_config(patch_size=8, mask_ratio=0.9))
        model = HfsslVisionForMaskedImageModeling(tiny_config(mask_ratio=0.5))
        with pytest.raises(ValueError, match="none of the 1 patches"):  # an image of one patch at run time
            model(pixel_values=torch.randn(2, 3, 4, 4))
        model = HfsslVisionForMaskedImageModeling(tiny_config(mask_ratio=1e-17)).train()
        out = model(**mae_inputs(model.config))
        assert not out.mask.any() and out.loss.item() == 0.0 and out.logits.shape == (3, 16, 48)
        assert model.mae_loss(**mae_inputs(model.config)).item() == 0.0

    def test_normalized_pixels_of_one_value_patches_are_refused(self):
        """A 1x1 grayscale patch has no variance: its normalized target would be NaN (an unbiased variance of one
        value), so the config is refused; without normalization it trains."""
        with pytest.raises(ValueError, match="1x1 patch of 1 channel has one value"):
            HfsslVisionForMaskedImageModeling(tiny_config(image_size=8, patch_size=1, num_channels=1))
        model = HfsslVisionForMaskedImageModeling(tiny_config(image_size=8, patch_size=1, num_channels=1,
                                                              norm_pix_loss=False)).train()
        assert torch.isfinite(model(**mae_inputs(model.config)).loss)

    def test_deepcopy_gives_equal_outputs(self):
        model, inputs = self.build(HfsslVisionForMaskedImageModeling)
        with torch.no_grad():
            torch.testing.assert_close(copy.deepcopy(model)(**inputs).logits, model(**inputs).logits)


def to_vit_mae(state: dict) -> dict:
    """An hfssl MAE state dict in transformers ViTMAEForPreTraining names (fused qkv split in three)."""
    names = {"model.embeddings.cls_token": "vit.embeddings.cls_token",
             "model.embeddings.projection": "vit.embeddings.patch_embeddings.projection",
             "model.norm": "vit.layernorm", "decoder.mask_token": "decoder.mask_token",
             "decoder.embed": "decoder.decoder_embed", "decoder.norm": "decoder.decoder_norm",
             "decoder.pred": "decoder.decoder_pred", "model.layers": "vit.layers",
             "decoder.layers": "decoder.decoder_layers", "attn.out": "attention.o_proj", "norm1": "layernorm_before",
             "norm2": "layernorm_after", "mlp.up": "mlp.fc1", "mlp.down": "mlp.fc2"}
    converted = {}
    for key, tensor in state.items():
        new = key
        for old, name in names.items():
            new = new.replace(old, name)
        if "attn.qkv" in key:
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3)):
                converted[new.replace("attn.qkv", f"attention.{part}")] = chunk
        else:
            converted[new] = tensor
    return converted


class TestImageClassification(ModelTesterMixin):
    model_classes = (HfsslVisionForImageClassification,)

    def make_config(self, **overrides):
        return tiny_config(**{"num_labels": 3, **overrides})

    def make_inputs(self, config):
        return {"pixel_values": pixels(config, batch=4), "labels": torch.tensor([0, 1, 2, 1])}

    def test_loads_an_mae_checkpoint(self, tmp_path):
        torch.manual_seed(0)
        mae = HfsslVisionForMaskedImageModeling(tiny_config())
        mae.save_pretrained(tmp_path)
        classifier = AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=5)
        assert isinstance(classifier, HfsslVisionForImageClassification)
        for name, tensor in mae.model.state_dict().items():
            torch.testing.assert_close(classifier.model.state_dict()[name], tensor)
        images = pixels(mae.config, batch=2)
        torch.testing.assert_close(classifier.get_features(images), mae.get_features(images))
        assert classifier(pixel_values=images).logits.shape == (2, 5)

    def test_regression_with_one_label(self):
        model, inputs = self.build(HfsslVisionForImageClassification, num_labels=1)
        out = model(pixel_values=inputs["pixel_values"], labels=torch.tensor([0.5, 1.0, -1.0, 2.0]))
        assert out.logits.shape == (4, 1) and torch.isfinite(out.loss)


class TestVariants(ModelTesterMixin):
    """Config switches: learned positions, SwiGLU, no biases, grayscale, mean pooling, raw-pixel loss."""

    model_classes = (HfsslVisionForMaskedImageModeling, HfsslVisionForImageClassification)

    def make_config(self, **overrides):
        return tiny_config(position_embedding_type="learned", hidden_act="swiglu", use_bias=False, num_channels=1,
                           pooling="mean", norm_pix_loss=False, num_labels=2, **overrides)

    def make_inputs(self, config):
        return {**mae_inputs(config), "labels": torch.tensor([0, 1, 1])}


@pytest.mark.parametrize("image_size,patch_size,num_channels", [(28, 4, 1), (32, 4, 3), (8, 2, 1)])
def test_image_and_patch_sizes(image_size, patch_size, num_channels):
    config = tiny_config(image_size=image_size, patch_size=patch_size, num_channels=num_channels)
    num_patches = (image_size // patch_size) ** 2
    images = pixels(config, batch=2)
    out = HfsslVisionForMaskedImageModeling(config).eval()(pixel_values=images)
    assert out.logits.shape == (2, num_patches, patch_size**2 * num_channels) and torch.isfinite(out.loss)
    assert int(out.mask[0].sum()) == num_patches - int(num_patches * 0.25)
    assert HfsslVisionForImageClassification(config)(pixel_values=images).logits.shape == (2, 2)


def test_features_are_deterministic_unmasked_and_leave_training_mode_alone():
    torch.manual_seed(0)
    model = HfsslVisionForMaskedImageModeling(tiny_config(hidden_dropout_prob=0.3, attention_dropout_prob=0.3)).train()
    images = pixels(model.config, batch=2).requires_grad_()
    a, b = model.get_features(images), model.get_features(images)
    assert a.shape == (2, HIDDEN)
    torch.testing.assert_close(a, b)
    assert model.training and model.model.training
    model.eval()
    full = model.model(images).last_hidden_state  # every patch, no masking
    assert full.shape == (2, 1 + 16, HIDDEN)
    torch.testing.assert_close(a, full[:, 0])
    a.sum().backward()
    assert images.grad.abs().sum() > 0


def test_mean_pooling_averages_patch_tokens():
    model = HfsslVisionModel(tiny_config(pooling="mean")).eval()
    images = pixels(model.config, batch=2)
    torch.testing.assert_close(model.get_features(images), model(images).last_hidden_state[:, 1:].mean(dim=1))


def test_bare_model_masks_only_when_asked():
    model = HfsslVisionModel(tiny_config()).eval()
    images = pixels(model.config, batch=2)
    plain = model(images, output_hidden_states=True)
    assert plain.mask is None and plain.last_hidden_state.shape == (2, 17, HIDDEN)
    assert len(plain.hidden_states) == 1 + model.config.num_hidden_layers
    assert model(images, mask_ratio=0.5).last_hidden_state.shape == (2, 1 + 8, HIDDEN)
    with pytest.raises(ValueError, match="noise must have shape"):
        model(images, noise=torch.rand(2, 5))


def test_sincos_positions_handle_other_image_sizes_and_learned_ones_refuse():
    model = HfsslVisionModel(tiny_config()).eval()
    assert model(pixels(model.config, batch=1, size=24)).last_hidden_state.shape == (1, 1 + 36, HIDDEN)
    learned = HfsslVisionModel(tiny_config(position_embedding_type="learned"))
    with pytest.raises(ValueError, match="Learned positions were made for 16x16"):
        learned(pixels(learned.config, batch=1, size=24))


def test_sincos_positions_match_transformers_layout():
    ours = sincos_positions(3, 5, 16)
    theirs = build_2d_sinusoidal_position_embedding(3, 5, 16, cls_token=True)  # [sin_h | cos_h | sin_w | cos_w]
    torch.testing.assert_close(ours, torch.cat([theirs[:, 8:], theirs[:, :8]], dim=1))
    assert not ours[0].any()


@pytest.mark.parametrize("model_channels,given", [(1, 2), (1, 4), (3, 1)])
def test_wrong_channel_count_is_rejected(model_channels, given):
    model = HfsslVisionModel(tiny_config(num_channels=model_channels))
    with pytest.raises(ValueError, match=f"has {given} channels .* num_channels={model_channels}"):
        model(torch.zeros(1, given, 16, 16))


def test_auto_classes_load_every_head_from_an_mae_checkpoint(tmp_path):
    HfsslVisionForMaskedImageModeling(tiny_config()).save_pretrained(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path), HfsslVisionModel)
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path), HfsslVisionForMaskedImageModeling)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"image_size": 30}, "image_size (30) must be a multiple of patch_size (4); use image_size=32"),
        ({"image_size": 8, "patch_size": 16}, "patch_size (16) is larger than image_size (8)"),
        ({"hidden_size": 30}, "hidden_size (30) must be a multiple of num_attention_heads (4)"),
        ({"decoder_hidden_size": 30}, "decoder_hidden_size (30) must be a multiple of decoder_num_attention_heads"),
        ({"hidden_size": 30, "num_attention_heads": 3}, "divisible by 4"),
        ({"hidden_act": "tanh"}, "gelu, swiglu"),
        ({"position_embedding_type": "rope"}, "sincos, learned"),
        ({"pooling": "max"}, "cls, mean"),
        ({"mask_ratio": 1.0}, "[0, 1) (MAE needs it above 0"),
        ({"mask_ratio": "most"}, "mask_ratio must be a number in [0, 1)"),
        ({"hidden_dropout_prob": None}, "hidden_dropout_prob must be a number in [0, 1), got None"),
        ({"num_channels": 0}, "positive integer"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError) as error:
        tiny_config(**overrides)
    assert message in str(error.value)


def test_size_presets():
    assert HfsslVisionConfig.from_size("small", num_channels=1).hidden_size == VISION_SIZES["small"]["hidden_size"]
    assert HfsslVisionConfig().to_dict()["hidden_size"] == VISION_SIZES["tiny"]["hidden_size"]
    with pytest.raises(ValueError, match="tiny, small, base"):
        HfsslVisionConfig.from_size("huge")


def test_remote_code_loads_where_hfssl_is_not_installed(tmp_path):
    torch.manual_seed(0)
    model = HfsslVisionForMaskedImageModeling(tiny_config(num_channels=1)).eval()
    model.save_pretrained(tmp_path / "model")
    inputs = mae_inputs(model.config, batch=2)
    with torch.no_grad():
        out = model(**inputs)
        features = model.get_features(inputs["pixel_values"])
    torch.save({**inputs, "logits": out.logits, "loss": out.loss, "features": features}, tmp_path / "expected.pt")
    result = run_without_hfssl(
        """
        import torch
        from transformers import AutoModel, AutoModelForImageClassification, AutoModelForPreTraining
        expected = torch.load("expected.pt")
        images = expected["pixel_values"]
        mae = AutoModelForPreTraining.from_pretrained("model", trust_remote_code=True).eval()
        assert type(mae).__module__.startswith("transformers_modules"), type(mae).__module__
        out = mae(pixel_values=images, noise=expected["noise"])
        torch.testing.assert_close(out.logits, expected["logits"])
        torch.testing.assert_close(out.loss, expected["loss"])
        backbone = AutoModel.from_pretrained("model", trust_remote_code=True).eval()
        torch.testing.assert_close(backbone.get_features(images), expected["features"])
        clf = AutoModelForImageClassification.from_pretrained("model", trust_remote_code=True, num_labels=3)
        torch.testing.assert_close(clf.get_features(images), expected["features"])
        assert clf(pixel_values=images).logits.shape == (2, 3)
        print("REMOTE-OK")
        """,
        cwd=tmp_path,
    )
    assert "REMOTE-OK" in result.stdout, result.stderr[-3000:]


def test_mae_gradient_checkpointing_gives_the_same_gradients():
    from hfssl.models import HfsslVisionConfig, HfsslVisionForMaskedImageModeling

    config = HfsslVisionConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64, decoder_hidden_size=16,
                               decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                               decoder_intermediate_size=32)
    pixels, noise = torch.rand(2, 1, 16, 16), torch.rand(2, 16)

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = HfsslVisionForMaskedImageModeling(config).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        model(pixel_values=pixels, noise=noise).loss.backward()
        return [p.grad for p in model.parameters() if p.grad is not None]

    for plain, recomputed in zip(grads(False), grads(True), strict=True):
        torch.testing.assert_close(plain, recomputed)


def test_auto_model_for_pretraining_loads_each_vision_checkpoint_as_its_own_class(tmp_path):
    """MAE and joint-embedding checkpoints share a config class: transformers picks by `architectures`, instead of
    loading a SimCLR checkpoint as MAE with a random decoder; a fresh config builds MAE."""
    from hfssl.models import HfsslVisionForContrastiveLearning

    config = tiny_config(ssl={"method": "simclr"})
    for cls in (HfsslVisionForMaskedImageModeling, HfsslVisionForContrastiveLearning):
        cls(config).save_pretrained(tmp_path / cls.__name__)
        assert type(AutoModelForPreTraining.from_pretrained(tmp_path / cls.__name__)) is cls
    assert type(AutoModelForPreTraining.from_config(tiny_config())) is HfsslVisionForMaskedImageModeling
