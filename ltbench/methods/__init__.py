"""Framework-agnostic PyTorch implementations of every method in the four papers.

Adapters wire these in; nothing here imports a detection framework. See ``box_head.py`` for the
contract with the adapters and ``conventions.py`` for the background-index conventions.
"""
