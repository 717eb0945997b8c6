"""Helpers shared by the package: argument checks and initializers."""
