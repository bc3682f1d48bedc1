"""The ablation harness: what each search variant buys (docs/variants.md, `ablate`)."""
