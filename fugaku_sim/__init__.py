"""fugaku-sim: plan, run and check LLM pre-training on torus supercomputers."""
__version__ = "0.1.0"
