"""The fine-tuning methods hfssl names, as plain data: `hfssl.finetune.methods` builds its peft configs from this
table, and `hfssl finetune --help` lists it without importing peft (which imports torch and transformers)."""

from __future__ import annotations

DEFAULT_VIRTUAL_TOKENS = 20  # prompt-learning methods: virtual tokens prepended to every input

# name -> (description, default learning rate). The learning rates suit the small encoders hfssl pretrains
# (measured in docs/finetune.md); adapters take larger steps than full fine-tuning because they start from zero
# and hold few parameters.
METHOD_TABLE: dict[str, tuple[str, float]] = {
    "none": ("full fine-tuning: every parameter trains", 3e-4),
    "lora": ("LoRA, low-rank updates (Hu et al. 2021)", 2e-3),
    "dora": ("DoRA, LoRA with a learned magnitude (Liu et al. 2024)", 2e-3),
    "ia3": ("IA3, learned rescaling vectors (Liu et al. 2022)", 1e-2),
    "loha": ("LoHa, Hadamard product of low-rank pairs (Hyeon-Woo et al. 2022)", 2e-3),
    "lokr": ("LoKr, Kronecker-product updates (Yeh et al. 2023)", 2e-3),
}


def describe_methods(others: list[str] | None = None) -> str:
    """One line per method, for --help texts; `others`: the installed peft's other methods, when known."""
    rows = [f"  {name:6} {description} (default learning rate {rate:g})"
            for name, (description, rate) in METHOD_TABLE.items()]
    other = (f"  any other peft method by name: {', '.join(others)}" if others is not None else
             "  any other method of the installed peft by its name (adalora, prompt_tuning, ...; an unknown name "
             "lists them all)")
    defaults = (f"  (prompt_tuning, p_tuning, prefix_tuning: {DEFAULT_VIRTUAL_TOKENS} virtual tokens unless "
                "--peft-option num_virtual_tokens=N; adalora: total_step is the run's number of optimizer steps)")
    return "\n".join([*rows, other, defaults])
