"""Every notebook's parameters as a small dataclass (nanoGPT's ``GPTConfig`` style).

A notebook keeps papermill's plain ``parameters`` cell, so ``papermill -p n_test 50`` works as
always, and turns it into its dataclass in one line::

    P = params_from(PruningParams, globals())   # defaults per profile, range checks, smoke sizes
    globals().update(P.namespace())               # the essay below reads the plain names

One module per notebook, named after its idea; ``base`` holds what they share.
"""
from .base import NotebookParams, check_choice, check_whole

__all__ = ["NotebookParams", "check_choice", "check_whole"]
