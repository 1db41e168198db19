"""ktrain: knowledge transfer from a teacher network to a small student, in TensorFlow 2."""

__version__ = "0.1.0"
