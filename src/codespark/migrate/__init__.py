"""Legacy migration that proves itself: recipes that rewrite code module by module, verified by tests."""
