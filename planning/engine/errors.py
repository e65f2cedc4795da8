"""The planning refusal (no Django imports): a plan, trajectory, tool pose or outcome that
cannot be used, with a one-line message naming the problem."""

from refusal import Refused


class PlanningRefused(Refused):
    """Bad planning input; ``message`` says what is wrong."""
