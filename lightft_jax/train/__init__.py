"""lightft_jax.train."""
