"""lightft_jax.data."""
