"""Model helpers: a tiny Llama maker for tests and demos."""
