"""lightft_jax.peft."""
