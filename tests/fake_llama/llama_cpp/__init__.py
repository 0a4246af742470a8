"""A stand-in for llama-cpp-python in tests that put `tests/fake_llama` first on PYTHONPATH."""
