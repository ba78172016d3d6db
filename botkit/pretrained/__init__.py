"""Pretrained transformers: where they come from (a cache filled from registries, local folders, GGUF files), fine-tuning, generation and eval."""
