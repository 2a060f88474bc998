"""lightft_jax.icl."""
