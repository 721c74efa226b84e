"""satgen: generator of N:M sparse-training (SAT) accelerators from one architecture spec."""
__version__ = "0.1.0"
