"""cortex: a fleet gateway in front of neuron inference daemons."""

__version__ = "0.1.0"
