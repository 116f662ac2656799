"""Mutation testing of a kata's checks: generated mutants of its reference solution must fail."""
