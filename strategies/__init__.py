"""Avalanche strategies and plugins built on the ddfad-apps distillation engine (continual learning)."""
